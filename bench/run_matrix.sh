#!/usr/bin/env bash
# run_matrix.sh — the fan-out benchmark as a matrix: servers × N × mode × runs,
# our servers side by side with redis-server and nats-server, with a Markdown
# summary, all results as JSON, and two gnuplot SVGs. Optionally the server
# memory per idle connection (--idle-memory).
#
# Every run starts its server afresh on 127.0.0.1 on a free port, waits until
# it says it is ready, runs chat_bench (1 publisher, so ver.1 can take part and
# every server does the same work), and stops the server:
#   v1-uring v1-epoll v2-uring v2-epoll   our servers, --backend uring|epoll
#   fanout bench/fanout_server: one thread, epoll, batching, no rules — the
#          loopback ceiling, spoken as chat_bench --protocol v1
#   redis  redis-server --save '' --appendonly no
#          --client-output-buffer-limit 'pubsub 8mb 8mb 0'  (our 8 MiB bound)
#   nats   nats-server with its defaults
# Modes: max = window mode (as fast as a window of --window messages allows;
#              256 by default: with 64, redis-server at N = 1000 idled a fifth
#              of its one core waiting for round trips, so "max" was not);
#        rate = a fixed --rate deliveries/s, latency from the scheduled time.
# Rounds are interleaved: round 1 of every cell, then round 2 ... (loops run ->
# N -> mode -> server, servers innermost), so a change in the machine's load
# hits every server alike.
#
# Other processes on the machine: around each chat_bench the script reads how
# long the machine's processors were busy (from the idle time in /proc/stat;
# bench/cpu_others.sh says why not from its user and system columns), the
# server's CPU time (/proc/PID/stat) and its own children's (chat_bench's,
# cutime + cstime in /proc/$$/stat); what is left over was used by someone
# else. A run where that exceeds --other-cpu-limit % of one core is flagged
# (in the progress line, runs.tsv and summary.md), never dropped.
#
# It builds nothing: build chat_bench, fanout_server, v1_server and v2_server first, e.g.
#   cmake --preset linux && cmake --build build/linux --target chat_bench fanout_server v1_server v2_server
# Relative paths are taken from the repository root.
#
# Output (--out DIR, default build/bench-matrix): runs/*.json and runs/*.txt
# (each run's JSON and output), runs.tsv, results.json, summary.md,
# delivered.svg, latency_p99.svg; with --idle-memory also idle_memory.md.
# Exit status: 1 if any run of our servers lost, reordered or duplicated a
# message, dropped a client or failed; redis and nats are only reported (they
# make no such promise under load: both disconnect a slow subscriber). 2 on a
# usage or set-up error.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build/linux
out=build/bench-matrix
servers="v1-uring v1-epoll v2-uring v2-epoll fanout redis nats"
clients="10 100 1000"
modes="max rate"
runs=5
duration=3
warmup=1
rate=50000
window=256
matrix=1
idle_memory=0
idle_clients=10000
idle_servers="v2-uring v2-epoll redis"
other_cpu_limit=10

usage() {
  cat <<'EOF'
usage: bench/run_matrix.sh [options]
  --build DIR          build tree with chat_bench, fanout_server, v1_server, v2_server
                       (default build/linux; this script builds nothing)
  --out DIR            where results go (default build/bench-matrix)
  --servers "LIST"     from: v1-uring v1-epoll v2-uring v2-epoll fanout redis nats (default: all);
                       our servers may end in -tN for N worker threads (v2-uring-t1)
                       fanout = bench/fanout_server, the loopback ceiling (target fanout_server)
  --clients "LIST"     N values (default "10 100 1000")
  --modes "LIST"       max and/or rate (default "max rate")
  --runs K             rounds, i.e. runs per cell (default 5); rounds are interleaved:
                       round 1 of every N, mode and server, then round 2, ...
  --duration S         measured seconds per run (default 3)
  --warmup S           warm-up seconds per run (default 1)
  --rate R             deliveries/s offered in rate mode (default 50000)
  --window W           messages in flight in max mode (default 256)
  --quick              a short try: --clients "10 100" --runs 1 --duration 2
  --idle-memory        also measure server RSS per idle joined connection -> idle_memory.md
  --idle-only          only the idle-memory step
  --idle-clients N     idle connections (default 10000)
  --idle-servers "L"   servers for the idle step (default "v2-uring v2-epoll redis")
  --other-cpu-limit P  flag a run in which other processes used more than P % of one
                       core (default 10)
  --help               this text
The summary gives each cell's median with its lowest and highest run, bench and
server CPU, server CPU seconds per million deliveries, the flagged runs, and the
ratio to redis-server computed round by round (median and spread of the quotients).
The default matrix (7 servers x 3 N x 2 modes x 5 runs) takes about 20 minutes.
EOF
}

while (($#)); do
  case $1 in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --servers) servers=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --quick) clients="10 100"; runs=1; duration=2; shift ;;
    --idle-memory) idle_memory=1; shift ;;
    --idle-only) idle_memory=1; matrix=0; shift ;;
    --idle-clients) idle_clients=$2; shift 2 ;;
    --idle-servers) idle_servers=$2; shift 2 ;;
    --other-cpu-limit) other_cpu_limit=$2; shift 2 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "run_matrix: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

die() {
  echo "run_matrix: $*" >&2
  exit 2
}
for number in "$runs" "$duration" "$warmup" "$rate" "$window" "$idle_clients" "$other_cpu_limit" $clients; do
  [[ $number =~ ^[0-9]+$ ]] || die "not a number: '$number'"
done
for mode in $modes; do [[ $mode == max || $mode == rate ]] || die "unknown mode '$mode' (max, rate)"; done

# --- programs -----------------------------------------------------------------
chat_bench="$build/bench/chat_bench"
v1_server="$build/v1_basic_broadcast/server/v1_server"
v2_server="$build/v2_packets/server/v2_server"
fanout_server="$build/bench/fanout_server"
redis_server=$(command -v redis-server || echo /usr/bin/redis-server)
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)

need_built() {  # PATH TARGET
  [[ -x $1 ]] || die "$1 is missing — build it: cmake --build $build --target $2 (configure first with: cmake --preset linux${build:+ -B $build})"
}
need_installed() {  # PATH PACKAGE
  [[ -x $1 ]] || die "$1 is missing — install it: sudo apt-get install $2 (or scripts/setup.sh)"
}
all_servers=""
if ((matrix)); then all_servers="$servers"; fi
if ((idle_memory)); then all_servers="$all_servers $idle_servers"; fi
need_built "$chat_bench" chat_bench
for server in $all_servers; do
  case $server in
    v1-uring | v1-epoll | v1-uring-t[0-9]* | v1-epoll-t[0-9]*) need_built "$v1_server" v1_server ;;
    v2-uring | v2-epoll | v2-uring-t[0-9]* | v2-epoll-t[0-9]*) need_built "$v2_server" v2_server ;;
    fanout) need_built "$fanout_server" fanout_server ;;
    redis) need_installed "$redis_server" redis-server ;;
    nats) need_installed "$nats_server" nats-server ;;
    *) die "unknown server '$server' (v1-uring v1-epoll v2-uring v2-epoll, each optionally with -tN, fanout redis nats)" ;;
  esac
done
command -v python3 >/dev/null || die "python3 is missing (sudo apt-get install python3)"

# --- file descriptors: N clients (+1 publishing connection) here, N in the server -----------
largest=0
if ((matrix)); then for n in $clients; do if ((n > largest)); then largest=$n; fi; done; fi
if ((idle_memory && idle_clients > largest)); then largest=$idle_clients; fi
wanted=$((largest + 256))
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < wanted)); then
  die "N=$largest needs ulimit -n >= $wanted, but the hard limit is $hard (raise it in /etc/security/limits.conf or run as root)"
fi
if [[ $(ulimit -Sn) != unlimited ]] && (($(ulimit -Sn) < wanted)); then ulimit -Sn "$wanted"; fi

mkdir -p "$out/runs"
out=$(cd "$out" && pwd)
machine="$(nproc)-core $(uname -m), Linux $(uname -r)"
printf '{"machine": "%s", "duration": %s, "warmup": %s, "rate": %s, "window": %s, "runs": %s, "build": "%s", "other_cpu_limit": %s}\n' \
  "$machine" "$duration" "$warmup" "$rate" "$window" "$runs" "$build" "$other_cpu_limit" >"$out/config.json"

# --- servers ------------------------------------------------------------------
server_pid=""
server_port=""
stop_server() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# set_backend_args uring|epoll[-tN]: sets backend_args to our servers' --backend,
# and --threads N for a name such as v2-uring-t1 (one worker, not the default pool).
set_backend_args() {
  if [[ $1 == *-t* ]]; then
    backend_args=(--backend "${1%-t*}" --threads "${1##*-t}")
  else
    backend_args=(--backend "$1")
  fi
}

# start_server NAME LOG MAX_CLIENTS: starts NAME on a free port, waits for its
# "ready" line; sets server_pid and server_port. Three tries (a port may be
# taken between the look and the bind).
start_server() {
  local name=$1 log=$2 max_clients=$3 ready _
  : >"$log"
  for _ in 1 2 3; do
    server_port=$(free_port)
    case $name in
      v1-*)
        set_backend_args "${name#v1-}"
        "$v1_server" --port "$server_port" --bind 127.0.0.1 "${backend_args[@]}" \
          --max-clients "$max_clients" >>"$log" 2>&1 &
        ready="listening on 127.0.0.1:$server_port" ;;
      v2-*)
        set_backend_args "${name#v2-}"
        "$v2_server" --port "$server_port" --bind 127.0.0.1 "${backend_args[@]}" \
          --max-clients "$max_clients" >>"$log" 2>&1 &
        ready="listening on 127.0.0.1:$server_port" ;;
      fanout)
        "$fanout_server" --port "$server_port" --bind 127.0.0.1 >>"$log" 2>&1 &
        ready="listening on 127.0.0.1:$server_port" ;;
      redis)
        "$redis_server" --port "$server_port" --bind 127.0.0.1 --save '' --appendonly no \
          --client-output-buffer-limit 'pubsub 8mb 8mb 0' --maxclients "$max_clients" >>"$log" 2>&1 &
        ready="Ready to accept connections" ;;
      nats)
        "$nats_server" -a 127.0.0.1 -p "$server_port" >>"$log" 2>&1 &
        ready="Server is ready" ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
      grep -q "$ready" "$log" && return 0
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
  done
  echo "run_matrix: $name did not start; its log ($log):" >&2
  tail -5 "$log" >&2
  return 1
}

protocol_of() {  # NAME -> chat_bench --protocol
  case $1 in v1-* | fanout) echo v1 ;; v2-*) echo v2 ;; *) echo "$1" ;; esac
}

# cpu_sample, other_cpu, tenths: what other processes used meanwhile.
# shellcheck source=bench/cpu_others.sh
source bench/cpu_others.sh  # the working directory is the repository root

json_number() {  # FILE KEY: a number from chat_bench's JSON (for the progress line)
  sed -n "s/.*\"$2\": \([-0-9.]*\).*/\1/p" "$1" 2>/dev/null | head -1
}

# --- the matrix -----------------------------------------------------------------
status=0
if ((matrix)); then
  total=0
  for server in $servers; do for n in $clients; do for mode in $modes; do total=$((total + runs)); done; done; done
  printf 'server\tclients\tmode\trun\texit\tjson\tother_cpu_percent\tsteal_percent\n' >"$out/runs.tsv"
  echo "run_matrix: $total runs of ${warmup}+${duration} s into $out"
  done_runs=0
  # Servers innermost: the servers of one cell run back to back, so a change
  # in the machine's load (it is shared) hits them all alike, not one server.
  for run in $(seq "$runs"); do
    for n in $clients; do
      for mode in $modes; do
        for server in $servers; do
          done_runs=$((done_runs + 1))
          id="${server}_n${n}_${mode}_r${run}"
          json="$out/runs/$id.json"
          rm -f "$json"
          code=0
          other=""
          if start_server "$server" "$out/runs/$id.server.log" $((n + 100 > 10000 ? n + 100 : 10000)); then
            args=(--port "$server_port" --protocol "$(protocol_of "$server")" --clients "$n" --publishers 1
              --warmup "$warmup" --duration "$duration" --server-pid "$server_pid" --json "$json")
            if [[ $mode == rate ]]; then args+=(--rate "$rate"); else args+=(--window "$window"); fi
            cpu_sample "$server_pid"
            cpu_before=$cpu_now
            timeout $((warmup + duration + 120)) "$chat_bench" "${args[@]}" >"$out/runs/$id.txt" 2>&1 || code=$?
            cpu_sample "$server_pid"
            other=$(other_cpu "$cpu_before" "$cpu_now")
            stop_server
          else
            code=3
          fi
          other_percent=- steal_percent=- flag=""
          if [[ -n $other ]]; then
            read -r other10 steal10 <<<"$other"
            other_percent=$(tenths "$other10")
            steal_percent=$(tenths "$steal10")
            if ((other10 > other_cpu_limit * 10)); then flag="  FLAG: others used $other_percent % of a core"; fi
          fi
          printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$n" "$mode" "$run" "$code" "$json" \
            "$other_percent" "$steal_percent" >>"$out/runs.tsv"
          if [[ -f $json ]]; then
            printf '[%3d/%d] %-8s N=%-5s %-4s run %d/%d: delivered/s %10.0f  p99 %9.1f us  lost/reord/dup/drop %s/%s/%s/%s  exit %d%s\n' \
              "$done_runs" "$total" "$server" "$n" "$mode" "$run" "$runs" "$(json_number "$json" delivered_per_s)" \
              "$(json_number "$json" p99)" "$(json_number "$json" lost)" "$(json_number "$json" reordered)" \
              "$(json_number "$json" duplicated)" "$(json_number "$json" failures)" "$code" "$flag"
          else
            printf '[%3d/%d] %-8s N=%-5s %-4s run %d/%d: FAILED (exit %d), see %s\n' \
              "$done_runs" "$total" "$server" "$n" "$mode" "$run" "$runs" "$code" "$out/runs/$id.txt"
          fi
        done
      done
    done
  done
  python3 bench/matrix_report.py matrix "$out" || status=1
  if command -v gnuplot >/dev/null; then
    (cd "$out" && gnuplot plots.gp) || echo "run_matrix: gnuplot failed; the data is in delivered.dat, latency_p99.dat" >&2
  else
    echo "run_matrix: gnuplot is not installed (sudo apt-get install gnuplot-nox): no SVGs" >&2
  fi
  echo
  cat "$out/summary.md"
fi

# --- memory per idle connection ----------------------------------------------------
if ((idle_memory)); then
  printf 'server\tclients\texit\tjson\n' >"$out/idle.tsv"
  for server in $idle_servers; do
    id="idle_${server}_n${idle_clients}"
    json="$out/runs/$id.json"
    rm -f "$json"
    code=0
    if start_server "$server" "$out/runs/$id.server.log" $((idle_clients + 100)); then
      timeout 600 "$chat_bench" --idle-memory --port "$server_port" --protocol "$(protocol_of "$server")" \
        --clients "$idle_clients" --server-pid "$server_pid" --json "$json" >"$out/runs/$id.txt" 2>&1 || code=$?
      stop_server
    else
      code=3
    fi
    printf '%s\t%s\t%s\t%s\n' "$server" "$idle_clients" "$code" "$json" >>"$out/idle.tsv"
    printf 'idle memory %-8s N=%s: %s bytes per connection (exit %d)\n' "$server" "$idle_clients" \
      "$(json_number "$json" bytes_per_connection)" "$code"
  done
  python3 bench/matrix_report.py idle "$out" || status=1
  echo
  cat "$out/idle_memory.md"
fi

if ((status != 0)); then
  echo "run_matrix: FAILED — a server of ours lost, reordered or duplicated messages, dropped a client, or a run failed (see above)" >&2
fi
exit "$status"
