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
# How (each step waits for an event, with a deadline, never a fixed sleep):
#  1. Xvfb on a free display (-displayfd tells which), then scripts/with-wine.sh
#     for a throw-away Wine prefix. DISPLAY must be set before the prefix
#     boots: Wine's desktop process (explorer) picks the display driver then,
#     and a prefix booted without a display can never open a window.
#  2. Inside it (this script again, stage "inner"): the native v1_server on a
#     free port, a bash /dev/tcp client, then the .exe with --connect --log.
#  3. xdotool finds the window, clicks the edit box, types, presses Return.
#
# Keyboard detail: xdotool types a character missing from the keyboard map by
# re-mapping a spare key for an instant; Wine reads the map late and drops
# such keys now and then. So the script maps every non-ASCII character of the
# text to a spare key (xmodmap) before Wine starts, and xdotool finds them.
#
# Usage: gui_client_test.sh --client EXE --server V1_SERVER --with-wine SCRIPT
#                           --work-dir DIR [--screenshot PNG] [--port P]
set -euo pipefail
export LC_ALL=C.UTF-8  # bash counts characters, not bytes, in the typed text

readonly kWindowTitle='iocp-chat ver.1'
readonly kWineLine='안녕하세요 from wine'                   # typed into the dialog
readonly kNativeLine='hello from linux — 리눅스에서 보냅니다'  # sent by the native client
readonly kDeadlineSeconds=30                                  # for any single wait

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

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
  for tool in Xvfb xdotool xmodmap import wine wineserver; do
    command -v "$tool" >/dev/null ||
      fail "$tool not found; install: xvfb xauth xdotool x11-xserver-utils imagemagick fonts-wine fonts-nanum wine wine64 (scripts/setup.sh)"
  done
  [[ -x $server ]] ||
    fail "the native ver.1 server is missing: $server
      build it first: cmake --preset linux && cmake --build --preset linux --target v1_server
      (or point IOCP_CHAT_NATIVE_BUILD_DIR at a Linux build tree)"
  [[ -f $client ]] || fail "the Windows client is missing: $client (build the mingw preset)"
  [[ -x $with_wine ]] || fail "missing or not executable: $with_wine"

  mkdir -p "$work_dir"
  work_dir=$(cd "$work_dir" && pwd)
  rm -f "$work_dir"/{transcript.txt,client.out,server.log,xvfb.log,display,v1_client_win32.png}

  # -displayfd: Xvfb picks a free display number and writes it to the file
  # once it accepts clients — that is the "ready" event we wait for.
  Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp 3>"$work_dir/display" \
    >"$work_dir/xvfb.log" 2>&1 &
  xvfb_pid=$!
  trap 'kill "$xvfb_pid" 2>/dev/null; wait "$xvfb_pid" 2>/dev/null || true' EXIT
  for ((i = 0; i < kDeadlineSeconds * 10; i++)); do
    [[ -s $work_dir/display ]] && break
    kill -0 "$xvfb_pid" 2>/dev/null || fail "Xvfb did not start: $(cat "$work_dir/xvfb.log")"
    sleep 0.1
  done
  [[ -s $work_dir/display ]] || fail "Xvfb gave no display number within ${kDeadlineSeconds}s"
  export DISPLAY=":$(head -1 "$work_dir/display")"

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

fail() {
  echo "FAIL: $*" >&2
  show_diagnostics >&2
  exit 1
}
trap cleanup EXIT

# Waits until the command succeeds; fails with `what` after the deadline.
wait_for() {
  local what=$1
  shift
  local deadline=$((SECONDS + kDeadlineSeconds))
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after ${kDeadlineSeconds}s waiting for $what"
    sleep 0.1
  done
}

# True if nothing accepts connections on 127.0.0.1:$1.
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts v1_server on $port if that is free, else on a random free port; a
# port taken between the check and the bind makes the server exit, and the
# next port is tried. Ready = it accepts a connection (the probe leaves at once).
start_server() {
  local attempt
  for ((attempt = 0; attempt < 5; attempt++)); do
    if [[ -z $port ]] || ! port_is_free "$port"; then
      for ((i = 0; i < 50; i++)); do
        port=$((20000 + RANDOM % 40000))
        port_is_free "$port" && break
      done
    fi
    "$server" --port "$port" --bind 127.0.0.1 2>"$work_dir/server.log" &
    server_pid=$!
    local deadline=$((SECONDS + kDeadlineSeconds))
    while kill -0 "$server_pid" 2>/dev/null; do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
      ((SECONDS < deadline)) || fail "v1_server did not listen on 127.0.0.1:$port within ${kDeadlineSeconds}s"
      sleep 0.1
    done
    wait "$server_pid" || true
    server_pid="" port=""
  done
  fail "v1_server exited at start five times"
}

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
start_server

# 2. The native client: a plain TCP socket held by bash on file descriptor $peer.
exec {peer}<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect the native client"

# 3. The Wine prefix: Tahoma and Marlett (Debian's fonts-wine puts them where
#    Wine 8 does not look) and window frames drawn by Wine itself, since
#    there is no window manager (Decorated=N) — for a screenshot that looks
#    like Windows. Korean glyphs come through Tahoma's font link to Gulim,
#    which with-wine.sh maps to NanumGothic.
fonts_dir=$WINEPREFIX/drive_c/windows/Fonts
mkdir -p "$fonts_dir"
for font in tahoma.ttf tahomabd.ttf marlett.ttf; do
  [[ -e $fonts_dir/$font || ! -e /usr/share/wine/fonts/$font ]] || ln -s "/usr/share/wine/fonts/$font" "$fonts_dir/"
done
wine reg add 'HKCU\Software\Wine\X11 Driver' /v Decorated /d N /f >/dev/null 2>&1 </dev/null ||
  fail "wine reg add failed"

# 4. Every non-ASCII character of the typed text gets its own spare key.
mapfile -t spare_keys < <(xmodmap -pke | awk 'NF == 3 { print $2 }')
declare -A mapped=()
for ((i = 0; i < ${#kWineLine}; i++)); do
  char=${kWineLine:i:1}
  code=$(printf '%X' "'$char")
  ((0x$code > 0x7E)) && [[ -z ${mapped[$char]:-} ]] || continue
  key=${spare_keys[${#mapped[@]}]:-}
  [[ -n $key ]] || fail "no spare key left for '$char'"
  xmodmap -e "keycode $key = U$code"
  mapped[$char]=$key
done

# 5. The Windows client, connecting at start, copying its list to the transcript.
#    Wine maps drive Z: to /, so Z:\ + the path with backslashes is the same file.
wine "$client" --connect --host 127.0.0.1 --port "$port" --log "Z:${transcript//\//\\}" \
  >"$work_dir/client.out" 2>&1 </dev/null &
client_pid=$!
window=$(timeout "$kDeadlineSeconds" xdotool search --sync --name "^${kWindowTitle}\$" | head -1) ||
  fail "no window titled '$kWindowTitle' within ${kDeadlineSeconds}s"
[[ -n $window ]] || fail "no window titled '$kWindowTitle'"
wait_for "the dialog to connect" dialog_shows "* connected to 127.0.0.1:$port"

# 6. Type into the edit box. Child controls are not X windows, so the click
#    goes to where the .rc puts the box: its centre is at (116, 210) of the
#    300 x 226 dialog units, and the window scales them evenly (the frame
#    Wine draws around it shifts the point by a few pixels at most).
eval "$(xdotool getwindowgeometry --shell "$window")"
xdotool mousemove --window "$window" $((WIDTH * 116 / 300)) $((HEIGHT * 210 / 226)) click 1
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
deadline=$((SECONDS + kDeadlineSeconds))
while kill -0 "$client_pid" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "the client did not exit after Esc"
  sleep 0.1
done
client_status=0
wait "$client_pid" || client_status=$?
client_pid=""
((client_status == 0)) || fail "the client exited with $client_status"

echo "win32 client under wine ($(wine --version 2>/dev/null), display $DISPLAY, v1_server on port $port):"
echo "  sent     '$kWineLine' (typed with xdotool, Return) -> native client received it byte for byte"
echo "  received '$kNativeLine' (2 TCP writes, cut inside a character) -> shown whole in the list box"
echo "  screenshot: $work_dir/v1_client_win32.png${screenshot:+ (copied to $screenshot)}"
echo "PASS"
