#!/usr/bin/env bash
# v2_gui_client_test.sh — drives the real ver.2 WinAPI client
# (v2_client_win32.exe: login dialog, then chat dialog) under Wine on a
# virtual X display, against the real native ver.2 server, with native
# peers that speak ver.2 frames (v2_peer.py).
#
# What it proves, end to end:
#  - --id linux --login logs in by itself; the server answers ID_TAKEN (a
#    peer holds "linux"), and the login dialog shows it and stays open, on
#    the same connection, with the id selected;
#  - a Korean id typed into the login dialog (민수) and Return (the default
#    button, Login) log in: the login dialog closes, the chat dialog
#    "iocp-chat ver.2" opens, and the peer receives USER_JOINED 민수;
#  - a Korean line typed into the chat dialog, 50 bytes of UTF-8, and
#    Return (Send) reach the peer as two CHAT_BROADCASTs from 민수, cut
#    between characters ("친" ends the first 30 bytes; "구" would not fit);
#  - what others do shows in the dialog's list box: a message from the peer
#    ("[linux] ..."), and a second peer's join and leave ("* 서울 joined",
#    "* 서울 left"). The list is read through the client's --log file (every
#    shown line, UTF-8), not from pixels;
#  - Esc closes the dialog, the program exits with 0, and the peer receives
#    USER_LEFT 민수.
# It saves screenshots of both dialogs (--screenshot / --login-screenshot
# copy them elsewhere; scripts/screenshot-win32.sh uses that for docs/images/).
#
# How: see gui_test_lib.sh (two stages: Xvfb, then with-wine.sh; every wait
# has a deadline).
#
# Usage: v2_gui_client_test.sh --client EXE --server V2_SERVER --with-wine SCRIPT
#          --work-dir DIR [--screenshot PNG] [--login-screenshot PNG] [--port P]
set -euo pipefail
export LC_ALL=C.UTF-8 # bash counts characters, not bytes, in the typed text

readonly kLoginTitle='iocp-chat ver.2 login'
readonly kChatTitle='iocp-chat ver.2'
readonly kPeerId='linux'                            # the native peer; also the id that is taken
readonly kUserId='민수'                             # typed into the login dialog
readonly kLine='안녕하세요, 리눅스 친구들! 반가워요' # typed into the chat dialog: 50 bytes
readonly kPiece1='안녕하세요, 리눅스 친'             # its first CHAT_REQUEST: 30 bytes
readonly kPiece2='구들! 반가워요'                    # the rest: 20 bytes
readonly kPeerLine='리눅스에서 안녕! hello'          # sent by the peer: 29 bytes
readonly kVisitorId='서울'                           # a second peer that joins and leaves
readonly kDeadlineSeconds=30                         # for any single wait

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=gui_test_lib.sh
source "$here/gui_test_lib.sh"

client="" server="" with_wine="" work_dir="" screenshot="" login_screenshot="" port=""
readonly kArguments=("$@")
while (($#)); do
  case $1 in
    --client) client=$2 ;;
    --server) server=$2 ;;
    --with-wine) with_wine=$2 ;;
    --work-dir) work_dir=$2 ;;
    --screenshot) screenshot=$2 ;;
    --login-screenshot) login_screenshot=$2 ;;
    --port) port=$2 ;;
    *) fail "unknown option $1 (see the usage at the top of $0)" ;;
  esac
  shift 2 || fail "option $1 needs a value"
done
[[ -n $client && -n $server && -n $with_wine && -n $work_dir ]] ||
  fail "usage: $0 --client EXE --server V2_SERVER --with-wine SCRIPT --work-dir DIR [--screenshot PNG] [--login-screenshot PNG] [--port P]"

# ---------------------------------------------------------------------------
# Stage "outer": check the tools, start the virtual display, enter Wine.
# ---------------------------------------------------------------------------
if [[ ${IOCP_CHAT_GUI_TEST_STAGE:-outer} == outer ]]; then
  require_gui_tools python3
  [[ -x $server ]] ||
    fail "the native ver.2 server is missing: $server
      build it first: cmake --preset linux && cmake --build --preset linux --target v2_server
      (or point IOCP_CHAT_NATIVE_BUILD_DIR at a Linux build tree)"
  [[ -f $client ]] || fail "the Windows client is missing: $client (build the mingw preset)"
  [[ -x $with_wine ]] || fail "missing or not executable: $with_wine"

  mkdir -p "$work_dir"
  work_dir=$(cd "$work_dir" && pwd)
  rm -f "$work_dir"/{transcript.txt,client.out,server.log,peer.events,peer.err,visitor.events,visitor.err}
  rm -f "$work_dir"/{v2_client_win32.png,v2_client_win32_login.png,failure.png}
  start_virtual_display

  status=0
  IOCP_CHAT_GUI_TEST_STAGE=inner "$with_wine" bash "$0" "${kArguments[@]}" || status=$?
  exit "$status"
fi

# ---------------------------------------------------------------------------
# Stage "inner": runs inside with-wine.sh (WINEPREFIX and wineserver ready).
# ---------------------------------------------------------------------------
work_dir=$(cd "$work_dir" && pwd)
transcript=$work_dir/transcript.txt
events=$work_dir/peer.events
server_pid="" client_pid="" peer_pid="" window=""

show_diagnostics() {
  local file
  for file in server.log client.out transcript.txt peer.events peer.err visitor.events visitor.err; do
    echo "--- $work_dir/$file:"
    cat "$work_dir/$file" 2>/dev/null || true
  done
  if [[ -n $window ]]; then
    import -window "$window" "$work_dir/failure.png" 2>/dev/null &&
      echo "--- screenshot at failure: $work_dir/failure.png"
  fi
}

cleanup() {
  [[ -n $client_pid ]] && kill "$client_pid" 2>/dev/null
  [[ -n $peer_pid ]] && kill "$peer_pid" 2>/dev/null
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null || true
}
trap cleanup EXIT

# True if the dialog showed exactly the line $1 (one whole line of the transcript).
dialog_shows() { grep -qxF -- "$1" "$transcript" 2>/dev/null; }
# True if the dialog showed a line containing $1.
dialog_mentions() { grep -qF -- "$1" "$transcript" 2>/dev/null; }
# True if the peer received exactly the event line $1.
peer_got() { grep -qxF -- "$1" "$events" 2>/dev/null; }
# The line numbers of the peer's event $1, if any.
peer_event_line() { grep -nxF -- "$1" "$events" | head -1 | cut -d: -f1; }
# Copies the screenshot $1 of the work dir to $2, if $2 is given.
publish() {
  [[ -n $2 ]] || return 0
  mkdir -p "$(dirname "$2")"
  cp "$work_dir/$1" "$2"
}

# 1. The native ver.2 server on a free port.
start_server "$server" "$work_dir/server.log"

# 2. The native peer, logged in as "linux": events to a file, commands
#    ("say TEXT") through a coprocess pipe, kept open on $peer_in (and
#    closed for the other programs started below, so that only this script
#    holds it).
coproc peer_process { exec python3 "$here/v2_peer.py" --port "$port" --id "$kPeerId" --events "$events" 2>"$work_dir/peer.err"; }
# shellcheck disable=SC2154 # set by coproc
peer_pid=$peer_process_PID
exec {peer_in}>&"${peer_process[1]}"
wait_for "the peer to log in as $kPeerId" peer_got "LOGIN_RESPONSE OK $kPeerId"

# 3. The Wine prefix's fonts and frames, and a spare key for every Korean
#    character that will be typed — before the client starts.
prepare_wine_prefix
map_spare_keys "$kUserId" "$kLine"

# 4. The client, told to log in as "linux" at once: that id is the peer's.
#    Wine maps drive Z: to /, so Z:\ + the path with backslashes is the same file.
wine "$client" --host 127.0.0.1 --port "$port" --id "$kPeerId" --login --log "Z:${transcript//\//\\}" \
  >"$work_dir/client.out" 2>&1 </dev/null {peer_in}>&- &
client_pid=$!
window=$(find_window "$kLoginTitle")
wait_for "the login dialog to show ID_TAKEN" dialog_mentions "(ID_TAKEN)"

# 5. The dialog stays open with the id selected and focused: a click on the
#    dialog's empty lower part (the status text; it takes no focus) gives
#    it the keyboard, and typing replaces the id. Return presses Login.
eval "$(xdotool getwindowgeometry --shell "$window")"
xdotool mousemove --window "$window" $((WIDTH / 2)) $((HEIGHT - 12)) click 1
xdotool type --delay 40 "$kUserId"
sleep 0.5 # for the picture only: let Wine paint what was typed
import -window "$window" -strip "$work_dir/v2_client_win32_login.png" || fail "import could not save the screenshot"
xdotool key Return

# 6. Logged in: the login dialog is gone, the chat dialog is there, and the
#    peer heard of 민수.
chat_window=$(find_window "$kChatTitle")
window=$chat_window
wait_for "the login dialog to close" window_gone "$kLoginTitle"
wait_for "the dialog to log in as $kUserId" dialog_shows "* logged in as $kUserId at 127.0.0.1:$port"
wait_for "the peer to receive USER_JOINED $kUserId" peer_got "USER_JOINED $kUserId"

# 7. Type the long Korean line into the edit box (its centre is at
#    (116, 210) of the 300 x 226 dialog units) and press Return (Send).
click_dialog_point "$window" 116 210 300 226
xdotool type --delay 40 "$kLine"
xdotool key Return

# 8. The peer gets it as two CHAT_BROADCASTs from 민수, in order, cut
#    between characters — and the dialog shows the server's echo of both.
wait_for "the peer to receive the first piece '$kPiece1'" peer_got "CHAT_BROADCAST $kUserId $kPiece1"
wait_for "the peer to receive the second piece '$kPiece2'" peer_got "CHAT_BROADCAST $kUserId $kPiece2"
first=$(peer_event_line "CHAT_BROADCAST $kUserId $kPiece1")
second=$(peer_event_line "CHAT_BROADCAST $kUserId $kPiece2")
((second == first + 1)) || fail "the pieces did not arrive one after the other (lines $first and $second)"
broadcasts=$(grep -c "^CHAT_BROADCAST $kUserId " "$events" || true)
((broadcasts == 2)) || fail "the peer received $broadcasts CHAT_BROADCASTs from $kUserId, expected 2"
wait_for "the dialog to show its own first piece" dialog_shows "[$kUserId] $kPiece1"
wait_for "the dialog to show its own second piece" dialog_shows "[$kUserId] $kPiece2"

# 9. Others: the peer says something, and a second peer logs in and leaves
#    (its stdin is empty, so it quits right after the login).
echo "say $kPeerLine" >&"$peer_in"
wait_for "the dialog to show '[$kPeerId] $kPeerLine'" dialog_shows "[$kPeerId] $kPeerLine"
python3 "$here/v2_peer.py" --port "$port" --id "$kVisitorId" --events "$work_dir/visitor.events" \
  </dev/null 2>"$work_dir/visitor.err" {peer_in}>&- || fail "the second peer failed"
grep -qxF "LOGIN_RESPONSE OK $kVisitorId" "$work_dir/visitor.events" || fail "the second peer could not log in"
wait_for "the dialog to show '* $kVisitorId joined'" dialog_shows "* $kVisitorId joined"
wait_for "the dialog to show '* $kVisitorId left'" dialog_shows "* $kVisitorId left"

# 10. Screenshot of the chat dialog. The transcript line is written as the
#     list box gets it; give Wine a moment to paint it (WM_PAINT comes when
#     the queue is idle) — this only affects the picture, not the checks.
sleep 0.5
import -window "$window" -strip "$work_dir/v2_client_win32.png" || fail "import could not save the screenshot"
publish v2_client_win32.png "$screenshot"
publish v2_client_win32_login.png "$login_screenshot"

# 11. Esc = IDCANCEL = EndDialog: the program ends by itself, with 0, and
#     the server tells the peer that 민수 left.
xdotool key Escape
wait_for_exit "$client_pid" "the client (after Esc)"
client_pid=""
((exit_status == 0)) || fail "the client exited with $exit_status"
wait_for "the peer to receive USER_LEFT $kUserId" peer_got "USER_LEFT $kUserId"

echo "quit" >&"$peer_in"
wait_for_exit "$peer_pid" "the peer"
peer_pid=""

echo "v2 win32 client under wine ($(wine --version 2>/dev/null), display $DISPLAY, $(basename "$server") on port $port):"
echo "  login as '$kPeerId' (--id --login)  -> ID_TAKEN shown, login dialog still open"
echo "  typed id '$kUserId' + Return          -> chat dialog; peer got USER_JOINED $kUserId"
echo "  typed '$kLine' (50 bytes) -> peer got CHAT_BROADCAST '$kPiece1' + '$kPiece2'"
echo "  peer said '$kPeerLine', '$kVisitorId' joined and left -> all shown in the list box"
echo "  Esc -> exit 0; peer got USER_LEFT $kUserId"
echo "  screenshots: $work_dir/v2_client_win32.png, $work_dir/v2_client_win32_login.png"
echo "PASS"
