#!/usr/bin/env bash
# demo.sh — the README's first command: build ver.1 and watch three people chat.
#
# What it does: installs any missing package (scripts/setup.sh), builds the
# ver.1 server and console client (the `linux` preset), starts v1_server on
# a free port, and lets three scripted console clients — alice, bob and 민수 —
# talk. Then it prints the conversation as each of them saw it, stops the
# server with SIGTERM (its orderly shutdown) and tells you how to run the
# programs by hand.
#
# What it shows about ver.1: every line reaches every client, the sender
# included, byte for byte (the Korean line too). And its limit: nothing on
# the wire says who sent a line, so each speaker writes its name into its
# text. ver.2 puts a login id into every message packet instead.
#
# Usage: scripts/demo.sh        (Debian 12; as root, or a user with sudo)
# Exits 0 when the chat went as planned, non-zero with a message otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

server="$repo/build/linux/v1_basic_broadcast/server/v1_server"
client="$repo/build/linux/v1_basic_broadcast/client_console/v1_client"
logs="$repo/build/logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/iocp-chat-demo.XXXXXX")
server_pid=""
client_pids=()

step() { printf '\n== %s\n' "$*"; }
fail() {
  printf '\ndemo: FAILED: %s\n' "$*" >&2
  exit 1
}

# Whatever happens, leave no program running and no temporary files behind.
cleanup() {
  local pid
  for pid in "${client_pids[@]}" $server_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
# A command that fails unexpectedly (set -e) still says where the demo stopped.
trap 'printf "\ndemo: FAILED at line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
trap 'echo "demo: interrupted" >&2; exit 130' INT
trap 'echo "demo: stopped" >&2; exit 143' TERM

# --- 1. packages and build ----------------------------------------------------
step "Installing missing packages (scripts/setup.sh)"
[[ -f scripts/setup.sh ]] || fail "scripts/setup.sh is missing"
bash scripts/setup.sh || fail "scripts/setup.sh could not install the packages"

step "Building v1_server and v1_client (preset 'linux'; log: build/logs/demo-build.log)"
mkdir -p "$logs"
if ! { cmake --preset linux && cmake --build --preset linux --target v1_server v1_client; } \
    >"$logs/demo-build.log" 2>&1; then
  tail -n 30 "$logs/demo-build.log" >&2
  fail "the build failed; the whole log is in build/logs/demo-build.log"
fi
echo "built: $server"
echo "       $client"

# --- 2. the server --------------------------------------------------------------
step "Starting v1_server on a free port"
# --port 0 lets the OS pick a free port; the server logs the one it got.
: >"$work/server.log"  # exists before we read it, even if the server is slow to start
"$server" --port 0 --bind 127.0.0.1 2>"$work/server.log" &
server_pid=$!
port=""
for _ in $(seq 100); do  # up to 10 s
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p;T;q' "$work/server.log")
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "v1_server exited at start-up"; }
  sleep 0.1
done
[[ -n $port ]] || { cat "$work/server.log" >&2; fail "v1_server did not report listening within 10 s"; }
echo "v1_server (pid $server_pid) is listening on 127.0.0.1:$port"

# --- 3. the chat ----------------------------------------------------------------
# Each client sends its lines with --delay between them, counted from its own
# connection, so the lines interleave into one conversation:
#   0.4 s alice, 0.6 s bob, 0.8 s alice, 1.0 s 민수, 1.2 s bob, 2.0 s 민수.
# --expect 6: each client leaves once it has seen all six lines (its own
# echoes included); if they do not all come within 10 s, it fails.
step "alice, bob and 민수 chat through the server"
total_lines=6
start_client() {  # start_client KEY NAME DELAY LINE...
  local key=$1 name=$2 delay=$3
  shift 3
  local sends=()
  local line
  for line in "$@"; do sends+=(--send "$line"); done
  "$client" --port "$port" --name "$name" --delay "$delay" "${sends[@]}" \
    --expect "$total_lines" --timeout 10000 >"$work/$key.out" 2>"$work/$key.err" &
  client_pids+=($!)
}
start_client alice alice 400 "alice: hi, is anyone here?" "alice: hi bob! who else is on?"
start_client bob bob 600 "bob: bob here. hi alice!" "bob: welcome, 민수!"
start_client minsu 민수 1000 "민수: 안녕하세요, 여러분!" "민수: (that is Korean for \"hello, everyone!\")"

keys=(alice bob minsu)
names=(alice bob 민수)
failed_clients=()
for index in "${!keys[@]}"; do
  if ! wait "${client_pids[$index]}"; then failed_clients+=("${keys[$index]}"); fi
done

for index in "${!keys[@]}"; do
  printf '\n--- what %s saw ---\n' "${names[$index]}"
  cat "$work/${keys[$index]}.out"
done
if ((${#failed_clients[@]})); then
  for key in "${failed_clients[@]}"; do cat "$work/$key.err" >&2; done
  fail "client(s) ${failed_clients[*]} did not see all $total_lines lines"
fi

# --- 4. stop the server -----------------------------------------------------------
step "Stopping v1_server with SIGTERM"
kill -TERM "$server_pid"
for _ in $(seq 50); do  # up to 5 s
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null && fail "v1_server did not stop within 5 s of SIGTERM"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
printf '\n--- the server log ---\n'
cat "$work/server.log"
((server_status == 0)) || fail "v1_server exited with status $server_status"

cat <<EOF

== The demo worked: each client saw all $total_lines lines, its own included.

Now try it by hand. In one terminal, start the server (Ctrl+C stops it):
  $server
In two or more other terminals, start a client each, type and press Enter
(/quit leaves):
  $client --name alice
  $client --name bob
More options: $client --help
EOF
