#!/usr/bin/python3
"""Draws docs/img/*.svg from one `td-bench --json` object (no plotting library needed).

    build/benchmarks/td-bench --json > run.json
    /usr/bin/python3 benchmarks/plot_svg.py run.json docs/img

Writes throughput.svg (completions/s by case, with the original's best and issue 7's target as
lines), scaling.svg (coordinator CPU per input event and RSS per open group, by open groups) and
dispatch.svg (dispatch p50/p99 of the one-group cases against the floor's).
"""
import json
import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape

WIDTH = 720
BAR_H = 22
LEFT = 150
RIGHT = 40


def svg(height, body, title):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'font-family="sans-serif" font-size="12">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">'
            f'{escape(title)}</text>\n{body}</svg>\n')


def log_x(value, top):
    """x position of `value` on a log scale from 10 to `top`."""
    span = WIDTH - LEFT - RIGHT
    return LEFT + span * math.log10(max(value, 10) / 10) / math.log10(top / 10)


def bars(rows, top, lines, unit):
    """Horizontal bars on a log axis; rows = [(label, value)], lines = [(value, label, colour)]."""
    out = []
    y0 = 40
    for i, (label, value) in enumerate(rows):
        y = y0 + i * (BAR_H + 6)
        x = log_x(value, top) if value else LEFT
        out.append(f'<text x="{LEFT - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{x - LEFT:.1f}" height="{BAR_H}" '
                   f'fill="#4a78b5"/>')
        text = f"{value:,.0f}" if value else "not measured"
        out.append(f'<text x="{x + 4:.1f}" y="{y + 15}">{text}</text>')
    bottom = y0 + len(rows) * (BAR_H + 6)
    for value, label, colour in lines:
        x = log_x(value, top)
        out.append(f'<line x1="{x:.1f}" y1="{y0 - 6}" x2="{x:.1f}" y2="{bottom}" stroke="{colour}" '
                   f'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x - 3:.1f}" y="{bottom + 14}" text-anchor="end" fill="{colour}">'
                   f'{escape(label)}</text>')
    for tick in [10, 100, 1000, 10000, 100000]:
        if tick > top:
            break
        x = log_x(tick, top)
        out.append(f'<line x1="{x:.1f}" y1="{bottom + 20}" x2="{x:.1f}" y2="{bottom + 25}" '
                   f'stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 38}" text-anchor="middle">{tick:,}</text>')
    out.append(f'<text x="{LEFT + (WIDTH - LEFT - RIGHT) / 2}" y="{bottom + 54}" '
               f'text-anchor="middle">{escape(unit)} (log scale)</text>')
    return "\n".join(out) + "\n", bottom + 64


def throughput(run):
    rows = [(name, value) for name, value in run["completions_per_s"].items()]
    body, height = bars(rows, 100000,
                        [(960, "original, best: 960", "#b55"), (20000, "target: 20 000", "#383")],
                        "step completions per second through one td-coordinator")
    return svg(height, body, "Throughput by case (td-bench, embedded broker, 2 cores)")


def scaling(run):
    cpu = run["cpu_us_per_event"]
    rss = run["rss_bytes_per_group"]
    rows = [(f"{g} groups: CPU µs/input", v) for g, v in cpu.items()]
    rows += [(f"{g} groups: bytes/group", v) for g, v in rss.items()]
    body, height = bars(rows, 100000, [(4096, "4 KiB/group target", "#383")],
                        "coordinator CPU µs per input event; RSS bytes per open group")
    return svg(height, body, "Scaling with open groups (fresh td-coordinator per size)")


def dispatch(run):
    rows = [("floor p50", run["floor_rtt_p50_ms"]), ("floor p99", run["floor_rtt_p99_ms"])]
    for name in ("dispatch_w1", "dispatch_w4", "one_group"):
        case = run["cases"].get(name)
        if case and case.get("dispatch_p50_ms") is not None:
            rows.append((f"{name} p50", case["dispatch_p50_ms"]))
            rows.append((f"{name} p99", case["dispatch_p99_ms"]))
    span = WIDTH - LEFT - RIGHT
    top = max(v for _, v in rows) * 1.15
    out = []
    for i, (label, value) in enumerate(rows):
        y = 40 + i * (BAR_H + 6)
        w = span * value / top
        colour = "#999" if label.startswith("floor") else "#4a78b5"
        out.append(f'<text x="{LEFT - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{colour}"/>')
        out.append(f'<text x="{LEFT + w + 4:.1f}" y="{y + 15}">{value:.1f} ms</text>')
    height = 40 + len(rows) * (BAR_H + 6) + 20
    return svg(height, "\n".join(out) + "\n",
               "Dispatch latency against the broker's round-trip floor (ms)")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_svg.py RUN.json OUT_DIR")
    run = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.svg").write_text(throughput(run))
    (out / "scaling.svg").write_text(scaling(run))
    (out / "dispatch.svg").write_text(dispatch(run))


if __name__ == "__main__":
    main()
