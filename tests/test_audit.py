"""The tamper-evident log on SQLite and PostgreSQL: the stored trees, signed
checkpoints, ``audit verify`` against every kind of change made with raw SQL
that bypasses the append-only triggers, and proof bundles checked offline.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from audit import merkle
from audit.checkpoints import (
    latest_checkpoint,
    origin,
    stored_checkpoints,
    sync_tree,
    write_checkpoint,
)
from audit.leaves import entry
from audit.note import Checkpoint, SigningKey, open_note, verify_checkpoint
from audit.proofs import ProofError, make_bundle, verify_bundle
from audit.tree import EVENTS, TRAIL, StoredTree, rebuild_nodes
from audit.verify import verify
from registry import auth
from registry.assembly import open_ledger
from registry.errors import Conflict, IntegrityViolation, NotFound
from registry.events import canonical_event, make_event
from registry.ledger import Ledger
from registry.sdk import Registry
from registry.store import Store
from tests.support.events import bypass

KEY_NAME = "audit.example/log"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate(KEY_NAME)


def trail(store: Store, n: int, start: int = 0) -> list[int]:
    return auth.record_access(
        store,
        [
            auth.AccessEntry(
                actor=f"key-{i}",
                project="test",
                action="events.read",
                resource=f"/api/v1/projects/test/events?start={i}",
                source="127.0.0.1",
                outcome="allow",
                status=200,
                reason="role viewer allows read",
            )
            for i in range(start, start + n)
        ],
    )


def leaf_of(conn: Connection, position: int) -> bytes:
    """The leaf hash of the event now stored at ``position``, as an attacker would
    recompute it."""
    row = conn.execute(
        text(
            "SELECT position, event_id, type, schema_version, project, entity, actor, "
            "occurred_at, recorded_at, body, personal_refs, trace_id FROM events "
            "WHERE position = :p"
        ),
        {"p": position},
    ).one()
    refs = tuple(json.loads(row[10]))
    return merkle.leaf_hash(canonical_event(*row[:10], refs, row[11]))


def rewrite_actor_and_leaf(conn: Connection, position: int) -> None:
    """An attacker's edit: the event at ``position`` gets another actor, and its leaf
    hash is recomputed to match."""
    conn.execute(text("UPDATE events SET actor = 'mallory' WHERE position = :p"), {"p": position})
    conn.execute(
        text("UPDATE events SET leaf_hash = :h WHERE position = :p"),
        {"h": leaf_of(conn, position), "p": position},
    )


def verified(store: Store, key: SigningKey) -> Any:
    sync_tree(store)
    return verify(store, key.verifier())


# --- the stored tree ----------------------------------------------------------------------------


def test_the_stored_tree_matches_the_leaf_hashes(ledger: Ledger, world: Any) -> None:
    events = ledger.read()
    leaves = [e.leaf_hash for e in events]
    with ledger.store.read() as conn:
        tree = StoredTree(conn, EVENTS)
        assert tree.size() == len(events)
        for size in range(1, len(events) + 1):
            assert tree.root(size) == merkle.root_hash(leaves[:size])
        for index in range(len(events)):
            proof = tree.inclusion_proof(index, len(events))
            assert merkle.verify_inclusion(
                index, len(events), leaves[index], proof, merkle.root_hash(leaves)
            )
        for size1 in range(len(events) + 1):
            proof = tree.consistency_proof(size1, len(events))
            assert proof == merkle.consistency_proof(size1, len(events), leaves)
        levels = dict(
            conn.execute(text("SELECT level, COUNT(*) FROM merkle_nodes GROUP BY level")).all()
        )
    n = len(events)
    assert levels == {level: n >> level for level in range(n.bit_length()) if n >> level}


def test_a_rebuild_replays_the_tree_too(ledger: Ledger, world: Any) -> None:
    with ledger.store.read() as conn:
        before = conn.execute(
            text("SELECT level, idx, hash FROM merkle_nodes ORDER BY level, idx")
        ).all()
    result = ledger.rebuild()
    with ledger.store.read() as conn:
        after = conn.execute(
            text("SELECT level, idx, hash FROM merkle_nodes ORDER BY level, idx")
        ).all()
    assert after == before and len(after) > len(ledger.read())
    assert result["events"] == len(ledger.read())


def test_the_trail_has_its_own_tree(ledger: Ledger) -> None:
    seqs = trail(ledger.store, 7)
    seqs += trail(ledger.store, 6, 7)
    assert seqs == list(range(13))
    rows = auth.read_trail(ledger.store, limit=100)
    leaves = [bytes.fromhex(r["leaf_hash"]) for r in rows]
    with ledger.store.read() as conn:
        tree = StoredTree(conn, TRAIL)
        assert tree.size() == 13
        assert tree.root(13) == merkle.root_hash(leaves)
        data, stored = entry(conn, TRAIL, 4)  # type: ignore[misc]
    assert merkle.leaf_hash(data) == stored == leaves[4]
    assert json.loads(data)["seq"] == 4


# --- checkpoints ----------------------------------------------------------------------------------


def test_checkpoints_are_signed_notes_chained_by_consistency(
    ledger: Ledger, reg: Registry, key: SigningKey
) -> None:
    reg.register_dataset("a", "1", uri="s3://a", digest="sha256:aa")
    first, written = write_checkpoint(ledger.store, key)
    assert written and (first.seq, first.size) == (0, 1)
    again, written = write_checkpoint(ledger.store, key)
    assert not written and again == first  # nothing new: nothing signed
    reg.register_dataset("b", "1", uri="s3://b", digest="sha256:bb", records=["r1", "r2"])
    second, written = write_checkpoint(ledger.store, key)
    assert written and (second.seq, second.size) == (1, 3)

    signed = verify_checkpoint(key.verifier(), second.note, KEY_NAME)
    assert signed == Checkpoint(KEY_NAME, 3, second.root)
    assert second.note.startswith(f"{KEY_NAME}\n3\n{base64.b64encode(second.root).decode()}\n\n— ")
    leaves = [e.leaf_hash for e in ledger.read()]
    assert second.root == merkle.root_hash(leaves)
    with ledger.store.read() as conn:
        proof = StoredTree(conn, EVENTS).consistency_proof(1, 3)
        assert [c.seq for c in stored_checkpoints(conn, "events")] == [0, 1]
        assert latest_checkpoint(conn, "events") == second
    assert merkle.verify_consistency(1, 3, first.root, second.root, proof)

    trail(ledger.store, 3)
    access, written = write_checkpoint(ledger.store, key, "access")
    assert written and access.size == 3
    assert open_note(access.note)[0].startswith(f"{KEY_NAME}/access-trail\n3\n")
    assert origin(KEY_NAME, "access") == f"{KEY_NAME}/access-trail"


def test_checkpoint_rows_refuse_update_and_delete(
    ledger: Ledger, reg: Registry, key: SigningKey
) -> None:
    reg.register_dataset("a", "1", uri="s3://a", digest="sha256:aa")
    write_checkpoint(ledger.store, key)
    for statement in ("UPDATE checkpoints SET tree_size = 5", "DELETE FROM checkpoints"):
        with pytest.raises(Exception, match="append-only"), ledger.store.engine.begin() as conn:
            conn.execute(text(statement))
    with ledger.store.read() as conn:
        assert len(stored_checkpoints(conn, "events")) == 1


def test_no_checkpoint_is_signed_over_a_rewritten_log(
    ledger: Ledger, reg: Registry, key: SigningKey, world: Any
) -> None:
    write_checkpoint(ledger.store, key)
    original = [e.leaf_hash for e in ledger.read()]
    reg.register_dataset("late", "1", uri="s3://late", digest="sha256:ff")
    original.append(ledger.read(len(original), 1)[0].leaf_hash)

    # An edit that leaves the hashes alone: the next checkpoint still signs the
    # original leaves (and `audit verify` names the edited row).
    with bypass(ledger.store) as conn:
        conn.execute(text("UPDATE events SET actor = 'mallory' WHERE position = 3"))
    second, written = write_checkpoint(ledger.store, key)
    assert written and second.root == merkle.root_hash(original)

    # An edit with its leaf hash and the whole tree rewritten to match.
    reg.register_dataset("later", "1", uri="s3://later", digest="sha256:ee")
    with bypass(ledger.store) as conn:
        conn.execute(
            text("UPDATE events SET leaf_hash = :h WHERE position = 3"), {"h": leaf_of(conn, 3)}
        )
        rebuild_nodes(conn, EVENTS)
    with pytest.raises(IntegrityViolation, match="not consistent with checkpoint #1"):
        write_checkpoint(ledger.store, key)

    other = SigningKey.generate(KEY_NAME)
    with pytest.raises(IntegrityViolation, match="does not verify with the signing key"):
        write_checkpoint(ledger.store, other)
    with ledger.store.read() as conn:
        assert [c.seq for c in stored_checkpoints(conn, "events")] == [0, 1]


def test_a_leaf_changed_after_the_last_checkpoint_is_not_signed(
    ledger: Ledger, reg: Registry, key: SigningKey, world: Any
) -> None:
    write_checkpoint(ledger.store, key)
    reg.register_dataset("late", "1", uri="s3://late", digest="sha256:ff")
    late = ledger.head()
    with bypass(ledger.store) as conn:
        conn.execute(text(f"UPDATE events SET actor = 'mallory' WHERE position = {late}"))
    with pytest.raises(IntegrityViolation, match=f"position {late} does not match"):
        write_checkpoint(ledger.store, key)


# --- verify ------------------------------------------------------------------------------------


@pytest.fixture
def signed(ledger: Ledger, reg: Registry, key: SigningKey, world: Any) -> int:
    """The world with checkpoints at sizes 8 and 16 and at its end (and of a trail)."""
    events = ledger.read()
    trail(ledger.store, 4)
    sizes = (8, 16, len(events))
    # Checkpoints at given sizes: sign what the tree held then, as a server would have.
    for size in sizes:
        note_for(ledger, key, size)
    write_checkpoint(ledger.store, key, "access")
    return len(events)


def note_for(ledger: Ledger, key: SigningKey, size: int) -> None:
    """Store a checkpoint at ``size`` (an earlier size than the head), as one written
    back when the log had ``size`` events."""
    from audit.note import sign_checkpoint
    from registry.store.raw import Raw
    from registry.timeutil import now

    with ledger.store.append_transaction() as conn:
        root = StoredTree(conn, EVENTS).root(size)
        previous = latest_checkpoint(conn, "events")
        seq = 0 if previous is None else previous.seq + 1
        note = sign_checkpoint(key, Checkpoint(KEY_NAME, size, root))
        Raw(conn).run(
            "INSERT INTO checkpoints (tree, seq, tree_size, root_hash, note, signed_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ("events", seq, size, root, note, now()),
        )


def test_an_untouched_log_verifies(ledger: Ledger, key: SigningKey, signed: int) -> None:
    report = verified(ledger.store, key)
    assert report.ok, report.summary()
    assert (report.events.size, report.events.checkpoints) == (signed, 3)
    assert (report.access.size, report.access.checkpoints) == (4, 1)
    assert report.first_bad_position is None
    assert (
        report.events.root
        == base64.b64encode(merkle.root_hash([e.leaf_hash for e in ledger.read()])).decode()
    )
    assert "OK" in report.summary()


def kinds(report: Any) -> list[tuple[str, int | None]]:
    return [(f.kind, f.index) for f in report.events.findings]


def test_an_edited_event_is_named(ledger: Ledger, key: SigningKey, signed: int) -> None:
    with ledger.store.read() as conn:
        position = conn.execute(
            text("SELECT position FROM events WHERE body LIKE '%s3://b/clean%'")
        ).scalar()
    assert position is not None and 0 < position < signed - 1
    with bypass(ledger.store) as conn:
        conn.execute(
            text("UPDATE events SET body = replace(body, 's3://', 'ftp://') WHERE position = :p"),
            {"p": position},
        )
    report = verified(ledger.store, key)
    assert not report.ok
    assert report.first_bad_position == position
    assert kinds(report)[0] == ("leaf-mismatch", position)
    assert f"first bad position {position}" in report.summary()


def test_an_edit_with_its_leaf_hash_rewritten_is_named(
    ledger: Ledger, key: SigningKey, signed: int
) -> None:
    with bypass(ledger.store) as conn:
        rewrite_actor_and_leaf(conn, 11)
    report = verified(ledger.store, key)
    assert report.first_bad_position == 11
    assert kinds(report)[0] == ("leaf-rewritten", 11)


def test_an_edit_with_the_whole_tree_rewritten_is_caught_by_the_checkpoints(
    ledger: Ledger, key: SigningKey, signed: int
) -> None:
    with bypass(ledger.store) as conn:
        rewrite_actor_and_leaf(conn, 11)
        rebuild_nodes(conn, EVENTS)
    report = verified(ledger.store, key)
    assert not report.ok
    # Nothing stored remembers the old leaf: the checkpoints narrow it to [8, 16).
    assert report.first_bad_position == 8
    assert kinds(report)[0] == ("checkpoint-root", 8)
    assert "8 to 15" in report.events.findings[0].message


def test_a_deleted_event_is_named(ledger: Ledger, key: SigningKey, signed: int) -> None:
    with bypass(ledger.store) as conn:
        conn.execute(text("DELETE FROM events WHERE position = 12"))
    report = verified(ledger.store, key)
    assert report.first_bad_position == 12
    assert kinds(report)[0] == ("gap", 12)


def test_deleted_events_at_the_end_are_named(ledger: Ledger, key: SigningKey, signed: int) -> None:
    with bypass(ledger.store) as conn:
        conn.execute(text(f"DELETE FROM event_payloads WHERE position >= {signed - 3}"))
        conn.execute(text(f"DELETE FROM events WHERE position >= {signed - 3}"))
    report = verified(ledger.store, key)
    assert report.first_bad_position == signed - 3
    assert ("truncated", signed - 3) in kinds(report)


def test_an_inserted_event_is_named(ledger: Ledger, key: SigningKey, signed: int) -> None:
    with bypass(ledger.store) as conn:
        conn.execute(text("DELETE FROM event_payloads"))  # payload positions would collide
        for position in range(signed - 1, 9, -1):
            conn.execute(
                text(f"UPDATE events SET position = {position + 1} WHERE position = {position}")
            )
        conn.execute(
            text(
                "INSERT INTO events (position, event_id, type, schema_version, project, entity, "
                "actor, occurred_at, recorded_at, body, personal_refs, trace_id, leaf_hash) "
                "SELECT 10, '00000000-0000-7000-8000-000000000000', type, schema_version, "
                "project, entity, 'mallory', occurred_at, recorded_at, body, personal_refs, "
                "trace_id, leaf_hash FROM events WHERE position = 11"
            )
        )
        conn.execute(
            text("UPDATE events SET leaf_hash = :h WHERE position = 10"), {"h": leaf_of(conn, 10)}
        )
    report = verified(ledger.store, key)
    assert report.first_bad_position == 10
    assert kinds(report)[0] == ("leaf-rewritten", 10)


def test_reordered_events_are_named(ledger: Ledger, key: SigningKey, signed: int) -> None:
    with bypass(ledger.store) as conn:
        conn.execute(text("UPDATE events SET position = -1 WHERE position = 3"))
        conn.execute(text("UPDATE events SET position = 3 WHERE position = 4"))
        conn.execute(text("UPDATE events SET position = 4 WHERE position = -1"))
    report = verified(ledger.store, key)
    assert report.first_bad_position == 3
    assert kinds(report)[:2] == [("leaf-mismatch", 3), ("leaf-mismatch", 4)]


def test_changed_prediction_rows_are_named(ledger: Ledger, key: SigningKey, signed: int) -> None:
    with ledger.store.read() as conn:
        position = conn.execute(text("SELECT MIN(position) FROM event_payloads")).scalar()
    with bypass(ledger.store) as conn:
        conn.execute(
            text("UPDATE event_payloads SET payload = :p WHERE position = :pos"),
            {"p": b"not the rows", "pos": position},
        )
    report = verified(ledger.store, key)
    assert report.first_bad_position == position
    assert kinds(report) == [("payload", position)]


def test_a_forged_or_deleted_checkpoint_is_named(
    ledger: Ledger, key: SigningKey, signed: int
) -> None:
    with bypass(ledger.store) as conn:
        conn.execute(
            text("UPDATE checkpoints SET root_hash = :r WHERE tree = 'events' AND seq = 1"),
            {"r": b"\0" * 32},
        )
    report = verified(ledger.store, key)
    assert [f.kind for f in report.events.findings] == ["checkpoint-row"]
    with bypass(ledger.store) as conn:
        conn.execute(text("DELETE FROM checkpoints WHERE tree = 'events' AND seq = 1"))
    report = verified(ledger.store, key)
    assert [f.kind for f in report.events.findings] == ["checkpoint-sequence"]


def test_a_checkpoint_signed_by_another_key_does_not_verify(
    ledger: Ledger, key: SigningKey, signed: int
) -> None:
    report = verify(ledger.store, SigningKey.generate(KEY_NAME).verifier())
    assert {f.kind for f in report.events.findings} == {"checkpoint-signature"}
    assert not report.ok


def test_an_edited_trail_entry_is_named(ledger: Ledger, key: SigningKey, signed: int) -> None:
    with bypass(ledger.store) as conn:
        conn.execute(text("UPDATE access_trail SET outcome = 'deny' WHERE seq = 2"))
    report = verified(ledger.store, key)
    assert report.first_bad_trail_seq == 2 and report.first_bad_position is None
    assert next((f.kind, f.index) for f in report.access.findings) == ("leaf-mismatch", 2)


# --- proofs ---------------------------------------------------------------------------------------


def test_a_bundle_proves_an_event_offline(ledger: Ledger, key: SigningKey, signed: int) -> None:
    event = ledger.read(7, 1)[0]
    bundle = make_bundle(ledger.store, 7)
    assert bundle["tree_size"] == signed
    checked = verify_bundle(json.loads(json.dumps(bundle)), key.verifier())
    assert (checked.index, checked.tree_size) == (7, signed)
    assert checked.entry["event_id"] == event.event_id
    assert checked.entry["position"] == 7

    for change, message in (
        (lambda b: b.update(entry=b["entry"].replace('"position":7', '"position":8')), "hash"),
        (lambda b: b.update(index=8), "index|lead"),
        (lambda b: b["inclusion_proof"].pop(), "inclusion proof"),
        (lambda b: b.update(tree_size=signed - 1), "checkpoint's size"),
        (
            lambda b: b.update(
                checkpoint=b["checkpoint"].replace(f"\n{signed}\n", f"\n{signed + 1}\n")
            ),
            "verify",
        ),
    ):
        forged = json.loads(json.dumps(bundle))
        change(forged)
        with pytest.raises(ProofError, match=message):
            verify_bundle(forged, key.verifier())
    with pytest.raises(ProofError, match="does not verify"):
        verify_bundle(bundle, SigningKey.generate(KEY_NAME).verifier())


def test_a_bundle_of_a_trail_entry(ledger: Ledger, key: SigningKey, signed: int) -> None:
    bundle = make_bundle(ledger.store, 3, "access")
    checked = verify_bundle(bundle, key.verifier())
    assert checked.entry["seq"] == 3 and checked.tree == "access"


def test_an_event_newer_than_the_last_checkpoint_has_no_bundle_yet(
    ledger: Ledger, reg: Registry, key: SigningKey, signed: int
) -> None:
    reg.register_dataset("late", "1", uri="s3://late", digest="sha256:ff")
    with pytest.raises(Conflict, match="not covered by a signed checkpoint"):
        make_bundle(ledger.store, signed)
    with pytest.raises(NotFound, match="no position 999"):
        make_bundle(ledger.store, 999)


def test_a_verifier_holding_a_checkpoint_rejects_a_fork(
    tmp_path: Path, store_url: str, key: SigningKey
) -> None:
    """Two logs with one key share their first events and then differ: a verifier that
    kept a checkpoint of one rejects the other's, and also a rollback to a smaller
    log that was later extended differently."""
    import registry

    def log(name: str, extra: list[str]) -> Store:
        url = store_url if name == "a" else f"sqlite:///{tmp_path}/{name}.db"
        with registry.connect(url, project="p", actor="t") as reg:
            for item in ["x", "y", *extra]:
                reg.register_dataset(item, "1", uri=f"s3://{item}", digest="sha256:00")
        from registry.store import open_store

        return open_store(url)

    a = log("a", ["a1", "a2"])
    b = log("b", ["b1", "b2", "b3"])
    try:
        for store in (a, b):
            note_at = write_checkpoint(store, key)[0]
            assert note_at.size >= 4
        trusted = latest_checkpoint_note(a)
        same = make_bundle(a, 1, since=4)
        assert verify_bundle(same, key.verifier(), trusted).trusted_size == 4
        forked = make_bundle(b, 1, since=4)
        with pytest.raises(ProofError, match="not consistent"):
            verify_bundle(forked, key.verifier(), trusted)
        without = make_bundle(b, 1)
        with pytest.raises(ProofError, match="no consistency proof"):
            verify_bundle(without, key.verifier(), trusted)
    finally:
        a.dispose()
        b.dispose()


def latest_checkpoint_note(store: Store) -> str:
    with store.read() as conn:
        found = latest_checkpoint(conn, "events")
    assert found is not None
    return found.note


def test_a_0002_store_gets_both_trees_on_upgrade(store_url: str, key: SigningKey) -> None:
    """A store at revision 0002 holding events and trail entries: the upgrade builds the
    trail's tree, the events' tree catches up as a projection, and both verify."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from registry.settings import normalise_url
    from registry.store.base import MIGRATIONS, SCHEMA_HEAD

    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(normalise_url(store_url))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        # Rows as revision 0002 wrote them (its code had no trees to extend).
        from registry.events import make_event
        from registry.ids import dataset_id

        conn.execute(
            text(
                "INSERT INTO access_trail (seq, at, actor, project, action, resource, source, "
                "outcome, status, reason, trace_id, leaf_hash) VALUES (:seq, "
                "'2026-01-01T00:00:00.000000Z', 'k', 'p', 'a', '/r', 's', 'allow', 200, 'ok', "
                "NULL, :leaf)"
            ),
            [
                {
                    "seq": seq,
                    "leaf": auth.trail_leaf_hash(
                        {
                            "seq": seq,
                            "at": "2026-01-01T00:00:00.000000Z",
                            "actor": "k",
                            "project": "p",
                            "action": "a",
                            "resource": "/r",
                            "source": "s",
                            "outcome": "allow",
                            "status": 200,
                            "reason": "ok",
                            "trace_id": None,
                        }
                    ),
                }
                for seq in range(5)
            ],
        )
    engine.dispose()
    ledger = open_ledger(store_url)  # migrates to head
    try:
        with ledger.store.read() as conn:
            assert (
                conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                == SCHEMA_HEAD
            )
            assert StoredTree(conn, TRAIL).size() == 5
        event = make_event(
            "dataset-version-registered",
            project="p",
            entity=dataset_id("p", "d", "1"),
            actor="t",
            body={"name": "d", "version": "1", "digest": "sha256:00", "uri": "s3://d"},
        )
        assert ledger.append([event]) == [0]
        assert ledger.read()[0].event_id == event.event_id
        with ledger.store.read() as conn:
            assert StoredTree(conn, EVENTS).size() == 1
        write_checkpoint(ledger.store, key)
        write_checkpoint(ledger.store, key, "access")
        report = verified(ledger.store, key)
        assert report.ok, report.summary()
        assert (report.events.size, report.access.size) == (1, 5)
    finally:
        ledger.close()


def test_a_verifier_holding_a_checkpoint_rejects_a_rollback(
    ledger: Ledger, reg: Registry, key: SigningKey
) -> None:
    """Someone with the database and the key cuts the log back, deletes the checkpoints,
    and signs anew: a verifier that kept the old checkpoint rejects both the shorter log
    and the shorter log grown again with other events."""
    for i in range(6):
        reg.register_dataset(f"d{i}", "1", uri=f"s3://d{i}", digest="sha256:00")
    kept = write_checkpoint(ledger.store, key)[0]
    assert kept.size == 6
    with bypass(ledger.store) as conn:
        conn.execute(text("DELETE FROM events WHERE position >= 4"))
        conn.execute(text("DELETE FROM checkpoints"))
    ledger.rebuild()
    rolled_back = write_checkpoint(ledger.store, key)[0]
    assert (rolled_back.seq, rolled_back.size) == (0, 4)
    with pytest.raises(ProofError, match="no consistency proof"):
        verify_bundle(make_bundle(ledger.store, 1), key.verifier(), kept.note)
    with pytest.raises(Exception, match="beyond the events log"):
        make_bundle(ledger.store, 1, since=6)

    for i in range(3):
        reg.register_dataset(f"other{i}", "1", uri=f"s3://o{i}", digest="sha256:11")
    regrown = write_checkpoint(ledger.store, key)[0]
    assert regrown.size == 7
    bundle = make_bundle(ledger.store, 1, since=6)
    assert verify_bundle(bundle, key.verifier()).tree_size == 7  # fine on its own...
    with pytest.raises(ProofError, match="forked, rewritten or rolled back"):
        verify_bundle(bundle, key.verifier(), kept.note)  # ...but not after what we saw


def test_a_checkpoint_of_the_empty_tree_is_extended(ledger: Ledger, key: SigningKey) -> None:
    """A new database's first checkpoints sign empty trees; later ones extend them."""
    for tree in ("events", "access"):
        empty, written = write_checkpoint(ledger.store, key, tree)
        assert written and (empty.size, empty.root) == (0, merkle.EMPTY_ROOT)
    trail(ledger.store, 2)
    reg_event = ledger.append(
        [
            make_event(
                "dataset-version-registered",
                project="p",
                entity="dataset:p/d@1",
                actor="t",
                body={"name": "d", "version": "1", "digest": "sha256:00", "uri": "s3://d"},
            )
        ]
    )
    assert reg_event == [0] and ledger.read()[0].entity == "dataset:p/d@1"
    for tree, size in (("events", 1), ("access", 2)):
        grown, written = write_checkpoint(ledger.store, key, tree)
        assert written and (grown.seq, grown.size) == (1, size)
    report = verified(ledger.store, key)
    assert report.ok, report.summary()
    assert (report.events.checkpoints, report.access.checkpoints) == (2, 2)


def test_no_checkpoint_is_signed_over_a_truncated_log(
    ledger: Ledger, reg: Registry, key: SigningKey, world: Any
) -> None:
    kept = write_checkpoint(ledger.store, key)[0]
    with bypass(ledger.store) as conn:
        conn.execute(text(f"DELETE FROM event_payloads WHERE position >= {kept.size - 2}"))
        conn.execute(text(f"DELETE FROM events WHERE position >= {kept.size - 2}"))
        conn.execute(text(f"DELETE FROM merkle_nodes WHERE level = 0 AND idx >= {kept.size - 2}"))
    with pytest.raises(IntegrityViolation, match=f"fewer than the {kept.size} of checkpoint #0"):
        write_checkpoint(ledger.store, key)
