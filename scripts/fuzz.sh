#!/usr/bin/env bash
# fuzz.sh — fuzzing for longer than CI's 60 seconds, by hand: builds the
# `fuzz` preset, then runs every fuzz target (the CTest tests labelled fuzz)
# for SECONDS each, showing libFuzzer's progress as it goes.
#
# Each target works on its corpus in the build tree
# (build/fuzz/tests/fuzz/<target>.run/corpus: the repository's seeds plus all
# that earlier runs found), so each run starts where the last one stopped.
# A crash, leak or UB report fails the run and leaves the input in
# build/fuzz/tests/fuzz/<target>.run/artifacts/; replay it with
#   build/fuzz/tests/fuzz/<target> build/fuzz/tests/fuzz/<target>.run/artifacts/<file>
# Usage: scripts/fuzz.sh [SECONDS]   (default: 600)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

bash scripts/setup.sh
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
# The environment variable sets the fuzzing time (run_fuzzer.cmake reads it);
# --timeout gives CTest's watchdog room for start-up and the final report.
IOCP_CHAT_FUZZ_SECONDS=$seconds ctest --preset fuzz --timeout $((seconds + 120)) --verbose
