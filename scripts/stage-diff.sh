#!/usr/bin/env bash
# stage-diff.sh — writes the readable diffs between consecutive stages'
# servers: docs/stage_diff_v1_v2.diff (ver.2 is ver.1 plus packets and
# sessions) and docs/stage_diff_v2_v3.diff (ver.3 is ver.2 plus a NATS
# backplane). Each file shows exactly what that "plus" is (STYLE.md, habit 1).
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

status=0
for pair in "v1_basic_broadcast v2_packets docs/stage_diff_v1_v2.diff" \
            "v2_packets v3_cluster docs/stage_diff_v2_v3.diff"; do
  read -r old new output <<<"$pair"
  if [[ ${1:-} == --check ]]; then
    if ! generate "$old" "$new" | cmp -s - "$output"; then
      echo "$output is not current: run scripts/stage-diff.sh and commit the result" >&2
      status=1
    else
      echo "$output is current"
    fi
  else
    generate "$old" "$new" >"$output"
    echo "wrote $output ($(wc -l <"$output") lines)"
  fi
done
exit $status
