#!/usr/bin/env bash
# with-server.sh — run one command against a chat server that this script
# starts on a free port and stops the way Ctrl+C does.
#
# The tutorial's "Check this step" blocks use it to run a server and a
# client in one command, with no fixed port and no sleep: the server is
# started with --port 0 (the OS picks a free port), the script waits for its
# "listening on ADDRESS:PORT" log line, puts the port into the command where
# it says {port}, runs the command, then sends SIGINT and checks that the
# server shut down in order (exit status 0 within 10 s).
#
# Usage: scripts/with-server.sh SERVER [SERVER_OPTION...] -- COMMAND [ARG...]
#   e.g. scripts/with-server.sh build/linux/v1_basic_broadcast/server/v1_server -- \
#          build/linux/v1_basic_broadcast/client_console/v1_client --port {port} --send hi --expect 1
# Prints the server's log at the end. Exits with the command's status, or 1
# if the server did not start or did not stop cleanly.
set -euo pipefail

server=()
while (($#)) && [[ $1 != -- ]]; do
  server+=("$1")
  shift
done
if ((${#server[@]} == 0)) || (($# < 2)); then
  echo "usage: $0 SERVER [SERVER_OPTION...] -- COMMAND [ARG...]" >&2
  exit 2
fi
shift  # the --

log=$(mktemp "${TMPDIR:-/tmp}/iocp-chat-server.XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -f "$log"
}
trap cleanup EXIT

"${server[@]}" --port 0 2>"$log" &
server_pid=$!

port=""
for _ in $(seq 100); do  # up to 10 s
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
  [[ -n $port ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$log" >&2
    echo "with-server: the server exited at start-up" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z $port ]]; then
  cat "$log" >&2
  echo "with-server: the server did not log 'listening on ...' within 10 s" >&2
  exit 1
fi

command=("${@//\{port\}/$port}")
status=0
"${command[@]}" || status=$?

# Ctrl+C: the server stops accepting, closes every client, joins its workers.
kill -INT "$server_pid"
for _ in $(seq 100); do  # up to 10 s
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
server_status=0
if kill -0 "$server_pid" 2>/dev/null; then
  server_status=timeout
else
  wait "$server_pid" || server_status=$?
fi
server_pid=""

echo "--- server log ---"
cat "$log"
if [[ $server_status != 0 ]]; then
  echo "with-server: the server did not stop cleanly after SIGINT (status: $server_status)" >&2
  exit 1
fi
exit "$status"
