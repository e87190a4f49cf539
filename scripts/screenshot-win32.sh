#!/usr/bin/env bash
# screenshot-win32.sh — regenerates docs/images/v1_client_win32.png, the
# picture of the ver.1 WinAPI dialog client that the README shows.
#
# It is the client's GUI test (tests/win32/gui_client_test.sh) run once more
# with --screenshot: the real .exe under Wine on a virtual display, a line
# typed into it, a line from a Linux client shown in it — so the picture is
# always of the program as it is built now, never a mock-up. It builds what it
# needs first: the Windows client (mingw preset) and the native v1_server
# (linux preset).
#
# Usage: scripts/screenshot-win32.sh [OUTPUT.png]
#        (default docs/images/v1_client_win32.png; port 42006 if it is free)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
output=${1:-docs/images/v1_client_win32.png}

cmake --preset mingw >/dev/null
cmake --build --preset mingw --target v1_client_win32
cmake --preset linux >/dev/null
cmake --build --preset linux --target v1_server

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/iocp-chat-screenshot.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
bash tests/win32/gui_client_test.sh \
  --client build/mingw/v1_basic_broadcast/client_win32/v1_client_win32.exe \
  --server build/linux/v1_basic_broadcast/server/v1_server \
  --with-wine scripts/with-wine.sh \
  --work-dir "$work_dir" \
  --port 42006 \
  --screenshot "$output"
echo "screenshot written: $output"
