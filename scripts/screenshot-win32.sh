#!/usr/bin/env bash
# screenshot-win32.sh — regenerates the pictures of the WinAPI dialog clients
# that the README and the docs show:
#   v1: docs/images/v1_client_win32.png        (the ver.1 chat dialog)
#   v2: docs/images/v2_client_win32.png        (the ver.2 chat dialog)
#       docs/images/v2_client_win32_login.png  (the ver.2 login dialog)
#
# Each is the client's GUI test (tests/win32/gui_client_test.sh,
# tests/win32/v2_gui_client_test.sh) run once more with --screenshot: the
# real .exe under Wine on a virtual display, text typed into it, text from
# Linux clients shown in it — so the pictures are always of the programs as
# they are built now, never mock-ups. It builds what it needs first: the
# Windows clients (mingw preset) and the native servers (linux preset).
#
# Usage: scripts/screenshot-win32.sh [v1|v2|all]     (default: all)
#   Port 42006 (the original's) is used if it is free.
#   IOCP_CHAT_MINGW_BUILD_DIR / IOCP_CHAT_NATIVE_BUILD_DIR choose other build
#   trees than build/mingw and build/linux (configured with those presets).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
which=${1:-all}
case $which in
  v1 | v2 | all) ;;
  *)
    echo "usage: $0 [v1|v2|all]" >&2
    exit 2
    ;;
esac
mingw_dir=${IOCP_CHAT_MINGW_BUILD_DIR:-build/mingw}
native_dir=${IOCP_CHAT_NATIVE_BUILD_DIR:-build/linux}

clients=() servers=()
[[ $which == v2 ]] || clients+=(v1_client_win32) servers+=(v1_server)
[[ $which == v1 ]] || clients+=(v2_client_win32) servers+=(v2_server)
cmake --preset mingw -B "$mingw_dir" >/dev/null
cmake --build "$mingw_dir" --target "${clients[@]}"
cmake --preset linux -B "$native_dir" >/dev/null
cmake --build "$native_dir" --target "${servers[@]}"

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/iocp-chat-screenshot.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT

if [[ $which != v2 ]]; then
  bash tests/win32/gui_client_test.sh \
    --client "$mingw_dir/v1_basic_broadcast/client_win32/v1_client_win32.exe" \
    --server "$native_dir/v1_basic_broadcast/server/v1_server" \
    --with-wine scripts/with-wine.sh \
    --work-dir "$work_dir/v1" \
    --port 42006 \
    --screenshot docs/images/v1_client_win32.png
  echo "screenshot written: docs/images/v1_client_win32.png"
fi
if [[ $which != v1 ]]; then
  bash tests/win32/v2_gui_client_test.sh \
    --client "$mingw_dir/v2_packets/client_win32/v2_client_win32.exe" \
    --server "$native_dir/v2_packets/server/v2_server" \
    --with-wine scripts/with-wine.sh \
    --work-dir "$work_dir/v2" \
    --port 42006 \
    --screenshot docs/images/v2_client_win32.png \
    --login-screenshot docs/images/v2_client_win32_login.png
  echo "screenshots written: docs/images/v2_client_win32.png, docs/images/v2_client_win32_login.png"
fi
