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
# From the start, every configuration after the first is built in the
# background, one after another, at the lowest CPU priority (nice 19): many
# tests wait on sockets and timers (and a build has its single-threaded
# moments), and that idle CPU shortens the whole run by minutes on 2 cores,
# while the tests and the first build keep the CPU whenever they want it.
# The Windows build is the last of them, so nothing is built while the Wine
# tests run (typing into a window wants a quiet machine). Each
# configuration's own configure + build then runs as usual — an up-to-date
# tree makes it quick, and a failed background build shows its errors there.
# Prints one summary line per configuration; exits non-zero if any failed.
# Usage: scripts/test.sh [configuration...]   (default: all of them)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

bash scripts/setup.sh || { echo "setup failed"; exit 1; }

configurations=("$@")
((${#configurations[@]})) || configurations=(linux asan tsan fuzz mingw format docs)

declare -A results
export IOCP_CHAT_PASSED_PRESETS=""  # read by docs/check_steps.py
failed=0
log_dir=build/logs
mkdir -p "$log_dir"

background_pid="" # the background builder, if one was started

# Builds configurations $@ in the background, in order, at nice 19 (see
# above); leaves build/logs/<preset>-background.done after each.
start_background_builds() {
  (
    for preset in "$@"; do
      (nice -n 19 cmake --preset "$preset" && nice -n 19 cmake --build --preset "$preset") \
        >"$log_dir/$preset-background-build.log" 2>&1
      touch "$log_dir/$preset-background.done"
    done
  ) &
  background_pid=$!
}

# Waits until the background builder is past configuration $1 (or gone); its
# result does not matter (the foreground build repeats a failure).
wait_for_background_build() {
  [[ -n $background_pid ]] || return 0
  while [[ ! -e $log_dir/$1-background.done ]] && kill -0 "$background_pid" 2>/dev/null; do
    sleep 1
  done
}

# The configurations after $1 in this run that have a build worth starting early.
later_buildable() {
  local i seen=""
  for ((i = 0; i < ${#configurations[@]}; i++)); do
    if [[ -n $seen ]]; then
      case ${configurations[i]} in
        linux | asan | tsan | fuzz | mingw) echo "${configurations[i]}" ;;
      esac
    fi
    [[ ${configurations[i]} == "$1" ]] && seen=yes
  done
}

run_preset() {
  local preset=$1 later
  wait_for_background_build "$preset"
  if [[ -z $background_pid ]]; then
    mapfile -t later < <(later_buildable "$preset")
    rm -f "$log_dir"/*-background.done
    ((${#later[@]})) && start_background_builds "${later[@]}"
  fi
  cmake --preset "$preset" >"$log_dir/$preset-configure.log" 2>&1 || { tail -30 "$log_dir/$preset-configure.log"; return 1; }
  cmake --build --preset "$preset" >"$log_dir/$preset-build.log" 2>&1 || { grep -E 'error|Error' "$log_dir/$preset-build.log" | head -40; return 1; }
  if [[ $preset == mingw ]]; then
    # A quiet machine for the Wine tests: in the usual order the Windows
    # build is the builder's last, so this does not wait.
    [[ -n $background_pid ]] && wait "$background_pid"
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

[[ -n $background_pid ]] && wait "$background_pid" 2>/dev/null

echo
echo "=== summary ==="
for configuration in "${configurations[@]}"; do
  printf '%-7s %s\n' "$configuration" "${results[$configuration]}"
done
exit $failed
