"""Draws the ramp scenario as an SVG chart: p99 fan-out latency against the
offered inbound rate, both on log scales, one line per server.

Usage: ramp_chart.py OUT_DIR "SERVER ..." [SVG_PATH]
Reads OUT_DIR/<server>-ramp.json (the loadgen's RESULT lines) and writes
SVG_PATH (default OUT_DIR/ramp.svg). Standard library only.
"""

import json
import math
import os
import sys
from xml.sax.saxutils import escape

from compare_table import TITLES, dig, load

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000"]
DASHES = ["", "6 3", "2 3", "8 3 2 3", "", "6 3", "2 3"]
WIDTH, HEIGHT = 860, 540
LEFT, RIGHT, TOP, BOTTOM = 80, 230, 50, 70


def series(out, server):
    """(offered inbound updates/s, p99 ms, passed) per step of one run."""
    r = load(out, server, "ramp")
    points = []
    for s in dig(r, "steps") or []:
        offered = s.get("target_inbound_per_s")
        lat = dig(s, "phase", "latency_ms") or {}
        if not offered or not lat.get("count"):
            continue
        points.append((offered, max(lat["p99_ms"], 1e-3), bool(s.get("pass"))))
    return points, dig(r, "p99_limit_ms")


def log_ticks(lo, hi):
    """1-2-5 ticks covering [lo, hi] on a log scale."""
    ticks = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10**e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def label(v):
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def chart(lines, limit_ms):
    xs = [p[0] for _, pts in lines for p in pts]
    ys = [p[1] for _, pts in lines for p in pts] + [limit_ms]
    x_lo = 10 ** math.floor(math.log10(min(xs)))
    x_hi = 10 ** math.ceil(math.log10(max(xs)))
    y_lo = 10 ** math.floor(math.log10(min(ys)))
    y_hi = 10 ** math.ceil(math.log10(max(ys) * 1.01))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x):
        return LEFT + plot_w * (math.log10(x) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo))

    def py(y):
        return TOP + plot_h * (1 - (math.log10(y) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)))

    o = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="13">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<text x="{LEFT}" y="28" font-size="16" font-weight="bold">'
        "Ramp: p99 fan-out latency against offered rate</text>",
    ]
    # Grid and tick labels.
    for v in log_ticks(x_lo, x_hi):
        x = px(v)
        o.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#e4e4e4"/>')
        o.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{label(v)}</text>')
    for v in log_ticks(y_lo, y_hi):
        y = py(v)
        o.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        o.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{label(v)}</text>')
    o.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>')
    o.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 22}" text-anchor="middle">'
        "offered inbound rate, updates/s (log scale)</text>"
    )
    o.append(
        f'<text transform="translate(22 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        "p99 fan-out latency, ms (log scale)</text>"
    )
    # The limit a step must stay under.
    y = py(limit_ms)
    o.append(
        f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
        'stroke="#c00" stroke-width="1.5" stroke-dasharray="8 4"/>'
    )
    o.append(f'<text x="{LEFT + 6}" y="{y - 6:.1f}" fill="#c00">p99 limit {label(limit_ms)} ms</text>')
    # One line per server; a filled marker for a passing step, hollow for the failing one.
    for i, (title, pts) in enumerate(lines):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in pts)
        o.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + "/>"
        )
        for x, y, passed in pts:
            fill = colour if passed else "#fff"
            o.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{fill}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        ly = TOP + 10 + 22 * i
        lx = LEFT + plot_w + 16
        o.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 28}" y2="{ly}" stroke="{colour}" stroke-width="2"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + "/>"
        )
        o.append(f'<circle cx="{lx + 14}" cy="{ly}" r="4" fill="{colour}" stroke="{colour}"/>')
        o.append(f'<text x="{lx + 36}" y="{ly + 4}">{escape(title)}</text>')
    ly = TOP + 10 + 22 * len(lines) + 12
    lx = LEFT + plot_w + 16
    o.append(f'<circle cx="{lx + 14}" cy="{ly}" r="4" fill="#fff" stroke="#444" stroke-width="2"/>')
    o.append(f'<text x="{lx + 36}" y="{ly + 4}">step failed</text>')
    o.append(f'<text x="{lx + 36}" y="{ly + 20}">(p99 or deliveries)</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main():
    out, servers = sys.argv[1], sys.argv[2].split()
    path = sys.argv[3] if len(sys.argv) > 3 else os.path.join(out, "ramp.svg")
    lines, limit = [], None
    for s in servers:
        pts, lim = series(out, s)
        if pts:
            lines.append((TITLES.get(s, s), pts))
            limit = limit or lim
    if not lines:
        print("ramp_chart.py: no ramp results; no chart written", file=sys.stderr)
        return
    with open(path, "w") as f:
        f.write(chart(lines, limit or 50.0))
    print(f"ramp chart: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
