"""Prints compare.sh's results as one Markdown table with ratios, every
target of issue 14 marked met or MISSED for each of our configurations.

Usage: compare_table.py OUT_DIR "SERVER ..." "VERSIONS"
Reads OUT_DIR/<server>-<scenario>.json (the loadgen's RESULT lines) and
OUT_DIR/meta.json (the fsync of the disk, each server's core count). Rows of
scenarios that were not run are left out.
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


def first_failing(r):
    """The step that ended the ramp (None when every step passed)."""
    steps = dig(r, "steps") or []
    return steps[-1] if steps and not steps[-1].get("pass") else None


def ramp_loadgen_cores(r):
    return dig(first_failing(r), "window", "loadgen_cores_busy")


def ramp_server_idle(cores):
    """Share of the server's cores left idle in the failing step, in %."""

    def get(r):
        busy = dig(first_failing(r), "window", "server_cores_busy")
        return None if busy is None else max(0.0, 100.0 * (1 - busy / cores))

    return get


def idle_kib(r):
    if dig(r, "connections", "failed"):
        return None
    return dig(r, "server_rss_kib_per_connection")


def idle_cpu(window):
    def get(r):
        return dig(r, "server_cpu", window, "percent_of_a_core")

    return get


def cold_ms(r):
    samples = dig(r, "samples") or []
    if not samples or not all(s.get("complete") for s in samples):
        return None
    return dig(r, "step2_ms", "median")


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


class PerServer:
    """A getter that depends on the server (e.g. on how many cores it had)."""

    def __init__(self, make):
        self.make = make


# Targets: how a figure of ours is judged. `None`: shown, not judged.
class Ratio:
    """At most (better="low") or at least ("high") `factor` x the best peer."""

    def __init__(self, factor):
        self.factor = factor

    def goal(self, better, best, meta):
        sign = "<=" if better == "low" else ">="
        return f"{sign} {self.factor:g}x best peer"

    def met(self, v, better, best, meta):
        if best is None:
            return None
        return v <= self.factor * best if better == "low" else v >= self.factor * best


class Below:
    """Under an absolute limit."""

    def __init__(self, limit, unit):
        self.limit, self.unit = limit, unit

    def goal(self, better, best, meta):
        sep = "" if self.unit.startswith("%") else " "
        return f"under {self.limit:g}{sep}{self.unit}"

    def met(self, v, better, best, meta):
        return v < self.limit


class PlusFsync:
    """At most the best peer's figure plus one fsync of this disk."""

    def goal(self, better, best, meta):
        f = meta.get("fsync_ms")
        if f is None:
            return "<= best peer + 1 fsync (not measured)"
        if best is None:
            return f"<= best peer + 1 fsync ({f:.3g} ms)"
        return f"<= best peer + 1 fsync ({f:.3g} ms) = {best + f:.3g} ms"

    def met(self, v, better, best, meta):
        f = meta.get("fsync_ms")
        if best is None or f is None:
            return None
        return v <= best + f


def rows(meta):
    server_cores = meta.get("server_cores", {})

    def idle_share(s):
        return ramp_server_idle(server_cores.get(s, 1))

    # (scenario file, figure, getter (or per-server getter), unit, better, target)
    return [
        ("fanout", "1. 500 meetings x 3: p50 fan-out", fanout_latency("p50_ms"), "ms", "low", PlusFsync()),
        ("fanout", "1. 500 meetings x 3: p99 fan-out", fanout_latency("p99_ms"), "ms", "low", Ratio(0.33)),
        ("fanout", "1. 500 meetings x 3: p99.9 fan-out", fanout_latency("p999_ms"), "ms", "low", None),
        ("ramp", "2. 100 x 10 ramp: highest sustained inbound", ramp_rate, "updates/s", "high", Ratio(5)),
        ("ramp", "2. 100 x 10 ramp: server CPU per 1,000 delivered", ramp_cpu, "CPU-s", "low", Ratio(0.2)),
        ("ramp", "2. ramp, first failing step: load generator CPU", ramp_loadgen_cores, "cores", None, None),
        ("ramp", "2. ramp, first failing step: server cores idle", PerServer(idle_share), "%", None, None),
        ("crowded", "3. 1 meeting x 400 (20 typing): p50 fan-out", fanout_latency("p50_ms"), "ms", "low", None),
        ("crowded", "3. 1 meeting x 400 (20 typing): p99 fan-out", fanout_latency("p99_ms"), "ms", "low", None),
        ("idle", "4. 10,000 idle clients: memory per connection", idle_kib, "KiB", "low", Ratio(0.25)),
        ("idle", "4. 10,000 idle clients: server CPU, settle window", idle_cpu("settle"), "% of a core", "low", None),
        ("idle", "4. 10,000 idle clients: server CPU, quiet window", idle_cpu("hold"), "% of a core", "low", Below(1, "% of a core")),
        ("cold", "5. cold load of the B4-like trace: connect to sync step 2", cold_ms, "ms", "low", None),
        ("cold-holding", "5b. cold load, client holding part of it: connect to sync step 2", cold_ms, "ms", "low", Below(30, "ms")),
    ]


def fsync_line(meta):
    f = meta.get("fsync_ms")
    if f is None:
        return "fsync of this disk: not measured (" + meta.get("fsync_note", "no pg_test_fsync") + ")."
    return (
        f"fsync of this disk: {f * 1000:.0f} µs ({meta.get('fsync_ops_per_s', 0):,.0f} ops/s), "
        f"`pg_test_fsync` fdatasync of one 8 kB write in {meta.get('fsync_dir', '?')}."
    )


def main():
    out, servers, versions = sys.argv[1], sys.argv[2].split(), sys.argv[3]
    meta = {}
    try:
        with open(os.path.join(out, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        pass
    peers = [s for s in servers if s in PEERS]
    ours = [s for s in servers if s not in PEERS]
    head = ["figure", "unit"] + [TITLES.get(s, s) for s in servers] + ["target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for scenario, figure, get, unit, better, target in rows(meta):
        if not any(os.path.exists(os.path.join(out, f"{s}-{scenario}.out")) for s in servers):
            continue  # scenario not run
        getter = get.make if isinstance(get, PerServer) else (lambda s, g=get: g)
        values = {s: getter(s)(load(out, s, scenario)) for s in servers}
        peer_values = [values[s] for s in peers if values[s] is not None]
        best = None
        if peer_values and better:
            best = min(peer_values) if better == "low" else max(peer_values)
        cells = []
        for s in servers:
            v = values[s]
            cell = fmt(v)
            if s in ours and v is not None:
                notes = []
                if best and not isinstance(target, Below):
                    notes.append(f"{v / best:.2f}x")
                if target is not None:
                    met = target.met(v, better, best, meta)
                    if met is not None:
                        notes.append("met" if met else "MISSED")
                if notes:
                    cell += " (" + ", ".join(notes) + ")"
            cells.append(cell)
        if target is not None:
            goal = target.goal(better, best, meta)
        elif scenario == "cold":
            goal = "under 50 ms (earlier round)"
        else:
            goal = ""
        print("| " + " | ".join([figure, unit] + cells + [goal]) + " |")
    print()
    print(f"Ratios: ours / best peer in the same run. Versions: {versions}.")
    print(fsync_line(meta))
    print("Ramp, first failing step: the load generator's CPU (of its own pinned cores) and the share")
    print("of the server's cores its process left idle (ours, Postgres: PostgreSQL's own CPU on that")
    print("core is not subtracted); the ramp chart is ramp.svg next to this table.")
    print("n/a: the run failed, lost more than 1% of deliveries, had failed connections,")
    print("(cold) the server no longer had the document, or (ramp) every step passed;")
    print("see the JSON next to the table.")


if __name__ == "__main__":
    main()
