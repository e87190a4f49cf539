# compare_output.cmake — runs PROGRAM (through EMULATOR, e.g. Wine, when
# cross-compiling) and fails unless its standard output is byte for byte the
# file EXPECTED. Used for output that the tutorial shows, so the text and the
# program cannot drift apart.
#   cmake -DPROGRAM=exe -DEXPECTED=file [-DEMULATOR=list] -P compare_output.cmake
execute_process(
  COMMAND ${EMULATOR} ${PROGRAM}
  OUTPUT_VARIABLE actual
  ERROR_VARIABLE errors
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${status}:\n${errors}\n${actual}")
endif()
file(READ "${EXPECTED}" expected)
if(NOT actual STREQUAL expected)
  message(FATAL_ERROR "The output of ${PROGRAM} is not ${EXPECTED}.\n"
                      "--- got:\n${actual}--- expected:\n${expected}"
                      "If the change is intended, write the new output into ${EXPECTED} "
                      "and check the chapter that shows it.")
endif()
