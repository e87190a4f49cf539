#!/usr/bin/env bash
# demo.sh — the README's first command: build ver.2 and watch three people chat.
#
# What it does: installs any missing package (scripts/setup.sh), builds the
# ver.2 server and console client (the `linux` preset), starts v2_server on
# a free port, and lets three scripted console clients — alice, bob and 민수 —
# log in and talk; bob leaves early. A fourth client tries to log in as
# "alice" too and is turned away. Then it prints the conversation as each of
# them saw it, stops the server with SIGTERM (its orderly shutdown) and tells
# you how to run the programs by hand.
#
# What it shows about ver.2: every line says who wrote it, because the
# message packet carries the sender's login id; people see each other come
# and go (USER_JOINED / USER_LEFT); an id belongs to one client at a time
# (LOGIN_RESPONSE ID_TAKEN); and a message holds at most 32 bytes (the
# original's 256 bits), so a longer line arrives as several messages, cut
# between characters, never inside a Korean syllable.
#
# Usage: scripts/demo.sh        (Debian 12; as root, or a user with sudo)
#        scripts/demo.sh cluster   ver.3: three nodes over NATS (scripts/demo-cluster.sh)
# Exits 0 when the chat went as planned, non-zero with a message otherwise.
set -euo pipefail
case ${1:-} in
  cluster) shift; exec bash "$(dirname "$0")/demo-cluster.sh" "$@" ;;
  -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "demo.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
repo=$(pwd)

server="$repo/build/linux/v2_packets/server/v2_server"
client="$repo/build/linux/v2_packets/client_console/v2_client"
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

step "Building v2_server and v2_client (preset 'linux'; log: build/logs/demo-build.log)"
mkdir -p "$logs"
if ! { cmake --preset linux && cmake --build --preset linux --target v2_server v2_client; } \
    >"$logs/demo-build.log" 2>&1; then
  tail -n 30 "$logs/demo-build.log" >&2
  fail "the build failed; the whole log is in build/logs/demo-build.log"
fi
echo "built: $server"
echo "       $client"

# --- 2. the server --------------------------------------------------------------
step "Starting v2_server on a free port"
# --port 0 lets the OS pick a free port; the server logs the one it got.
: >"$work/server.log"  # exists before we read it, even if the server is slow to start
"$server" --port 0 --bind 127.0.0.1 2>"$work/server.log" &
server_pid=$!
port=""
for _ in $(seq 100); do  # up to 10 s
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p;T;q' "$work/server.log")
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "v2_server exited at start-up"; }
  sleep 0.1
done
[[ -n $port ]] || { cat "$work/server.log" >&2; fail "v2_server did not report listening within 10 s"; }
echo "v2_server (pid $server_pid) is listening on 127.0.0.1:$port"

# --- 3. the chat ----------------------------------------------------------------
# The clients log in one after the other (each waits for the one before to
# be logged in), so alice sees bob and 민수 join and bob sees 민수 join.
# Each then sends its lines with --delay between them, counted from its own
# login, so the lines interleave into one conversation:
#   0.8 s alice, 1.2 s bob, 1.6 s alice, 2.0 s 민수, 2.4 s bob, 4.0 s 민수.
# --expect N: a client leaves once it has shown N lines — messages (its own
# too) and joins/leaves; if they do not all come within 10 s, it fails.
# Two lines are longer than a message: alice's (71 bytes, 3 messages) and
# 민수's (62 bytes: "Hello, everyone! Very nice to meet you :)"). The
# first piece of 민수's is 30 bytes, not 32: the 32nd byte lies inside "나".
# bob's N ends with his own goodbye, so he leaves before 민수's last line,
# and the others see "* bob left". Lines seen: alice 12, bob 9, 민수 10.
step "alice, bob and 민수 log in and chat through the server"
declare -A expected=([alice]=12 [bob]=9 [minsu]=10)
start_client() {  # start_client KEY ID DELAY LINE...
  local key=$1 id=$2 delay=$3
  shift 3
  local sends=()
  local line
  for line in "$@"; do sends+=(--send "$line"); done
  "$client" --port "$port" --id "$id" --delay "$delay" "${sends[@]}" \
    --expect "${expected[$key]}" --timeout 10000 >"$work/$key.out" 2>"$work/$key.err" &
  client_pids+=($!)
  local pid=$!
  for _ in $(seq 500); do  # up to 10 s
    grep -q "logged in as $id" "$work/$key.err" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  cat "$work/$key.err" >&2
  fail "$id could not log in"
}
start_client alice alice 800 "hi, is anyone here?" \
  "hi bob! a ver.2 message holds 32 bytes, so this line arrives in pieces."
start_client bob bob 1200 "bob here. hi alice!" "sorry, I have to go. bye!"
start_client minsu 민수 2000 "안녕하세요 여러분! 만나서 정말 반갑습니다 :)" "see you, bob!"

# A fourth client asks for an id that is in use. The server answers ID_TAKEN
# and keeps the connection open for another try; a scripted client has no
# one to ask for another id, so it says why and exits 1. Nobody else hears
# of it: only a successful login is announced.
step "Someone else tries to log in as \"alice\""
impostor_status=0
"$client" --port "$port" --id alice --send "hi, I am alice too" \
  >"$work/impostor.out" 2>"$work/impostor.err" || impostor_status=$?
printf -- '--- what the second "alice" was told (exit status %s) ---\n' "$impostor_status"
cat "$work/impostor.err"
((impostor_status == 1)) || fail "the second alice should have been refused (exit 1)"
grep -q "ID_TAKEN" "$work/impostor.err" || fail "the second alice was not told ID_TAKEN"

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
  fail "client(s) ${failed_clients[*]} did not see all their lines"
fi

# --- 4. stop the server -----------------------------------------------------------
step "Stopping v2_server with SIGTERM"
kill -TERM "$server_pid"
for _ in $(seq 50); do  # up to 5 s
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null && fail "v2_server did not stop within 5 s of SIGTERM"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
printf '\n--- the server log ---\n'
cat "$work/server.log"
((server_status == 0)) || fail "v2_server exited with status $server_status"

cat <<EOF

== The demo worked: each client saw every message and who wrote it, and the
   second "alice" was turned away.

Now try it by hand. In one terminal, start the server (Ctrl+C stops it):
  $server
In two or more other terminals, start a client each; log in with an id
(or give --id), type and press Enter (/quit leaves):
  $client
  $client --id bob
More options: $client --help
ver.1, for comparison: cmake --build --preset linux --target v1_server v1_client
EOF
