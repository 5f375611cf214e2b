"""Writers killed with SIGKILL at random moments, on both backends.

Eight writer processes (``tests/support/crashwriter.py``) append without pause: raw
``Ledger.append`` batches, SDK writes that put events and vault entries in one
transaction, access-trail entries, and signed checkpoints of both trees. The test
kills a random writer with SIGKILL every 0.05 to 0.8 s and starts another in its
place, ``--crash-kills`` times (default 24; CI's long run 200), then stops the rest
and checks what a crash may not break:

- every write a writer acknowledged (after the call returned) is there, where it
  was acknowledged: events at their positions, trail entries at their sequence
  numbers, checkpoints with their size and root;
- no batch is partly there: the events of a batch are all present or none, at
  adjacent positions; an SDK write has its events and its vault entry, or neither;
- positions run 0..N-1 and trail numbers 0..M-1, with no gap;
- the projections are at the head and equal a replay of the whole log;
- ``audit verify`` passes (both trees, every checkpoint, the chain between them),
  and new checkpoints of both trees can be signed afterwards.

The run is seeded: set ``CRASH_TEST_SEED`` to replay a failing run's choices (the
seed is printed; the timing of the kills cannot be replayed exactly).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest

from audit import merkle
from audit.checkpoints import stored_checkpoints, write_checkpoint
from audit.note import SigningKey
from audit.tree import EVENTS, TRAIL, StoredTree
from audit.verify import verify
from registry.auth import record_access
from registry.events import StoredEvent, make_event
from registry.ids import NodeId, dataset_id
from registry.ledger import Ledger
from registry.store.raw import Raw
from tests.support import crashwriter
from tests.support.checks import all_trail, check_projections
from tests.support.crashwriter import DATASET_BATCH_SIZE, PROJECT, SUBJECT_BATCH_SIZE

pytestmark = pytest.mark.slow

#: Imported once by the fork server the writers are forked from.
PRELOAD = ["tests.support.crashwriter", "lineage.graph", "lineage.projections", "registry.sdk"]
#: One mode per writer slot; a killed writer is replaced by one of the same mode.
SLOT_MODES = ("raw", "raw", "sdk", "sdk", "trail", "mixed", "mixed", "checkpoint")
KILL_DELAY_S = (0.05, 0.8)
#: Share of kills aimed at any live writer, even one still starting up.
ANY_WRITER_SHARE = 0.1
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
SEED_ENV = "CRASH_TEST_SEED"
KEY_NAME = "crash.test.example/log"


# --- the writers ------------------------------------------------------------------------------


@dataclass
class Child:
    """One writer process and its files."""

    number: int
    slot: int
    mode: str
    ack: Path
    log: Path
    process: BaseProcess
    killed: bool = False

    def ready(self) -> bool:
        """Whether it has opened the ledger and begun writing."""
        try:
            return self.ack.stat().st_size > 0
        except FileNotFoundError:
            return False

    def acknowledged(self) -> int:
        """Writes it has acknowledged so far."""
        try:
            lines = self.ack.read_text().splitlines()
        except FileNotFoundError:
            return 0
        return sum(1 for line in lines if '"kind":"begin"' not in line) - 1

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL the writer's process group (or the writer alone, if it has not yet
        made one) and reap it."""
        pid = self.process.pid
        assert pid is not None
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            os.kill(pid, signal.SIGKILL)
        self.process.join(30)


class Crowd:
    """``len(SLOT_MODES)`` writer processes kept running, each killable on its own.

    Writers are forked from a fork server that has imported the package already, so
    a new writer begins writing within milliseconds instead of after a second of
    imports, and kills land while writes are under way.
    """

    def __init__(self, url: str, workdir: Path, key_file: Path, master_key: Path, seed: int):
        self.url = url
        self.workdir = workdir
        self.key_file = key_file
        self.master_key = master_key
        self.stop_file = workdir / "stop"
        self.rng = random.Random(seed)
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.children: list[Child] = []
        self.slots: dict[int, Child] = {}
        self.kills = 0
        self.kills_after_writes = 0

    def spawn(self, slot: int) -> Child:
        number = len(self.children)
        mode = SLOT_MODES[slot]
        ack = self.workdir / f"w{number:04d}.ack"
        log = self.workdir / f"w{number:04d}.log"
        argv = [
            self.url,
            str(ack),
            str(self.rng.randrange(2**32)),
            mode,
            str(self.stop_file),
            str(self.key_file),
        ]
        process = self.ctx.Process(
            target=crashwriter.child, args=(argv, str(self.master_key), str(log)), daemon=True
        )
        process.start()
        child = Child(number, slot, mode, ack, log, process)
        self.children.append(child)
        self.slots[slot] = child
        return child

    def start(self) -> None:
        for slot in range(len(SLOT_MODES)):
            self.spawn(slot)

    def live(self) -> list[Child]:
        return [c for c in self.slots.values() if c.process.is_alive()]

    def check(self) -> None:
        """Fail if a writer ended without being killed or stopped."""
        for child in self.slots.values():
            if not child.process.is_alive():
                pytest.fail(
                    f"writer {child.number} ({child.mode}) exited by itself with "
                    f"{child.process.exitcode}:\n{child.log_tail()}"
                )

    def victim(self) -> Child:
        """A random live writer: one that is writing (mostly) or any (sometimes)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self.check()
            live = self.live()
            ready = [c for c in live if c.ready()]
            if self.rng.random() < ANY_WRITER_SHARE and live:
                return self.rng.choice(live)
            if ready:
                return self.rng.choice(ready)
            if time.monotonic() > deadline:
                pytest.fail(f"no writer began writing within {READY_TIMEOUT_S}s")
            time.sleep(0.02)

    def kill_one(self) -> None:
        """SIGKILL a random writer and start a replacement in its slot."""
        child = self.victim()
        wrote = child.acknowledged() > 0
        child.kill()
        code = child.process.exitcode
        if code != -signal.SIGKILL:
            pytest.fail(
                f"writer {child.number} ({child.mode}) had exited by itself with {code}:\n"
                f"{child.log_tail()}"
            )
        child.killed = True
        self.kills += 1
        self.kills_after_writes += wrote
        self.spawn(child.slot)

    def stop(self) -> None:
        """Ask every live writer to stop after its current write, and reap it."""
        self.stop_file.touch()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self.slots.values():
            child.process.join(max(0.1, deadline - time.monotonic()))
            if child.process.is_alive():
                pytest.fail(f"writer {child.number} ({child.mode}) did not stop")
            if child.process.exitcode != 0:
                pytest.fail(
                    f"writer {child.number} ({child.mode}) ended with "
                    f"{child.process.exitcode}:\n{child.log_tail()}"
                )

    def cleanup(self) -> None:
        """Kill whatever is still running (after a failure)."""
        for child in self.children:
            if child.process.is_alive():
                child.kill()


# --- the acknowledgements ---------------------------------------------------------------------


@dataclass
class Acks:
    """Every acknowledgement line of every writer, by kind."""

    raw: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    subjects: list[dict[str, Any]] = field(default_factory=list)
    run_ends: list[dict[str, Any]] = field(default_factory=list)
    trail: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    begun: set[str] = field(default_factory=set)  # batch ids a writer began
    done: set[str] = field(default_factory=set)  # batch ids a writer acknowledged
    checkpoints_begun: int = 0
    torn: int = 0

    @property
    def writes(self) -> int:
        return len(self.raw) + len(self.datasets) + len(self.subjects) + len(self.trail)

    @property
    def events(self) -> int:
        return (
            sum(len(a["events"]) for a in self.raw)
            + DATASET_BATCH_SIZE * len(self.datasets)
            + SUBJECT_BATCH_SIZE * len(self.subjects)
            + len(self.run_ends)
        )


def read_acks(children: list[Child]) -> Acks:
    acks = Acks()
    kinds = {
        "raw": acks.raw,
        "dataset": acks.datasets,
        "subject": acks.subjects,
        "run-end": acks.run_ends,
        "trail": acks.trail,
        "checkpoint": acks.checkpoints,
    }
    for child in children:
        if not child.ack.exists():
            continue  # killed before it opened its file
        lines = child.ack.read_bytes().split(b"\n")
        assert lines[-1] == b"" or child.killed, f"{child.ack}: a stopped writer left a torn line"
        for number, line in enumerate(lines):
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                # Only a killed writer's last line may be torn.
                assert number == len(lines) - 1 and child.killed, f"{child.ack}: {line!r}"
                acks.torn += 1
                continue
            kind = record["kind"]
            if kind == "begin":
                if "batch" in record:
                    acks.begun.add(record["batch"])
                else:
                    acks.checkpoints_begun += 1
            elif kind != "ready":
                kinds[kind].append(record)
                if kind != "run-end" and "batch" in record:
                    acks.done.add(record["batch"])
    return acks


# --- the checks -------------------------------------------------------------------------------


def subject_batch(ledger: Ledger, event: StoredEvent) -> dict[str, Any]:
    """The attributes of a ``subject-data-stored`` event's vault entry (decrypted)."""
    pseudonym = NodeId.parse(event.entity).name
    with ledger.store.read() as conn:
        entries = ledger.vault.get(conn, PROJECT, pseudonym)
    found = [e for e in entries if e["entry"] == event.body["entry"]]
    assert len(found) == 1, (
        f"position {event.position}: subject-data-stored without its vault entry {event.body}"
    )
    return found[0]["attributes"]


def check_log(ledger: Ledger) -> tuple[list[StoredEvent], set[str]]:
    """Positions 0..N-1; every batch whole and contiguous. Returns the events and the
    batch ids present."""
    events = ledger.read()
    assert [e.position for e in events] == list(range(len(events))), "positions have a gap"
    assert len({e.event_id for e in events}) == len(events), "an event id appears twice"
    members: dict[str, list[StoredEvent]] = defaultdict(list)
    declared: dict[str, int] = {}
    dataset_batch: dict[str, str] = {}
    started: dict[str, int] = {}
    for e in events:
        batch: str | None = None
        size = 0
        if e.type == "dataset-version-registered":
            batch, size = e.body["tags"]["batch"], int(e.body["tags"]["size"])
            dataset_batch[e.entity] = batch
        elif e.type == "dataset-records-added":
            batch = dataset_batch.get(e.entity)
            assert batch is not None, f"position {e.position}: records of an unknown dataset"
            size = declared[batch]
        elif e.type in ("run-started", "run-params-logged"):
            batch, size = e.body["params"]["batch"], int(e.body["params"]["size"])
            if e.type == "run-started":
                started[e.entity] = e.position
        elif e.type == "subject-data-stored":
            attributes = subject_batch(ledger, e)
            batch, size = attributes["batch"], int(attributes["size"])
        else:
            # The end of an SDK run: a batch of its own, after the run's first batch.
            assert e.type == "run-completed", f"position {e.position}: unexpected {e.type}"
            assert started.get(e.entity, e.position) < e.position, f"position {e.position}"
            continue
        assert declared.setdefault(batch, size) == size, f"batch {batch}: sizes disagree"
        members[batch].append(e)
    for batch, found in members.items():
        positions = [e.position for e in found]
        assert len(found) == declared[batch], (
            f"partial batch {batch}: {len(found)} of {declared[batch]} events, at {positions}"
        )
        first = positions[0]
        assert positions == list(range(first, first + len(found))), (
            f"batch {batch} is not contiguous: {positions}"
        )
        types = [e.type for e in found]
        if "subject-data-stored" in types:
            assert types == ["run-started", "run-params-logged", "subject-data-stored"], types
        if "dataset-records-added" in types:
            assert types == ["dataset-version-registered", "dataset-records-added"], types
    # No vault entry without its event (nor the other way round, checked above).
    with ledger.store.read() as conn:
        stored = {row[0] for row in Raw(conn).all("SELECT entry FROM vault_entries")}
    entries = {e.body["entry"] for e in events if e.type == "subject-data-stored"}
    assert stored == entries, f"vault entries without an event: {sorted(stored - entries)[:5]}"
    return events, set(members)


def check_trail(ledger: Ledger) -> tuple[list[dict[str, Any]], set[str]]:
    """Sequence numbers 0..M-1; every trail batch whole and contiguous."""
    rows = all_trail(ledger)
    assert [r["seq"] for r in rows] == list(range(len(rows))), "trail seqs have a gap"
    members: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for row in rows:
        _, batch, index, size = row["resource"].split(":")
        members[batch].append((row["seq"], int(index), int(size)))
    for batch, found in members.items():
        size = found[0][2]
        seqs = [seq for seq, _, _ in found]
        assert [i for _, i, _ in found] == list(range(size)), f"partial trail batch {batch}"
        assert seqs == list(range(seqs[0], seqs[0] + size)), f"trail batch {batch}: {seqs}"
    return rows, set(members)


def check_acknowledged(
    ledger: Ledger, acks: Acks, events: list[StoredEvent], trail: list[dict[str, Any]]
) -> None:
    """Every acknowledged write is there, where it was acknowledged."""
    by_id = {e.event_id: e for e in events}
    for ack in acks.raw:
        for event_id, position in ack["events"]:
            assert event_id in by_id, f"acknowledged event {event_id} ({ack['batch']}) is lost"
            assert by_id[event_id].position == position, f"event {event_id} moved"
    kinds = Counter((e.entity, e.type) for e in events)
    with ledger.store.read() as conn:
        raw = Raw(conn)
        for ack in acks.datasets:
            node = ack["dataset"]
            assert node == dataset_id(PROJECT, ack["batch"], "1")
            assert kinds[(node, "dataset-version-registered")] == 1, f"{node} is lost"
            assert kinds[(node, "dataset-records-added")] == 1, f"{node}'s records are lost"
            count = raw.scalar(
                "SELECT records FROM dataset_record_counts WHERE dataset = ?", [node]
            )
            assert count == ack["records"], f"{node}: {count} records, {ack['records']} written"
        for ack in acks.subjects:
            assert ack["entry"] in by_id, f"acknowledged subject data {ack['entry']} is lost"
            assert kinds[(ack["run"], "run-started")] == 1, f"run {ack['run']} is lost"
            stored = raw.scalar("SELECT 1 FROM vault_entries WHERE entry = ?", [ack["entry"]])
            assert stored == 1, f"vault entry {ack['entry']} is lost"
        for ack in acks.run_ends:
            assert kinds[(ack["run"], "run-completed")] == 1, f"end of {ack['run']} is lost"
        for tree in ("events", "access"):
            stored_by_seq = {c.seq: c for c in stored_checkpoints(conn, tree)}
            for ack in (a for a in acks.checkpoints if a["tree"] == tree):
                checkpoint = stored_by_seq.get(ack["seq"])
                assert checkpoint is not None, f"{tree} checkpoint #{ack['seq']} is lost"
                assert (checkpoint.size, checkpoint.root.hex()) == (ack["size"], ack["root"])
    for ack in acks.trail:
        for index, seq in enumerate(ack["seqs"]):
            assert seq < len(trail), f"acknowledged trail entry {seq} is lost"
            assert trail[seq]["resource"].startswith(f"batch:{ack['batch']}:{index}:")


def check_merkle(ledger: Ledger, key: SigningKey, events: list[StoredEvent]) -> None:
    """``audit verify`` passes, and the stored trees' roots are the roots of the leaves."""
    report = verify(ledger.store, key.verifier())
    assert report.ok, report.summary()
    assert report.events.size == len(events)
    with ledger.store.read() as conn:
        assert StoredTree(conn, EVENTS).root(len(events)) == merkle.root_hash(
            [e.leaf_hash for e in events]
        )
        trail = [bytes.fromhex(r["leaf_hash"]) for r in all_trail(ledger)]
        assert report.access.size == len(trail)
        if trail:
            assert StoredTree(conn, TRAIL).root(len(trail)) == merkle.root_hash(trail)


def write_one_of_each(ledger: Ledger, batch: str) -> None:
    """One event and one trail entry, each a batch of its own called ``batch``."""
    body = {
        "name": batch,
        "version": "1",
        "digest": f"sha256:{batch}",
        "uri": f"file:///data/{batch}",
        "tags": {"batch": batch, "size": "1"},
    }
    ledger.append(
        [
            make_event(
                "dataset-version-registered",
                project=PROJECT,
                entity=dataset_id(PROJECT, batch, "1"),
                actor="test",
                body=body,
            )
        ]
    )
    record_access(ledger.store, [crashwriter.trail_entry("test", f"batch:{batch}:0:1", batch)])


def test_writers_killed_at_random_lose_nothing_acknowledged(
    ledger: Ledger,
    store_url: str,
    isolated_env: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    target = request.config.getoption("--crash-kills")
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    print(f"crash test seed: {seed} (replay with {SEED_ENV}={seed}); {target} kills")
    rng = random.Random(seed)
    workdir = tmp_path / "writers"
    workdir.mkdir()
    key_file = tmp_path / "keys" / "crash-signing.key"
    key = SigningKey.generate(KEY_NAME)
    key.save(key_file)
    ledger.pseudonymizer(PROJECT)  # the master key file and the project's secret exist
    # Neither tree is empty when the checkpoint writer starts: checkpoints grow from a
    # non-empty tree here (a checkpoint of an empty tree is a case of its own).
    write_one_of_each(ledger, "first")

    crowd = Crowd(store_url, workdir, key_file, isolated_env, rng.randrange(2**32))
    began = time.monotonic()
    try:
        crowd.start()
        while crowd.kills < target:
            time.sleep(rng.uniform(*KILL_DELAY_S))
            crowd.kill_one()
        crowd.stop()
    finally:
        crowd.cleanup()
    elapsed = time.monotonic() - began
    assert not any(c.process.is_alive() for c in crowd.children)

    acks = read_acks(crowd.children)
    events, batches = check_log(ledger)
    trail, trail_batches = check_trail(ledger)
    check_acknowledged(ledger, acks, events, trail)
    check_merkle(ledger, key, events)  # the tree as the writers left it, before a rebuild
    check_projections(ledger)  # rebuilds every projection, the events' tree included

    interrupted = acks.begun - acks.done
    committed_unacknowledged = interrupted & (batches | trail_batches)
    print(
        f"{elapsed:.1f}s: {crowd.kills} kills ({crowd.kills_after_writes} of writers that "
        f"had written), {len(crowd.children)} writers, {len(events)} events, {len(trail)} "
        f"trail entries, {len(acks.checkpoints)} checkpoints acknowledged; "
        f"{len(interrupted)} writes interrupted ({len(committed_unacknowledged)} of them "
        f"committed before the kill), {acks.checkpoints_begun - len(acks.checkpoints)} "
        f"checkpoints interrupted, {acks.torn} torn lines"
    )
    assert crowd.kills == target
    assert crowd.kills_after_writes > 0, "every kill hit a writer that had written nothing"
    assert acks.writes > 0 and len(events) >= acks.events
    assert len(trail) >= sum(len(a["seqs"]) for a in acks.trail)
    assert acks.torn <= crowd.kills
    if target >= 10:
        assert interrupted, "no kill landed while a write was under way"

    # The log takes new writes and new checkpoints of both trees after the crashes.
    write_one_of_each(ledger, "after")
    for tree, size in (("events", len(events) + 1), ("access", len(trail) + 1)):
        checkpoint, new = write_checkpoint(ledger.store, key, tree)
        assert new and checkpoint.size == size
    check_merkle(ledger, key, ledger.read())
