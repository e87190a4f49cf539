#!/usr/bin/env bash
# stage-diff.sh — writes the readable diff between the two stages' servers
# to docs/stage_diff_v1_v2.diff: ver.2 is ver.1 plus packets and sessions,
# and this file shows exactly what that "plus" is (STYLE.md, habit 1).
#   scripts/stage-diff.sh           regenerate the file
#   scripts/stage-diff.sh --check   fail if the committed file is not current
set -euo pipefail
cd "$(dirname "$0")/.."

output=docs/stage_diff_v1_v2.diff
generate() {
  for file in chat_server.hpp chat_server.cpp main.cpp; do
    # diff exits 1 when the files differ, which is the point here.
    diff -u --label "v1_basic_broadcast/server/$file" --label "v2_packets/server/$file" \
      "v1_basic_broadcast/server/$file" "v2_packets/server/$file" || true
  done
}

if [[ ${1:-} == --check ]]; then
  if ! generate | cmp -s - "$output"; then
    echo "$output is not current: run scripts/stage-diff.sh and commit the result" >&2
    exit 1
  fi
  echo "$output is current"
else
  generate >"$output"
  echo "wrote $output ($(wc -l <"$output") lines)"
fi
