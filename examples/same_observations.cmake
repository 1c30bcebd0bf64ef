# cmake -DEXAMPLE=... -DREFERENCE=DIR -DOUT=DIR -DARGS=a;list -P same_observations.cmake: runs the
# Lorenz-63 example on "hi" alone into OUT (data and priors from REFERENCE) and fails unless its
# observations are those of the "hi" scenario in REFERENCE/observations.csv (a run of both).

file(REMOVE_RECURSE "${OUT}")
execute_process(COMMAND "${EXAMPLE}" ${ARGS} --scenarios hi --cache "${REFERENCE}" --out "${OUT}"
                RESULT_VARIABLE result OUTPUT_QUIET)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the run with --scenarios hi failed (${result})")
endif()
file(STRINGS "${REFERENCE}/observations.csv" both REGEX "^hi,")
file(STRINGS "${OUT}/observations.csv" alone REGEX "^hi,")
list(LENGTH alone count)
if(count EQUAL 0 OR NOT both STREQUAL alone)
  message(FATAL_ERROR "\"hi\" observed other values alone than beside \"lo\":\n${alone}\nagainst\n${both}")
endif()
