#!/usr/bin/env python3
"""matrix_report.py — turns run_matrix.sh's raw runs into its reports (stdlib only).

  matrix_report.py matrix OUT   reads OUT/runs.tsv and the chat_bench JSON files it
                                names; writes OUT/results.json (every run),
                                OUT/summary.md (per server, N, mode: medians
                                with their spread, bench and server CPU, CPU
                                per delivery, flagged runs, per-round ratios
                                to redis-server),
                                OUT/delivered.dat, OUT/latency_p99.dat and
                                OUT/plots.gp (the gnuplot script for the SVGs).
                                Exits 1 if a server that promises no loss (ours)
                                lost, reordered or duplicated a message, dropped a
                                client, or a run of it failed; redis and nats are
                                reported, never failed.
  matrix_report.py idle OUT     reads OUT/idle.tsv; writes OUT/idle_memory.md.
"""

import json
import os
import statistics
import sys

# Our servers promise, per docs/protocol.md, that a client that keeps up loses nothing
# and sees one sender's messages in order, once. So must bench's fanout_server: a loss
# there means the instrument itself is broken.
PROMISING = ("v1-uring", "v1-epoll", "v2-uring", "v2-epoll", "fanout")


def read_tsv(path):
    """The rows of a tab-separated file whose first line names the columns."""
    with open(path, encoding="utf-8") as file:
        lines = [line.rstrip("\n").split("\t") for line in file if line.strip()]
    return [dict(zip(lines[0], row)) for row in lines[1:]]


def read_json(path):
    """A JSON file's object, or None if it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def spread(values, digits=0):
    """'median (min–max)' of some numbers, or '–' if there are none."""
    if not values:
        return "–"
    fmt = "{:,.%df}" % digits
    middle = fmt.format(statistics.median(values))
    if len(values) == 1:
        return middle
    return "%s (%s–%s)" % (middle, fmt.format(min(values)), fmt.format(max(values)))


def median_or_none(values):
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def number_or_none(text):
    """A float from runs.tsv, or None for '-', '' or a missing column."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def cpu_per_million(run, key="server_cpu_percent"):
    """Server (or with key="bench_cpu_percent", chat_bench) CPU seconds per million deliveries
    in one run's measured window, or None."""
    cpu, rate = run.get(key, -1), run.get("delivered_per_s", 0)
    if cpu is None or cpu < 0 or not rate:
        return None
    return cpu / 100.0 / rate * 1e6


def per_round_ratios(results, server, size, mode, key, baseline="redis", unflagged_only=False):
    """key(run of server) / key(run of baseline) for every round both ran cleanly (same N, mode)."""
    def by_round(name):
        return {r["run"]: r for r in results
                if (r["server"], r["clients"], r["mode"]) == (name, size, mode) and r["ok"]
                and not (unflagged_only and r["flagged"])}
    ours, theirs = by_round(server), by_round(baseline)
    ratios = []
    for run in sorted(set(ours) & set(theirs)):
        a, b = key(ours[run]), key(theirs[run])
        if a is not None and b:
            ratios.append(a / b)
    return ratios


def ratio_text(values):
    """'median× (min–max), k rounds' of per-round quotients, or '–'."""
    if not values:
        return "–"
    text = "%.2f×" % statistics.median(values)
    if len(values) > 1:
        text += " (%.2f–%.2f)" % (min(values), max(values))
    return text + (", %d rounds" % len(values) if len(values) != 1 else ", 1 round")


def matrix(out):
    """Writes results.json, summary.md and the plot data; returns the exit code."""
    rows = read_tsv(os.path.join(out, "runs.tsv"))
    config = read_json(os.path.join(out, "config.json")) or {}
    limit = float(config.get("other_cpu_limit", 10))
    results = []
    for row in rows:
        result = read_json(row["json"]) or {}
        other = number_or_none(row.get("other_cpu_percent"))
        result.update(server=row["server"], clients=int(row["clients"]), mode=row["mode"],
                      run=int(row["run"]), exit_code=int(row["exit"]), ok=result != {},
                      other_cpu_percent=other, steal_percent=number_or_none(row.get("steal_percent")),
                      flagged=other is not None and other > limit)
        results.append(result)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as file:
        json.dump({"config": config, "runs": results}, file, indent=1)

    servers = list(dict.fromkeys(r["server"] for r in results))
    sizes = sorted({r["clients"] for r in results})
    modes = list(dict.fromkeys(r["mode"] for r in results))
    problems = []
    has_redis = "redis" in servers
    lines = [
        "# chat_bench matrix",
        "",
        "%s; %s s warm-up + %s s measured per run; 1 publisher; max mode keeps %s messages in flight;"
        " rate mode offers %s deliveries/s;"
        % (config.get("machine", "?"), config.get("warmup", "?"), config.get("duration", "?"),
           config.get("window", 64), config.get("rate", "?")),
        "rounds interleaved (round 1 of every N, mode and server, then round 2, ...).",
        "Each cell: the median over its runs, with the lowest and highest run in brackets. Latencies",
        "in µs from the (scheduled) send time; bench % and server % = CPU of chat_bench and of the",
        "server in the measured window, % of one core; server s/M and bench s/M = their CPU seconds",
        "per million deliveries; lost/reord/dup/drop are totals over all runs (drop = clients the server",
        "disconnected or that failed) — our servers and fanout must show 0, redis and nats are",
        "reported, not failed. flagged = runs in which other processes used more than %g %% of one"
        % limit,
        "core (the machine's busy time minus the server's and chat_bench's), with the largest share.",
    ]
    if has_redis:
        lines += [
            "÷ redis = this server's delivered/s divided by redis-server's in the same round (same N",
            "and mode), the median of those quotients with the smallest and largest.",
        ]
    header = ("| server | N | mode | runs | delivered/s | ÷ redis | p50 µs | p99 µs | p99.9 µs | lost | reord "
              "| dup | drop | bench % | server % | server s/M | bench s/M | flagged |")
    lines += ["", header, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    medians = {}
    ratio_rows = []
    for server in servers:
        for size in sizes:
            for mode in modes:
                group = [r for r in results if (r["server"], r["clients"], r["mode"]) == (server, size, mode)]
                if not group:
                    continue
                good = [r for r in group if r["ok"]]
                failed_runs = len(group) - len(good)
                total = {key: sum(r.get(key, 0) for r in good)
                         for key in ("lost", "reordered", "duplicated", "failures")}
                latency = {key: [r["latency_us"][key] for r in good]
                           for key in ("p50", "p99", "p99_9")}
                cpu = [r["server_cpu_percent"] for r in good if r.get("server_cpu_percent", -1) >= 0]
                bench_cpu = [r["bench_cpu_percent"] for r in good if r.get("bench_cpu_percent", -1) >= 0]
                per_million = [v for v in (cpu_per_million(r) for r in good) if v is not None]
                bench_per_million = [v for v in (cpu_per_million(r, "bench_cpu_percent") for r in good)
                                     if v is not None]
                delivered = [r["delivered_per_s"] for r in good]
                medians[(server, size, mode)] = {"delivered": median_or_none(delivered),
                                                 "p99": median_or_none(latency["p99"])}
                flagged = [r for r in group if r["flagged"]]
                others = [r["other_cpu_percent"] for r in group if r["other_cpu_percent"] is not None]
                flag_text = ("%d of %d (max %.0f %%)" % (len(flagged), len(group), max(others))
                             if flagged else ("0 of %d" % len(group) if others else "–"))
                ratio = "–"
                if has_redis and server != "redis":
                    delivered_key = lambda r: r.get("delivered_per_s")  # noqa: E731
                    ratio = ratio_text(per_round_ratios(results, server, size, mode, delivered_key))
                    ratio_rows.append((server, size, mode, delivered_key))
                runs = str(len(group)) if not failed_runs else "%d (%d failed)" % (len(group), failed_runs)
                lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d | %d | %s | %s | %s | %s | %s |"
                             % (server, size, mode, runs, spread(delivered), ratio, spread(latency["p50"]),
                                spread(latency["p99"]), spread(latency["p99_9"]), total["lost"],
                                total["reordered"], total["duplicated"], total["failures"], spread(bench_cpu),
                                spread(cpu), spread(per_million, 2), spread(bench_per_million, 2), flag_text))
                bad = [r for r in group
                       if r["exit_code"] != 0 or not r["ok"] or any(r.get(key, 0) for key in total)]
                for r in bad:
                    problems.append((server, size, mode, r["run"], r["exit_code"],
                                     {key: r.get(key, "?") for key in total}))
    lines.append("")
    if ratio_rows:
        lines += [
            "## Ratios to redis-server, round by round",
            "",
            "Each quotient compares two runs of the same round; the median of the quotients with the",
            "smallest and largest. delivered/s: higher is better; p99 and server s/M: lower is better.",
            "\"unflagged\" uses only the rounds in which neither run was flagged.",
            "",
            "| server | N | mode | delivered/s ÷ redis | … unflagged rounds | p99 ÷ redis | server s/M ÷ redis |",
            "|---|--:|---|--:|--:|--:|--:|",
        ]
        for server, size, mode, delivered_key in ratio_rows:
            p99_key = lambda r: r["latency_us"]["p99"]  # noqa: E731
            lines.append("| %s | %d | %s | %s | %s | %s | %s |" % (
                server, size, mode, ratio_text(per_round_ratios(results, server, size, mode, delivered_key)),
                ratio_text(per_round_ratios(results, server, size, mode, delivered_key, unflagged_only=True)),
                ratio_text(per_round_ratios(results, server, size, mode, p99_key)),
                ratio_text(per_round_ratios(results, server, size, mode, cpu_per_million))))
        lines.append("")
    flagged_runs = [r for r in results if r["flagged"]]
    if flagged_runs:
        lines.append("Flagged runs (other processes' CPU, % of one core; steal = time the hypervisor gave "
                     "to other machines):")
        lines.append("")
        for r in flagged_runs:
            lines.append("- %s N=%d %s run %d: others %.1f %%, steal %s %%" % (
                r["server"], r["clients"], r["mode"], r["run"], r["other_cpu_percent"],
                "–" if r["steal_percent"] is None else "%.1f" % r["steal_percent"]))
        lines.append("")
    if problems:
        lines.append("Runs that did not end cleanly (exit code; lost, reordered, duplicated, dropped):")
        lines.append("")
        for server, size, mode, run, code, counts in problems:
            verdict = "FAILS the matrix" if server in PROMISING else "reported only"
            lines.append("- %s N=%d %s run %d: exit %d; %s/%s/%s/%s — %s" % (
                server, size, mode, run, code, counts["lost"], counts["reordered"], counts["duplicated"],
                counts["failures"], verdict))
        lines.append("")
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as file:
        file.write("\n".join(lines))

    write_plot_data(out, servers, sizes, medians, config)
    ours = [p for p in problems if p[0] in PROMISING]
    for server, size, mode, run, code, counts in problems:
        print("matrix: %s %s N=%d %s run %d: exit %d, lost %s reordered %s duplicated %s dropped %s" % (
            "FAIL" if server in PROMISING else "note (not failed)", server, size, mode, run, code,
            counts["lost"], counts["reordered"], counts["duplicated"], counts["failures"]))
    return 1 if ours else 0


def write_plot_data(out, servers, sizes, medians, config):
    """delivered.dat (max mode) and latency_p99.dat (rate mode): N, then one column per server."""
    for name, mode, key in (("delivered.dat", "max", "delivered"), ("latency_p99.dat", "rate", "p99")):
        with open(os.path.join(out, name), "w", encoding="utf-8") as file:
            file.write("N\t" + "\t".join(servers) + "\n")
            for size in sizes:
                values = [(medians.get((server, size, mode)) or {}).get(key) for server in servers]
                file.write("%d\t" % size + "\t".join("NaN" if v is None else "%.1f" % v for v in values) + "\n")
    columns = len(servers) + 1
    script = """# plots.gp — written by matrix_report.py; run from the output directory.
set terminal svg size 820,500 dynamic font 'sans,12' background rgb 'white'
set datafile separator tab
set datafile missing 'NaN'
set key outside right top
set grid
set logscale x
set xlabel 'clients N'
set xrange [%(xmin)g:%(xmax)g]
set xtics (%(xtics)s)
set output 'delivered.svg'
set title 'Fan-out throughput, window mode (1 publisher, window %(window)s)'
set ylabel 'delivered messages/s (median)'
set yrange [0:*]
set format y '%%.1s%%c'
plot for [i=2:%(columns)d] 'delivered.dat' using 1:i with linespoints lw 2 title columnheader(i)
set output 'latency_p99.svg'
set title 'p99 latency at a fixed %(rate)s deliveries/s'
set ylabel 'p99 latency, µs (median of runs)'
set autoscale y
set logscale y
set format y '%%g'
plot for [i=2:%(columns)d] 'latency_p99.dat' using 1:i with linespoints lw 2 title columnheader(i)
""" % {"columns": columns, "rate": config.get("rate", "?"), "window": config.get("window", 64),
       "xmin": min(sizes) / 1.5, "xmax": max(sizes) * 1.5,
       "xtics": ", ".join("'%d' %d" % (s, s) for s in sizes)}
    with open(os.path.join(out, "plots.gp"), "w", encoding="utf-8") as file:
        file.write(script)


def idle(out):
    """Writes idle_memory.md from idle.tsv; returns the exit code."""
    rows = read_tsv(os.path.join(out, "idle.tsv"))
    config = read_json(os.path.join(out, "config.json")) or {}
    lines = [
        "# Server memory per idle connection",
        "",
        "%s. Each server is started fresh; chat_bench --idle-memory reads its VmRSS, connects N clients,"
        % config.get("machine", "?"),
        "lets every one join (ver.2: log in — which also sends every USER_JOINED to everyone; redis:",
        "SUBSCRIBE), waits until nothing arrives for 1 s, reads VmRSS again. (after − before) / N:",
        "",
        "| server | N | RSS before MiB | RSS after MiB | bytes per idle connection |",
        "|---|--:|--:|--:|--:|",
    ]
    code = 0
    for row in rows:
        result = read_json(row["json"])
        if result is None or int(row["exit"]) != 0:
            lines.append("| %s | %s | – | – | failed (exit %s) |" % (row["server"], row["clients"], row["exit"]))
            code = 1
            continue
        lines.append("| %s | %d | %.1f | %.1f | %s |" % (
            row["server"], result["clients"], result["rss_before_bytes"] / 1048576.0,
            result["rss_after_bytes"] / 1048576.0, "{:,.0f}".format(result["bytes_per_connection"])))
    lines.append("")
    with open(os.path.join(out, "idle_memory.md"), "w", encoding="utf-8") as file:
        file.write("\n".join(lines))
    return code


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("matrix", "idle"):
        sys.exit("usage: matrix_report.py matrix|idle OUT")
    sys.exit(matrix(sys.argv[2]) if sys.argv[1] == "matrix" else idle(sys.argv[2]))
