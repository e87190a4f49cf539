# run_fuzzer.cmake — one fuzz test (cmake -P): copies the seed corpus into the
# build tree and runs the fuzzer on that copy for a bounded time. libFuzzer
# exits non-zero when it finds a crash, a leak, a UB report (UBSan is built
# not to recover), an input slower than -timeout or a run above -rss_limit_mb;
# then this script fails and says where the input that did it was saved.
#
# Variables: FUZZER (the program), SEEDS (the corpus in the repository),
# WORK_DIR (in the build tree), SECONDS (the environment variable
# IOCP_CHAT_FUZZ_SECONDS, if set, wins: scripts/fuzz.sh uses it).
if(DEFINED ENV{IOCP_CHAT_FUZZ_SECONDS})
  set(SECONDS $ENV{IOCP_CHAT_FUZZ_SECONDS})
endif()

# The working corpus keeps what earlier runs found, so each run starts
# where the last one stopped; the seeds are copied in every time.
set(corpus ${WORK_DIR}/corpus)
set(artifacts ${WORK_DIR}/artifacts/)
file(MAKE_DIRECTORY ${corpus} ${artifacts})
file(COPY ${SEEDS}/ DESTINATION ${corpus})

execute_process(
  COMMAND ${FUZZER}
    -max_total_time=${SECONDS}
    -rss_limit_mb=2048
    -timeout=10
    -print_final_stats=1
    -artifact_prefix=${artifacts}
    ${corpus}
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (exit ${result}). The input is saved in ${artifacts}; "
                      "replay it with: ${FUZZER} ${artifacts}<file>")
endif()
