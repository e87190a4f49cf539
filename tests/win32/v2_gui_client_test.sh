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
# With --cluster NATS_SERVER (and --server a v3_server) the same checks run
# across ver.3 nodes: one nats-server (JetStream, a token, its store in the
# work dir) and two nodes, a and b, that share the room. The client talks to
# node a, the peers to node b, so "linux" is taken on the other node
# (cluster-wide ids) and every line, join and leave crosses NATS.
#
# How: see gui_test_lib.sh (two stages: Xvfb, then with-wine.sh; every wait
# has a deadline).
#
# Usage: v2_gui_client_test.sh --client EXE --server V2_SERVER --with-wine SCRIPT
#          --work-dir DIR [--screenshot PNG] [--login-screenshot PNG] [--port P]
#        v2_gui_client_test.sh --cluster NATS_SERVER --server V3_SERVER ... (same options;
#          --port is then node a's)
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

client="" server="" with_wine="" work_dir="" screenshot="" login_screenshot="" port="" nats_server=""
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
    --cluster) nats_server=$2 ;;
    *) fail "unknown option $1 (see the usage at the top of $0)" ;;
  esac
  shift 2 || fail "option $1 needs a value"
done
[[ -n $client && -n $server && -n $with_wine && -n $work_dir ]] ||
  fail "usage: $0 [--cluster NATS_SERVER] --client EXE --server V2_SERVER|V3_SERVER --with-wine SCRIPT --work-dir DIR [--screenshot PNG] [--login-screenshot PNG] [--port P]"

# ---------------------------------------------------------------------------
# Stage "outer": check the tools, start the virtual display, enter Wine.
# ---------------------------------------------------------------------------
if [[ ${IOCP_CHAT_GUI_TEST_STAGE:-outer} == outer ]]; then
  require_gui_tools python3
  if [[ -n $nats_server ]]; then
    [[ -x $nats_server ]] ||
      fail "nats-server is missing: $nats_server
      install it: apt-get install nats-server (scripts/setup.sh does)"
    [[ -x $server ]] ||
      fail "the native ver.3 server is missing: $server
      build it first: cmake --preset linux && cmake --build --preset linux --target v3_server
      (or point IOCP_CHAT_NATIVE_BUILD_DIR at a Linux build tree)"
  else
    [[ -x $server ]] ||
      fail "the native ver.2 server is missing: $server
      build it first: cmake --preset linux && cmake --build --preset linux --target v2_server
      (or point IOCP_CHAT_NATIVE_BUILD_DIR at a Linux build tree)"
  fi
  [[ -f $client ]] || fail "the Windows client is missing: $client (build the mingw preset)"
  [[ -x $with_wine ]] || fail "missing or not executable: $with_wine"

  mkdir -p "$work_dir"
  work_dir=$(cd "$work_dir" && pwd)
  rm -f "$work_dir"/{transcript.txt,client.out,server.log,peer.events,peer.err,visitor.events,visitor.err}
  rm -rf "$work_dir"/{nats.conf,nats.log,credentials,jetstream,node_a.log,node_b.log}
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
nats_pid="" nats_url=""
declare -A node_pid=() node_port=() # ver.3 nodes, by name
if [[ -n $nats_server ]]; then
  server_logs=(nats.log node_a.log node_b.log)
else
  server_logs=(server.log)
fi

show_diagnostics() {
  local file
  for file in "${server_logs[@]}" client.out transcript.txt peer.events peer.err visitor.events visitor.err; do
    echo "--- $work_dir/$file:"
    cat "$work_dir/$file" 2>/dev/null || true
  done
  if [[ -n $window ]]; then
    # timeout: import waits forever for a window that has just gone.
    timeout 10 import -window "$window" "$work_dir/failure.png" 2>/dev/null &&
      echo "--- screenshot at failure: $work_dir/failure.png"
  fi
}

# Stops child process $1 with SIGTERM, and with SIGKILL if it is still
# there after the deadline.
stop_process() {
  local pid=$1 deadline=$((SECONDS + kDeadlineSeconds))
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      kill -KILL "$pid" 2>/dev/null
      break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  [[ -n $client_pid ]] && kill "$client_pid" 2>/dev/null
  [[ -n $peer_pid ]] && kill "$peer_pid" 2>/dev/null
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  # The nodes before nats-server: a node leaving the room talks to NATS.
  local pid
  for pid in "${node_pid[@]}"; do stop_process "$pid"; done
  [[ -n $nats_pid ]] && stop_process "$nats_pid"
  wait 2>/dev/null || true
}
trap cleanup EXIT

# True once the log $2 of child process $1 has a line containing $3; fails
# at once if the process has exited ($4 names it).
log_says() {
  grep -qF -- "$3" "$2" 2>/dev/null && return 0
  kill -0 "$1" 2>/dev/null || fail "$4 exited at start"
  return 1
}

# Starts nats-server on a free port of 127.0.0.1 (port -1: it picks one),
# with JetStream (the id bucket lives there; its store in the work dir) and
# a token. The token goes in a credentials file only this user can read;
# the nodes read it from there, never from the command line. Ready = its
# log says "Server is ready". Sets nats_pid and nats_url.
start_nats() {
  local token nats_port
  token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  (
    umask 077
    printf 'host: "127.0.0.1"\nport: -1\njetstream { store_dir: "%s" }\nauthorization { token: "%s" }\n' \
      "$work_dir/jetstream" "$token" >"$work_dir/nats.conf"
    printf 'token = %s\n' "$token" >"$work_dir/credentials"
  )
  "$nats_server" -c "$work_dir/nats.conf" >"$work_dir/nats.log" 2>&1 &
  nats_pid=$!
  wait_for "nats-server to be ready" log_says "$nats_pid" "$work_dir/nats.log" "Server is ready" nats-server
  nats_port=$(sed -n 's/.*Listening for client connections on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work_dir/nats.log" | head -1)
  [[ -n $nats_port ]] || fail "no client port in nats-server's log"
  nats_url=nats://127.0.0.1:$nats_port
}

# Starts ver.3 node $1 on port $2 (0: any free port), attached to
# nats-server. Ready = its log says "node NAME ready": it listens, and it
# is connected to NATS and subscribed to the room. Sets node_pid[NAME] and
# node_port[NAME] (the port it listens on, from its log).
start_node() {
  local name=$1 log=$work_dir/node_$1.log
  "$server" --nats "$nats_url" --nats-credentials "$work_dir/credentials" --node "$name" \
    --port "$2" --bind 127.0.0.1 --threads 2 2>"$log" &
  node_pid[$name]=$!
  wait_for "node $name to be ready" log_says "$!" "$log" "node $name ready" "node $name"
  node_port[$name]=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
  [[ -n ${node_port[$name]} ]] || fail "no port in node $name's log"
}

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

# 1. The native ver.2 server on a free port; or, with --cluster,
#    nats-server and two ver.3 nodes: the client's (a) and the peers' (b).
if [[ -n $nats_server ]]; then
  start_nats
  start_node a "${port:-0}"
  start_node b 0
  client_port=${node_port[a]} peer_port=${node_port[b]}
else
  start_server "$server" "$work_dir/server.log"
  client_port=$port peer_port=$port
fi

# 2. The native peer, logged in as "linux": events to a file, commands
#    ("say TEXT") through a coprocess pipe, kept open on $peer_in (and
#    closed for the other programs started below, so that only this script
#    holds it).
coproc peer_process { exec python3 "$here/v2_peer.py" --port "$peer_port" --id "$kPeerId" --events "$events" 2>"$work_dir/peer.err"; }
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
wine "$client" --host 127.0.0.1 --port "$client_port" --id "$kPeerId" --login --log "Z:${transcript//\//\\}" \
  >"$work_dir/client.out" 2>&1 </dev/null {peer_in}>&- &
client_pid=$!
window=$(find_window "$kLoginTitle")
wait_for "the login dialog to show ID_TAKEN" dialog_mentions "(ID_TAKEN)"

# 5. The dialog stays open with the id selected and focused: a click on the
#    dialog's empty lower part (the status text; it takes no focus) gives
#    it the keyboard, and typing replaces the id. Return presses Login.
#    The click activates the dialog, and activation selects the whole id
#    again — on a busy machine after the first typed character now and
#    then (the login went out as "수"). So the id is typed, selected with
#    Home, Shift+End, and typed again.
eval "$(xdotool getwindowgeometry --shell "$window")"
xdotool mousemove --window "$window" $((WIDTH / 2)) $((HEIGHT - 12)) click 1
xdotool type --delay 40 "$kUserId"
xdotool key Home shift+End
xdotool type --delay 40 "$kUserId"
sleep 0.5 # for the picture only: let Wine paint what was typed
import -window "$window" -strip "$work_dir/v2_client_win32_login.png" || fail "import could not save the screenshot"
xdotool key Return

# 6. Logged in: the login dialog is gone, the chat dialog is there, and the
#    peer heard of 민수.
chat_window=$(find_window "$kChatTitle")
window=$chat_window
wait_for "the login dialog to close" window_gone "$kLoginTitle"
wait_for "the dialog to log in as $kUserId" dialog_shows "* logged in as $kUserId at 127.0.0.1:$client_port"
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
#    (its stdin is empty, so it closes its sending side right after the
#    LOGIN_REQUEST; a ver.3 node answers it all the same once its claim on
#    the id is back from NATS, as ver.2 does).
echo "say $kPeerLine" >&"$peer_in"
wait_for "the dialog to show '[$kPeerId] $kPeerLine'" dialog_shows "[$kPeerId] $kPeerLine"
python3 "$here/v2_peer.py" --port "$peer_port" --id "$kVisitorId" --events "$work_dir/visitor.events" \
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

if [[ -n $nats_server ]]; then
  where="client on v3_server node a (port $client_port), peers on node b (port $peer_port), over $nats_url"
else
  where="$(basename "$server") on port $port"
fi
echo "v2 win32 client under wine ($(wine --version 2>/dev/null), display $DISPLAY, $where):"
echo "  login as '$kPeerId' (--id --login)  -> ID_TAKEN shown, login dialog still open"
echo "  typed id '$kUserId' + Return          -> chat dialog; peer got USER_JOINED $kUserId"
echo "  typed '$kLine' (50 bytes) -> peer got CHAT_BROADCAST '$kPiece1' + '$kPiece2'"
echo "  peer said '$kPeerLine', '$kVisitorId' joined and left -> all shown in the list box"
echo "  Esc -> exit 0; peer got USER_LEFT $kUserId"
echo "  screenshots: $work_dir/v2_client_win32.png, $work_dir/v2_client_win32_login.png"
echo "PASS"
