#!/usr/bin/env bash
# run_cluster.sh — the ver.3 cluster benchmark (issue #16): chat_bench against
# N receivers spread over K = 1, 2, 3 v3_server nodes sharing one room over
# one nats-server, beside a single ver.2 server as the baseline; deliveries/s
# (window mode), latency at a fixed rate, and the NATS traffic per chat
# message, in interleaved rounds, with a Markdown summary.
#
# One nats-server serves the whole session: JetStream (store in a temporary
# directory), token authentication (the token in a temporary credentials file,
# mode 600, as the v3 tests do; never on a command line), and its HTTP
# monitoring port, from which /varz is read before the nodes of a run start
# and after they stopped. Every run starts its servers afresh on free ports
# of 127.0.0.1:
#   v2     one v2_server
#   v3-kK  K v3_server nodes (n1..nK, room "lobby"), each waited for until it
#          is connected to NATS and has heard every other node
# and runs chat_bench with --port P1,...,PK: client i on node i mod K (the
# publisher is client 0, on n1). Every server gets --threads T (default 2:
# the machine this was written on has 2 cores, and K nodes + nats-server +
# chat_bench all share them). Modes: max = window mode; rate = a fixed --rate
# deliveries/s, latency from the scheduled send time.
# Rounds are interleaved (loops run -> N -> mode -> configuration), so a change
# in the machine's load hits every configuration alike.
#
# NATS traffic per chat message: for each run, the change of nats-server's
# in_msgs, out_msgs, in_bytes and out_bytes from when its nodes are ready
# (before chat_bench starts) until every node has seen its last client leave
# and a second more has passed (before the nodes are stopped), next to the
# messages chat_bench sent. That change also holds what does not depend on
# the number of messages — the N ids claimed and released on JetStream,
# presence, heartbeats — so the report gives the slope between the window run
# and the rate run of the same round, N and K (about the same fixed part,
# very different message counts): (Δ_max − Δ_rate) / (sent_max − sent_rate).
# Waiting for the last client also lets each node finish releasing its
# clients' ids before it is stopped.
#
# Other processes: as in run_matrix.sh (bench/cpu_others.sh), around each
# chat_bench the machine's busy time minus the servers' (nodes + nats-server),
# this shell's and chat_bench's CPU time; a run where others used more than
# --other-cpu-limit % of one core is flagged, never dropped.
#
# It builds nothing: build chat_bench, v2_server and v3_server first, e.g.
#   cmake --preset linux && cmake --build build/linux --target chat_bench v2_server v3_server
# Output (--out DIR, default build/bench-cluster): runs/*.json, runs/*.txt,
# runs/*.log (each run's chat_bench JSON and output, the servers' logs),
# runs.tsv, config.json, summary.md (bench/cluster_report.py).
# Exit status: 1 if any run lost, reordered or duplicated a message, dropped a
# client or failed, or a server did not exit 0 when stopped (a crash: the
# summary lists it, the run's figures are kept); 2 on a usage or set-up error.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build/linux
out=build/bench-cluster
nodes="1 2 3"
baseline=1
clients="30 300"
modes="max rate"
runs=5
duration=3
warmup=1
rate=20000
threads=2
publishers=1
backend=auto
other_cpu_limit=10

usage() {
  cat <<'EOF'
usage: bench/run_cluster.sh [options]
  --build DIR          build tree with chat_bench, v2_server and v3_server
                       (default build/linux; this script builds nothing)
  --out DIR            where results go (default build/bench-cluster)
  --nodes "LIST"       cluster sizes K, v3_server nodes on one nats-server (default "1 2 3")
  --no-baseline        leave out the single v2_server
  --clients "LIST"     N values, spread over the K nodes (default "30 300")
  --modes "LIST"       max and/or rate (default "max rate")
  --runs R             rounds, i.e. runs per cell (default 5); interleaved:
                       round 1 of every N, mode and configuration, then round 2, ...
  --duration S         measured seconds per run (default 3)
  --warmup S           warm-up seconds per run (default 1)
  --rate R             deliveries/s offered in rate mode (default 20000)
  --threads T          worker threads of every v2_server / v3_server (default 2)
  --publishers P       publishing clients, spread over the nodes like the others (default 1)
  --backend NAME       the servers' --backend: auto, uring or epoll (default auto)
  --quick              a short try: --runs 1 --duration 2 (2.5 to 5 minutes)
  --other-cpu-limit P  flag a run in which other processes used more than P % of one
                       core (default 10)
  --help               this text
The summary gives each cell's median with its lowest and highest run, the ratio to
the single ver.2 server computed round by round, the servers' CPU (nodes and
nats-server together), and the NATS messages and bytes per chat message. The
default (4 configurations x 2 N x 2 modes x 5 rounds) takes 15 to 30 minutes (30 on a busy 2-core machine).
On one machine every node shares the same cores: this measures what the
cluster costs, not what scaling out gains.
EOF
}

while (($#)); do
  case $1 in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --no-baseline) baseline=0; shift ;;
    --clients) clients=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --publishers) publishers=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --quick) runs=1; duration=2; shift ;;
    --other-cpu-limit) other_cpu_limit=$2; shift 2 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "run_cluster: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

die() {
  echo "run_cluster: $*" >&2
  exit 2
}
for number in "$runs" "$duration" "$warmup" "$rate" "$threads" "$publishers" "$other_cpu_limit" $clients $nodes; do
  [[ $number =~ ^[0-9]+$ ]] || die "not a number: '$number'"
done
for k in $nodes; do ((k >= 1 && k <= 9)) || die "a cluster size must be 1 to 9, not $k"; done
for mode in $modes; do [[ $mode == max || $mode == rate ]] || die "unknown mode '$mode' (max, rate)"; done
[[ $backend =~ ^(auto|uring|epoll)$ ]] || die "unknown backend '$backend' (auto, uring, epoll)"

# --- programs -----------------------------------------------------------------
chat_bench="$build/bench/chat_bench"
v2_server="$build/v2_packets/server/v2_server"
v3_server="$build/v3_cluster/server/v3_server"
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
need_built() {  # PATH TARGET
  [[ -x $1 ]] || die "$1 is missing — build it: cmake --build $build --target $2 (configure first with: cmake --preset linux${build:+ -B $build})"
}
need_built "$chat_bench" chat_bench
((baseline)) && need_built "$v2_server" v2_server
need_built "$v3_server" v3_server
[[ -x $nats_server ]] || die "nats-server is missing — install it: sudo apt-get install nats-server (or scripts/setup.sh)"
command -v python3 >/dev/null || die "python3 is missing (sudo apt-get install python3)"

configurations=""
((baseline)) && configurations="v2"
for k in $nodes; do configurations="$configurations v3-k$k"; done

# --- file descriptors: N clients here and N in the servers ----------------------
largest=0
for n in $clients; do if ((n > largest)); then largest=$n; fi; done
wanted=$((largest + 256))
if [[ $(ulimit -Sn) != unlimited ]] && (($(ulimit -Sn) < wanted)); then
  ulimit -Sn "$wanted" 2>/dev/null || die "N=$largest needs ulimit -n >= $wanted"
fi

mkdir -p "$out/runs"
out=$(cd "$out" && pwd)
machine="$(nproc)-core $(uname -m), Linux $(uname -r)"
printf '{"machine": "%s", "duration": %s, "warmup": %s, "rate": %s, "runs": %s, "threads": %s, "publishers": %s, "backend": "%s", "build": "%s", "other_cpu_limit": %s, "load_before": "%s"}\n' \
  "$machine" "$duration" "$warmup" "$rate" "$runs" "$threads" "$publishers" "$backend" "$build" \
  "$other_cpu_limit" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$out/config.json"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- nats-server: JetStream, a token, monitoring ------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/run_cluster.XXXXXX")
nats_pid=""
server_pids=()
# stop_servers: SIGTERM to every server of the run; server_exits gets the
# first non-zero exit status among them (0 if all stopped cleanly; 139 = SIGSEGV).
server_exits=0
stop_servers() {
  local pid code
  server_exits=0
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${server_pids[@]}"; do
    code=0
    wait "$pid" 2>/dev/null || code=$?
    if ((code != 0 && server_exits == 0)); then server_exits=$code; fi
  done
  server_pids=()
}
cleanup() {
  stop_servers
  if [[ -n $nats_pid ]]; then
    kill "$nats_pid" 2>/dev/null || true
    wait "$nats_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

(
  umask 077
  token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  printf 'token = %s\n' "$token" >"$work/node.creds"
  nats_port=$(free_port)
  monitor_port=$(free_port)
  mkdir -p "$work/jetstream"
  cat >"$work/nats.conf" <<EOF
listen: "127.0.0.1:$nats_port"
http: "127.0.0.1:$monitor_port"
authorization { token: "$token" }
jetstream {
  store_dir: "$work/jetstream"
  max_memory_store: 64MB
  max_file_store: 256MB
}
EOF
  printf '%s %s\n' "$nats_port" "$monitor_port" >"$work/ports"
)
read -r nats_port monitor_port <"$work/ports"
"$nats_server" -c "$work/nats.conf" >"$out/nats-server.log" 2>&1 &
nats_pid=$!
for _ in $(seq 100); do
  grep -q "Server is ready" "$out/nats-server.log" && break
  kill -0 "$nats_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q "Server is ready" "$out/nats-server.log" || {
  tail -5 "$out/nats-server.log" >&2
  die "nats-server did not start (log: $out/nats-server.log)"
}
nats_url="nats://127.0.0.1:$nats_port"

# varz: "in_msgs out_msgs in_bytes out_bytes" of nats-server now.
varz() {
  python3 - "$monitor_port" <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/varz" % sys.argv[1], timeout=5) as answer:
    v = json.load(answer)
print(v["in_msgs"], v["out_msgs"], v["in_bytes"], v["out_bytes"])
EOF
}

# --- the servers of one run ---------------------------------------------------------
ports=""
pid_list=""
wait_for() {  # LOG TEXT COUNT PID: until LOG holds TEXT COUNT times (10 s), while PID lives
  for _ in $(seq 200); do
    (($(grep -c -- "$2" "$1" || true) >= $3)) && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
# start_configuration NAME LOG_PREFIX MAX_CLIENTS: sets ports (comma-separated)
# and pid_list (the servers', and nats-server's for v3). Three tries per server.
start_configuration() {
  local name=$1 prefix=$2 max_clients=$3 k i port log _ started
  ports="" pid_list=""
  if [[ $name == v2 ]]; then
    k=1
  else
    k=${name#v3-k}
  fi
  for i in $(seq "$k"); do
    log="$prefix.n$i.log"
    : >"$log"
    started=0
    for _ in 1 2 3; do
      port=$(free_port)
      if [[ $name == v2 ]]; then
        "$v2_server" --port "$port" --bind 127.0.0.1 --backend "$backend" --threads "$threads" \
          --max-clients "$max_clients" >>"$log" 2>&1 &
        server_pids+=($!)
        wait_for "$log" "listening on 127.0.0.1:$port" 1 "$!" && started=1 && break
      else
        "$v3_server" --nats "$nats_url" --node "n$i" --nats-credentials "$work/node.creds" \
          --port "$port" --bind 127.0.0.1 --backend "$backend" --threads "$threads" \
          --max-clients "$max_clients" >>"$log" 2>&1 &
        server_pids+=($!)
        wait_for "$log" "node n$i ready" 1 "$!" && started=1 && break
      fi
      kill "${server_pids[-1]}" 2>/dev/null || true
      wait "${server_pids[-1]}" 2>/dev/null || true  # a port taken: this try's exit status is not a crash
      unset 'server_pids[-1]'
    done
    if ((!started)); then
      echo "run_cluster: $name node $i did not start; its log ($log):" >&2
      tail -5 "$log" >&2
      return 1
    fi
    ports="$ports${ports:+,}$port"
    pid_list="$pid_list${pid_list:+,}${server_pids[-1]}"
  done
  if [[ $name != v2 ]]; then
    # Every node has heard every other ("node nJ is up") before a client connects.
    for i in $(seq "$k"); do
      wait_for "$prefix.n$i.log" "is up" $((k - 1)) "${server_pids[i - 1]}" || {
        echo "run_cluster: $name node n$i did not hear all $((k - 1)) others (log: $prefix.n$i.log)" >&2
        return 1
      }
    done
    pid_list="$pid_list,$nats_pid"
  fi
}

# cpu_sample "PID...", other_cpu, tenths: what other processes used meanwhile.
# shellcheck source=bench/cpu_others.sh
source bench/cpu_others.sh  # the working directory is the repository root
json_number() {  # FILE KEY
  sed -n "s/.*\"$2\": \([-0-9.]*\).*/\1/p" "$1" 2>/dev/null | head -1
}

# --- the rounds -----------------------------------------------------------------------
total=0
for _ in $configurations; do for _ in $clients; do for _ in $modes; do total=$((total + runs)); done; done; done
printf 'configuration\tnodes\tclients\tmode\trun\texit\tserver_exit\tjson\tother_cpu_percent\tsteal_percent\tnats_in_msgs\tnats_out_msgs\tnats_in_bytes\tnats_out_bytes\n' \
  >"$out/runs.tsv"
echo "run_cluster: $total runs of ${warmup}+${duration} s into $out (nats-server pid $nats_pid, port $nats_port)"
status=0
done_runs=0
for run in $(seq "$runs"); do
  for n in $clients; do
    for mode in $modes; do
      for configuration in $configurations; do
        done_runs=$((done_runs + 1))
        id="${configuration}_n${n}_${mode}_r${run}"
        json="$out/runs/$id.json"
        rm -f "$json"
        code=0 other="" flag=""
        k=1
        [[ $configuration == v3-k* ]] && k=${configuration#v3-k}
        varz_before="" varz_after=""
        if start_configuration "$configuration" "$out/runs/$id" $((n + 100)); then
          [[ $configuration == v2 ]] || varz_before=$(varz)
          args=(--port "$ports" --protocol v2 --clients "$n" --publishers "$publishers"
            --warmup "$warmup" --duration "$duration" --server-pid "$pid_list" --json "$json")
          [[ $mode == rate ]] && args+=(--rate "$rate")
          cpu_sample "${pid_list//,/ }"
          cpu_before=$cpu_now
          timeout $((warmup + duration + 120)) "$chat_bench" "${args[@]}" >"$out/runs/$id.txt" 2>&1 || code=$?
          cpu_sample "${pid_list//,/ }"
          other=$(other_cpu "$cpu_before" "$cpu_now")
          if [[ $configuration != v2 ]]; then
            # Until every node's last client left ("(0 clients)"), then 1 s for their ids' releases.
            for i in $(seq "$k"); do
              wait_for "$out/runs/$id.n$i.log" "(0 clients)" 1 "${server_pids[i - 1]}" ||
                echo "run_cluster: $id: node n$i did not see its last client leave within 10 s" >&2
            done
            sleep 1
            varz_after=$(varz)
          fi
        else
          code=3
        fi
        stop_servers
        crashed=""
        if ((server_exits != 0)); then
          crashed="  A SERVER EXITED WITH $server_exits (logs: $out/runs/$id.n*.log)"
          echo "run_cluster: $id: a server exited with status $server_exits on SIGTERM; logs: $out/runs/$id.n*.log" >&2
        fi
        traffic=$'-\t-\t-\t-'
        if [[ -n $varz_before && -n $varz_after ]]; then
          read -r -a v0 <<<"$varz_before"
          read -r -a v1 <<<"$varz_after"
          traffic=$(printf '%s\t%s\t%s\t%s' $((v1[0] - v0[0])) $((v1[1] - v0[1])) $((v1[2] - v0[2])) $((v1[3] - v0[3])))
        fi
        other_percent=- steal_percent=-
        if [[ -n $other ]]; then
          read -r other10 steal10 <<<"$other"
          other_percent=$(tenths "$other10")
          steal_percent=$(tenths "$steal10")
          if ((other10 > other_cpu_limit * 10)); then flag="  FLAG: others used $other_percent % of a core"; fi
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$configuration" "$k" "$n" "$mode" "$run" "$code" \
          "$server_exits" "$json" "$other_percent" "$steal_percent" "$traffic" >>"$out/runs.tsv"
        if ((code != 0 || server_exits != 0)); then status=1; fi
        if [[ -f $json ]]; then
          printf '[%3d/%d] %-6s N=%-4s %-4s run %d/%d: delivered/s %9.0f  p99 %9.1f us  lost/reord/dup/drop %s/%s/%s/%s  exit %d%s\n' \
            "$done_runs" "$total" "$configuration" "$n" "$mode" "$run" "$runs" \
            "$(json_number "$json" delivered_per_s)" "$(json_number "$json" p99)" "$(json_number "$json" lost)" \
            "$(json_number "$json" reordered)" "$(json_number "$json" duplicated)" \
            "$(json_number "$json" failures)" "$code" "$flag$crashed"
        else
          printf '[%3d/%d] %-6s N=%-4s %-4s run %d/%d: FAILED (exit %d), see %s\n' \
            "$done_runs" "$total" "$configuration" "$n" "$mode" "$run" "$runs" "$code" "$out/runs/$id.txt"
        fi
      done
    done
  done
done
python3 bench/cluster_report.py "$out" || status=1
echo
cat "$out/summary.md"
if ((status != 0)); then
  echo "run_cluster: FAILED — a run lost, reordered or duplicated messages, dropped a client, or failed (see above)" >&2
fi
exit "$status"
