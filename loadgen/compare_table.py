"""Prints compare.sh's results as one Markdown table with ratios.

Usage: compare_table.py OUT_DIR "SERVER ..." "VERSIONS"
Reads OUT_DIR/<server>-<scenario>.json (the loadgen's RESULT lines).
"""

import json
import os
import sys

PEERS = ["y-websocket", "hocuspocus"]
TITLES = {
    "y-websocket": "y-websocket",
    "hocuspocus": "Hocuspocus",
    "ours-sqlite": "ours, SQLite",
    "ours-postgres": "ours, Postgres",
    "ours-sqlite-2cores": "ours, SQLite, 2 cores",
}


def load(out, server, scenario):
    path = os.path.join(out, f"{server}-{scenario}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def dig(v, *keys):
    for k in keys:
        if v is None:
            return None
        v = v.get(k) if isinstance(v, dict) else None
    return v


def fanout_latency(key):
    def get(r):
        lat = dig(r, "measured", "latency_ms")
        if not lat or not lat.get("count"):
            return None
        ratio = dig(r, "measured", "delivery_ratio")
        # A run that lost deliveries has no honest latency figure.
        if ratio is not None and ratio < 0.99:
            return None
        return lat[key]

    return get


def ramp_rate(r):
    return dig(r, "highest_passing", "inbound_per_s")


def ramp_cpu(r):
    return dig(r, "highest_passing", "window", "server_cpu_s_per_1000_delivered")


def idle_kib(r):
    if dig(r, "connections", "failed"):
        return None
    return dig(r, "server_rss_kib_per_connection")


def cold_ms(r):
    samples = dig(r, "samples") or []
    if not samples or not all(s.get("complete") for s in samples):
        return None
    return dig(r, "step2_ms", "median")


# (scenario file, figure, getter, unit, better, target ratio or None)
ROWS = [
    ("fanout", "1. 500 meetings x 3: p50 fan-out", fanout_latency("p50_ms"), "ms", "low", None),
    ("fanout", "1. 500 meetings x 3: p99 fan-out", fanout_latency("p99_ms"), "ms", "low", 1 / 3),
    ("fanout", "1. 500 meetings x 3: p99.9 fan-out", fanout_latency("p999_ms"), "ms", "low", None),
    ("ramp", "2. 100 x 10 ramp: highest sustained inbound", ramp_rate, "updates/s", "high", 5.0),
    ("ramp", "2. 100 x 10 ramp: server CPU per 1,000 delivered", ramp_cpu, "CPU-s", "low", None),
    ("crowded", "3. 1 meeting x 400 (20 typing): p50 fan-out", fanout_latency("p50_ms"), "ms", "low", None),
    ("crowded", "3. 1 meeting x 400 (20 typing): p99 fan-out", fanout_latency("p99_ms"), "ms", "low", 1 / 3),
    ("idle", "4. 10,000 idle clients: memory per connection", idle_kib, "KiB", "low", 1 / 4),
    ("cold", "5. cold load of the B4-like trace: connect to sync step 2", cold_ms, "ms", "low", None),
]


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def main():
    out, servers, versions = sys.argv[1], sys.argv[2].split(), sys.argv[3]
    peers = [s for s in servers if s in PEERS]
    ours = [s for s in servers if s not in PEERS]
    head = ["figure", "unit"] + [TITLES.get(s, s) for s in servers] + ["target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for scenario, figure, get, unit, better, target in ROWS:
        values = {s: get(load(out, s, scenario)) for s in servers}
        peer_values = [values[s] for s in peers if values[s] is not None]
        best = None
        if peer_values:
            best = min(peer_values) if better == "low" else max(peer_values)
        cells = []
        for s in servers:
            v = values[s]
            cell = fmt(v)
            if s in ours and v is not None and best:
                ratio = v / best
                cell += f" ({ratio:.2f}x"
                if target is not None:
                    met = ratio <= target if better == "low" else ratio >= target
                    cell += ", met" if met else ", MISSED"
                cell += ")"
            cells.append(cell)
        if target is None:
            goal = "under 50 ms" if scenario == "cold" else ""
        elif better == "low":
            goal = f"<= {target:.2f}x best peer"
        else:
            goal = f">= {target:g}x best peer"
        print("| " + " | ".join([figure, unit] + cells + [goal]) + " |")
    print()
    print(f"Ratios: ours / best peer in the same run. Versions: {versions}.")
    print("n/a: the run failed, lost more than 1% of deliveries, had failed connections,")
    print("or (cold) the server no longer had the document; see the JSON next to the table.")


if __name__ == "__main__":
    main()
