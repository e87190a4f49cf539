#!/usr/bin/env bash
# soak.sh — a long run of one chat server under load and churn, watching its
# resources: the test that CI is too short for.
#
# Starts v1_server or v2_server from a build tree, then runs the load
# generator (bench/chat_bench, through its command line only) over and over
# for the whole time: each round connects --clients clients, publishes for
# --round seconds and disconnects them all, so the server also lives through
# a full churn of its clients every round. After each round it prints the
# server's resident memory (RSS), open descriptors, CPU time and the round's
# latency percentiles and loss. At the end, a verdict:
#   PASS  no message lost, reordered or duplicated in any round, and the
#         RSS after the last round is within --max-growth-mb of the RSS after
#         the first round (the first round warms up allocators and buffers);
#   FAIL  otherwise (exit 1).
# IOCP idea under watch: a connection's memory is freed only after its last
# completion; a leak there shows as RSS and descriptors that grow per round.
#
# Usage: scripts/soak.sh [--minutes N] [--clients N] [--server v1|v2]
#                        [--backend auto|uring|epoll] [--round SECONDS]
#                        [--max-growth-mb N] [--build DIR]
#   defaults: 10 minutes, 100 clients, v2, auto, 10 s rounds, 64 MB, build/linux
# Example (a quick look): scripts/soak.sh --minutes 1 --clients 50 --server v1
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
clients=100
server=v2
backend=auto
round=10
max_growth_mb=64
build=build/linux

usage() {
  sed -n '19,23p' "$0" >&2
  exit 2
}
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --server) server=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --round) round=$2; shift 2 ;;
    --max-growth-mb) max_growth_mb=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
[[ $server == v1 || $server == v2 ]] || { echo "--server must be v1 or v2" >&2; exit 2; }
for number in "$minutes" "$clients" "$round" "$max_growth_mb"; do
  [[ $number =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $number" >&2; exit 2; }
done

if [[ $server == v1 ]]; then
  program=$build/v1_basic_broadcast/server/v1_server
else
  program=$build/v2_packets/server/v2_server
fi
bench=$build/bench/chat_bench
for file in "$program" "$bench"; do
  [[ -x $file ]] || { echo "missing $file: build first (cmake --preset linux && cmake --build --preset linux)" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/iocp-chat-soak.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Room for the clients on both ends (they share this machine), plus margin.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$program" --port "$port" --backend "$backend" >"$work/server.log" 2>&1 &
server_pid=$!
cleanup() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$work/server.log" && break
  sleep 0.1
done
grep -q "listening on" "$work/server.log" || { cat "$work/server.log"; echo "server did not start" >&2; exit 1; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
fds() { ls "/proc/$server_pid/fd" | wc -l; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); print ($12 + $13) / hz}' "/proc/$server_pid/stat"; }

echo "soak: $server ($backend) pid $server_pid port $port, $clients clients, ${round}s rounds for $minutes min"
printf '%6s %8s %9s %5s %8s %9s %9s %9s %6s %5s\n' \
  "t(s)" "round" "RSS(MB)" "fds" "CPU(s)" "p50(us)" "p99(us)" "max(us)" "lost" "bad"
end=$((SECONDS + minutes * 60))
rounds=0
failed_rounds=0
first_rss=""
protocol_args=(--protocol "$server")
# ver.1 carries raw records from a single publisher (chat_bench --help).
[[ $server == v1 ]] && publishers=1 || publishers=$(((clients + 9) / 10))
while ((SECONDS < end)); do
  rounds=$((rounds + 1))
  json=$work/round.json
  if ! "$bench" --port "$port" "${protocol_args[@]}" --clients "$clients" --publishers "$publishers" \
      --warmup 1 --duration "$round" --server-pid "$server_pid" --json "$json" >"$work/bench.log" 2>&1; then
    failed_rounds=$((failed_rounds + 1))
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "FAIL: the server died"; tail -20 "$work/server.log"; exit 1
  fi
  read -r p50 p99 max lost bad < <(python3 - "$json" <<'PY' || echo "- - - ? ?"
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_us"]
print(l["p50"], l["p99"], l["max"], r["lost"], r["reordered"] + r["duplicated"] + r["failures"])
PY
)
  # Let the round's clients finish leaving before measuring.
  sleep 1
  rss=$(rss_kb)
  [[ -z $first_rss ]] && first_rss=$rss
  printf '%6d %8d %9.1f %5d %8.2f %9s %9s %9s %6s %5s\n' \
    "$SECONDS" "$rounds" "$(echo "$rss / 1024" | bc -l)" "$(fds)" "$(cpu_s)" "$p50" "$p99" "$max" "$lost" "$bad"
  if [[ $lost != 0 || $bad != 0 ]]; then failed_rounds=$((failed_rounds + 1)); fi
done

last_rss=$(rss_kb)
growth_mb=$(echo "($last_rss - $first_rss) / 1024" | bc -l)
printf 'rounds %d, failed rounds %d, RSS after round 1 %.1f MB, at the end %.1f MB (growth %.1f MB, limit %d MB)\n' \
  "$rounds" "$failed_rounds" "$(echo "$first_rss / 1024" | bc -l)" "$(echo "$last_rss / 1024" | bc -l)" \
  "$growth_mb" "$max_growth_mb"
if ((failed_rounds == 0)) && (($(echo "$growth_mb <= $max_growth_mb" | bc -l))); then
  echo "PASS"
else
  echo "FAIL"
  exit 1
fi
