"""Two ``mlledger serve`` processes on one PostgreSQL database, written to at once
through the HTTP API; the one signing the checkpoints is killed (SIGKILL) mid-write.

The other carries on: every write either server acknowledged is in the log once,
at the position it was answered with; positions and the access trail have no gap;
``mlledger audit verify`` passes; and the survivor takes the checkpoints lease over
and signs the checkpoints that follow, no sequence number signed twice.

Everything waits by polling under generous deadlines (a loaded two-core machine
is slow, never wrong): no sleep stands for an assertion.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from registry.store import Store, open_store
from tests.support.apiserver import ApiServer
from tests.support.helpers import mlledger_process
from tests.support.pgserver import PostgresServer

pytestmark = pytest.mark.postgres

P = "multi"
#: Acknowledged writes (all servers) before the signer is killed.
BEFORE_KILL = 40
#: Rounds each writer to the survivor completes after the kill.
AFTER_KILL = 15
#: The longest any wait may take (seconds) before the test fails.
DEADLINE_S = 300.0


@dataclass
class Acks:
    """What the servers answered, by write: the test's record of acknowledged writes."""

    runs: set[str] = field(default_factory=set)  # run node ids whose start was answered
    events: dict[str, int] = field(default_factory=dict)  # event_id -> position answered
    metrics: dict[int, str] = field(default_factory=dict)  # position answered -> run id
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.runs) + len(self.events) + len(self.metrics)


def writer(
    server: ApiServer, token: str, acks: Acks, stop: threading.Event, rounds: list[int]
) -> None:
    """Write through ``server`` until ``stop`` or its first failure (the server died):
    each round starts a run, logs a metric on it, and appends one event."""
    with server.client(token) as http:
        try:
            while not stop.is_set():
                run_id = str(uuid.uuid4())
                started = http.post(f"/projects/{P}/runs", json={"job": "fit", "run_id": run_id})
                if started.status_code != 201:
                    return
                run = started.json()["id"]
                with acks.lock:
                    acks.runs.add(run)
                logged = http.post(f"/projects/{P}/runs/{run}/metrics", json={"metrics": {"m": 1}})
                if logged.status_code != 200:
                    return
                with acks.lock:
                    acks.metrics[logged.json()["position"]] = run
                event_id = str(uuid.uuid4())
                node = f"dataset:{P}/d-{event_id}@1"
                body = {
                    "name": f"d-{event_id}",
                    "version": "1",
                    "digest": "sha256:0a",
                    "uri": "s3://x",
                }
                event = {"event_id": event_id, "type": "dataset-version-registered",
                         "entity": node, "body": body}  # fmt: skip
                appended = http.post(f"/projects/{P}/events", json={"events": [event]})
                if appended.status_code != 200:
                    return
                with acks.lock:
                    acks.events[event_id] = appended.json()["positions"][0]
                rounds[0] += 1
        except httpx.TransportError:
            return  # the server is gone: what was in flight is not acknowledged


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def lease_holder(store: Store) -> int | None:
    """The pid named by the holder of the checkpoints lease, or None."""
    with store.read() as conn:
        name = conn.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND a.application_name LIKE 'mlledger checkpoints %'"
            )
        ).scalar()
    return None if name is None else int(str(name).split(" pid ", 1)[1].split()[0])


def checkpoints(store: Store) -> dict[str, list[tuple[int, int]]]:
    with store.read() as conn:
        rows = conn.execute(
            text("SELECT tree, seq, tree_size FROM checkpoints ORDER BY tree, seq")
        ).all()
    found: dict[str, list[tuple[int, int]]] = {"events": [], "access": []}
    for tree, seq, size in rows:
        found[tree].append((int(seq), int(size)))
    return found


@pytest.fixture
def database(pg_server: PostgresServer) -> Iterator[str]:
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url.rsplit("/", 1)[1])


def test_two_servers_share_one_log_and_the_survivor_signs_on(database: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    env = {
        # The same master key and signing key files for both, as on shared storage.
        "MLLEDGER_KEY_FILE": str(keys / "master.key"),
        "MLLEDGER_SIGNING_KEY": str(keys / "signing.key"),
        "MLLEDGER_CHECKPOINT_EVERY": "5",
        "MLLEDGER_CHECKPOINT_SECONDS": "1",
    }
    servers: list[ApiServer] = []
    store = open_store(database)
    try:
        # One after the other: the first makes the keys the second then finds.
        for name in ("a", "b"):
            servers.append(ApiServer(tmp_path / name, db=database, env=env).start())
        token = servers[0].key(P, "admin", name="multi")
        wait_for("a server to take the checkpoints lease", lambda: lease_holder(store) is not None)
        pids = {s.process.pid: s for s in servers if s.process is not None}
        signer = pids[lease_holder(store)]
        survivor = next(s for s in servers if s is not signer)

        acks = Acks()
        stops = {id(s): threading.Event() for s in servers}
        rounds = {id(s): [[0], [0]] for s in servers}
        threads = [
            threading.Thread(target=writer, args=(s, token, acks, stops[id(s)], r))
            for s in servers
            for r in rounds[id(s)]
        ]
        for thread in threads:
            thread.start()
        wait_for("writes before the kill", lambda: acks.count() >= BEFORE_KILL)
        wait_for("a checkpoint before the kill", lambda: checkpoints(store)["events"] != [])
        assert signer.process is not None
        os.kill(signer.process.pid, signal.SIGKILL)
        signer.process.wait(DEADLINE_S)
        before = {tree: len(signed) for tree, signed in checkpoints(store).items()}
        after_kill = [r[0] for r in rounds[id(survivor)]]
        wait_for(
            "writes through the survivor after the kill",
            lambda: all(
                r[0] - a >= AFTER_KILL
                for r, a in zip(rounds[id(survivor)], after_kill, strict=True)
            ),
        )
        for stop in stops.values():
            stop.set()
        for thread in threads:
            thread.join(DEADLINE_S)
            assert not thread.is_alive()
        assert survivor.process is not None and survivor.process.poll() is None

        # The survivor took the lease over and signs the log up to its head.
        assert survivor.process is not None
        wait_for(
            "the survivor to hold the lease", lambda: lease_holder(store) == survivor.process.pid
        )
        with store.read() as conn:
            head = int(conn.execute(text("SELECT MAX(position) FROM events")).scalar())
        wait_for(
            "a checkpoint of the whole log",
            lambda: checkpoints(store)["events"][-1][1] == head + 1,
        )
        signed = checkpoints(store)
        for tree, found in signed.items():
            assert [seq for seq, _ in found] == list(range(len(found))), tree
            assert [size for _, size in found] == sorted({size for _, size in found}), tree
        assert len(signed["events"]) > before["events"]

        with store.read() as conn:
            rows = conn.execute(
                text("SELECT position, event_id, type, entity FROM events ORDER BY position")
            ).all()
            trail = [
                int(r[0]) for r in conn.execute(text("SELECT seq FROM access_trail ORDER BY seq"))
            ]
        assert [int(r[0]) for r in rows] == list(range(len(rows)))
        assert trail == list(range(len(trail))) and len(trail) >= acks.count()
        by_position = {int(r[0]): r for r in rows}
        for event_id, position in acks.events.items():
            assert by_position[position][1] == event_id
            assert sum(1 for r in rows if r[1] == event_id) == 1
        for position, run in acks.metrics.items():
            assert by_position[position][2:] == ("run-metrics-logged", run)
        for run in acks.runs:
            starts = [r for r in rows if r[3] == run and r[2] == "run-started"]
            assert len(starts) == 1, run
        assert len(set(acks.events.values()) | set(acks.metrics)) == len(acks.events) + len(
            acks.metrics
        )

        verified = mlledger_process(
            "audit", "verify", "--db", database, "--json", env={**survivor.env}, timeout=DEADLINE_S
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)
        assert report["ok"] is True
        assert report["events"]["size"] == head + 1
    finally:
        for server in servers:
            server.stop()
        store.dispose()
