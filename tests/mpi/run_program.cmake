# Runs an MPI job, the arguments after `--` (tests/CMakeLists.txt's sda_add_mpi_program_test), with
# its output shown, and fails unless it exits as expected: non-zero with -DWILL_FAIL=ON, zero
# otherwise; and, with -DPASS_REGEX=..., unless its output (stdout and stderr) matches the regex.
# (CTest's own PASS_REGULAR_EXPRESSION ignores the exit status, and WILL_FAIL would invert the match.)
set(command "")
set(after_dashes OFF)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(index RANGE ${last})
  if(after_dashes)
    list(APPEND command "${CMAKE_ARGV${index}}")
  elseif(CMAKE_ARGV${index} STREQUAL "--")
    set(after_dashes ON)
  endif()
endforeach()
execute_process(COMMAND ${command} RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output
                ECHO_OUTPUT_VARIABLE ECHO_ERROR_VARIABLE)
if(WILL_FAIL AND status STREQUAL "0")
  message(FATAL_ERROR "the job exited 0; it should have failed")
elseif(NOT WILL_FAIL AND NOT status STREQUAL "0")
  message(FATAL_ERROR "the job failed: ${status}")
endif()
if(DEFINED PASS_REGEX AND NOT output MATCHES "${PASS_REGEX}")
  message(FATAL_ERROR "the job's output does not match '${PASS_REGEX}'")
endif()
