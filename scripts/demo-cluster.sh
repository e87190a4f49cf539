#!/usr/bin/env bash
# demo-cluster.sh — `scripts/demo.sh cluster`: one chat room over three
# ver.3 nodes and one NATS server, on this machine.
#
# What it does: installs any missing package (scripts/setup.sh), builds
# v3_server and the ver.2 console client (the `linux` preset), starts a
# nats-server with JetStream and a token (in a temporary directory, free
# ports on 127.0.0.1), then three nodes a, b and c that share the room
# "lobby". alice logs in on node a, bob on node b, dora on node c, and each
# says hello. Someone tries to log in as "alice" on node c and is turned
# away. Then node c is killed with SIGKILL, and the demo measures how long
# alice and bob wait for "* dora left"; last, dora logs in again on node a.
#
# What it shows about ver.3: clients speak ver.2 and cannot tell the nodes
# apart; a line typed on one node reaches the clients of every node; an id
# is unique in the whole cluster (claimed in NATS's key-value bucket, so the
# second "alice" gets ID_TAKEN from another node); a node that dies without
# a word is declared dead within the bound (no heartbeat for 3 s), its
# clients leave the room and their ids are free again.
#
# Usage: scripts/demo.sh cluster   (or scripts/demo-cluster.sh; --help)
# Exits 0 when the chat went as planned, non-zero with a message otherwise.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
repo=$(pwd)

node_program="$repo/build/linux/v3_cluster/server/v3_server"
client="$repo/build/linux/v2_packets/client_console/v2_client"
logs="$repo/build/logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/iocp-chat-cluster.XXXXXX")
pids=()

step() { printf '\n== %s\n' "$*"; }
fail() {
  printf '\ndemo: FAILED: %s\n' "$*" >&2
  show_what_happened >&2
  exit 1
}
# On a failure: the end of every log the demo kept (nodes, nats-server,
# clients), so that what went wrong can be read without running it again.
show_what_happened() {
  local file
  for file in "$work"/*.log "$work"/*.out "$work"/*.err; do
    [[ -s $file ]] || continue
    printf -- '--- %s (last 15 lines) ---\n' "${file##*/}"
    tail -n 15 "$file"
  done
}

# Whatever happens, leave no program running and no temporary files behind.
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'printf "\ndemo: FAILED at line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
trap 'echo "demo: interrupted" >&2; exit 130' INT
trap 'echo "demo: stopped" >&2; exit 143' TERM

# wait_for FILE PATTERN SECONDS PID: until FILE has a line matching PATTERN;
# fails early when PID (the program writing FILE) has exited.
wait_for() {
  local file=$1 pattern=$2 seconds=$3 pid=$4
  for _ in $(seq $((seconds * 20))); do
    grep -q -- "$pattern" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  grep -q -- "$pattern" "$file" 2>/dev/null
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- 1. packages and build ----------------------------------------------------
step "Installing missing packages (scripts/setup.sh)"
bash scripts/setup.sh || fail "scripts/setup.sh could not install the packages"

step "Building v3_server and v2_client (preset 'linux'; log: build/logs/demo-cluster-build.log)"
mkdir -p "$logs"
if ! { cmake --preset linux && cmake --build --preset linux --target v3_server v2_client; } \
    >"$logs/demo-cluster-build.log" 2>&1; then
  tail -n 30 "$logs/demo-cluster-build.log" >&2
  fail "the build failed; the whole log is in build/logs/demo-cluster-build.log"
fi

# --- 2. NATS ------------------------------------------------------------------------
# One nats-server with JetStream (the id bucket lives there) and a token:
# the backplane lets no one in without credentials. The nodes read the token
# from a file only they can read, never from the command line.
step "Starting nats-server (JetStream on, a token required)"
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
nats_port=$(free_port)
mkdir -p "$work/jetstream"
(
  umask 077
  printf 'listen: "127.0.0.1:%s"\njetstream { store_dir: "%s" }\nauthorization { token: "%s" }\n' \
    "$nats_port" "$work/jetstream" "$token" >"$work/nats.conf"
  printf '# the demo nodes'"'"' NATS credentials\ntoken = %s\n' "$token" >"$work/credentials"
)
nats-server -c "$work/nats.conf" >"$work/nats.log" 2>&1 &
nats_pid=$!
pids+=("$nats_pid")
wait_for "$work/nats.log" "Server is ready" 10 "$nats_pid" ||
  { cat "$work/nats.log" >&2; fail "nats-server did not start"; }
echo "nats-server (pid $nats_pid) on 127.0.0.1:$nats_port"

# --- 3. three nodes -----------------------------------------------------------------
step "Starting three nodes, a, b and c, that share the room \"lobby\""
declare -A node_pid node_port
for node in a b c; do
  "$node_program" --nats "nats://127.0.0.1:$nats_port" --nats-credentials "$work/credentials" \
    --node "$node" --port 0 --threads 2 2>"$work/node_$node.log" &
  node_pid[$node]=$!
  pids+=("$!")
done
for node in a b c; do
  wait_for "$work/node_$node.log" "node $node ready" 15 "${node_pid[$node]}" ||
    { cat "$work/node_$node.log" >&2; fail "node $node did not start"; }
  node_port[$node]=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p;T;q' "$work/node_$node.log")
  echo "node $node (pid ${node_pid[$node]}) serves ver.2 clients on 127.0.0.1:${node_port[$node]}"
done

# --- 4. the chat --------------------------------------------------------------------
# One client per node; each logs in after the one before, then says hello
# (--delay counts from its own login). --expect N: the client leaves once it
# has shown N lines. alice: bob and dora joining, three hellos, dora leaving
# (6); bob: dora joining, three hellos, dora and alice leaving, in either
# order (6). bob waits for alice's departure because each node notices
# node c's death on its own clock: had bob left after "dora left", node b
# (which may notice first) could announce "bob left" to alice before node a
# tells her "dora left", and that would be her sixth line. dora stays until
# her node dies.
step "alice (node a), bob (node b) and dora (node c) log in and say hello"
declare -A client_pid
start_client() {  # start_client NAME NODE EXPECT LINE
  "$client" --port "${node_port[$2]}" --id "$1" --delay 1500 --send "$4" \
    --expect "$3" --timeout 30000 >"$work/$1.out" 2>"$work/$1.err" &
  pids+=("$!")
  client_pid[$1]=$!
  wait_for "$work/$1.err" "logged in as $1" 10 "$!" || { cat "$work/$1.err" >&2; fail "$1 could not log in"; }
}
start_client alice a 6 "hi, alice here, on node a"
start_client bob b 6 "bob here, on node b"
start_client dora c 100 "and dora, on node c"
for name in alice bob dora; do
  wait_for "$work/$name.out" "\[dora\] and dora" 10 "${client_pid[$name]}" || fail "$name did not hear dora's hello"
done

step "Someone else tries to log in as \"alice\", on node c"
impostor_status=0
"$client" --port "${node_port[c]}" --id alice --send "hi, I am alice too" \
  >"$work/impostor.out" 2>"$work/impostor.err" || impostor_status=$?
cat "$work/impostor.err"
((impostor_status == 1)) || fail "the second alice should have been refused (exit 1)"
grep -q "ID_TAKEN" "$work/impostor.err" || fail "the second alice was not told ID_TAKEN"
echo "(node c asked NATS's bucket, which knows alice is held on node a)"

# --- 5. a node dies -------------------------------------------------------------------
step "Killing node c with SIGKILL: it says nothing, its peers must notice the silence"
killed_at=$(date +%s%N)
kill -KILL "${node_pid[c]}"
wait "${node_pid[c]}" 2>/dev/null || true  # reaped here, so bash does not print "Killed"
for name in alice bob; do
  wait_for "$work/$name.out" "\* dora left" 10 "${node_pid[a]}" || fail "$name was not told that dora left"
  heard_at=$(date +%s%N)
  printf '%s heard "dora left" %d ms after the kill\n' "$name" $(((heard_at - killed_at) / 1000000))
done
wait "${client_pid[alice]}" || fail "alice did not see all her lines"
wait "${client_pid[bob]}" || fail "bob did not see all his lines"

step "dora logs in again, on node a: her id was released with her node"
"$client" --port "${node_port[a]}" --id dora --send "back again, now on node a" \
  >"$work/dora-again.out" 2>"$work/dora-again.err" || { cat "$work/dora-again.err" >&2; fail "dora could not log in again"; }
cat "$work/dora-again.err"

for name in alice bob dora; do
  printf '\n--- what %s saw ---\n' "$name"
  cat "$work/$name.out"
done
printf '\n--- node a'"'"'s log ---\n'
cat "$work/node_a.log"

cat <<EOF

== The demo worked: three nodes shared one room, an id was unique across
   them, and the clients of a killed node left the room within the bound.

Try it by hand: start nats-server with JetStream and a token, then nodes
  $node_program --nats nats://127.0.0.1:4222 --node a --port 42006 --nats-credentials FILE
and connect ver.2 clients to any node:  $client --port 42006
The stage: v3_cluster/README.md; the chapter: docs/ch10_scaling_out.md.
EOF
