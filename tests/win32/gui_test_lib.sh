# shellcheck shell=bash disable=SC2034,SC2154 # globals shared with the sourcing script
# gui_test_lib.sh — what the GUI tests of the WinAPI clients share (sourced
# by gui_client_test.sh for ver.1 and v2_gui_client_test.sh for ver.2).
#
# The idea it serves: a real dialog program under Wine on a virtual X
# display, driven like a person would (xdotool), talking to a real native
# server over 127.0.0.1. Every wait here waits for an event and has a
# deadline (kDeadlineSeconds), none is a fixed sleep or a timing check.
#
# The order matters and is the reason for two stages per test:
#  - outer: Xvfb first, DISPLAY exported, then scripts/with-wine.sh boots a
#    throw-away Wine prefix — Wine's desktop process picks its display driver
#    at boot, and a prefix booted without a display can never open a window;
#  - inner (the test script again, inside with-wine.sh): the server, the
#    peers, the prefix's fonts, the keyboard map, then the client.
#
# Keyboard detail: xdotool types a character missing from the keyboard map
# by re-mapping a spare key for an instant; Wine reads the map late and
# drops such keys now and then. So map_spare_keys gives every non-ASCII
# character its own key (xmodmap) before the client starts, and xdotool
# then finds them in the map. Which keys: Wine gives a key whose symbol it
# does not know one of about 30 spare Windows virtual-key codes, in keycode
# order, and drops the key's presses once they run out — in Xvfb's default
# map they run out near keycode 150. So the low keycodes are used first,
# the keypad and F1–F12 (which no test types) as well as the empty ones.
#
# Functions use these globals: kDeadlineSeconds, work_dir, port, server_pid,
# xvfb_pid, exit_status. A script may define show_diagnostics; fail calls it.

: "${kDeadlineSeconds:=30}"
exit_status=0 # set by wait_for_exit

# Prints FAIL and the script's diagnostics (if it has show_diagnostics), exits 1.
fail() {
  echo "FAIL: $*" >&2
  if declare -F show_diagnostics >/dev/null; then show_diagnostics >&2; fi
  exit 1
}

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

# Fails unless every tool of a GUI test is installed.
require_gui_tools() {
  local tool
  for tool in Xvfb xdotool xmodmap import wine wineserver "$@"; do
    command -v "$tool" >/dev/null ||
      fail "$tool not found; install: xvfb xauth xdotool x11-xserver-utils imagemagick fonts-wine fonts-nanum wine wine64 python3 (scripts/setup.sh)"
  done
}

# Starts Xvfb on a free display and exports DISPLAY. -displayfd: Xvfb picks
# the number and writes it to the file once it accepts clients — the
# "ready" event. Xvfb is stopped when the script exits.
start_virtual_display() {
  rm -f "$work_dir/display" "$work_dir/xvfb.log"
  Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp 3>"$work_dir/display" >"$work_dir/xvfb.log" 2>&1 &
  xvfb_pid=$!
  trap 'kill "$xvfb_pid" 2>/dev/null; wait "$xvfb_pid" 2>/dev/null || true' EXIT
  local i
  for ((i = 0; i < kDeadlineSeconds * 10; i++)); do
    [[ -s $work_dir/display ]] && break
    kill -0 "$xvfb_pid" 2>/dev/null || fail "Xvfb did not start: $(cat "$work_dir/xvfb.log")"
    sleep 0.1
  done
  [[ -s $work_dir/display ]] || fail "Xvfb gave no display number within ${kDeadlineSeconds}s"
  DISPLAY=":$(head -1 "$work_dir/display")"
  export DISPLAY
}

# True if nothing accepts connections on 127.0.0.1:$1.
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts SERVER (a native server taking --port P --bind 127.0.0.1) on $port
# if that is free, else on a random free port, logging to LOG; a port taken
# between the check and the bind makes the server exit, and the next port is
# tried. Ready = it accepts a connection (the probe leaves at once). Sets
# server_pid and port.
start_server() {
  local server=$1 log=$2 attempt i
  for ((attempt = 0; attempt < 5; attempt++)); do
    if [[ -z $port ]] || ! port_is_free "$port"; then
      for ((i = 0; i < 50; i++)); do
        port=$((20000 + RANDOM % 40000))
        port_is_free "$port" && break
      done
    fi
    "$server" --port "$port" --bind 127.0.0.1 2>"$log" &
    server_pid=$!
    local deadline=$((SECONDS + kDeadlineSeconds))
    while kill -0 "$server_pid" 2>/dev/null; do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
      ((SECONDS < deadline)) || fail "$(basename "$server") did not listen on 127.0.0.1:$port within ${kDeadlineSeconds}s"
      sleep 0.1
    done
    wait "$server_pid" || true
    server_pid="" port=""
  done
  fail "$(basename "$server") exited at start five times"
}

# Prepares the Wine prefix for a dialog that looks like Windows: Tahoma and
# Marlett (Debian's fonts-wine puts them where Wine 8 does not look) and
# window frames drawn by Wine itself, since there is no window manager
# (Decorated=N). Korean glyphs come through Tahoma's font link to Gulim,
# which with-wine.sh maps to NanumGothic.
prepare_wine_prefix() {
  local fonts_dir=$WINEPREFIX/drive_c/windows/Fonts font
  mkdir -p "$fonts_dir"
  for font in tahoma.ttf tahomabd.ttf marlett.ttf; do
    [[ -e $fonts_dir/$font || ! -e /usr/share/wine/fonts/$font ]] || ln -s "/usr/share/wine/fonts/$font" "$fonts_dir/"
  done
  wine reg add 'HKCU\Software\Wine\X11 Driver' /v Decorated /d N /f >/dev/null 2>&1 </dev/null ||
    fail "wine reg add failed"
}

# Gives every non-ASCII character of the texts given its own key, so that
# xdotool can type it reliably: keys with no symbol, F1–F12 and the keypad,
# lowest keycode first (see the keyboard detail above).
map_spare_keys() {
  local LC_ALL=C.UTF-8 # bash counts characters, not bytes, in here
  local -a spare_keys
  mapfile -t spare_keys < <(xmodmap -pke | awk 'NF == 3 || $4 ~ /^(F[0-9]+|KP_[A-Za-z0-9_]+)$/ { print $2 }' | sort -n)
  local -A mapped=()
  local text char code key i
  for text in "$@"; do
    for ((i = 0; i < ${#text}; i++)); do
      char=${text:i:1}
      code=$(printf '%X' "'$char")
      if ((0x$code <= 0x7E)) || [[ -n ${mapped[$char]:-} ]]; then continue; fi
      key=${spare_keys[${#mapped[@]}]:-}
      [[ -n $key ]] || fail "no spare key left for '$char'"
      xmodmap -e "keycode $key = U$code"
      mapped[$char]=$key
    done
  done
}

# Prints the X window id of the window titled exactly $1, waiting for it.
# Polls rather than `xdotool search --sync`: a search that meets a window
# being destroyed (the login dialog, just closed) dies of an X BadWindow
# error, and is simply tried again.
find_window() {
  local title=$1 window=""
  local deadline=$((SECONDS + kDeadlineSeconds))
  until window=$(xdotool search --name "^${title}\$" 2>/dev/null | head -1) && [[ -n $window ]]; do
    ((SECONDS < deadline)) || fail "no window titled '$title' within ${kDeadlineSeconds}s"
    sleep 0.1
  done
  echo "$window"
}

# True if no window is titled exactly $1.
window_gone() {
  local found
  found=$(xdotool search --name "^$1\$" 2>&1) || true
  [[ -z $found ]] # an id: still there; an X error: ask again
}

# Clicks in WINDOW at the point (X, Y) of a dialog template W x H dialog
# units big. Child controls are not X windows, so the click goes to where
# the .rc puts the control; the window scales dialog units evenly (the frame
# Wine draws around it shifts the point by a few pixels at most, so aim at
# the middle of a large control).
click_dialog_point() {
  # shellcheck disable=SC2034 # X, Y, SCREEN, WINDOW: set by the eval, unused
  local window=$1 x=$2 y=$3 w=$4 h=$5 WIDTH HEIGHT X Y SCREEN WINDOW
  eval "$(xdotool getwindowgeometry --shell "$window")"
  xdotool mousemove --window "$window" $((WIDTH * x / w)) $((HEIGHT * y / h)) click 1
}

# Waits for child process $1 to end by itself and sets exit_status to its
# exit status; fails with "$2" after the deadline.
wait_for_exit() {
  local pid=$1 what=$2
  local deadline=$((SECONDS + kDeadlineSeconds))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "$what did not exit within ${kDeadlineSeconds}s"
    sleep 0.1
  done
  exit_status=0
  wait "$pid" || exit_status=$?
}
