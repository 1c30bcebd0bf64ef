# Runs an MPI example on 1 rank and on RANKS ranks with the same arguments (ARGS, a list) and checks
# that both print the same "samples checksum": the samples do not depend on the number of ranks.
# -DMPIEXEC=... -DEXAMPLE=... -DRANKS=... -DARGS=...
foreach(ranks 1 ${RANKS})
  execute_process(COMMAND ${MPIEXEC} -n ${ranks} --oversubscribe --allow-run-as-root ${EXAMPLE} ${ARGS}
                  RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output ECHO_OUTPUT_VARIABLE
                  ECHO_ERROR_VARIABLE)
  if(NOT status STREQUAL "0")
    message(FATAL_ERROR "the run on ${ranks} ranks failed: ${status}")
  endif()
  if(NOT output MATCHES "samples checksum ([0-9a-f]+)")
    message(FATAL_ERROR "the run on ${ranks} ranks printed no samples checksum")
  endif()
  set(checksum_${ranks} ${CMAKE_MATCH_1})
endforeach()
if(NOT checksum_1 STREQUAL checksum_${RANKS})
  message(FATAL_ERROR "1 rank drew samples ${checksum_1}, ${RANKS} ranks ${checksum_${RANKS}}")
endif()
message(STATUS "the same samples on 1 and ${RANKS} ranks: ${checksum_1}")
