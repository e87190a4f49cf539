#!/usr/bin/env bash
# stage-diff.sh — writes the readable diffs between consecutive stages'
# servers: docs/stage_diff_v1_v2.diff (ver.2 is ver.1 plus packets and
# sessions) and docs/stage_diff_v2_v3.diff (ver.3 is ver.2 plus a NATS
# backplane). Each file shows exactly what that "plus" is (STYLE.md, habit 1).
# It also writes docs/v1_steps/step1.diff … step4.diff, ver.1's steps from
# the 2018 server: each step's header against the one before it.
#   scripts/stage-diff.sh           regenerate the files
#   scripts/stage-diff.sh --check   fail if a committed file is not current
set -euo pipefail
cd "$(dirname "$0")/.."

# generate OLD_STAGE NEW_STAGE: the diff of their servers' three files.
generate() {
  for file in chat_server.hpp chat_server.cpp main.cpp; do
    # diff exits 1 when the files differ, which is the point here.
    diff -u --label "$1/server/$file" --label "$2/server/$file" "$1/server/$file" "$2/server/$file" || true
  done
}

# The steps of ver.1: from the 2018 server, one change at a time.
steps=v1_basic_broadcast/steps
step_pairs=("v1_basic_broadcast/server_2018/server_2018.hpp $steps/step1_one_write_in_flight.hpp docs/v1_steps/step1.diff"
            "$steps/step1_one_write_in_flight.hpp $steps/step2_safe_close.hpp docs/v1_steps/step2.diff"
            "$steps/step2_safe_close.hpp $steps/step3_bounded_queues.hpp docs/v1_steps/step3.diff"
            "$steps/step3_bounded_queues.hpp $steps/step4_batching.hpp docs/v1_steps/step4.diff")

# write_or_check OUTPUT COMMAND...: writes the command's output to OUTPUT,
# or with --check compares them.
write_or_check() {
  local output=$1
  shift
  if [[ $mode == --check ]]; then
    if ! "$@" | cmp -s - "$output"; then
      echo "$output is not current: run scripts/stage-diff.sh and commit the result" >&2
      status=1
    else
      echo "$output is current"
    fi
  else
    "$@" >"$output"
    echo "wrote $output ($(wc -l <"$output") lines)"
  fi
}

# step_diff OLD NEW: one header against the next (diff exits 1 when they differ).
step_diff() { diff -u --label "$1" --label "$2" "$1" "$2" || true; }

mode=${1:-}
status=0
for pair in "${step_pairs[@]}"; do
  read -r old new output <<<"$pair"
  write_or_check "$output" step_diff "$old" "$new"
done
for pair in "v1_basic_broadcast v2_packets docs/stage_diff_v1_v2.diff" \
            "v2_packets v3_cluster docs/stage_diff_v2_v3.diff"; do
  read -r old new output <<<"$pair"
  write_or_check "$output" generate "$old" "$new"
done
exit $status
