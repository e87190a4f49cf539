# shellcheck shell=bash
# bench/cpu_others.sh — sourced by run_matrix.sh and run_cluster.sh: how much
# CPU *other* processes used while chat_bench ran, so that a run disturbed by
# someone else's build is flagged (a benchmark on a shared machine must say
# when it was not alone; see docs/ch08_performance.md, "Noise").
#
#   cpu_sample "PID..."          sets cpu_now (a sample, for other_cpu)
#   other_cpu BEFORE AFTER       prints "OTHER STEAL" in tenths of a percent of one core
#   tenths N                     123 -> 12.3
#
# The machine's busy time is what its processors did *not* spend idle:
# processors × wall − idle − iowait − steal. Not the sum of the user, nice and
# system columns of /proc/stat: on a tickless kernel those are samples taken
# at timer ticks, and a processor that wakes for a few microseconds at a time
# (a server at 50,000 deliveries/s) is seldom caught busy by a tick — on this
# machine they showed 0.06 s where the processes had run 3.6 s. The idle and
# iowait columns are measured, not sampled, on such kernels, and a process's
# own utime + stime (/proc/PID/stat) add up to its measured run time, so the
# difference is the others' share: 1-5 % of a core on this machine when
# nothing else runs (kernel threads, services), 93-102 % beside one busy
# loop (bench/results/2026-12-06-others-cpu.md). Builtins only in
# cpu_sample: a fork there would count as one of chat_bench's siblings.

clk_tck=$(getconf CLK_TCK)

# cpu_sample "PID...": sets cpu_now to "wall_us processors idle steal ours shell
# children" — the time, the number of processors, the machine's idle + iowait
# and steal jiffies, the listed processes' CPU jiffies (utime + stime, all
# threads), this shell's own, and its waited-for children's (cutime + cstime:
# chat_bench, through timeout).
cpu_sample() {
  local label _user _nice _system idle iowait _irq _softirq steal _rest stat fields pid
  local processors=0 total_idle=0 total_steal=0 ours=0
  while read -r label _user _nice _system idle iowait _irq _softirq steal _rest; do
    case $label in
      cpu) total_idle=$((idle + iowait)) total_steal=$steal ;;
      cpu[0-9]*) processors=$((processors + 1)) ;;
      *) break ;;
    esac
  done </proc/stat
  for pid in $1; do
    if [[ -r /proc/$pid/stat ]] && read -r stat <"/proc/$pid/stat"; then
      read -r -a fields <<<"${stat##*) }"  # fields[0] is field 3 of proc(5)
      ours=$((ours + fields[11] + fields[12]))
    fi
  done
  read -r stat </proc/$$/stat
  read -r -a fields <<<"${stat##*) }"
  cpu_now="${EPOCHREALTIME/./} $processors $total_idle $total_steal $ours"
  cpu_now+=" $((fields[11] + fields[12])) $((fields[13] + fields[14]))"
}

# other_cpu BEFORE AFTER: "OTHER STEAL" between two cpu_samples, in tenths of a
# percent of one core: the machine's busy time minus the listed processes', this
# shell's and chat_bench's; and the time the hypervisor gave to other machines.
other_cpu() {
  local -a a b
  read -r -a a <<<"$1"
  read -r -a b <<<"$2"
  local wall_us=$((b[0] - a[0]))
  ((wall_us > 0)) || wall_us=1
  local not_busy=$(((b[2] - a[2]) + (b[3] - a[3])))
  local ours=$(((b[4] - a[4]) + (b[5] - a[5]) + (b[6] - a[6])))
  # In jiffies × 1e6: processors × wall_us × hz is the capacity of the interval.
  local other=$((b[1] * wall_us * clk_tck - (not_busy + ours) * 1000000))
  # jiffies × 1e6 / (hz × wall_us) = cores; × 1000 = tenths of a percent
  echo "$((other * 1000 / (clk_tck * wall_us))) $(((b[3] - a[3]) * 1000000000 / (clk_tck * wall_us)))"
}

tenths() {  # 123 -> 12.3, -7 -> -0.7
  local value=$1 sign=""
  if ((value < 0)); then sign=-; value=$((-value)); fi
  printf '%s%d.%d' "$sign" $((value / 10)) $((value % 10))
}
