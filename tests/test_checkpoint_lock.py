"""Checkpoints computed beside the appends, on SQLite and PostgreSQL: the leaves are
recomputed in a read snapshot while appends commit, only the signing takes the
append lock, a writer that finds another signed first builds on that checkpoint,
and a change made meanwhile is still refused. The checkpoints lease: one signer
among the servers sharing a database, taken over when it goes.

A checkpoint is held mid-computation by a leaf source that stops at its first
leaf until the test lets it go: what the test does meanwhile provably happens
while the checkpoint is being computed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, text

from audit import checkpoints, merkle
from audit.checkpoints import (
    Checkpointer,
    StoredCheckpoint,
    stored_checkpoints,
    write_checkpoint,
)
from audit.note import SigningKey
from audit.tree import EVENTS, TreeSpec
from registry.errors import IntegrityViolation
from registry.ledger import Ledger
from registry.store import open_store
from registry.store.lease import holder_label
from tests.support.events import bypass, dataset_event
from tests.support.helpers import newest

#: Events in the log before the checkpoint: more than one chunk of leaves.
SIZE = 5000
#: How long a stopped computation or a thread may take before the test fails
#: (seconds): a bound for a broken run, never a measure of a working one.
WAIT_S = 120.0


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("lock.example/log")


@pytest.fixture
def sized(ledger: Ledger) -> Ledger:
    """The ledger holding SIZE events."""
    for start in range(0, SIZE, 1000):
        ledger.append([dataset_event(f"d{i}") for i in range(start, start + 1000)])
    assert ledger.head() == SIZE - 1
    return ledger


class Held:
    """A leaf source that stops at the first leaf of the first computation until
    ``go`` is set, and records which leaves each thread recomputed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.computing = threading.Event()
        self.go = threading.Event()
        self.released: list[bool] = []  # whether ``go`` came before WAIT_S ran out
        self.ranges: dict[str, list[tuple[int, int | None]]] = {}
        real = checkpoints.leaves

        def held(
            conn: Connection, spec: TreeSpec, start: int = 0, stop: int | None = None
        ) -> Iterator[Any]:
            name = threading.current_thread().name
            self.ranges.setdefault(name, []).append((start, stop))
            for leaf in real(conn, spec, start, stop):
                if not self.computing.is_set():
                    self.computing.set()
                    self.released.append(self.go.wait(WAIT_S))
                yield leaf

        monkeypatch.setattr(checkpoints, "leaves", held)

    def checkpoint(self, ledger: Ledger, key: SigningKey) -> dict[str, Any]:
        """Start ``write_checkpoint`` in a thread and return once it is stopped at its
        first leaf; the dict receives its answer (``done``) or error (``error``)."""
        out: dict[str, Any] = {}

        def run() -> None:
            try:
                out["done"] = write_checkpoint(ledger.store, key)
            except Exception as exc:  # handed to the test, which asserts on it
                out["error"] = exc

        out["thread"] = thread = threading.Thread(target=run, name="held-checkpoint")
        thread.start()
        assert self.computing.wait(WAIT_S), "the checkpoint never reached its first leaf"
        return out

    def finish(self, out: dict[str, Any]) -> None:
        self.go.set()
        out["thread"].join(WAIT_S)
        assert not out["thread"].is_alive(), "the checkpoint did not finish"
        assert self.released == [True], "the checkpoint went on before it was let go"


def test_an_append_commits_while_a_checkpoint_is_computed(
    sized: Ledger, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held(monkeypatch)
    out = held.checkpoint(sized, key)
    # Under the old design this append waited for the lock the checkpoint held, and
    # the checkpoint went on only when WAIT_S ran out (``released`` would be False).
    event = dataset_event("meanwhile")
    [position] = sized.append([event])
    held.finish(out)
    assert "error" not in out, out.get("error")
    assert position == SIZE
    assert newest(sized).event_id == event.event_id
    checkpoint, written = out["done"]
    # Signed at the size its snapshot saw; the next one covers the append.
    assert written and (checkpoint.seq, checkpoint.size) == (0, SIZE)
    following, written = write_checkpoint(sized.store, key)
    assert written and (following.seq, following.size) == (1, SIZE + 1)
    assert held.ranges["held-checkpoint"][0] == (0, 4096)


def test_a_writer_that_finds_another_signed_first_builds_on_its_checkpoint(
    sized: Ledger, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held(monkeypatch)
    out = held.checkpoint(sized, key)
    [first] = sized.append([dataset_event("first")])
    other, written = write_checkpoint(sized.store, key)  # another writer, not held
    assert written and (other.seq, other.size) == (0, SIZE + 1)
    [second] = sized.append([dataset_event("second")])
    assert (first, second) == (SIZE, SIZE + 1)
    assert newest(sized).body["name"] == "second"
    held.finish(out)
    assert "error" not in out, out.get("error")
    checkpoint, written = out["done"]
    # Its own round lost; the next one recomputed only the leaf added since #0.
    assert written and (checkpoint.seq, checkpoint.size) == (1, SIZE + 2)
    assert held.ranges["held-checkpoint"][-1] == (SIZE + 1, SIZE + 2)
    with sized.store.read() as conn:
        signed = stored_checkpoints(conn, "events")
    assert [(c.seq, c.size) for c in signed] == [(0, SIZE + 1), (1, SIZE + 2)]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("DELETE FROM events WHERE position >= 4000", "fewer than the 5000 checked"),
        ("UPDATE merkle_nodes SET hash = :zero", "root at size 5000 changed while"),
    ],
)
def test_a_log_changed_while_a_checkpoint_is_computed_is_not_signed(
    sized: Ledger,
    key: SigningKey,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    refusal: str,
) -> None:
    held = Held(monkeypatch)
    out = held.checkpoint(sized, key)
    with bypass(sized.store) as conn:
        changed = conn.execute(text(change), {"zero": bytes(32)} if ":zero" in change else {})
        assert changed.rowcount > 0
    held.finish(out)
    assert isinstance(out.get("error"), IntegrityViolation), out
    assert refusal in str(out["error"]) and "refusing to sign" in str(out["error"])
    with sized.store.read() as conn:
        assert stored_checkpoints(conn, "events") == []


def test_a_tree_behind_the_log_is_brought_up_before_the_checkpoint(
    sized: Ledger, key: SigningKey
) -> None:
    # As in a database from before the stored tree: the log without its tree.
    with bypass(sized.store) as conn:
        conn.execute(text("DELETE FROM merkle_nodes"))
        conn.execute(text("DELETE FROM projection_tracking WHERE name = 'merkle'"))
    checkpoint, written = write_checkpoint(sized.store, key)
    assert written and (checkpoint.seq, checkpoint.size) == (0, SIZE)
    assert checkpoint.root == merkle.root_hash([e.leaf_hash for e in sized.read()])


# --- the lease ------------------------------------------------------------------------------------


def test_one_process_at_a_time_holds_the_checkpoints_lease(ledger: Ledger) -> None:
    other = open_store(ledger.store.url)
    mine, theirs = ledger.store.lease("checkpoints"), other.lease("checkpoints")
    try:
        assert mine.acquire()
        assert mine.acquire()  # kept
        assert not theirs.acquire()
        assert holder_label() in (theirs.holder() or "")
        mine.release()
        assert theirs.acquire()
        assert not mine.acquire()
        theirs.release()
        assert mine.holder() is None and theirs.holder() is None  # nobody holds it
    finally:
        mine.release()
        theirs.release()
        other.dispose()


@pytest.mark.postgres
def test_a_lease_is_of_its_own_database(pg_server: Any, isolated_env: Any) -> None:
    """Two ledgers on one PostgreSQL server: each has its own lease and holder."""
    urls = [pg_server.create_database(), pg_server.create_database()]
    stores = [open_store(u) for u in urls]
    first, second = (s.lease("checkpoints") for s in stores)
    try:
        assert first.acquire()
        assert second.holder() is None  # the other database's lease is free ...
        assert second.acquire()  # ... and taken by its own server
        assert holder_label() in (first.holder() or "")
    finally:
        first.release()
        second.release()
        for store, url in zip(stores, urls, strict=True):
            store.dispose()
            pg_server.drop_database(url.rsplit("/", 1)[1])


def test_a_file_lease_names_no_holder_once_its_holder_is_killed(tmp_path: Any) -> None:
    """The lease file keeps the name of a holder killed with SIGKILL; the lock went
    with the process, and ``holder`` says nobody holds it."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from registry.store.lease import FileLease

    path = tmp_path / "ledger.db-checkpoints.lease"
    lease = FileLease(path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from registry.store.lease import FileLease;"
         f"assert FileLease(Path({str(path)!r})).acquire(); print('held', flush=True); "
         "time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert f"pid {holder.pid}" in (lease.holder() or "")
        assert not lease.acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        assert f"pid {holder.pid}" in path.read_text()  # the name stays in the file
        assert lease.holder() is None
        assert lease.acquire()
        assert lease.holder() == holder_label()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        lease.release()


@pytest.mark.postgres
def test_the_lease_passes_on_when_its_holders_session_ends(
    pg_server: Any, isolated_env: Any
) -> None:
    url = pg_server.create_database()
    store = open_store(url)
    first, second = store.lease("checkpoints"), store.lease("checkpoints")
    try:
        assert first.acquire() and not second.acquire()
        # The holder's connection is cut, as when its process or host dies.
        with store.engine.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name LIKE 'mlledger checkpoints%' AND pid IN "
                    "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
                )
            ).all()
        assert [bool(r[0]) for r in ended] == [True]
        # The backend ends a moment after it is told to: poll, as a server does.
        deadline = time.monotonic() + WAIT_S
        while not second.acquire():
            assert time.monotonic() < deadline, "the lease was not released"
            time.sleep(0.05)
        assert not first.acquire()  # it finds its session gone, and the lease taken
    finally:
        first.release()
        second.release()
        store.dispose()
        pg_server.drop_database(url.rsplit("/", 1)[1])


def test_only_the_lease_holder_signs(ledger: Ledger, key: SigningKey) -> None:
    other = open_store(ledger.store.url)
    leader = Checkpointer(ledger.store, key, every=1, seconds=3600)
    follower = Checkpointer(other, key, every=1, seconds=3600)
    try:
        [position] = ledger.append([dataset_event("a")])
        assert newest(ledger).position == position == 0
        assert [(c.seq, c.size) for c in leader.tick()] == [(0, 1)]
        [position] = ledger.append([dataset_event("b")])
        assert newest(ledger).body["name"] == "b"
        assert follower.tick() == []  # not the holder: nothing signed
        assert _signed(ledger) == [(0, 1)]
        leader.stop()  # gives the lease up
        assert [(c.seq, c.size) for c in follower.tick()] == [(1, 2)]
        assert _signed(ledger) == [(0, 1), (1, 2)]
    finally:
        leader.stop()
        follower.stop()
        other.dispose()


def _signed(ledger: Ledger) -> list[tuple[int, int]]:
    with ledger.store.read() as conn:
        found: list[StoredCheckpoint] = stored_checkpoints(conn, EVENTS.name)
    return [(c.seq, c.size) for c in found]
