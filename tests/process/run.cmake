# tests/process/run.cmake: training across processes (cmake -DPROGRAM=... -DWORK_DIR=... -P run.cmake).
# 1. two runs in separate processes, 2 threads each, write the same checkpoint bit for bit;
# 2. so does a run on 1 thread;
# 3. a run killed with SIGKILL in the middle of epoch 2 leaves the checkpoint of epoch 1, whole,
#    and resuming it gives the uninterrupted run's checkpoint bit for bit.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run_program expect)
  execute_process(COMMAND ${PROGRAM} ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE error)
  message(STATUS "train_process ${ARGN}: ${result} ${output}${error}")
  if(expect STREQUAL "ok" AND NOT result EQUAL 0)
    message(FATAL_ERROR "train_process ${ARGN} failed (${result}): ${output}${error}")
  elseif(expect STREQUAL "killed" AND result EQUAL 0)
    message(FATAL_ERROR "train_process ${ARGN} was to be killed, but finished")
  endif()
endfunction()

run_program(ok train ${WORK_DIR}/a.safetensors)
run_program(ok train ${WORK_DIR}/b.safetensors)
run_program(ok compare ${WORK_DIR}/a.safetensors ${WORK_DIR}/b.safetensors)
run_program(ok train ${WORK_DIR}/one_thread.safetensors --threads 1)
run_program(ok compare ${WORK_DIR}/a.safetensors ${WORK_DIR}/one_thread.safetensors)

run_program(ok train ${WORK_DIR}/epoch1.safetensors --epochs 1)
run_program(killed train ${WORK_DIR}/killed.safetensors --kill-at-step 24)
file(GLOB leftovers ${WORK_DIR}/*.tmp*)
if(leftovers)
  message(STATUS "temporary files left by the killed run (never read): ${leftovers}")
endif()
run_program(ok compare ${WORK_DIR}/epoch1.safetensors ${WORK_DIR}/killed.safetensors)
run_program(ok train ${WORK_DIR}/killed.safetensors)
run_program(ok compare ${WORK_DIR}/a.safetensors ${WORK_DIR}/killed.safetensors)
file(REMOVE_RECURSE ${WORK_DIR})
