"""Several OS processes appending to one ledger at once, on both backends.

Eight writers append events (raw ``Ledger.append`` batches and SDK writes) while
three more append access-trail entries (``record_access``). Positions stay exactly
0..N-1 and trail numbers 0..M-1 (no gap, no duplicate, every entry once); both
Merkle trees verify (``audit verify`` over a fresh checkpoint of each) and their
stored roots equal the roots computed from the leaves; and a reader tailing the
log and the trail while the writers run never sees k+1 before k (modelled on
eventsourcing's non-interleaving notification test).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

import pytest

import registry
from audit import merkle
from audit.checkpoints import write_checkpoint
from audit.note import SigningKey
from audit.tree import EVENTS, TRAIL, StoredTree
from audit.verify import verify
from registry.assembly import open_ledger
from registry.auth import AccessEntry, read_trail, record_access
from registry.events import StoredEvent, make_event
from registry.ids import dataset_id
from registry.ledger import Ledger
from tests.support.checks import all_trail, check_projections

pytestmark = pytest.mark.slow

PROJECT = "test"
WORKERS = 8  # event writers: raw and SDK, alternately
TRAIL_WORKERS = 3  # access-trail writers, beside them
BATCHES = 30
BATCH_SIZE = 2  # events (trail entries) per append, for every kind of writer
START_TIMEOUT_S = 60.0  # spawning imports the whole package in each process
RUN_TIMEOUT_S = 120.0

LastEvent = Callable[[], StoredEvent]


@dataclass
class Report:
    """What one writer process did."""

    worker: int
    mode: str
    written: list[tuple[str, int]] = field(default_factory=list)  # raw: (event_id, position)
    datasets: list[str] = field(default_factory=list)  # sdk: dataset version ids
    trail: list[tuple[str, int]] = field(default_factory=list)  # trail: (resource, seq)
    error: str | None = None


def _names(worker: int, batch: int) -> list[str]:
    return [f"w{worker}-b{batch}-e{i}" for i in range(BATCH_SIZE)]


def _write(url: str, worker: int, mode: str, start: Any, results: Any) -> None:
    """Writer process: ``BATCHES`` appends, raw (``Ledger.append``), through the SDK, or
    of access-trail entries (``record_access``)."""
    report = Report(worker, mode)
    try:
        if mode == "trail":
            ledger = open_ledger(url)
            start.wait(START_TIMEOUT_S)
            try:
                for batch in range(BATCHES):
                    names = _names(worker, batch)
                    seqs = record_access(ledger.store, [_access(worker, name) for name in names])
                    report.trail += zip(names, seqs, strict=True)
            finally:
                ledger.close()
        elif mode == "raw":
            ledger = open_ledger(url)
            start.wait(START_TIMEOUT_S)
            try:
                for batch in range(BATCHES):
                    events = [
                        make_event(
                            "dataset-version-registered",
                            project=PROJECT,
                            entity=dataset_id(PROJECT, name, "1"),
                            actor=f"worker-{worker}",
                            body={
                                "name": name,
                                "version": "1",
                                "digest": f"sha256:{name}",
                                "uri": f"file:///data/{name}",
                            },
                        )
                        for name in _names(worker, batch)
                    ]
                    positions = ledger.append(events)
                    report.written += [
                        (e.event_id, p) for e, p in zip(events, positions, strict=True)
                    ]
            finally:
                ledger.close()
        else:
            reg = registry.connect(url, project=PROJECT, actor=f"worker-{worker}")
            start.wait(START_TIMEOUT_S)
            try:
                for batch in range(BATCHES):
                    # One dataset version with its records: two events in one append.
                    name = f"w{worker}-b{batch}"
                    version = reg.register_dataset(
                        name,
                        "1",
                        uri=f"file:///data/{name}",
                        digest=f"sha256:{name}",
                        records=[f"{name}-r0", f"{name}-r1"],
                        subjects=[f"{name}-s", None],
                    )
                    report.datasets.append(version.id)
            finally:
                reg.close()
    except BaseException as exc:  # reported to the test, which fails with it
        report.error = f"{type(exc).__name__}: {exc}"
    results.put(report)


def _access(worker: int, resource: str) -> AccessEntry:
    return AccessEntry(
        actor=f"worker-{worker}",
        project=PROJECT,
        action="concurrency.write",
        resource=resource,
        source="test",
        outcome="allow",
        status=200,
        reason="a concurrent trail writer",
    )


def _pseudonymize(url: str, projects: list[str], start: Any, results: Any) -> None:
    """Process: first use of each project's pseudonym secret, all processes at once."""
    out: list[tuple[str, str]] = []
    ledger = open_ledger(url)
    try:
        for project in projects:
            start.wait(START_TIMEOUT_S)
            try:
                out.append((project, ledger.pseudonymizer(project).record("key-1")))
            except Exception as exc:
                out.append((project, f"error: {type(exc).__name__}: {str(exc)[:200]}"))
    finally:
        ledger.close()
    results.put(out)


class Writers:
    """``WORKERS`` event writers and ``TRAIL_WORKERS`` trail writers, spawned processes
    released together."""

    def __init__(self, url: str):
        self.ctx: SpawnContext = multiprocessing.get_context("spawn")
        self.start_line = self.ctx.Barrier(WORKERS + TRAIL_WORKERS + 1)
        self.results = self.ctx.Queue()
        modes = ["raw", "sdk"] * (WORKERS // 2) + ["raw"] * (WORKERS % 2)
        modes += ["trail"] * TRAIL_WORKERS
        self.processes: list[SpawnProcess] = [
            self.ctx.Process(
                target=_write, args=(url, n, mode, self.start_line, self.results), daemon=True
            )
            for n, mode in enumerate(modes)
        ]

    def start(self) -> None:
        """Start every writer and release them at once (when all are ready)."""
        for process in self.processes:
            process.start()
        self.start_line.wait(START_TIMEOUT_S)

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.processes)

    def finish(self) -> list[Report]:
        """Collect every report, then reap the processes."""
        reports: list[Report] = []
        deadline = time.monotonic() + RUN_TIMEOUT_S
        try:
            while len(reports) < len(self.processes):
                reports.append(self.results.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            pytest.fail(
                f"writers did not finish in {RUN_TIMEOUT_S}s "
                f"({len(reports)} of {len(self.processes)} reported)"
            )
        finally:
            self.stop()
        errors = [f"worker {r.worker} ({r.mode}): {r.error}" for r in reports if r.error]
        assert not errors, errors
        return sorted(reports, key=lambda r: r.worker)

    def stop(self) -> None:
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)


def expected_total() -> int:
    return WORKERS * BATCHES * BATCH_SIZE


def expected_trail() -> int:
    return TRAIL_WORKERS * BATCHES * BATCH_SIZE


def check_log(ledger: Ledger, reports: list[Report]) -> list[StoredEvent]:
    """Positions 0..N-1, each event once, each writer's events where it was told."""
    events = ledger.read()
    total = expected_total()
    assert [e.position for e in events] == list(range(total))
    assert ledger.head() == total - 1
    ids = [e.event_id for e in events]
    assert len(set(ids)) == total, "an event id appears twice"
    position_of = {e.event_id: e.position for e in events}

    for report in reports:
        if report.mode == "trail":
            assert not report.written and not report.datasets
        elif report.mode == "raw":
            assert len(report.written) == BATCHES * BATCH_SIZE
            for event_id, position in report.written:
                assert position_of[event_id] == position
            mine = [p for _, p in report.written]
            assert mine == sorted(mine)  # one writer's appends keep their order
        else:
            assert len(report.datasets) == BATCHES
            mine_ids = set(report.datasets)
            kinds = {(e.entity, e.type): e.position for e in events if e.entity in mine_ids}
            for dataset in report.datasets:
                registered = kinds[(dataset, "dataset-version-registered")]
                added = kinds[(dataset, "dataset-records-added")]
                assert added == registered + 1  # one batch: adjacent positions
    per_entity = Counter((e.entity, e.type) for e in events)
    assert set(per_entity.values()) == {1}, "an entity was registered twice"
    actors = Counter(e.actor for e in events)
    assert actors == {f"worker-{n}": BATCHES * BATCH_SIZE for n in range(WORKERS)}
    return events


def check_trail(ledger: Ledger, reports: list[Report]) -> list[dict[str, Any]]:
    """Trail numbers 0..M-1, each entry once, each writer's entries where it was told."""
    rows = all_trail(ledger)
    total = expected_trail()
    assert [r["seq"] for r in rows] == list(range(total))
    resources = [r["resource"] for r in rows]
    assert len(set(resources)) == total, "a trail entry appears twice"
    for report in reports:
        if report.mode != "trail":
            assert not report.trail
            continue
        assert len(report.trail) == BATCHES * BATCH_SIZE
        for resource, seq in report.trail:
            assert rows[seq]["resource"] == resource
            assert rows[seq]["actor"] == f"worker-{report.worker}"
        mine = [seq for _, seq in report.trail]
        assert mine == sorted(mine)  # one writer's appends keep their order
        for batch in range(BATCHES):  # one batch: adjacent numbers
            first = mine[batch * BATCH_SIZE]
            assert mine[batch * BATCH_SIZE : (batch + 1) * BATCH_SIZE] == list(
                range(first, first + BATCH_SIZE)
            )
    return rows


def check_merkle(ledger: Ledger, events: list[StoredEvent], trail: list[dict[str, Any]]) -> None:
    """Both trees verify over a fresh checkpoint of each, and the stored trees' roots at
    the head are the roots of the leaves as read back."""
    key = SigningKey.generate("test.example/log")
    for tree, size in (("events", len(events)), ("access", len(trail))):
        checkpoint, written = write_checkpoint(ledger.store, key, tree)
        assert written and checkpoint.size == size
    report = verify(ledger.store, key.verifier())
    assert report.ok, report.summary()
    assert (report.events.size, report.events.checkpoints) == (len(events), 1)
    assert (report.access.size, report.access.checkpoints) == (len(trail), 1)
    with ledger.store.read() as conn:
        assert StoredTree(conn, EVENTS).root(len(events)) == merkle.root_hash(
            [e.leaf_hash for e in events]
        )
        assert StoredTree(conn, TRAIL).root(len(trail)) == merkle.root_hash(
            [bytes.fromhex(r["leaf_hash"]) for r in trail]
        )


def test_concurrent_appends_get_gap_free_unique_positions(
    ledger: Ledger, store_url: str, last_event: LastEvent
) -> None:
    ledger.pseudonymizer(PROJECT)  # the secret exists before the SDK writers need it
    writers = Writers(store_url)
    began = time.monotonic()
    writers.start()
    reports = writers.finish()
    elapsed = time.monotonic() - began

    events = check_log(ledger, reports)
    trail = check_trail(ledger, reports)
    check_merkle(ledger, events, trail)  # before check_projections rebuilds the tree
    check_projections(ledger)
    newest = last_event()
    assert newest == events[-1]
    assert newest.type in ("dataset-version-registered", "dataset-records-added")
    assert newest.entity.startswith(f"dataset:{PROJECT}/w")
    assert elapsed < RUN_TIMEOUT_S


def test_a_tailing_reader_never_sees_a_gap(
    ledger: Ledger, store_url: str, last_event: LastEvent
) -> None:
    ledger.pseudonymizer(PROJECT)
    reader = open_ledger(store_url)
    writers = Writers(store_url)
    seen: list[StoredEvent] = []
    seen_trail: list[dict[str, Any]] = []
    nonempty_reads = 0
    try:
        writers.start()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        next_position = next_seq = 0
        while True:
            assert time.monotonic() < deadline, f"reader stuck at {next_position}, {next_seq}"
            writers_done = not writers.alive()
            batch = reader.read(next_position, 100)
            if batch:
                positions = [e.position for e in batch]
                # Starts where asked and is contiguous: never k+1 before k.
                assert positions == list(range(next_position, next_position + len(batch))), (
                    f"asked for {next_position}, got {positions[:5]}..."
                )
                seen.extend(batch)
                next_position += len(batch)
                nonempty_reads += 1
            entries = read_trail(reader.store, since=next_seq, limit=100)
            if entries:
                seqs = [r["seq"] for r in entries]
                # The trail too: never entry k+1 before k.
                assert seqs == list(range(next_seq, next_seq + len(entries))), (
                    f"asked for trail entry {next_seq}, got {seqs[:5]}..."
                )
                seen_trail.extend(entries)
                next_seq += len(entries)
            if not batch and not entries:
                if writers_done:
                    break
                time.sleep(0.002)
        reports = writers.finish()
    finally:
        writers.stop()
        reader.close()

    events = check_log(ledger, reports)
    assert seen == events  # every event, once, in order, as finally stored
    assert seen_trail == check_trail(ledger, reports)
    check_merkle(ledger, events, seen_trail)
    assert nonempty_reads >= 2, "the reader only ever saw the finished log"
    newest = last_event()
    assert newest == seen[-1] and newest.position == expected_total() - 1
    assert newest.entity.startswith(f"dataset:{PROJECT}/w")


def test_first_use_of_a_project_secret_from_several_processes(
    ledger: Ledger, store_url: str
) -> None:
    """Processes that pseudonymise for a new project at the same time must all succeed
    and agree on one secret (no 'database is locked', no duplicate-key error)."""
    projects = [f"fresh-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_pseudonymize, args=(store_url, projects, start, results), daemon=True)
        for _ in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=RUN_TIMEOUT_S) for _ in processes]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    failures = [value for out in outcomes for _, value in out if value.startswith("error")]
    assert not failures, failures[:3]
    for project in projects:
        pseudonyms = {value for out in outcomes for name, value in out if name == project}
        assert pseudonyms == {ledger.pseudonymizer(project).record("key-1")}
