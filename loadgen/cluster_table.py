"""Prints cluster.sh's results: the fan-out table with ratios to the single
node, and the Redis outage's timeline with the catch-up time.

Usage: cluster_table.py OUT_DIR
Reads OUT_DIR/<run>.json (the loadgen's RESULT lines), outage.redis-down and
outage.redis-up (Unix times), outage.node*.log, outage.metrics.txt and
uptime.txt.
"""

import json
import os
import re
import statistics
import sys
from datetime import datetime

TITLES = {
    "single": "one node, Postgres, no Redis",
    "spread": "3 nodes + Redis, clients spread (k mod 3)",
    "nginx": "3 nodes + Redis, through nginx (deploy/)",
}


def load(out, run):
    try:
        with open(os.path.join(out, f"{run}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read(out, name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read()
    except OSError:
        return None


def ms(x):
    return "-" if x is None else f"{x:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def fanout_table(out):
    base = load(out, "single")
    base_lat = base["measured"]["latency_ms"] if base else None
    print("| setup | p50 ms | p99 ms | p99.9 ms | max ms | deliveries | lost | p50 / single | p99 / single |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run, title in TITLES.items():
        r = load(out, run)
        if r is None:
            continue
        m = r["measured"]
        lat = m["latency_ms"]
        lost = m["expected_deliveries"] - m["delivered"]
        conns = r["connections"]
        failed = conns["failed"] + conns["dropped"]
        note = f" ({failed} connections failed or dropped)" if failed else ""
        print(
            f"| {title}{note} | {ms(lat['p50_ms'])} | {ms(lat['p99_ms'])} | {ms(lat['p999_ms'])} "
            f"| {ms(lat['max_ms'])} | {m['delivered']} of {m['expected_deliveries']} | {lost} "
            f"| {ratio(lat['p50_ms'], base_lat and base_lat['p50_ms'])} "
            f"| {ratio(lat['p99_ms'], base_lat and base_lat['p99_ms'])} |"
        )
    spread = read(out, "nginx.spread.txt")
    if spread:
        print()
        print("nginx spread the sockets: " + "; ".join(spread.split("\n")).strip("; "))


def node_resubscribed(out, up):
    """Seconds from Redis being back to each node's "subscribed to Redis
    again" log line, and the outage the node logged."""
    rows = []
    for i in (1, 2, 3):
        text = read(out, f"outage.node{i}.log") or ""
        for line in text.splitlines():
            if "subscribed to Redis again" not in line:
                continue
            clean = re.sub(r"\x1b\[[0-9;]*m", "", line)
            stamp = clean.split()[0]
            try:
                at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            outage = re.search(r"outage_ms=(\d+)", clean)
            rows.append((i, at - up, int(outage.group(1)) / 1000 if outage else None))
    return rows


def outage_report(out):
    r = load(out, "outage")
    down_text, up_text = read(out, "outage.redis-down"), read(out, "outage.redis-up")
    if r is None or not down_text or not up_text:
        return
    down, up = float(down_text), float(up_text)
    line = r.get("timeline") or []
    t0 = line[0]["unix"] if line else down
    print()
    print(
        f"Redis outage: stopped at +{down - t0:.1f} s of the measurement, started again at "
        f"+{up - t0:.1f} s ({up - down:.1f} s down); timeline by scheduled send second:"
    )
    print()
    print("| second | phase | sent | delivered | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")

    def phase(s):
        start, end = s["unix"], s["unix"] + 1
        if end <= down:
            return "before"
        if start >= down and end <= up:
            return "outage"
        if start < up:
            return "edge"
        return "after"

    for s in line:
        lat = s["latency_ms"]
        print(
            f"| {s['second']} | {phase(s)} | {s['sent']} | {s['delivered']}/{s['expected']} "
            f"| {ms(lat['p50_ms'])} | {ms(lat['p99_ms'])} | {ms(lat['max_ms'])} |"
        )
    before = [s for s in line if phase(s) == "before" and s["latency_ms"]["count"]]
    during = [s for s in line if phase(s) == "outage" and s["latency_ms"]["count"]]
    if not before:
        return
    normal_p99 = statistics.median(s["latency_ms"]["p99_ms"] for s in before)
    limit = 2 * normal_p99
    # The first second (by send time) that starts STEADY normal seconds:
    # p99 within twice the median per-second p99 before the outage, and
    # every expected delivery arrived (a lone slow second later on, on a
    # shared machine, is noise, not the outage).
    steady = 5

    def normal(x):
        return x["latency_ms"]["p99_ms"] <= limit and x["delivered"] == x["expected"]

    back = None
    for i, s in enumerate(line):
        if s["unix"] + 1 <= down:
            continue
        run = line[i : i + steady]
        if len(run) == steady and all(normal(x) for x in run):
            back = s
            break
    print()
    print(f"- before: median per-second p99 {normal_p99:.2f} ms (\"normal\": p99 <= {limit:.2f} ms)")
    if during:
        p50s = [s["latency_ms"]["p50_ms"] for s in during]
        p99s = [s["latency_ms"]["p99_ms"] for s in during]
        lost = sum(s["expected"] - s["delivered"] for s in during)
        print(
            f"- during (seconds wholly inside): p50 {min(p50s):.0f}-{max(p50s):.0f} ms, "
            f"p99 {min(p99s):.0f}-{max(p99s):.0f} ms, max {max(s['latency_ms']['max_ms'] for s in during):.0f} ms, "
            f"{lost} deliveries missing"
        )
    if back is None:
        print("- catch-up: latency did not return to normal within the measurement")
    else:
        print(
            f"- catch-up: updates sent from +{back['unix'] - t0:.0f} s on are normal again "
            f"({steady} seconds in a row), within {max(0.0, back['unix'] - up):.1f} s after Redis "
            f"was back (1 s resolution)"
        )
    for node, after, outage in node_resubscribed(out, up):
        extra = f", logged outage {outage:.1f} s" if outage is not None else ""
        print(f"- node{node} resubscribed {after:.2f} s after Redis was back{extra}")
    metrics = read(out, "outage.metrics.txt")
    if metrics:
        print("- node metrics at the end: " + "; ".join(metrics.strip().splitlines()))


def main():
    out = sys.argv[1]
    print(f"cluster.sh, {os.path.basename(out.rstrip('/'))}")
    uptime = read(out, "uptime.txt")
    if uptime:
        print("load (uptime, start / end): " + " / ".join(l.split("load average:")[-1].strip() for l in uptime.splitlines()))
    print()
    fanout_table(out)
    outage_report(out)


if __name__ == "__main__":
    main()
