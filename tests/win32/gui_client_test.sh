#!/usr/bin/env bash
# gui_client_test.sh — drives the real ver.1 WinAPI dialog client
# (v1_client_win32.exe) under Wine on a virtual X display, against the real
# native ver.1 server, with a plain Linux socket as the second client.
#
# What it proves, end to end:
#  - the dialog built from the .rc resource opens (found by its title);
#  - a line typed into the edit box — with Korean in it — and sent with the
#    Return key (the default button) reaches another client byte for byte as
#    UTF-8 + "\n": the WinAPI client's outbound queue and FD_WRITE handling;
#  - a line from the other client shows in the dialog's list box even when it
#    arrives in two TCP pieces cut inside a UTF-8 character: the client's
#    FD_READ handling and its line assembly. The dialog's list is read through
#    its --log file (every shown line, UTF-8), not from pixels;
#  - Esc closes the dialog and the program exits with 0.
# It also saves a screenshot of the dialog (--screenshot copies it elsewhere;
# scripts/screenshot-win32.sh uses that for docs/images/).
#
# How: see gui_test_lib.sh, shared with the ver.2 test (two stages: Xvfb,
# then scripts/with-wine.sh; every wait for an event, with a deadline, never
# a fixed sleep). Inside Wine: the native v1_server on a free port, a bash
# /dev/tcp client, then the .exe with --connect --log; xdotool finds the
# window, clicks the edit box, types, presses Return.
#
# Usage: gui_client_test.sh --client EXE --server V1_SERVER --with-wine SCRIPT
#                           --work-dir DIR [--screenshot PNG] [--port P]
set -euo pipefail
export LC_ALL=C.UTF-8  # bash counts characters, not bytes, in the typed text

readonly kWindowTitle='iocp-chat ver.1'
readonly kWineLine='안녕하세요 from wine'                   # typed into the dialog
readonly kNativeLine='hello from linux — 리눅스에서 보냅니다'  # sent by the native client
readonly kDeadlineSeconds=30                                  # for any single wait

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=gui_test_lib.sh
source "$here/gui_test_lib.sh"

client="" server="" with_wine="" work_dir="" screenshot="" port=""
while (($#)); do
  case $1 in
    --client) client=$2 ;;
    --server) server=$2 ;;
    --with-wine) with_wine=$2 ;;
    --work-dir) work_dir=$2 ;;
    --screenshot) screenshot=$2 ;;
    --port) port=$2 ;;
    *) fail "unknown option $1 (see the usage at the top of $0)" ;;
  esac
  shift 2 || fail "option $1 needs a value"
done
[[ -n $client && -n $server && -n $with_wine && -n $work_dir ]] ||
  fail "usage: $0 --client EXE --server V1_SERVER --with-wine SCRIPT --work-dir DIR [--screenshot PNG] [--port P]"

# ---------------------------------------------------------------------------
# Stage "outer": check the tools, start the virtual display, enter Wine.
# ---------------------------------------------------------------------------
if [[ ${IOCP_CHAT_GUI_TEST_STAGE:-outer} == outer ]]; then
  # shellcheck disable=SC2119 # no tools beyond the common ones
  require_gui_tools
  [[ -x $server ]] ||
    fail "the native ver.1 server is missing: $server
      build it first: cmake --preset linux && cmake --build --preset linux --target v1_server
      (or point IOCP_CHAT_NATIVE_BUILD_DIR at a Linux build tree)"
  [[ -f $client ]] || fail "the Windows client is missing: $client (build the mingw preset)"
  [[ -x $with_wine ]] || fail "missing or not executable: $with_wine"

  mkdir -p "$work_dir"
  work_dir=$(cd "$work_dir" && pwd)
  rm -f "$work_dir"/{transcript.txt,client.out,server.log,v1_client_win32.png}
  start_virtual_display

  status=0
  IOCP_CHAT_GUI_TEST_STAGE=inner "$with_wine" bash "$0" --client "$client" --server "$server" \
    --with-wine "$with_wine" --work-dir "$work_dir" ${screenshot:+--screenshot "$screenshot"} \
    ${port:+--port "$port"} || status=$?
  exit "$status"
fi

# ---------------------------------------------------------------------------
# Stage "inner": runs inside with-wine.sh (WINEPREFIX and wineserver ready).
# ---------------------------------------------------------------------------
transcript=$work_dir/transcript.txt
server_pid="" client_pid="" peer=""

show_diagnostics() {
  echo "--- server log ($work_dir/server.log):"
  cat "$work_dir/server.log" 2>/dev/null || true
  echo "--- client output ($work_dir/client.out):"
  cat "$work_dir/client.out" 2>/dev/null || true
  echo "--- dialog transcript ($transcript):"
  cat "$transcript" 2>/dev/null || true
  if [[ -n ${window:-} ]]; then
    import -window "$window" "$work_dir/failure.png" 2>/dev/null &&
      echo "--- screenshot at failure: $work_dir/failure.png"
  fi
}

cleanup() {
  [[ -n $client_pid ]] && kill "$client_pid" 2>/dev/null
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null || true
}

trap cleanup EXIT

# True if the dialog showed exactly the line $1 (one whole line of the transcript).
dialog_shows() { grep -qxF -- "$1" "$transcript" 2>/dev/null; }

# Sends kNativeLine + "\n" in two writes, the first ending one byte into the
# first Korean character; waits for the server's echo of the first piece.
send_native_line_in_two_pieces() {
  local LC_ALL=C # byte semantics for lengths and substrings in here
  local before=${kNativeLine%%리*}
  local cut=$((${#before} + 1))
  printf '%s' "${kNativeLine:0:cut}" >&"$peer"
  local echoed
  read -r -N "$cut" -t "$kDeadlineSeconds" -u "$peer" echoed ||
    fail "no echo of the first piece from the server"
  [[ $echoed == "${kNativeLine:0:cut}" ]] || fail "the echo of the first piece differs"
  printf '%s\n' "${kNativeLine:cut}" >&"$peer"
}

# 1. The native ver.1 server on a free port.
start_server "$server" "$work_dir/server.log"

# 2. The native client: a plain TCP socket held by bash on file descriptor $peer.
exec {peer}<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect the native client"

# 3. The Wine prefix's fonts and frames (gui_test_lib.sh).
prepare_wine_prefix

# 4. Every non-ASCII character of the typed text gets its own key.
map_spare_keys "$kWineLine"

# 5. The Windows client, connecting at start, copying its list to the transcript.
#    Wine maps drive Z: to /, so Z:\ + the path with backslashes is the same file.
wine "$client" --connect --host 127.0.0.1 --port "$port" --log "Z:${transcript//\//\\}" \
  >"$work_dir/client.out" 2>&1 </dev/null &
client_pid=$!
window=$(find_window "$kWindowTitle")
wait_for "the dialog to connect" dialog_shows "* connected to 127.0.0.1:$port"

# 6. Type into the edit box: its centre is at (116, 210) of the 300 x 226
#    dialog units of the .rc.
click_dialog_point "$window" 116 210 300 226
xdotool type --delay 20 "$kWineLine"
xdotool key Return # the default button: Send

# 7. The native client gets exactly the typed line and its "\n": read
#    succeeds only if a "\n" came, and every byte before it is compared
#    (IFS= and -r keep spaces and backslashes as they are).
IFS= read -r -t "$kDeadlineSeconds" -u "$peer" received ||
  fail "the native client did not receive a whole line (got '${received:-}')"
[[ $received == "$kWineLine" ]] ||
  fail "the native client received '$received', expected '$kWineLine'"

# 8. The native client sends its line in two TCP writes, cut inside the
#    three bytes of a Korean character. It waits for the server's echo of
#    the first piece, so the server really forwards it on its own before the
#    rest exists; the dialog must still show one whole, correct line.
send_native_line_in_two_pieces
wait_for "the dialog to show '$kNativeLine'" dialog_shows "$kNativeLine"
dialog_shows "$kWineLine" || fail "the dialog did not show the echo of its own line"

# 9. Screenshot of the dialog. The transcript line is written as the list box
#    gets it; give Wine a moment to paint it (WM_PAINT comes when the queue
#    is idle) — this only affects the picture, not the checks above.
sleep 0.5
import -window "$window" -strip "$work_dir/v1_client_win32.png" || fail "import could not save the screenshot"
if [[ -n $screenshot ]]; then
  mkdir -p "$(dirname "$screenshot")"
  cp "$work_dir/v1_client_win32.png" "$screenshot"
fi

# 10. Esc = IDCANCEL = EndDialog: the program must end by itself, with 0.
xdotool key Escape
wait_for_exit "$client_pid" "the client (after Esc)"
client_pid=""
((exit_status == 0)) || fail "the client exited with $exit_status"

echo "win32 client under wine ($(wine --version 2>/dev/null), display $DISPLAY, v1_server on port $port):"
echo "  sent     '$kWineLine' (typed with xdotool, Return) -> native client received it byte for byte"
echo "  received '$kNativeLine' (2 TCP writes, cut inside a character) -> shown whole in the list box"
echo "  screenshot: $work_dir/v1_client_win32.png${screenshot:+ (copied to $screenshot)}"
echo "PASS"
