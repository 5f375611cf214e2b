"""Benchmarks of the tamper-evident log (``make bench``): what the Merkle trees cost.

Writes one JSON document (``--out``) and prints it. Figures, on the embedded
SQLite default (WAL, synchronous=FULL):

- ``tree_overhead``: the same prepared workload appended on fresh databases by a
  ``Ledger`` keeping the events' tree up to date (its default projections) and by
  one whose runner leaves ``MerkleTree`` out: 100,000 run events in batches of
  1,000, then 2,000 appends of one event each (one commit, one fsync, each) on
  top of that log. After an untimed warm-up, rounds alternate the order; the
  best and median wall-clock rounds are reported, and the best CPU time;
- ``size``: database bytes (``ledger.db*``, WAL checkpointed) after the batched
  workload, with and without the tree, and the rows of ``merkle_nodes``;
- ``first_checkpoint``: ``write_checkpoint`` over a 1,000,000-event log with no
  checkpoint before (it recomputes every leaf), then one after 10,000 more;
- ``verify``: ``audit.verify.verify`` of that log (a few checkpoints of both
  trees, prediction payloads, an access trail of 1,000 entries) with ``--workers``
  processes (default: one per CPU), the load average around it, and the functions
  that take the time (``cProfile`` of one more run, in one process);
- ``proofs``: on the same log, inclusion proofs of random positions (one read
  transaction each, as a request has), whole proof bundles (``make_bundle``,
  also scoped to a project as the API asks for them) and consistency proofs
  between random sizes.

Not a test: numbers depend on the machine. Sizes can be scaled down with
``--scale`` for a quick look; ``--only verify`` builds the large log and verifies it,
nothing else; ``--store postgresql`` puts the ledgers in databases of a throwaway
PostgreSQL server with durability on.
"""

from __future__ import annotations

import cProfile
import gc
import os
import pstats
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audit.checkpoints import latest_checkpoint, write_checkpoint
from audit.merkle import verify_consistency, verify_inclusion
from audit.note import SigningKey
from audit.proofs import make_bundle, verify_bundle
from audit.tree import EVENTS, StoredTree
from audit.verify import verify
from registry import auth
from registry.assembly import PROJECTIONS, open_ledger
from registry.events import make_event
from registry.ids import new_id
from registry.ledger import Ledger
from registry.projection import ProjectionRunner
from registry.sdk import connect
from tests.bench import harness
from tests.bench.harness import (
    Stopwatch,
    append_run_events,
    arguments,
    db_bytes,
    fresh,
    latency,
    load_average,
    measure,
    run_events,
    time_each,
    write_result,
)

KEY_NAME = "bench.mlledger.local/audit"


# --- helpers -----------------------------------------------------------------------------------


def _open(url: str, tree: bool) -> Ledger:
    """A ledger over ``url``; without ``tree`` its runner leaves the events' tree out."""
    ledger = open_ledger(url)
    if not tree:
        ledger.runner = ProjectionRunner([p for p in PROJECTIONS if p.name != "merkle"])
    ledger.head()  # open the connection before anything is timed
    return ledger


def _settle(directory: Path) -> None:
    """Fold the WAL into the database file, so its size is the data's."""
    with sqlite3.connect(directory / "ledger.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _rows(directory: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{directory / 'ledger.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def _table_bytes(directory: Path) -> dict[str, int] | None:
    """Bytes per table and index (the ``dbstat`` table, where SQLite has it)."""
    conn = sqlite3.connect(f"file:{directory / 'ledger.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 8"
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return {name: int(size) for name, size in rows}


def _rate(events: int, seconds: list[float]) -> dict[str, Any]:
    best, median = min(seconds), statistics.median(seconds)
    return {
        "best_events_per_s": round(events / best),
        "median_events_per_s": round(events / median),
        "rounds_seconds": [round(s, 3) for s in seconds],
    }


class Timings:
    """Wall-clock and CPU seconds of each round."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @contextmanager
    def round(self) -> Iterator[None]:
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)


def _overhead(events: int, with_tree: Timings, without: Timings) -> dict[str, Any]:
    """Throughput lost to the tree, in percent of the throughput without it: from the
    best and the median wall-clock round, and from the best CPU time of the process
    (steadier where the disk and neighbours make wall clock noisy)."""

    def lost(with_: float, without_: float) -> float:
        return round((1 - without_ / with_) * 100, 1)

    return {
        "events": events,
        "with_tree": _rate(events, with_tree.wall),
        "without_tree": _rate(events, without.wall),
        "throughput_ratio_with_to_without": round(min(without.wall) / min(with_tree.wall), 3),
        "overhead_percent": lost(min(with_tree.wall), min(without.wall)),
        "overhead_percent_median": lost(
            statistics.median(with_tree.wall), statistics.median(without.wall)
        ),
        "cpu_seconds_with_tree": [round(s, 3) for s in with_tree.cpu],
        "cpu_seconds_without_tree": [round(s, 3) for s in without.cpu],
        "cpu_overhead_percent": lost(min(with_tree.cpu), min(without.cpu)),
    }


def _where(code: tuple[str, int, str]) -> str:
    path, line, name = code
    if path == "~":
        return name  # a built-in
    for prefix in sorted(sys.path, key=len, reverse=True):
        if prefix and path.startswith(prefix + os.sep):
            path = path[len(prefix) + 1 :]
            break
    return f"{path}:{line}({name})"


def _top(stats: pstats.Stats, key: str, n: int = 10) -> list[dict[str, Any]]:
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    index = {"cumulative": 3, "tottime": 2}[key]
    ranked = sorted(table.items(), key=lambda item: item[1][index], reverse=True)[:n]
    return [
        {
            "function": _where(code),
            "calls": calls,
            "tottime_s": round(tottime, 3),
            "cumtime_s": round(cumtime, 3),
        }
        for code, (_, calls, tottime, cumtime, _) in ranked
    ]


# --- 1 and 5: appending with and without the tree ---------------------------------------------


def bench_tree_overhead(work: Path, scale: float, rounds: int) -> dict[str, Any]:
    batches = [run_events("bench", 250) for _ in range(max(1, int(100 * scale)))]
    batched_events = sum(len(b) for b in batches)
    singles = [
        make_event(
            "run-started",
            project="bench",
            entity=f"run:{new_id()}",
            actor="bench",
            body={"job": "train", "params": {"lr": 0.01}},
        )
        for _ in range(max(20, int(2000 * scale)))
    ]
    timed = {(kind, tree): Timings() for kind in ("batched", "small") for tree in (True, False)}
    sizes: dict[bool, dict[str, Any]] = {}
    for tree in (True, False):  # warm-up, not timed: code paths, caches, the disk
        ledger = _open(fresh(work, "append-warm-up"), tree)
        for batch in batches[:10]:
            ledger.append(batch)
        for event in singles[:50]:
            ledger.append([event])
        ledger.close()
    for r in range(rounds):
        for tree in (True, False) if r % 2 == 0 else (False, True):
            name = "append-tree" if tree else "append-no-tree"
            url = fresh(work, name)
            directory = work / name
            ledger = _open(url, tree)
            with timed["batched", tree].round():
                for batch in batches:
                    ledger.append(batch)
            ledger.close()
            if tree not in sizes:
                _settle(directory)
                sizes[tree] = {
                    "database_bytes": db_bytes(directory),
                    "merkle_nodes_rows": _rows(directory, "merkle_nodes"),
                    "largest_tables_bytes": _table_bytes(directory),
                }
            ledger = _open(url, tree)
            with timed["small", tree].round():
                for event in singles:
                    ledger.append([event])
            assert ledger.head() == batched_events + len(singles) - 1
            ledger.close()
    with_tree, without = sizes[True], sizes[False]
    return {
        "tree_overhead": {
            "rounds": rounds,
            "batched": {
                "batch_size": len(batches[0]),
                **_overhead(batched_events, timed["batched", True], timed["batched", False]),
            },
            "small_appends": {
                "events_per_append": 1,
                "log_events_before": batched_events,
                **_overhead(len(singles), timed["small", True], timed["small", False]),
            },
        },
        "size": {
            "events": batched_events,
            "with_tree_bytes": with_tree["database_bytes"],
            "without_tree_bytes": without["database_bytes"],
            "tree_bytes": with_tree["database_bytes"] - without["database_bytes"],
            "tree_percent": round(
                100 * (with_tree["database_bytes"] / without["database_bytes"] - 1), 1
            ),
            "merkle_nodes_rows": with_tree["merkle_nodes_rows"],
            "merkle_nodes_rows_without_tree": without["merkle_nodes_rows"],
            "largest_tables_bytes_with_tree": with_tree["largest_tables_bytes"],
        },
    }


# --- 2, 3 and 4: a log of 1,000,000 events ----------------------------------------------------


#: The outcome, status and reason of an allowed read, and of a refused one.
_ALLOWED = ("allow", 200, "role viewer allows read")
_DENIED = ("deny", 403, "no role on project")


def _read_entry(i: int) -> auth.AccessEntry:
    """Read ``i`` of the bench trail, by one of seven keys; one read in ten refused."""
    path = f"/api/v1/projects/bench/events?start={i}"
    verdict = _ALLOWED if i % 10 else _DENIED
    return auth.AccessEntry(f"key-{i % 7}", "bench", "events.read", path, "127.0.0.1", *verdict)


def _trail(store: Any, n: int) -> None:
    for start in range(0, n, 100):
        auth.record_access(
            store,
            [_read_entry(i) for i in range(start, min(n, start + 100))],
        )


def _predictions(reg: Any, calls: int, per_call: int) -> int:
    with reg.run("train") as run:
        model = run.register_model(
            "scorer", artifact_digest="sha256:" + "ab" * 32, artifact_uri="file:///models/scorer"
        )
    deployment = reg.deploy("scoring", endpoint="http://127.0.0.1/score", served={model: 100})
    rng = random.Random(5)
    for call in range(calls):
        reg.log_predictions(
            deployment,
            model=model,
            records=[f"customer-{rng.randrange(10**7):07d}" for _ in range(per_call)],
            outputs=[round(rng.random(), 4) for _ in range(per_call)],
            trace_ids=[f"{call:08x}{i:024x}" for i in range(per_call)],
        )
    reg.flush()
    return calls * per_call


def _checkpoints(reg: Any, key: SigningKey, n_events: int, scale: float) -> dict[str, Any]:
    """The first checkpoint recomputes every leaf; the next only those since."""
    store = reg.ledger.store
    with Stopwatch() as first_clock:
        first, written = write_checkpoint(store, key)
    assert written and first.size == n_events
    more = max(1000, int(10_000 * scale)) // 4 * 4
    append_run_events(reg, more)
    with Stopwatch() as second_clock:
        second, written = write_checkpoint(store, key)
    assert written and second.size == n_events + more
    return {
        "events": first.size,
        "seconds": round(first_clock.seconds, 3),
        "events_per_s": round(first.size / first_clock.seconds),
        "next_checkpoint": {
            "new_events": more,
            "events": second.size,
            "seconds": round(second_clock.seconds, 4),
        },
    }


def _evidence(reg: Any, key: SigningKey) -> dict[str, Any]:
    """Payloads to check and an access trail, each under a checkpoint of its own; what
    the log then holds."""
    store = reg.ledger.store
    predictions = _predictions(reg, calls=5, per_call=10_000)
    trail_entries = 1000
    _trail(store, trail_entries)
    write_checkpoint(store, key)
    write_checkpoint(store, key, "access")
    _trail(store, 100)  # and a second access checkpoint: a consistency proof to check
    trail_entries += 100
    write_checkpoint(store, key, "access")
    with store.read() as conn:
        n_payloads = int(conn.exec_driver_sql("SELECT COUNT(*) FROM event_payloads").scalar_one())
        checkpoints: dict[str, int] = dict(
            conn.exec_driver_sql("SELECT tree, COUNT(*) FROM checkpoints GROUP BY tree").all()
        )
    return {
        "events": reg.ledger.head() + 1,
        "trail_entries": trail_entries,
        "prediction_events": n_payloads,
        "predictions": predictions,
        "checkpoints": checkpoints,
    }


def _verify(store: Any, key: SigningKey, log: dict[str, Any], workers: int) -> dict[str, Any]:
    """Verification of everything (both trees, signatures, payloads, consistency) with
    ``workers`` processes: the best of two runs, then one more in one process under
    ``cProfile`` (which sees only its own process)."""
    verifier = key.verifier()
    runs = []
    load_before = load_average()
    for _ in range(2):
        gc.collect()
        with Stopwatch() as clock:
            report = verify(store, verifier, workers=workers)
        runs.append(clock.seconds)
        assert report.ok, report.summary()
        assert report.events.size == log["events"]
        assert report.access.size == log["trail_entries"]
    load_after = load_average()
    profile = cProfile.Profile()
    gc.collect()
    with Stopwatch() as profiled:
        profile.enable()
        profiled_report = verify(store, verifier, workers=1)
        profile.disable()
    assert profiled_report.ok, profiled_report.summary()
    stats = pstats.Stats(profile)
    return {
        **log,
        "workers": report.workers,
        "seconds": round(min(runs), 3),
        "runs_seconds": [round(s, 3) for s in runs],
        "leaves_per_s": round((log["events"] + log["trail_entries"]) / min(runs)),
        "load_average": {"before": load_before, "after": load_after},
        "profiled_seconds": round(profiled.seconds, 3),
        "profile_top_cumulative": _top(stats, "cumulative"),
        "profile_top_tottime": _top(stats, "tottime"),
    }


def _inclusion(store: Any, positions: list[int], size: int, root: bytes) -> list[float]:
    """Inclusion proofs of ``positions``, one read transaction each; the first 50 checked."""
    proofs = []

    def prove(index: int) -> None:
        with store.read() as conn:
            proofs.append(StoredTree(conn, EVENTS).inclusion_proof(index, size))

    samples = time_each(prove, positions)
    with store.read() as conn:
        copies = {i: StoredTree(conn, EVENTS).leaf_copies(i, i + 1)[i] for i in positions[:50]}
    for index, proof in zip(positions[:50], proofs, strict=False):
        assert verify_inclusion(index, size, copies[index], proof, root)
    return samples


def _bundles(store: Any, positions: list[int], verifier: Any) -> list[float]:
    """Whole proof bundles of ``positions``; the first 50 verified."""
    sample: list[dict[str, Any]] = []

    def bundle(index: int) -> None:
        made = make_bundle(store, index)
        if len(sample) < 50:
            sample.append(made)

    samples = time_each(bundle, positions)
    for made in sample:
        verify_bundle(made, verifier)
    return samples


def _consistency(store: Any, pairs: list[list[int]]) -> list[float]:
    """Consistency proofs between the sizes of ``pairs``; the first 20 checked."""
    with store.read() as conn:
        roots = {s: StoredTree(conn, EVENTS).root(s) for pair in pairs[:20] for s in pair}
    samples = []
    for number, (size1, size2) in enumerate(pairs):
        t0 = time.perf_counter()
        with store.read() as conn:
            proof = StoredTree(conn, EVENTS).consistency_proof(size1, size2)
        samples.append(time.perf_counter() - t0)
        if number < 20:
            assert verify_consistency(size1, size2, roots[size1], roots[size2], proof)
    return samples


def _proofs(store: Any, verifier: Any, scale: float) -> dict[str, Any]:
    """Proofs against the latest checkpoint of the events' tree, at random positions."""
    with store.read() as conn:
        latest = latest_checkpoint(conn, "events")
    assert latest is not None
    size = latest.size
    rng = random.Random(7)
    n = max(100, int(2000 * scale))
    positions = [rng.randrange(size) for _ in range(n)]
    inclusion = _inclusion(store, positions, size, latest.root)
    bundles = _bundles(store, positions, verifier)
    # As the API asks: only a leaf of the caller's project is found.
    scoped = time_each(lambda index: make_bundle(store, index, project="bench"), positions)
    pairs = [sorted(rng.sample(range(1, size + 1), 2)) for _ in range(max(100, n // 2))]
    return {
        "tree_size": size,
        "inclusion_proof": latency(inclusion),
        "bundle": latency(bundles),
        "bundle_for_project": latency(scoped),
        "consistency_proof": latency(_consistency(store, pairs)),
    }


def bench_large_log(work: Path, scale: float, workers: int, proofs: bool = True) -> dict[str, Any]:
    reg = connect(fresh(work, "large"), project="bench", actor="bench")
    store = reg.ledger.store
    key = SigningKey.generate(KEY_NAME)
    n_events = max(4000, int(1_000_000 * scale)) // 4 * 4
    out: dict[str, Any] = {"build": append_run_events(reg, n_events)}
    out["first_checkpoint"] = _checkpoints(reg, key, n_events, scale)
    out["verify"] = _verify(store, key, _evidence(reg, key), workers)
    if proofs:
        out["proofs"] = _proofs(store, key.verifier(), scale)
    out["large_database_bytes"] = db_bytes(work / "large")
    reg.close()
    return out


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-audit.json", ".mlledger/bench-audit")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the append comparison")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes of `audit verify` (default: one per CPU; 1: one process)",
    )
    parser.add_argument(
        "--only",
        choices=("all", "verify"),
        default="all",
        help="verify: build the large log and verify it, nothing else",
    )
    harness.store_option(parser)
    args = parser.parse_args()
    if args.store == "postgresql":
        harness.use_postgres()
    figures = [lambda work: bench_large_log(work, args.scale, args.workers, args.only == "all")]
    if args.only == "all":
        figures.insert(0, lambda work: bench_tree_overhead(work, args.scale, args.rounds))
    results = measure(args, *figures, sqlite=args.store == "sqlite")
    targets = {"verify_leaves_per_s>=200000": results["verify"]["leaves_per_s"] >= 200_000}
    if args.only == "all":
        overhead = results["tree_overhead"]
        targets = {
            "batched_append_tree_overhead_percent<=20": overhead["batched"]["overhead_percent"]
            <= 20,
            "small_append_tree_overhead_percent<=20": overhead["small_appends"]["overhead_percent"]
            <= 20,
            **targets,
            "inclusion_proof_p99_ms<=5": results["proofs"]["inclusion_proof"]["p99_ms"] <= 5,
            "bundle_p99_ms<=5": results["proofs"]["bundle"]["p99_ms"] <= 5,
        }
    results["targets_met"] = targets
    write_result(args.out, results)


if __name__ == "__main__":
    main()
