"""What the benchmark scripts share (``make bench``): a fresh SQLite ledger per figure,
stopwatches and latency summaries, the machine's description, the common command-line
arguments, writing the JSON result, and the run-event workload several scripts append.

Not a test: the scripts report numbers that depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from registry.events import NewEvent, make_event
from registry.ids import new_id

T = TypeVar("T")

#: How every script's embedded store is configured (the default of ``open_store``).
STORE = "sqlite (WAL, synchronous=FULL)"
#: How the PostgreSQL store of ``--store postgresql`` is configured.
POSTGRES_STORE = (
    "postgresql (a throwaway local server: fsync, synchronous_commit and full_page_writes on)"
)

#: The throwaway PostgreSQL server of ``--store postgresql``, once started.
_postgres: Any = None


# --- ledgers ---------------------------------------------------------------------------------


def use_postgres() -> None:
    """Make ``fresh`` create each ledger in a database of a throwaway PostgreSQL server,
    durable as in production (started here, stopped at exit)."""
    global _postgres
    from tests.support.pgserver import PostgresServer

    if _postgres is None:
        _postgres = PostgresServer(durable=True).start()


def store_option(parser: argparse.ArgumentParser) -> None:
    """``--store``: SQLite files (the default), or ``postgresql``: databases of a
    throwaway PostgreSQL server with durability on (call ``use_postgres``)."""
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store of every ledger: SQLite files, or databases of a throwaway "
        "PostgreSQL server with durability on",
    )


def fresh(work: Path, name: str) -> str:
    """An empty directory ``work/name`` with its own master key: the URL of a new ledger,
    a SQLite file in it or (after ``use_postgres``) a new PostgreSQL database
    (``MLLEDGER_KEY_FILE`` now points there)."""
    path = work / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["MLLEDGER_KEY_FILE"] = str(path / "master.key")
    if _postgres is not None:
        url: str = _postgres.create_database()
        (path / "url").write_text(url)
        return url
    return f"sqlite:///{path}/ledger.db"


def settle(url: str) -> None:
    """After a bulk load into a PostgreSQL ledger, what the server would do within
    minutes, done now so that it does not share the machine with the figures measured
    next: autovacuum's ``VACUUM (ANALYZE)``, and a ``CHECKPOINT`` (the flush of the
    load's pages, which otherwise competes with the commits measured for the disk).
    Nothing on SQLite. ``CHECKPOINT`` asks for a superuser (or the
    ``pg_checkpoint`` role): the throwaway server's own user is one."""
    if not url.startswith("postgresql"):
        return
    import psycopg

    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")


def db_bytes(directory: Path) -> int:
    """Bytes of the ledger made in ``directory``: the SQLite database, WAL and shared
    memory, or the size of its PostgreSQL database."""
    if _postgres is not None:
        import psycopg

        url = (directory / "url").read_text().replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0
    return sum(p.stat().st_size for p in directory.glob("ledger.db*"))


def run_events(project: str, n_runs: int) -> list[NewEvent]:
    """Four events per run: started, params, metrics, completed."""
    events = []
    for _ in range(n_runs):
        run = f"run:{new_id()}"
        events += [
            make_event(
                "run-started",
                project=project,
                entity=run,
                actor="bench",
                body={
                    "job": "train",
                    "params": {"lr": 0.01, "epochs": 10},
                    "code": {"git_commit": "0" * 40, "git_dirty": False},
                    "environment": {"python": "3.11"},
                },
            ),
            make_event(
                "run-params-logged",
                project=project,
                entity=run,
                actor="bench",
                body={"params": {"batch_size": 64, "optimizer": "adam"}},
            ),
            make_event(
                "run-metrics-logged",
                project=project,
                entity=run,
                actor="bench",
                body={
                    "metrics": [
                        {"key": "loss", "value": 0.25, "step": 10},
                        {"key": "auc", "value": 0.91, "step": 10},
                    ]
                },
            ),
            make_event("run-completed", project=project, entity=run, actor="bench", body={}),
        ]
    return events


def append_run_events(reg: Any, n_events: int, batch_events: int = 5000) -> dict[str, Any]:
    """Append ``n_events`` run events to ``reg``'s ledger in batches of ``batch_events``;
    only ``Ledger.append`` is timed."""
    ledger = reg.ledger
    clock = Stopwatch()
    done = 0
    while done < n_events:
        batch = run_events("bench", max(1, min(batch_events, n_events - done) // 4))
        with clock:
            ledger.append(batch)
        done += len(batch)
    return {
        "events": done,
        "batch_size": batch_events,
        "append_seconds": round(clock.seconds, 3),
        "events_per_s": round(done / clock.seconds),
    }


# --- timing ----------------------------------------------------------------------------------


class Stopwatch:
    """Wall-clock seconds spent inside ``with stopwatch:`` blocks, summed over every use."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0

    def __enter__(self) -> Stopwatch:
        self._began = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Add the block's time, whether it ended normally or raised."""
        self.seconds += time.perf_counter() - self._began


def time_each(call: Callable[[T], object], items: Iterable[T]) -> list[float]:
    """Seconds that ``call(item)`` took, for each item in turn."""
    samples = []
    for item in items:
        began = time.perf_counter()
        call(item)
        samples.append(time.perf_counter() - began)
    return samples


def latency(samples: list[float], digits: int = 4, *, worst: bool = False) -> dict[str, float]:
    """Median and 99th percentile (nearest rank) of ``samples`` seconds, in milliseconds
    rounded to ``digits``; with ``worst``, the maximum too. No samples: ``{"n": 0}``."""
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
    summary = {
        "median_ms": round(statistics.median(ordered) * 1e3, digits),
        "p99_ms": round(p99 * 1e3, digits),
    }
    if worst:
        summary["max_ms"] = round(ordered[-1] * 1e3, digits)
    return {**summary, "n": len(ordered)}


# --- the machine, the arguments, the result --------------------------------------------------


def machine(*, sqlite: bool = True) -> dict[str, Any]:
    """The machine the figures were taken on (with the SQLite library's version unless
    ``sqlite`` is false), and how the store was configured."""
    described: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if _postgres is not None:
        return {**described, "store": POSTGRES_STORE}
    if sqlite:
        described["sqlite"] = sqlite3.sqlite_version
    return {**described, "store": STORE}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: neighbours' work skews the figures."""
    return list(os.getloadavg())


def arguments(
    doc: str | None, out: str, work: str, *, scale: bool = True
) -> argparse.ArgumentParser:
    """A parser with ``--out`` (the JSON result), ``--work`` (scratch directory) and,
    unless ``scale`` is false, ``--scale`` (1.0: the sizes the targets name)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--out", default=out, help="where to write the JSON result")
    parser.add_argument("--work", default=work, help="scratch directory for the ledgers")
    if scale:
        parser.add_argument(
            "--scale", type=float, default=1.0, help="1.0: the sizes the targets name"
        )
    return parser


def measure(
    args: argparse.Namespace,
    *figures: Callable[[Path], dict[str, Any]],
    sqlite: bool = True,
    timed: bool = True,
) -> dict[str, Any]:
    """The machine, ``args.scale``, then what each of ``figures`` returns for the work
    directory ``args.work`` (created), in order; with ``timed``, the seconds it all took
    (``bench_seconds``)."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(sqlite=sqlite), "scale": args.scale}
    for figure in figures:
        results.update(figure(work))
    if timed:
        results["bench_seconds"] = round(time.perf_counter() - began, 1)
    return results


def write_result(out: str | Path, result: dict[str, Any]) -> None:
    """Write ``result`` as indented JSON to ``out`` (creating its directory) and print it,
    with the load average (unless ``result`` has its own) and the time it was written
    (``finished_at``, UTC), which ``tests/bench/summary.py`` reports beside each figure."""
    stamped = dict(result)
    stamped.setdefault("load_average", load_average())
    stamped.setdefault("finished_at", datetime.now(UTC).isoformat(timespec="seconds"))
    text = json.dumps(stamped, indent=2)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(text)
