"""Latency of ``scored`` against the number of predictions logged (``make bench-growth``).

One ledger; predictions are logged through the SDK (``log_predictions``, 10,000 per
call, keys drawn at random among a population of customers, as ``tests/bench/run.py``
does) until the ledger holds each size of ``--sizes`` in turn (default 10k, 100k, 1M,
10M). At each size ``scored`` is asked about ``--keys`` random keys (nine in ten among
those logged, one in ten never scored: still a full lookup) and its median, 95th and
99th percentiles reported, with the logging rate of the stretch since the size before,
the database's bytes, the machine and its load average.

``--chart PATH`` draws p50 and p99 against size on log-log axes as a self-contained
SVG, one pair of lines per store; with ``--from A.json B.json`` it draws from results
already written, without measuring. ``--store postgresql`` (``make bench-growth-pg``)
puts the ledger in a throwaway PostgreSQL server with durability on.

Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from registry.sdk import connect
from tests.bench import harness

SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
#: Predictions per ``log_predictions`` call.
PER_CALL = 10_000
#: Customers whose keys the predictions are drawn from (a key is scored again and again
#: once the ledger holds more predictions than this).
POPULATION = 1_000_000
#: Of the keys asked about, the share never scored.
NEVER_SCORED = 0.1


def nearest_rank(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile ``share`` (0 < share <= 1) of ``ordered`` (sorted, not
    empty), as ``harness.latency`` computes its p99."""
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def summarise(samples: list[float]) -> dict[str, float]:
    """Median, 95th and 99th percentiles of ``samples`` seconds, in milliseconds."""
    ordered = sorted(samples)
    figures = harness.latency(ordered)
    return {
        "median_ms": figures["median_ms"],
        "p95_ms": round(nearest_rank(ordered, 0.95) * 1e3, 4),
        "p99_ms": figures["p99_ms"],
        "n": figures["n"],
    }


def parse_sizes(text: str) -> list[int]:
    """``"10000,100000"`` (``k`` and ``M`` suffixes allowed): the sizes, ascending."""
    sizes = []
    for part in text.split(","):
        part = part.strip()
        factor = {"k": 1_000, "K": 1_000, "M": 1_000_000}.get(part[-1:], 1)
        digits = part[:-1] if factor > 1 else part
        if not digits.replace("_", "").isdigit() or int(digits) * factor <= 0:
            raise ValueError(f"--sizes: {part!r} is not a positive count (10000, 100k, 1M)")
        sizes.append(int(digits) * factor)
    return sorted(set(sizes))


def grow(work: Path, sizes: list[int], n_keys: int, population: int) -> list[dict[str, Any]]:
    """Log predictions up to each of ``sizes`` in turn and time ``scored`` at each."""
    url = harness.fresh(work, "growth")
    reg = connect(url, project="bench", actor="bench")
    with reg.run("train") as run:
        model = run.register_model(
            "scorer", artifact_digest="sha256:" + "ab" * 32, artifact_uri="file:///models/scorer"
        )
    deployment = reg.deploy("scoring", endpoint="http://127.0.0.1/score", served={model: 100})
    draw = np.random.default_rng(1)
    pick = random.Random(2)
    logged = np.zeros(population, dtype=bool)
    done, call = 0, 0
    points = []
    for size in sizes:
        began_at = done
        clock = harness.Stopwatch()
        while done < size:
            n = min(PER_CALL, size - done)
            # Serving code has its batch in hand: only the SDK call is timed.
            drawn = draw.integers(0, population, n)
            logged[drawn] = True
            records = [f"customer-{i:07d}" for i in drawn.tolist()]
            outputs = [round(x, 4) for x in draw.random(n).tolist()]
            traces = [f"{call:08x}{i:024x}" for i in range(n)]
            with clock:
                reg.log_predictions(
                    deployment, model=model, records=records, outputs=outputs, trace_ids=traces
                )
            done += n
            call += 1
        seen = np.flatnonzero(logged).tolist()
        keys = [
            f"customer-{population + pick.randrange(population):07d}"
            if pick.random() < NEVER_SCORED
            else f"customer-{seen[pick.randrange(len(seen))]:07d}"
            for _ in range(n_keys)
        ]
        with contextlib.suppress(LookupError):
            reg.scored(keys[0])  # the first question loads what later ones reuse
        samples = []
        for key in keys:
            began = time.perf_counter()
            with contextlib.suppress(LookupError):  # never scored: still a full lookup
                reg.scored(key)
            samples.append(time.perf_counter() - began)
        stretch = done - began_at
        points.append(
            {
                "predictions": done,
                "keys_logged": len(seen),
                "scored": summarise(samples),
                "logging": {
                    "predictions": stretch,
                    "per_call": PER_CALL,
                    "seconds": round(clock.seconds, 3),
                    "predictions_per_s": round(stretch / clock.seconds) if clock.seconds else None,
                },
                "database_bytes": harness.db_bytes(work / "growth"),
                "machine": harness.machine(),
                "load_average": harness.load_average(),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        print(json.dumps(points[-1]), flush=True)
    reg.close()
    return points


# --- the chart -------------------------------------------------------------------------------

WIDTH, HEIGHT = 720, 450
LEFT, RIGHT, TOP, BOTTOM = 78, 170, 56, 62
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def store_name(result: dict[str, Any]) -> str:
    """``sqlite`` or ``postgresql``: the first word of the result's store."""
    return str(result.get("store") or result.get("machine", {}).get("store", "store")).split()[0]


def _decade_ticks(low: float, high: float) -> list[float]:
    """Ticks for a log axis from ``low`` to ``high``: the powers of ten between them, with
    2 and 5 times each when the range spans less than three decades."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1, 2, 5) if last - first < 3 else (1,)
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in steps]
    return [t for t in ticks if low <= t * 1.000001 and t <= high * 1.000001]


def _count(value: float) -> str:
    """10000 -> ``10k``; 1000000 -> ``1M``."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def _ms(value: float) -> str:
    return f"{value:g}"


def chart(results: list[dict[str, Any]]) -> str:
    """An SVG of ``scored`` p50 (solid) and p99 (dashed) against predictions logged, on
    log-log axes, one colour per result (store). Requires at least one point."""
    series = [(store_name(r), r["points"]) for r in results if r.get("points")]
    if not series:
        raise ValueError("no measured sizes to draw: the results hold no points")
    xs = [p["predictions"] for _, points in series for p in points]
    ys = [p["scored"][k] for _, points in series for p in points for k in ("median_ms", "p99_ms")]
    ys = [y for y in ys if y > 0]
    x_low, x_high = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)))
    y_low, y_high = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
    if x_high == x_low:
        x_high *= 10
    if y_high == y_low:
        y_high *= 10
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_at(v: float) -> float:
        share = (math.log10(v) - math.log10(x_low)) / (math.log10(x_high) - math.log10(x_low))
        return round(LEFT + share * plot_w, 1)

    def y_at(v: float) -> float:
        share = (math.log10(max(v, y_low)) - math.log10(y_low)) / (
            math.log10(y_high) - math.log10(y_low)
        )
        return round(TOP + plot_h - share * plot_h, 1)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="24" font-size="16" font-weight="bold">'
        "Latency of scored against predictions logged</text>",
    ]
    loads = [p["load_average"][0] for _, points in series for p in points]
    dates = sorted({p["at"][:10] for _, points in series for p in points if p.get("at")})
    cpus = {str(p["machine"].get("cpus")) for _, points in series for p in points}
    spread = f"{min(loads):.1f}" + (f" to {max(loads):.1f}" if max(loads) > min(loads) else "")
    note = f"{'/'.join(sorted(cpus))} CPUs; 1-minute load average {spread}; {', '.join(dates)}"
    out.append(f'<text x="{LEFT}" y="42" fill="#555555">{escape(note)}</text>')
    for tick in _decade_ticks(x_low, x_high):
        x = x_at(tick)
        out.append(
            f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{TOP + plot_h}" stroke="#e5e5e5"/>'
            f'<line x1="{x}" y1="{TOP + plot_h}" x2="{x}" y2="{TOP + plot_h + 5}" '
            'stroke="#333333"/>'
            f'<text x="{x}" y="{TOP + plot_h + 19}" text-anchor="middle">{_count(tick)}</text>'
        )
    for tick in _decade_ticks(y_low, y_high):
        y = y_at(tick)
        out.append(
            f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + plot_w}" y2="{y}" stroke="#e5e5e5"/>'
            f'<line x1="{LEFT - 5}" y1="{y}" x2="{LEFT}" y2="{y}" stroke="#333333"/>'
            f'<text x="{LEFT - 9}" y="{y + 4}" text-anchor="end">{_ms(tick)}</text>'
        )
    out += [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#333333"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 16}" text-anchor="middle">'
        "predictions logged (log scale)</text>",
        f'<text transform="translate(20 {TOP + plot_h / 2}) rotate(-90)" '
        'text-anchor="middle">scored latency, ms (log scale)</text>',
    ]
    legend_x, legend_y = LEFT + plot_w + 18, TOP + 8
    for n, (store, points) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        for m, (key, label, dash) in enumerate(
            (("median_ms", "p50", ""), ("p99_ms", "p99", ' stroke-dasharray="6 4"'))
        ):
            line = " ".join(f"{x_at(p['predictions'])},{y_at(p['scored'][key])}" for p in points)
            out.append(
                f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
                f"<title>{escape(store)} {label}</title></polyline>"
            )
            out += [
                f'<circle cx="{x_at(p["predictions"])}" cy="{y_at(p["scored"][key])}" r="3" '
                f'fill="{colour}"><title>{escape(store)} {label} at {_count(p["predictions"])}: '
                f"{p['scored'][key]} ms</title></circle>"
                for p in points
            ]
            y = legend_y + (2 * n + m) * 20
            out.append(
                f'<line x1="{legend_x}" y1="{y}" x2="{legend_x + 28}" y2="{y}" '
                f'stroke="{colour}" stroke-width="2"{dash}/>'
                f'<text x="{legend_x + 36}" y="{y + 4}">{escape(store)} {label}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = harness.arguments(
        __doc__, ".mlledger/bench-growth.json", ".mlledger/bench-growth", scale=False
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(SIZES),
        help="predictions logged at each measurement, comma-separated "
        "(default 10000,100000,1000000,10000000)",
    )
    parser.add_argument("--keys", type=int, default=1_000, help="scored questions per size")
    parser.add_argument(
        "--population", type=int, default=POPULATION, help="distinct keys predictions draw from"
    )
    harness.store_option(parser)
    parser.add_argument("--chart", help="write an SVG chart of p50 and p99 against size here")
    parser.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        metavar="JSON",
        help="draw the chart from these results instead of measuring",
    )
    args = parser.parse_args()
    if args.sources:
        if not args.chart:
            parser.error("--from draws a chart: give --chart PATH too")
        results = [json.loads(Path(source).read_text()) for source in args.sources]
    else:
        if args.store == "postgresql":
            harness.use_postgres()
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        points = grow(work, args.sizes, args.keys, args.population)
        result = {
            "machine": harness.machine(),
            "store": args.store,
            "sizes": args.sizes,
            "keys": args.keys,
            "population": args.population,
            "per_call": PER_CALL,
            "points": points,
            "bench_seconds": round(time.perf_counter() - began, 1),
        }
        harness.write_result(args.out, result)
        results = [json.loads(Path(args.out).read_text())]
    if args.chart:
        path = Path(args.chart)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(chart(results))
        print(f"chart: {path}")


if __name__ == "__main__":
    main()
