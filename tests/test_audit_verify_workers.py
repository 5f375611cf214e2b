"""``audit verify`` with worker processes, on SQLite and PostgreSQL: the leaves are
recomputed by range in other processes, and the report (every finding, its
message, its order, the first bad position) is the one the walk in one process
gives, for an untouched log and for each kind of change.

The log: the query tests' world with an erasure (redactions, rewritten payload
digests, a checkpoint of its own), a thousand run events, checkpoints of the
events' tree at sizes inside the ranges and of the access trail. The thresholds
are lowered so that a log this small is cut into ranges of 128 leaves.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

import audit.verify as verify_module
from audit.checkpoints import load_signing_key, sync_tree, write_checkpoint
from audit.leaves import entry
from audit.note import SigningKey
from audit.tree import EVENTS, rebuild_nodes
from audit.verify import VerifyReport, ranges, verify
from registry import auth
from registry.canonical import leaf_hash
from registry.errors import FieldError
from registry.events import StoredEvent, make_event
from registry.ledger import Ledger
from registry.sdk import Registry
from tests.support.events import bypass
from tests.support.helpers import mlledger_process
from tests.support.helpers import run_cli as run
from tests.support.worlds import Scenario

#: A position in a middle range (ranges of 128 leaves), after the erasure.
MIDDLE = 700


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "PARALLEL_MIN_LEAVES", 0)
    monkeypatch.setattr(verify_module, "MIN_RANGE", 128)
    monkeypatch.setattr(verify_module, "RANGES_PER_WORKER", 4)


@pytest.fixture
def log(
    reg: Registry, world: Scenario, ledger: Ledger, last_event: Callable[[], StoredEvent]
) -> tuple[SigningKey, int]:
    """The world, an erasure, run events and checkpoints at several sizes; the key
    and the log's size."""
    key, _, _ = load_signing_key(ledger.store.url, create=True)
    reg.store_subject_data("ann", {"email": "ann@example.com"})
    write_checkpoint(ledger.store, key)
    outcome = reg.erase("ann")
    erased = last_event()
    assert (erased.type, erased.position) == ("subject-erased", outcome["erased_position"])
    for batch in range(10):
        ledger.append(
            [
                make_event(
                    "run-started",
                    project="test",
                    entity=f"run:{uuid.UUID(int=batch * 1000 + i)}",
                    actor="tester",
                    body={"job": "train", "params": {"lr": 0.01, "i": i}},
                )
                for i in range(100)
            ]
        )
        if batch in (2, 6):
            write_checkpoint(ledger.store, key)
    newest = last_event()
    assert (newest.type, newest.entity) == ("run-started", f"run:{uuid.UUID(int=9099)}")
    write_checkpoint(ledger.store, key)
    auth.record_access(
        ledger.store,
        [auth.AccessEntry(f"key-{i}", "test", "events.read", "/", "127.0.0.1", "allow", 200, "ok")
         for i in range(5)],
    )  # fmt: skip
    write_checkpoint(ledger.store, key, "access")
    size = newest.position + 1
    assert size > MIDDLE + 128
    return key, size


def both(ledger: Ledger, key: SigningKey) -> tuple[VerifyReport, VerifyReport]:
    """The report of one process and of two workers, which must say the same."""
    serial = verify(ledger.store, key.verifier(), workers=1)
    parallel = verify(ledger.store, key.verifier(), workers=2)
    assert serial.workers == 1
    assert comparable(parallel) == comparable(serial)
    return serial, parallel


def comparable(report: VerifyReport) -> dict[str, Any]:
    out = report.as_dict()
    for varying in ("seconds", "leaves_per_second", "workers"):
        out.pop(varying)
    return out


def kinds(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(f.kind, f.index) for f in report.events.findings]


def test_ranges_are_aligned_powers_of_two() -> None:
    cut = ranges(1000, 2)
    assert cut == [(i, min(i + 128, 1000)) for i in range(0, 1000, 128)]
    for start, stop in cut:
        length = 1 << (stop - start - 1).bit_length()
        assert start % length == 0
    assert ranges(0, 2) == []
    assert ranges(100, 4) == [(0, 100)]


def test_an_untouched_log_verifies_with_workers(
    ledger: Ledger, log: tuple[SigningKey, int]
) -> None:
    key, size = log
    _, parallel = both(ledger, key)
    assert parallel.ok, parallel.summary()
    assert parallel.workers == 2
    assert (parallel.events.size, parallel.events.checkpoints) == (size, 5)
    assert parallel.as_dict()["workers"] == 2


def _told(
    ledger: Ledger, key: SigningKey, workers: int
) -> tuple[VerifyReport, list[tuple[str, int, int]]]:
    calls: list[tuple[str, int, int]] = []
    report = verify(
        ledger.store,
        key.verifier(),
        workers=workers,
        progress=lambda tree, done, total: calls.append((tree, done, total)),
    )
    return report, calls


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_is_told_each_trees_leaves_checked_in_order(
    ledger: Ledger, log: tuple[SigningKey, int], monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    key, size = log
    monkeypatch.setattr(verify_module, "CHUNK", 100)  # every 100 leaves in one process
    report, calls = _told(ledger, key, workers)
    assert report.ok, report.summary()
    events = [(done, total) for tree, done, total in calls if tree == "events"]
    access = [(done, total) for tree, done, total in calls if tree == "access"]
    assert [tree for tree, _, _ in calls] == ["events"] * len(events) + ["access"] * len(access)
    assert events[0] == (0, size) and events[-1] == (size, size)
    assert access[0] == (0, report.access.size) and access[-1][0] == report.access.size
    dones = [done for done, _ in events]
    assert dones == sorted(dones) and len(set(dones)) > 3  # it moved on between ends
    assert {total for _, total in events} == {size}


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_raising_stops_the_verification(
    ledger: Ledger, log: tuple[SigningKey, int], monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    key, _ = log
    monkeypatch.setattr(verify_module, "CHUNK", 100)

    class Stop(Exception):
        pass

    seen: list[int] = []

    def stop_halfway(tree: str, done: int, total: int) -> None:
        seen.append(done)
        if done >= total // 2 and done > 0:
            raise Stop

    with pytest.raises(Stop):
        verify(ledger.store, key.verifier(), workers=workers, progress=stop_halfway)
    assert seen[0] == 0 and seen[-1] < log[1]
    again, _ = _told(ledger, key, workers)  # nothing left behind: it verifies again
    assert again.ok


def test_a_changed_event_in_a_middle_range(ledger: Ledger, log: tuple[SigningKey, int]) -> None:
    key, _ = log
    with bypass(ledger.store) as conn:
        conn.execute(text("UPDATE events SET actor = 'mallory' WHERE position = :p"), {"p": MIDDLE})
    _, parallel = both(ledger, key)
    assert parallel.workers == 2
    assert parallel.first_bad_position == MIDDLE
    assert kinds(parallel)[0] == ("leaf-mismatch", MIDDLE)
    assert "FAILED: first bad position 700" in parallel.summary()


def test_a_wrong_stored_hash_in_a_middle_range(ledger: Ledger, log: tuple[SigningKey, int]) -> None:
    key, _ = log
    with bypass(ledger.store) as conn:
        conn.execute(
            text("UPDATE events SET leaf_hash = :h WHERE position IN (:p, :q)"),
            {"h": b"\x07" * 32, "p": MIDDLE, "q": MIDDLE + 200},
        )
    _, parallel = both(ledger, key)
    assert parallel.first_bad_position == MIDDLE
    assert kinds(parallel) == [("leaf-mismatch", MIDDLE), ("leaf-mismatch", MIDDLE + 200)]


def test_a_missing_row_in_a_middle_range(ledger: Ledger, log: tuple[SigningKey, int]) -> None:
    key, size = log
    with bypass(ledger.store) as conn:
        conn.execute(text("DELETE FROM events WHERE position = :p"), {"p": MIDDLE})
    _, parallel = both(ledger, key)
    assert parallel.first_bad_position == MIDDLE
    assert kinds(parallel)[0] == ("gap", MIDDLE)
    assert parallel.events.size == size - 1


def rewrite_actor_and_leaf(conn: Connection, position: int) -> None:
    """An edit with the event's leaf hash recomputed to match."""
    conn.execute(text("UPDATE events SET actor = 'mallory' WHERE position = :p"), {"p": position})
    data = entry(conn, EVENTS, position)
    assert data is not None
    conn.execute(
        text("UPDATE events SET leaf_hash = :h WHERE position = :p"),
        {"h": leaf_hash(data[0]), "p": position},
    )


def test_a_rewritten_leaf_hash_in_a_middle_range(
    ledger: Ledger, log: tuple[SigningKey, int]
) -> None:
    key, _ = log
    with bypass(ledger.store) as conn:
        rewrite_actor_and_leaf(conn, MIDDLE)
    _, parallel = both(ledger, key)
    assert parallel.first_bad_position == MIDDLE
    assert kinds(parallel)[0] == ("leaf-rewritten", MIDDLE)


def test_a_rewrite_of_the_tree_too_is_caught_by_the_checkpoints(
    ledger: Ledger, log: tuple[SigningKey, int]
) -> None:
    key, size = log
    with bypass(ledger.store) as conn:
        rewrite_actor_and_leaf(conn, MIDDLE)
        rebuild_nodes(conn, EVENTS)
    _, parallel = both(ledger, key)
    assert not parallel.ok
    first = parallel.events.findings[0]
    assert first.kind == "checkpoint-root" and first.index is not None
    assert first.index <= MIDDLE < size
    assert parallel.first_bad_position == first.index


def test_the_tree_lagging_is_named_once(ledger: Ledger, log: tuple[SigningKey, int]) -> None:
    key, _ = log
    with bypass(ledger.store) as conn:
        conn.execute(text("DELETE FROM merkle_nodes WHERE level = 0 AND idx >= :p"), {"p": MIDDLE})
    _, parallel = both(ledger, key)
    assert [k for k in kinds(parallel) if k[0] == "tree-lags"] == [("tree-lags", MIDDLE)]


def test_a_redacted_event_changed_after_its_erasure(
    ledger: Ledger, log: tuple[SigningKey, int]
) -> None:
    key, _ = log
    with ledger.store.read() as conn:
        position = conn.execute(text("SELECT MIN(position) FROM redactions")).scalar_one()
    with bypass(ledger.store) as conn:
        conn.execute(text("UPDATE events SET actor = 'mallory' WHERE position = :p"),
                     {"p": position})  # fmt: skip
    _, parallel = both(ledger, key)
    assert kinds(parallel)[0] == ("redacted-content", position)


def test_changed_payload_rows_with_workers(ledger: Ledger, log: tuple[SigningKey, int]) -> None:
    key, _ = log
    with bypass(ledger.store) as conn:
        position = conn.execute(text("SELECT MAX(position) FROM event_payloads")).scalar_one()
        conn.execute(text("DELETE FROM event_payloads WHERE position = :p"), {"p": position})
    _, parallel = both(ledger, key)
    assert kinds(parallel) == [("payload", position)]


def test_workers_must_be_one_or_more(ledger: Ledger, log: tuple[SigningKey, int]) -> None:
    key, _ = log
    with pytest.raises(FieldError, match=r"workers must be 1 or more \(1: .*\), got 0"):
        verify(ledger.store, key.verifier(), workers=0)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_cli_takes_workers(
    capsys: pytest.CaptureFixture[str], ledger: Ledger, log: tuple[SigningKey, int]
) -> None:
    url = ledger.store.url
    sync_tree(ledger.store)
    code, out, err = run(capsys, "audit", "verify", "--db", url, "--workers", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["workers"] == 2 and json.loads(out)["ok"] is True
    with bypass(ledger.store) as conn:
        conn.execute(text("UPDATE events SET actor = 'mallory' WHERE position = :p"),
                     {"p": MIDDLE})  # fmt: skip
    code, out, _ = run(capsys, "audit", "verify", "--db", url, "--workers", "2")
    assert code == 3
    assert f"leaf-mismatch at {MIDDLE}" in out and f"first bad position {MIDDLE}" in out
    code, out, _ = run(capsys, "audit", "verify", "--db", url, "--workers", "1", "--json")
    assert code == 3 and json.loads(out)["workers"] == 1
    code, _, err = run(capsys, "audit", "verify", "--db", url, "--workers", "0")
    assert code == 2 and "workers must be 1 or more" in err


UNGUARDED = """
import json, sys
import audit.verify as verify_module
from registry.store import open_store

verify_module.PARALLEL_MIN_LEAVES, verify_module.MIN_RANGE = 0, 128
store = open_store(sys.argv[1], create=False)
report = verify_module.verify(store, workers=2)
print(json.dumps({"ok": report.ok, "workers": report.workers, "size": report.events.size}))
"""


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_script_without_a_main_guard_still_verifies(
    ledger: Ledger, log: tuple[SigningKey, int], tmp_path: Path
) -> None:
    # Each worker runs such a script again, and fails: the tree is walked in one process.
    _, size = log
    script = tmp_path / "check.py"
    script.write_text(UNGUARDED)
    done = mlledger_process(str(script), ledger.store.url, program=[sys.executable], timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"ok": True, "workers": 1, "size": size}
