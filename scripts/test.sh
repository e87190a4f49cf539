#!/usr/bin/env bash
# test.sh — the README's test command: installs what is missing, then builds
# and tests every configuration a learner can use:
#   linux  (GCC; the io_uring and epoll backends)
#   asan   (AddressSanitizer + UndefinedBehaviorSanitizer)
#   tsan   (ThreadSanitizer, clang, -Wthread-safety)
#   fuzz   (libFuzzer on the ver.2 decoder and sessions, clang + ASan + UBSan, 60 s a target)
#   mingw  (Windows cross build; real IOCP, tests run under Wine)
#   format (clang-format check of every C++ file)
#   docs   (the tutorial site with zero Doxygen warnings, then its tests:
#           every "Check this step" command, the diagrams are current;
#           last, because those commands reuse the trees built above, and
#           a chapter's ctest selection of a preset whose whole suite
#           passed above is listed, not run twice: IOCP_CHAT_PASSED_PRESETS)
# Prints one summary line per configuration; exits non-zero if any failed.
# Usage: scripts/test.sh [configuration...]   (default: all of them)
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || { echo "setup failed"; exit 1; }

configurations=("$@")
((${#configurations[@]})) || configurations=(linux asan tsan fuzz mingw format docs)

declare -A results
export IOCP_CHAT_PASSED_PRESETS=""  # read by docs/check_steps.py
failed=0
log_dir=build/logs
mkdir -p "$log_dir"

run_preset() {
  local preset=$1
  cmake --preset "$preset" >"$log_dir/$preset-configure.log" 2>&1 || { tail -30 "$log_dir/$preset-configure.log"; return 1; }
  cmake --build --preset "$preset" >"$log_dir/$preset-build.log" 2>&1 || { grep -E 'error|Error' "$log_dir/$preset-build.log" | head -40; return 1; }
  if [[ $preset == mingw ]]; then
    bash scripts/with-wine.sh ctest --preset "$preset"
  else
    ctest --preset "$preset"
  fi
}

check_format() {
  local files
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' 2>/dev/null | grep -v '^build/')
  clang-format --dry-run --Werror "${files[@]}"
}

for configuration in "${configurations[@]}"; do
  echo "=== $configuration ==="
  start=$SECONDS
  if [[ $configuration == format ]]; then
    check_format
  else
    run_preset "$configuration"
  fi
  status=$?
  elapsed=$((SECONDS - start))
  if ((status == 0)); then
    results[$configuration]="passed (${elapsed}s)"
    IOCP_CHAT_PASSED_PRESETS+=" $configuration"
  else
    results[$configuration]="FAILED (${elapsed}s)"
    failed=1
  fi
done

echo
echo "=== summary ==="
for configuration in "${configurations[@]}"; do
  printf '%-7s %s\n' "$configuration" "${results[$configuration]}"
done
exit $failed
