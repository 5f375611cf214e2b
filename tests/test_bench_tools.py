"""The benchmark tools that report rather than measure: the summary table
(``tests/bench/summary.py``) and the growth benchmark's result and chart
(``tests/bench/growth.py``, run at tiny sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.bench import growth, summary

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


def table_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """The Markdown table's rows by (file, figure): the other cells, in order."""
    lines = text.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["Figure", "Value", "Target", "Met", "Store", "Load (1 min)", "Date", "File"]
    assert set(lines[1]) <= {"|", "-"}
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[(cells[7], cells[0])] = cells[1:7]
    return rows


def test_summary_reports_verdicts_stated_targets_and_results_not_run(tmp_path: Path) -> None:
    (tmp_path / "bench.json").write_text(
        json.dumps(
            {
                "machine": {"cpus": 2, "store": "sqlite (WAL, synchronous=FULL)"},
                "predictions": {"predictions_per_s": 91_234},
                "scored": {"median_ms": 0.3, "p99_ms": 1.25},
                "targets_met": {
                    "predictions_per_s>=100000": False,
                    "scored_p99_ms<=2": True,
                    "a_check_no_figure_describes": True,
                },
                "load_average": [1.5, 1.2, 1.0],
                "finished_at": "2026-12-01T10:20:30+00:00",
            }
        )
    )
    (tmp_path / "bench-startup.json").write_text(
        json.dumps(
            {
                "help_seconds": 0.21,
                "scored_json_seconds": 0.75,
                "targets": {"help_seconds": 0.3, "scored_json_seconds": 0.6},
                "load_average": [0.5, 0.4, 0.3],
                "finished_at": "2026-12-02T08:00:00+00:00",
            }
        )
    )
    (tmp_path / "bench-http.json").write_text("{not json")
    out = tmp_path / "summary.md"

    summary.main(["--dir", str(tmp_path), "--out", str(out)])

    rows = table_rows(out.read_text())
    date = "2026-12-01 10:20 UTC"
    assert rows[("bench.json", "log_predictions, 10,000 per call")] == [
        "91,234 predictions/s", ">= 100,000", "not met", "sqlite", "1.50", date,
    ]  # fmt: skip
    assert rows[("bench.json", "scored, p99 (1M predictions)")] == [
        "1.25 ms", "<= 2", "met", "sqlite", "1.50", date,
    ]  # fmt: skip
    # A figure without a target has no verdict; one the script did not measure shows a dash.
    assert rows[("bench.json", "scored, median (1M predictions)")][:3] == ["0.3 ms", "", ""]
    assert rows[("bench.json", "trained_on, p99 (10,000 runs)")][:3] == ["—", "", ""]
    assert rows[("bench.json", "a_check_no_figure_describes")][1:3] == [
        "a check no figure describes",
        "met",
    ]
    assert rows[("bench-startup.json", "mlledger --help")][:4] == [
        "0.21 s", "<= 0.3", "met", "sqlite",
    ]  # fmt: skip
    assert rows[("bench-startup.json", "mlledger scored --json")][:3] == [
        "0.75 s", "<= 0.6", "not met",
    ]  # fmt: skip
    assert rows[("bench-pg.json", "python -m tests.bench.run --store postgresql")][0] == "not run"
    assert rows[("bench-graph.json", "python -m tests.bench.graph")][0] == "not run"
    assert rows[("bench-http.json", "python -m tests.bench.http_api")][0].startswith("unreadable")


def test_growth_writes_each_size_and_a_chart_of_both_percentiles(tmp_path: Path) -> None:
    out, chart = tmp_path / "growth.json", tmp_path / "growth.svg"
    command = [
        *(sys.executable, "-m", "tests.bench.growth", "--sizes", "1000,3000", "--keys", "100"),
        *("--out", str(out), "--work", str(tmp_path / "work"), "--chart", str(chart)),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)

    result = json.loads(out.read_text())
    assert result["sizes"] == [1000, 3000]
    assert [p["predictions"] for p in result["points"]] == [1000, 3000]
    assert [p["logging"]["predictions"] for p in result["points"]] == [1000, 2000]
    for point in result["points"]:
        scored = point["scored"]
        assert scored["n"] == 100
        assert 0 < scored["median_ms"] <= scored["p95_ms"] <= scored["p99_ms"]
        assert point["machine"]["store"].startswith("sqlite")
        assert len(point["load_average"]) == 3
    lines = ET.parse(chart).getroot().findall(f"{SVG}polyline")
    assert [line.findtext(f"{SVG}title") for line in lines] == ["sqlite p50", "sqlite p99"]
    assert all(len(line.get("points", "").split()) == 2 for line in lines)

    # Drawn from two results (the second as another store), without measuring.
    other = {**result, "store": "postgresql", "machine": {**result["machine"], "store": "pg"}}
    (tmp_path / "pg.json").write_text(json.dumps(other))
    both = tmp_path / "both.svg"
    subprocess.run(
        [
            *(sys.executable, "-m", "tests.bench.growth", "--chart", str(both)),
            *("--from", str(out), str(tmp_path / "pg.json")),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    root = ET.parse(both).getroot()
    titles = [line.findtext(f"{SVG}title") for line in root.findall(f"{SVG}polyline")]
    assert titles == ["sqlite p50", "sqlite p99", "postgresql p50", "postgresql p99"]
    legend = [text.text for text in root.iter(f"{SVG}text")]
    assert "postgresql p99" in legend and "1k" in legend


def test_sizes_accept_suffixes_and_refuse_nonsense() -> None:
    assert growth.parse_sizes("100k,10000,1M,100k") == [10_000, 100_000, 1_000_000]
    try:
        growth.parse_sizes("10000,lots")
    except ValueError as error:
        assert "'lots'" in str(error)
    else:
        raise AssertionError("'lots' was accepted as a size")


def test_summary_reports_a_result_of_an_unexpected_shape(tmp_path: Path) -> None:
    (tmp_path / "bench-growth.json").write_text(json.dumps({"points": [{"predictions": 10}]}))
    (tmp_path / "bench-audit.json").write_text(json.dumps([1, 2]))

    rows = table_rows(summary.markdown(summary.summary_rows(tmp_path)))

    growth_row = rows[("bench-growth.json", "python -m tests.bench.growth")]
    assert growth_row[0] == "unreadable: unexpected shape (KeyError: 'scored')"
    assert rows[("bench-audit.json", "python -m tests.bench.audit")][0] == (
        "unreadable: not a JSON object"
    )
