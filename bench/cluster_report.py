#!/usr/bin/env python3
"""cluster_report.py — turns run_cluster.sh's raw runs into its summary (stdlib only).

Usage: cluster_report.py OUT
  reads OUT/runs.tsv, OUT/config.json and the chat_bench JSON files they name,
  writes OUT/summary.md and OUT/results.json, and exits 1 if any run lost,
  reordered or duplicated a message, dropped a client or failed.

Every cell (configuration, N, mode) is given as its median with the lowest and
highest run. Ratios to the single ver.2 server are computed round by round (the
same round, N and mode) and given as the median quotient with the smallest and
largest. NATS traffic per chat message is the slope between the window run and
the rate run of one round, N and K: (change_max - change_rate) / (sent_max -
sent_rate), which cancels what does not grow with the messages (ids claimed
and released, presence, heartbeats).
"""

import csv
import json
import os
import statistics
import sys


def load_runs(out):
    """The rows of runs.tsv, each with its chat_bench JSON (or None) under "result"."""
    runs = []
    with open(os.path.join(out, "runs.tsv"), newline="") as file:
        for row in csv.DictReader(file, delimiter="\t"):
            row["result"] = None
            if os.path.exists(row["json"]):
                try:
                    with open(row["json"]) as result:
                        row["result"] = json.load(result)
                except (OSError, ValueError):
                    pass
            runs.append(row)
    return runs


def spread(values, digits=0):
    """'median (min–max)' of a list of numbers, or '—' when empty."""
    if not values:
        return "—"
    form = "{:,.%df}" % digits

    def text(value):
        return form.format(value)

    if len(values) == 1:
        return text(values[0])
    return "%s (%s–%s)" % (text(statistics.median(values)), text(min(values)), text(max(values)))


def micro(values):
    """Latencies in µs: one decimal below 100 µs, none above."""
    return spread(values, 1 if values and statistics.median(values) < 100 else 0)


def configuration_order(name):
    """v2 first, then v3-k1, v3-k2, ..."""
    return (0, 0) if name == "v2" else (1, int(name.split("-k")[1]))


def broken(row):
    """True if the run failed, lost, reordered or duplicated a message, dropped a client, or a server
    did not exit 0 when it was stopped."""
    r = row["result"]
    if row["exit"] != "0" or row.get("server_exit", "0") != "0" or r is None:
        return True
    return r["lost"] + r["reordered"] + r["duplicated"] + r["failures"] != 0


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    out = sys.argv[1]
    with open(os.path.join(out, "config.json")) as file:
        config = json.load(file)
    runs = load_runs(out)
    configurations = sorted({r["configuration"] for r in runs}, key=configuration_order)
    clients = sorted({int(r["clients"]) for r in runs})
    modes = [m for m in ("max", "rate") if any(r["mode"] == m for r in runs)]
    by_key = {(r["configuration"], int(r["clients"]), r["mode"], r["run"]): r for r in runs}

    lines = [
        "# ver.3 cluster benchmark",
        "",
        "%s; %s round(s), interleaved; %s + %s s per run (warm-up + measured); rate mode %s deliveries/s;"
        " every server --threads %s --backend %s; %s publisher(s); load average before: %s."
        % (config["machine"], config["runs"], config["warmup"], config["duration"], config["rate"],
           config["threads"], config["backend"], config["publishers"], config["load_before"]),
        "",
        "v2 = one v2_server; v3-kK = K v3_server nodes on one nats-server, the N clients spread over them"
        " (client i on node i mod K). Cells: median (lowest–highest run). ÷ v2 = this configuration's"
        " figure divided by the single ver.2 server's in the same round, N and mode: median (smallest–largest"
        " quotient). server %% = CPU of every server process of the run together (the nodes and, for v3,"
        " nats-server), 100 %% = one core; server s/M = their CPU seconds per million deliveries. failed = runs"
        " in which chat_bench failed or a server did not exit 0 when stopped (listed below). flagged ="
        " runs in which other processes used more than %s %% of one core (their largest share in brackets)."
        % config["other_cpu_limit"],
        "",
        "| configuration | N | mode | runs | delivered/s | ÷ v2 | p50 µs | p99 µs | ÷ v2 (p99) | p99.9 µs "
        "| server % | bench % | server s/M | lost | reord | dup | drops | failed | flagged |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    results = []
    for n in clients:
        for mode in modes:
            for name in configurations:
                cell = [r for r in runs if r["configuration"] == name and int(r["clients"]) == n
                        and r["mode"] == mode]
                if not cell:
                    continue
                good = [r for r in cell if r["result"] is not None]
                delivered = [r["result"]["delivered_per_s"] for r in good]
                p50 = [r["result"]["latency_us"]["p50"] for r in good]
                p99 = [r["result"]["latency_us"]["p99"] for r in good]
                p999 = [r["result"]["latency_us"]["p99_9"] for r in good]
                server = [r["result"]["server_cpu_percent"] for r in good if r["result"]["server_cpu_percent"] >= 0]
                bench = [r["result"]["bench_cpu_percent"] for r in good]
                per_million = [r["result"]["server_cpu_percent"] / 100 / r["result"]["delivered_per_s"] * 1e6
                               for r in good
                               if r["result"]["server_cpu_percent"] >= 0 and r["result"]["delivered_per_s"] > 0]
                ratio, ratio_p99 = [], []
                for r in good:
                    base = by_key.get(("v2", n, mode, r["run"]))
                    if name == "v2" or base is None or base["result"] is None:
                        continue
                    if base["result"]["delivered_per_s"] > 0:
                        ratio.append(r["result"]["delivered_per_s"] / base["result"]["delivered_per_s"])
                    if base["result"]["latency_us"]["p99"] > 0:
                        ratio_p99.append(r["result"]["latency_us"]["p99"] / base["result"]["latency_us"]["p99"])
                others = [float(r["other_cpu_percent"]) for r in cell if r["other_cpu_percent"] not in ("", "-")]
                flagged = [o for o in others if o > float(config["other_cpu_limit"])]
                total = {key: sum(r["result"][key] for r in good)
                         for key in ("lost", "reordered", "duplicated", "failures")}
                failed = sum(1 for r in cell if broken(r) and (r["exit"] != "0" or r["result"] is None
                                                               or r.get("server_exit", "0") != "0"))
                lines.append(
                    "| %s | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d | %d | %d | %s |"
                    % (name, n, mode, len(cell), spread(delivered), spread(ratio, 2) if name != "v2" else "1",
                       micro(p50), micro(p99), spread(ratio_p99, 2) if name != "v2" else "1", micro(p999),
                       spread(server), spread(bench), spread(per_million, 1), total["lost"],
                       total["reordered"], total["duplicated"], total["failures"], failed,
                       "%d (%.0f %%)" % (len(flagged), max(flagged)) if flagged else "0"))
                results.append({"configuration": name, "clients": n, "mode": mode, "runs": len(cell),
                                "delivered_per_s": delivered, "p50_us": p50, "p99_us": p99, "p99_9_us": p999,
                                "server_cpu_percent": server, "bench_cpu_percent": bench,
                                "ratio_to_v2": ratio, "p99_ratio_to_v2": ratio_p99, "other_cpu_percent": others,
                                "failed": failed, **total})

    # NATS traffic per chat message: the slope between the max and the rate run of a round.
    traffic = []
    v3 = [c for c in configurations if c != "v2"]
    if v3 and "max" in modes and "rate" in modes:
        lines += [
            "",
            "## NATS traffic per chat message",
            "",
            "Change of nats-server's counters (/varz) from when a run's nodes are ready (before chat_bench"
            " starts) until each has seen its last client leave and one more second has passed (before"
            " they are stopped), per message chat_bench sent (warm-up and probes included). *Slope*: between"
            " the window run and the rate run of the same round, N and K — (Δ_max − Δ_rate) / (sent_max −"
            " sent_rate) — what one more chat message costs, without the fixed part. *Raw*: Δ / sent of one"
            " run, fixed part included. *Fixed part*: the rate run's Δ minus slope × its messages — what a"
            " run that sent nothing would have cost: its N logins and logouts (ids claimed and released on"
            " JetStream, presence) and the heartbeats meanwhile. in = messages (bytes) nats-server received from the nodes, out = messages"
            " (bytes) it delivered to them; bytes are NATS payload bytes.",
            "",
            "| K | N | messages sent (max; rate) | in msgs / chat msg | out msgs / chat msg | in bytes / chat msg "
            "| out bytes / chat msg | raw in msgs (max; rate) | raw out msgs (max; rate) | fixed part: in msgs "
            "| fixed part: out msgs |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for name in v3:
            k = int(name.split("-k")[1])
            for n in clients:
                slopes = {key: [] for key in ("nats_in_msgs", "nats_out_msgs", "nats_in_bytes", "nats_out_bytes")}
                raw = {("max", "in"): [], ("max", "out"): [], ("rate", "in"): [], ("rate", "out"): []}
                fixed = {"nats_in_msgs": [], "nats_out_msgs": []}
                sent = {"max": [], "rate": []}
                for r in runs:
                    if r["configuration"] != name or int(r["clients"]) != n or r["mode"] != "max":
                        continue
                    rate_run = by_key.get((name, n, "rate", r["run"]))
                    pair = [r, rate_run]
                    if rate_run is None or any(p["result"] is None or p["nats_in_msgs"] in ("", "-") for p in pair):
                        continue
                    for p in pair:
                        s = p["result"]["sent"]
                        sent[p["mode"]].append(s)
                        if s > 0:
                            raw[(p["mode"], "in")].append(int(p["nats_in_msgs"]) / s)
                            raw[(p["mode"], "out")].append(int(p["nats_out_msgs"]) / s)
                    d_sent = r["result"]["sent"] - rate_run["result"]["sent"]
                    if d_sent <= 0:
                        continue
                    for key in slopes:
                        slopes[key].append((int(r[key]) - int(rate_run[key])) / d_sent)
                    for key in fixed:
                        fixed[key].append(int(rate_run[key]) - slopes[key][-1] * rate_run["result"]["sent"])
                if not sent["max"]:
                    continue
                lines.append(
                    "| %d | %d | %s; %s | %s | %s | %s | %s | %s; %s | %s; %s | %s | %s |"
                    % (k, n, spread(sent["max"]), spread(sent["rate"]), spread(slopes["nats_in_msgs"], 3),
                       spread(slopes["nats_out_msgs"], 3), spread(slopes["nats_in_bytes"], 1),
                       spread(slopes["nats_out_bytes"], 1), spread(raw[("max", "in")], 2),
                       spread(raw[("rate", "in")], 2), spread(raw[("max", "out")], 2),
                       spread(raw[("rate", "out")], 2), spread(fixed["nats_in_msgs"]),
                       spread(fixed["nats_out_msgs"])))
                traffic.append({"nodes": k, "clients": n, "sent_max": sent["max"], "sent_rate": sent["rate"],
                                **{key + "_per_message": value for key, value in slopes.items()},
                                **{key + "_fixed": value for key, value in fixed.items()}})

    bad = [r for r in runs if broken(r)]
    if bad:
        lines += ["", "## Failed runs", "",
                  "chat_bench's exit status (1: loss, reordering, duplication or a dropped client; 3: the servers"
                  " did not start) and the first non-zero exit status of the run's servers when they were stopped"
                  " with SIGTERM (139: killed by SIGSEGV). The figures of such a run are kept in the tables.", ""]
        for r in bad:
            lines.append("- %s N=%s %s round %s: chat_bench exit %s, server exit %s; see %s and its .n*.log"
                         % (r["configuration"], r["clients"], r["mode"], r["run"], r["exit"],
                            r.get("server_exit", "?"), r["json"].replace(".json", ".txt")))
    with open(os.path.join(out, "summary.md"), "w") as file:
        file.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "results.json"), "w") as file:
        json.dump({"config": config, "cells": results, "nats_traffic": traffic}, file, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
