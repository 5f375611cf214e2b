"""One table of every benchmark figure (``make bench-summary``; the last step of
``make bench`` and ``make bench-pg``).

Reads each ``bench*.json`` of ``--dir`` (``.mlledger``) and prints a Markdown table: the
figure, its value, the target the script holds it to (only where the script states
one: its ``targets_met`` verdicts, or the ``targets`` / ``target_*`` numbers a few
scripts record), whether it was met, the store, the 1-minute load average and the
date of the run. A result that is missing is listed as not run; one that cannot be
read says why. ``--out`` writes the table too.
"""

from __future__ import annotations

import argparse
import json
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: A target's key in ``targets_met``: a name, then optionally a comparison and a bound.
TARGET_KEY = re.compile(r"^(?P<name>.*?)(?P<op><=|>=|<|>)(?P<bound>.+)$")
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
NONE = "—"


@dataclass(frozen=True)
class Figure:
    """One row: ``label`` for the number at the dotted ``path`` of a result.

    ``target`` names the ``targets_met`` verdict that judges it: a whole key, or the
    name before its comparison (``scored_p99_ms``) where the bound differs by store.
    ``stated`` is ``(comparison, dotted path)`` of a bound the script records without a
    verdict (``targets.rows_per_s``); the summary compares the value with it.
    """

    label: str
    path: str
    unit: str = ""
    target: str | None = None
    stated: tuple[str, str] | None = None


@dataclass(frozen=True)
class Source:
    """A result file, the command that writes it, its figures and its store when the
    result does not name one."""

    file: str
    command: str
    figures: tuple[Figure, ...] = ()
    store: str = "sqlite"


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    figure: str
    value: str
    target: str = ""
    met: str = ""
    store: str = ""
    load: str = ""
    date: str = ""
    file: str = ""


RUN = (
    Figure(
        "append, batches of 1,000 run events",
        "append.events_per_s",
        "events/s",
        "append_events_per_s",
    ),
    Figure(
        "log_predictions, 10,000 per call",
        "predictions.predictions_per_s",
        "predictions/s",
        "predictions_per_s",
    ),
    Figure("scored, median (1M predictions)", "scored.median_ms", "ms"),
    Figure("scored, p99 (1M predictions)", "scored.p99_ms", "ms", "scored_p99_ms"),
    Figure("trained_on, p99 (10,000 runs)", "trained_on.p99_ms", "ms", "trained_on_p99_ms"),
    Figure("downstream, p99 (10,000 runs)", "downstream.p99_ms", "ms"),
    Figure(
        "rebuild, prediction events", "rebuild.events_per_s", "events/s", "rebuild_events_per_s"
    ),
    Figure(
        "rebuild, run events",
        "rebuild_run_events.events_per_s",
        "events/s",
        "rebuild_run_events_per_s",
    ),
    Figure("runs recorded (peer workload)", "run_recording.record_runs_per_s", "runs/s"),
    Figure("runs recorded, times MLflow", "ratios_vs_peer.record_runs", "x", "record_runs_ratio"),
    Figure(
        "model → datasets median, times MLflow",
        "ratios_vs_peer.model_to_datasets_median",
        "x",
        "model_to_datasets_ratio",
    ),
    Figure(
        "dataset → models median, times MLflow",
        "ratios_vs_peer.dataset_to_models_median",
        "x",
        "dataset_to_models_ratio",
    ),
    Figure("database size", "database_bytes", "bytes"),
)

HTTP = (
    Figure("HTTP lineage, p99", "http_queries.lineage.p99_ms", "ms", "http_lineage_p99_ms"),
    Figure("HTTP scored, p99", "http_queries.scored.p99_ms", "ms", "http_scored_p99_ms"),
    Figure("HTTP query errors", "http_queries.errors", "", "http_queries_zero_errors"),
    Figure(
        "HTTP OpenLineage events",
        "http_openlineage.events_per_s",
        "events/s",
        "http_openlineage_events_per_s",
    ),
    Figure(
        "HTTP log_predictions",
        "http_predictions.predictions_per_s",
        "predictions/s",
        "http_predictions_per_s",
    ),
    Figure(
        "HTTP highest rate with p99 ≤ 50 ms (--rates)",
        "http_sustained.highest_rate_per_s",
        "requests/s",
    ),
)

INGEST = (
    Figure(
        "OpenLineage ingestion, 8 clients",
        "concurrent.events_per_s",
        "events/s",
        "concurrent_events_per_s",
    ),
    Figure(
        "OpenLineage ingestion, 1 client",
        "sequential.events_per_s",
        "events/s",
        "sequential_events_per_s",
    ),
    Figure("OpenLineage ingestion, p99 (8 clients)", "concurrent.p99_ms", "ms", "p99_ms"),
    Figure(
        "OpenLineage ingestion, server CPU per event (8 clients)",
        "concurrent.server_cpu_ms_per_event",
        "ms",
    ),
)

#: The Marquez routes ``tests/bench/marquez.py`` measures, by the key of each figure.
MARQUEZ_ROUTES = (
    ("namespaces", "namespaces"),
    ("jobs", "jobs list"),
    ("job", "job"),
    ("job_runs", "job runs"),
    ("job_versions", "job versions"),
    ("datasets", "datasets list"),
    ("dataset", "dataset"),
    ("dataset_versions", "dataset versions"),
    ("lineage", "lineage, depth 20"),
    ("column_lineage", "column-lineage"),
    ("search", "search"),
    ("events_lineage", "events/lineage"),
    ("run", "run"),
    ("runlineage_upstream", "runlineage/upstream"),
)

MARQUEZ = (
    *(
        Figure(
            f"Marquez {label}, p95 (10,000 jobs)",
            f"routes.{key}.p95_ms",
            "ms",
            f"{key}_p95_ms",
        )
        for key, label in MARQUEZ_ROUTES
    ),
    Figure("Marquez first request after the load", "first_request_ms", "ms"),
    Figure("Marquez dataset right after an append, median", "after_append_ms.p50_ms", "ms"),
)

WEB_PAGES = (
    ("home", "home"),
    ("search", "search"),
    ("run", "run page"),
    ("dataset", "dataset version page"),
    ("model", "model version page"),
    ("deployment", "deployment page"),
    ("audit", "audit page"),
    ("proof", "proof bundle"),
    ("trail", "access trail"),
    ("trail_by_key", "access trail by key"),
    ("trail_denied", "access trail, denied"),
    ("trail_no_match", "access trail, no match"),
)

WEB = tuple(
    Figure(
        f"Web {label}, p95 (1M predictions)",
        f"web_pages.pages.{key}.p95_ms",
        "ms",
        f"{key}_p95<=100ms",
    )
    for key, label in WEB_PAGES
)

EXPLORER = (
    Figure(
        "Explorer first paint, max (2,001 nodes)",
        "browser.first_paint.max_ms",
        "ms",
        "first_paint<=1000ms",
    ),
    *(
        Figure(
            f"Explorer {label}, p95 (2,001 nodes)",
            f"server.{key}.p95_ms",
            "ms",
            f"{key}_p95<=100ms",
        )
        for key, label in (("page", "page"), ("graph", "graph JSON"), ("expand_root", "expand"))
    ),
)

SOURCES = (
    Source(
        "bench-mlflow.json",
        "tests/bench/mlflow_peer.py",
        (
            Figure("MLflow: runs recorded", "record_runs_per_s", "runs/s"),
            Figure("MLflow: model → datasets, median", "query_model_to_datasets_ms.median", "ms"),
            Figure("MLflow: dataset → models, median", "query_dataset_to_models_ms.median", "ms"),
        ),
        store="mlflow (sqlite)",
    ),
    Source("bench.json", "python -m tests.bench.run", RUN),
    Source("bench-pg.json", "python -m tests.bench.run --store postgresql", RUN, "postgresql"),
    Source("bench-http.json", "python -m tests.bench.http_api", HTTP),
    Source(
        "bench-http-pg.json",
        "python -m tests.bench.http_api --store postgresql",
        HTTP,
        "postgresql",
    ),
    Source("bench-ingest.json", "python -m tests.bench.ingest", INGEST),
    Source(
        "bench-ingest-pg.json",
        "python -m tests.bench.ingest --store postgresql",
        INGEST,
        "postgresql",
    ),
    Source("bench-marquez.json", "python -m tests.bench.marquez", MARQUEZ),
    Source(
        "bench-marquez-pg.json",
        "python -m tests.bench.marquez --store postgresql",
        MARQUEZ,
        "postgresql",
    ),
    Source("bench-web.json", "python -m tests.bench.web", WEB),
    Source("bench-web-pg.json", "python -m tests.bench.web --store postgresql", WEB, "postgresql"),
    Source("bench-explorer.json", "python -m tests.bench.explorer", EXPLORER),
    Source(
        "bench-audit.json",
        "python -m tests.bench.audit",
        (
            Figure(
                "tree overhead, batched appends",
                "tree_overhead.batched.overhead_percent",
                "%",
                "batched_append_tree_overhead_percent",
            ),
            Figure(
                "tree overhead, small appends",
                "tree_overhead.small_appends.overhead_percent",
                "%",
                "small_append_tree_overhead_percent",
            ),
            Figure("verify", "verify.leaves_per_s", "leaves/s", "verify_leaves_per_s"),
            Figure(
                "inclusion proof, p99",
                "proofs.inclusion_proof.p99_ms",
                "ms",
                "inclusion_proof_p99_ms",
            ),
            Figure("evidence bundle, p99", "proofs.bundle.p99_ms", "ms", "bundle_p99_ms"),
        ),
    ),
    Source(
        "bench-erasure.json",
        "python -m tests.bench.erasure",
        (
            Figure(
                "erase one subject (plan + execute), worst",
                "single.max_s",
                "s",
                "plan_plus_execute_one_subject_s",
            ),
            Figure("erase in a batch, with purge", "batch.subjects_per_s_with_purge", "subjects/s"),
        ),
    ),
    Source(
        "bench-export.json",
        "python -m tests.bench.export",
        (
            Figure(
                "Parquet export",
                "parquet.rows_per_s",
                "rows/s",
                stated=(">=", "targets.rows_per_s"),
            ),
            Figure(
                "Parquet export, peak memory",
                "parquet.peak_rss_mb",
                "MB",
                stated=("<=", "targets.peak_rss_mb"),
            ),
            Figure("export verified", "verify.ok"),
        ),
    ),
    Source(
        "bench-report.json",
        "python -m tests.bench.report",
        (
            Figure(
                "model dossier, median",
                "dossier.seconds_median",
                "s",
                stated=("<=", "dossier.target_seconds"),
            ),
        ),
    ),
    Source(
        "bench-security.json",
        "python -m tests.bench.security",
        (
            Figure("viewer p99, idle", "viewer_during_write.idle.p99_ms", "ms"),
            Figure("viewer p99, during writes", "viewer_during_write.during_writes.p99_ms", "ms"),
            Figure("anonymous bodies, memory growth", "anonymous_bodies.rss_growth_mb", "MB"),
        ),
    ),
    Source(
        "bench-executors.json",
        "python -m tests.bench.executors",
        (
            Figure("job submit, p99", "submit.p99_ms", "ms", "submit_p99_ms"),
            Figure("job state recorded, p99 lag", "record_lag.p99_ms", "ms", "record_lag_p99_ms"),
            Figure("burst recorded", "burst.all_recorded_seconds", "s", "burst_within_30_s"),
            Figure("burst exactly once", "burst.exactly_once", "", "burst_exactly_once"),
            Figure(
                "burst GPU accounting", "burst.gpu_accounting_respected", "", "burst_gpu_accounting"
            ),
        ),
    ),
    Source(
        "bench-startup.json",
        "python -m tests.bench.startup",
        (
            Figure("mlledger --help", "help_seconds", "s", stated=("<=", "targets.help_seconds")),
            Figure(
                "mlledger scored --json",
                "scored_json_seconds",
                "s",
                stated=("<=", "targets.scored_json_seconds"),
            ),
        ),
    ),
    Source(
        "bench-autolog.json",
        "python -m tests.bench.autolog",
        (
            Figure(
                "autolog overhead per fit",
                "autolog_overhead_ms",
                "ms",
                stated=("<=", "target_overhead_ms"),
            ),
            Figure(
                "autolog overhead per fit, in a tracked function",
                "track_with_autolog_overhead_ms",
                "ms",
            ),
        ),
    ),
    Source(
        "bench-serving-hook.json",
        "python -m tests.bench.serving_hook",
        (
            Figure(
                "PredictionLogger.log at 10,000/s",
                "steady.log_us_per_call",
                "µs",
                "log_us_per_call_at_10000_per_s",
            ),
            Figure(
                "logger throughput over direct batches",
                "end_to_end.logger_over_direct",
                "x",
                "logger_throughput>=direct_batches",
            ),
            Figure(
                "spool drain over direct batches",
                "end_to_end.drain_over_direct",
                "x",
                "drain_throughput>=direct_batches",
            ),
            Figure(
                "spool drain over direct batches with a time per row",
                "end_to_end.drain_over_direct_with_a_time_per_row",
                "x",
                "drain_throughput>=direct_batches_with_a_time_per_row",
            ),
        ),
    ),
    Source(
        "bench-graph.json",
        "python -m tests.bench.graph",
        (
            Figure("Neo4j full sync", "sync.seconds", "s", "full_sync_seconds"),
            Figure(
                "Neo4j full sync rate", "sync.events_per_s", "events/s", "full_sync_events_per_s"
            ),
            Figure(
                "Neo4j incremental sync, p99",
                "incremental.sync.p99_ms",
                "ms",
                "incremental_sync_p99_ms",
            ),
            Figure("Neo4j rebuild", "sync.rebuild_seconds", "s", "rebuild_of_1M_nodes_seconds"),
            Figure(
                "Neo4j trained_on, p99",
                "questions.trained_on.neo4j.p99_ms",
                "ms",
                "neo4j_trained_on_p99_ms",
            ),
            Figure(
                "Neo4j downstream, p99",
                "questions.downstream.neo4j.p99_ms",
                "ms",
                "neo4j_downstream_p99_ms",
            ),
            Figure(
                "Neo4j deployment upstream, p99",
                "questions.deployment_upstream.neo4j.p99_ms",
                "ms",
                "neo4j_deployment_upstream_p99_ms",
            ),
        ),
    ),
    Source(
        "bench-checkpoint-wait.json",
        "python -m tests.bench.checkpoint_wait",
        (
            Figure(
                "an append during a log's first checkpoint, worst round",
                "append_during_checkpoint_worst_s",
                "s",
            ),
            Figure("an append with no checkpoint running, median", "append_idle_median_s", "s"),
            Figure("the first checkpoint of the log, worst round", "checkpoint_worst_s", "s"),
        ),
    ),
    Source("bench-growth.json", "python -m tests.bench.growth"),
    Source(
        "bench-growth-pg.json",
        "python -m tests.bench.growth --store postgresql",
        store="postgresql",
    ),
)


# --- reading a result ------------------------------------------------------------------------


def lookup(result: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path`` of ``result``; ``None`` where any part is missing."""
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def show(value: Any, unit: str = "") -> str:
    """A value as the table prints it: thousands separated, three decimals at most."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit else text


def verdict(met: Any) -> str:
    """``met``, ``not met``, or ``not measured`` (a verdict the script left null)."""
    if met is None:
        return "not measured"
    return "met" if met else "not met"


def store_of(result: dict[str, Any], source: Source) -> str:
    """The store the figures came from: the first word of the result's own description,
    else the source's."""
    described = lookup(result, "machine.store") or result.get("store")
    return str(described).split()[0] if described else source.store


def load_of(result: dict[str, Any]) -> str:
    """The 1-minute load average the result recorded (before → after where both are)."""
    load = result.get("load_average")
    if load is None:
        load = lookup(result, "machine.loadavg")
    if isinstance(load, dict) and "before" in load:
        return f"{load['before'][0]:.2f} → {load['after'][0]:.2f}"
    if isinstance(load, list) and load:
        return f"{load[0]:.2f}"
    return NONE


def date_of(result: dict[str, Any], path: Path) -> str:
    """When the run finished: its ``finished_at``, else the file's modification time."""
    stamp = result.get("finished_at")
    when = (
        datetime.fromisoformat(stamp)
        if isinstance(stamp, str)
        else datetime.fromtimestamp(path.stat().st_mtime, UTC)
    )
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def target_key(verdicts: dict[str, Any], target: str) -> str | None:
    """The key of ``verdicts`` that ``target`` names: itself, or the one key whose name
    before the comparison is ``target``."""
    if target in verdicts:
        return target
    named = [key for key in verdicts if (m := TARGET_KEY.match(key)) and m["name"] == target]
    return named[0] if len(named) == 1 else None


def bound_of(key: str) -> str:
    """What a ``targets_met`` key asks: ``<= 5`` of ``scored_p99_ms<=5``; the key itself
    when it has no comparison (``burst_exactly_once``)."""
    match = TARGET_KEY.match(key)
    if not match:
        return key.replace("_", " ")
    bound = match["bound"]
    return f"{match['op']} {show(int(bound)) if bound.isdigit() else bound.replace('_', ' ')}"


def figure_row(result: dict[str, Any], figure: Figure, verdicts: dict[str, Any]) -> Row:
    """The row of ``figure``: its value, and its target and verdict where there is one."""
    value = lookup(result, figure.path)
    row = Row(figure.label, show(value, figure.unit))
    if figure.target is not None:
        key = target_key(verdicts, figure.target)
        if key is not None:
            return Row(row.figure, row.value, bound_of(key), verdict(verdicts[key]))
    if figure.stated is not None:
        comparison, where = figure.stated
        bound = lookup(result, where)
        if bound is not None:
            met = None if value is None else COMPARE[comparison](value, bound)
            return Row(row.figure, row.value, f"{comparison} {show(bound)}", verdict(met))
    return row


def growth_rows(result: dict[str, Any]) -> Iterator[Row]:
    """A row per size measured: ``scored`` p50 / p95 / p99, and the logging rate."""
    for point in result.get("points", []):
        size = show(point["predictions"])
        scored = point["scored"]
        figures = (scored["median_ms"], scored["p95_ms"], scored["p99_ms"])
        yield Row(
            f"scored p50 / p95 / p99 at {size} predictions",
            " / ".join(show(v) for v in figures) + " ms",
            load=load_of(point),
        )
        yield Row(
            f"log_predictions up to {size} predictions",
            show(point["logging"]["predictions_per_s"], "predictions/s"),
            load=load_of(point),
        )


def rows_of(path: Path, source: Source) -> list[Row]:
    """The rows of one result file (one ``not run`` row when it is missing)."""
    if not path.exists():
        return [Row(source.command, "not run", file=path.name)]
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return [Row(source.command, f"unreadable: {error}", file=path.name)]
    if not isinstance(result, dict):
        return [Row(source.command, "unreadable: not a JSON object", file=path.name)]
    try:
        return result_rows(result, path, source)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        # A result of another shape (an older script's, a hand-edited one) is reported,
        # not fatal: the other results still make their table.
        shape = f"{type(error).__name__}: {error}"
        return [Row(source.command, f"unreadable: unexpected shape ({shape})", file=path.name)]


def result_rows(result: dict[str, Any], path: Path, source: Source) -> list[Row]:
    """The rows of ``result``, read from ``path``."""
    verdicts = result.get("targets_met") or {}
    rows = [figure_row(result, figure, verdicts) for figure in source.figures]
    claimed = {target_key(verdicts, f.target) for f in source.figures if f.target}
    # A verdict no figure above describes still gets its row: none is left out.
    rows += [
        Row(key, NONE, bound_of(key), verdict(met))
        for key, met in verdicts.items()
        if key not in claimed
    ]
    if source.file.startswith("bench-growth"):
        rows += list(growth_rows(result))
    if not rows:
        rows = [Row(source.command, "no figures known to this summary")]
    common = (store_of(result, source), load_of(result), date_of(result, path), path.name)
    return [
        Row(r.figure, r.value, r.target, r.met, common[0], r.load or common[1], *common[2:])
        for r in rows
    ]


def summary_rows(directory: Path) -> list[Row]:
    """Every row: the known results in ``make bench`` order, then any other
    ``bench*.json`` in ``directory``."""
    known = {source.file for source in SOURCES}
    sources = list(SOURCES) + [
        Source(path.name, path.name)
        for path in sorted(directory.glob("bench*.json"))
        if path.name not in known
    ]
    return [row for source in sources for row in rows_of(directory / source.file, source)]


def markdown(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    header = ("Figure", "Value", "Target", "Met", "Store", "Load (1 min)", "Date", "File")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = (r.figure, r.value, r.target, r.met, r.store, r.load, r.date, r.file)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dir", default=".mlledger", help="where the bench*.json results are")
    parser.add_argument("--out", help="also write the table (Markdown) here")
    args = parser.parse_args(argv)
    table = markdown(summary_rows(Path(args.dir)))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
    print(table, end="")


if __name__ == "__main__":
    main()
