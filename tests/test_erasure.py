"""Erasure of a data subject, on SQLite and PostgreSQL: the plan, the execution, the
answers afterwards, the log still verifying, remediation, and interrupted erasures.

The world is ``tests.support.worlds.build_world``: subject ``ann`` holds ``rec-0`` and
``rec-1`` (in ``raw`` and ``clean``) and ``x-2`` (in ``extra``); ``rec-0`` was scored
three times. Everything downstream of those three dataset versions is affected.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit import erasure
from audit.checkpoints import load_signing_key, write_checkpoint
from audit.proofs import make_bundle, verify_bundle
from audit.verify import verify
from registry.errors import EventRejected, LedgerError, NotFound
from registry.events import StoredEvent
from registry.ledger import Ledger
from registry.sdk import Registry
from registry.store.raw import Raw
from tests.support.events import bypass
from tests.support.worlds import Scenario

LastEvent = Callable[[], StoredEvent]


def count(ledger: Ledger, sql: str, *params: Any) -> int:
    with ledger.store.read() as conn:
        return int(Raw(conn).scalar(sql, params))


def signed(ledger: Ledger) -> Any:
    """A checkpoint of the log as it stands, and the key that signed it."""
    key, _, _ = load_signing_key(ledger.store.url, create=True)
    write_checkpoint(ledger.store, key)
    return key


# --- the plan ----------------------------------------------------------------------------------


def test_a_dry_run_lists_the_cascade_and_changes_nothing(
    reg: Registry, world: Scenario, ledger: Ledger
) -> None:
    head, digest = ledger.head(), ledger.projection_digest()
    plan = reg.erase("ann", dry_run=True)
    assert plan["status"] == "planned" and plan["erasure"] is None
    p = plan["plan"]
    assert p["records"]["count"] == 3
    assert len(p["records"]["references"]) == 3
    assert p["datasets"] == sorted([world.raw.id, world.clean.id, world.extra.id])
    assert p["derived_datasets"] == []
    assert p["runs"] == sorted([world.run1, world.run2, p["runs"][-1]]) or len(p["runs"]) == 3
    assert set(p["models"]) == {world.m1.id, world.m2.id, world.m3.id}
    assert p["deployments"] == [world.api.id]
    assert p["predictions"]["count"] == 3
    assert p["vault_entries"] == 0
    # The plan is stable: asked again, the same answer.
    assert reg.erase("ann", dry_run=True) == plan
    # Pseudonyms never appear in it: the subject is named by its erasure reference.
    pseudonym = ledger.pseudonymizer("test").subject("ann")
    assert pseudonym not in json.dumps(plan)
    assert ledger.head() == head and ledger.projection_digest() == digest


def test_a_subject_the_project_never_held_is_not_found(reg: Registry, world: Scenario) -> None:
    with pytest.raises(NotFound, match="no data subject"):
        reg.erase("nobody")


# --- execution -------------------------------------------------------------------------------


def test_erasing_a_subject_removes_them_everywhere_and_the_log_still_verifies(
    reg: Registry, world: Scenario, ledger: Ledger, last_event: LastEvent
) -> None:
    reg.store_subject_data("ann", {"email": "ann@example.com", "name": "Ann"})
    reg.store_subject_data("bob", {"email": "bob@example.com"})
    key = signed(ledger)
    before_proof = make_bundle(ledger.store, 3)  # a dataset-records-added event of ann's
    others = {k: reg.scored(k) for k in ("rec-2", "x-1")}
    bob = reg.footprint("bob")

    outcome = reg.erase("ann")

    assert outcome["status"] == "erased"
    erased = last_event()
    assert (erased.type, erased.position) == ("subject-erased", outcome["erased_position"])
    assert erased.entity == outcome["subject"]
    assert erased.body["erasure"] == outcome["erasure"]
    assert erased.body["records"] == 3 and erased.body["predictions"] == 3
    assert erased.body["vault_entries"] == 1
    requested = ledger.read(erased.body["request"], 1)[0]
    assert requested.type == "subject-erasure-requested"
    assert requested.body["erasure"] == outcome["erasure"]
    assert {f["status"] for f in erased.body["models"]} == {"retrain-required"}
    assert outcome["purge"] is not None and outcome["checkpoint"]["size"] == erased.position + 1

    # The vault, the key and the request row are gone; the pseudonyms are nowhere.
    pseudo = ledger.pseudonymizer("test")
    subject = pseudo.subject("ann")
    records = pseudo.records(["rec-0", "rec-1", "x-2"])
    for table, column in (("vault_entries", "subject"), ("subject_keys", "subject")):
        assert count(ledger, f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", subject) == 0
    assert count(ledger, "SELECT COUNT(*) FROM erasure_requests") == 0
    with ledger.store.read() as conn:
        for table in ("events", "record_index", "prediction_index"):
            dump = json.dumps(
                [list(map(str, r)) for r in conn.execute(text(f"SELECT * FROM {table}"))]
            )
            assert subject not in dump, table
            for record in records:
                assert record not in dump, (table, record)

    # Questions answer "erased", with the erasure's position; the others are untouched.
    gone = {
        "erasure": outcome["erasure"],
        "position": erased.position,
        "requested_position": requested.position,
    }
    assert reg.scored("rec-0")["erased"].items() >= gone.items()
    assert reg.footprint("ann")["erased"].items() >= gone.items()
    assert reg.lineage(f"record:test/{records[0]}")["erased"]["position"] == erased.position
    assert reg.lineage(outcome["subject"])["erased"]["position"] == erased.position
    assert {k: reg.scored(k) for k in ("rec-2", "x-1")} == others
    assert reg.footprint("bob") == bob
    assert reg.subject_data("ann") == [] and len(reg.subject_data("bob")) == 1
    assert reg.backend.dataset(world.raw.id) == {"digest": world.raw.digest, "records": 8}

    # The log verifies, an earlier proof still does, and the redacted event is provable.
    report = verify(ledger.store, key.verifier())
    assert report.ok, report.summary()
    assert verify_bundle(before_proof, key.verifier()).index == 3
    redacted = make_bundle(ledger.store, 3)
    assert redacted["entry"] is None and redacted["leaf_hash"] == before_proof["leaf_hash"]
    assert verify_bundle(redacted, key.verifier()).redacted_by == erased.position

    # A rebuild replays the redacted log into the same state.
    digest = ledger.projection_digest()
    assert ledger.rebuild()["digest"] == digest


def test_erasing_again_is_a_no_op_that_says_so(
    reg: Registry, world: Scenario, ledger: Ledger
) -> None:
    first = reg.erase("ann", purge=False)
    head = ledger.head()
    again = reg.erase("ann")
    assert again["status"] == "already-erased"
    assert (again["erasure"], again["erased_position"]) == (
        first["erasure"],
        first["erased_position"],
    )
    assert ledger.head() == head  # nothing appended


def test_a_returning_subject_is_erased_again(
    reg: Registry, world: Scenario, ledger: Ledger, last_event: LastEvent
) -> None:
    first = reg.erase("ann", purge=False)
    reg.register_dataset(
        "later", "1", uri="s3://b/later", digest="sha256:09", records=["rec-0"], subjects=["ann"]
    )
    footprint = reg.footprint("ann")
    assert footprint["erased"]["erasure"] == first["erasure"]
    assert [r["datasets"] for r in footprint["records"]] == [["dataset:test/later@1"]]
    second = reg.erase("ann", purge=False)
    assert second["status"] == "erased" and second["erasure"] != first["erasure"]
    assert last_event().body["datasets"] == ["dataset:test/later@1"]
    assert reg.footprint("ann")["erased"]["erasure"] == second["erasure"]


def test_retained_models_carry_their_justification(
    reg: Registry, world: Scenario, last_event: LastEvent
) -> None:
    rule = {"model": world.m2.id, "justification": "legal hold", "approver": "dpo@example"}
    outcome = reg.erase("ann", retain=[rule], purge=False)
    flags = {f["model"]: f for f in last_event().body["models"]}
    assert flags[world.m2.id] == {
        "model": world.m2.id,
        "status": "retained-with-justification",
        "justification": "legal hold",
        "approver": "dpo@example",
    }
    assert flags[world.m1.id]["status"] == "retrain-required"
    assert outcome["models"] == last_event().body["models"]
    remediations = {r["model"]: r["status"] for r in reg.remediations()}
    assert remediations[world.m2.id] == "retained-with-justification"


def test_retaining_a_model_the_erasure_does_not_touch_is_refused(
    reg: Registry, world: Scenario, ledger: Ledger
) -> None:
    head = ledger.head()
    bad = {"model": "model:test/other@1", "justification": "x", "approver": "y"}
    with pytest.raises(LedgerError, match="does not affect it"):
        reg.erase("ann", retain=[bad])
    with pytest.raises(LedgerError, match="justification and an approver"):
        reg.erase("ann", retain=[{"model": "*", "justification": " ", "approver": "y"}])
    assert ledger.head() == head


# --- remediation ---------------------------------------------------------------------------------


def test_a_flagged_model_is_remediated_by_a_version_trained_without_the_erased_records(
    reg: Registry, world: Scenario, ledger: Ledger, last_event: LastEvent
) -> None:
    reg.erase("ann", purge=False)
    open_flags = reg.remediations(status="retrain-required")
    flag = next(f for f in open_flags if f["model"] == world.m1.id)
    keys = [f"rec-{i}" for i in range(10)]
    assert reg.erased_records(keys) == {"rec-0", "rec-1"}

    # Retraining on data that still holds an erased record is refused, whole.
    dirty = reg.register_dataset(
        "raw", "2", uri="s3://b/raw2", digest="sha256:11", records=keys[1:]
    )
    head = ledger.head()
    with (
        pytest.raises(EventRejected, match="holds a record erasure"),
        reg.run("retrain", inputs=[dirty]) as run,
    ):
        run.register_model(
            "clf", artifact_uri="s3://m/4", artifact_digest="sha256:a4", remediates=flag
        )
    assert ledger.head() == head
    # So is retraining on a dataset version the erasure touched.
    with (
        pytest.raises(EventRejected, match="held or came from the erased"),
        reg.run("retrain", inputs=[world.raw]) as run,
    ):
        run.register_model(
            "clf", artifact_uri="s3://m/4", artifact_digest="sha256:a4", remediates=flag
        )
    assert ledger.head() == head

    kept = [k for k in keys if k not in reg.erased_records(keys)]
    cleaned = reg.register_dataset("raw", "3", uri="s3://b/raw3", digest="sha256:12", records=kept)
    with reg.run("retrain", inputs=[cleaned]) as run:
        model = run.register_model(
            "clf", artifact_uri="s3://m/4", artifact_digest="sha256:a4", remediates=flag
        )
    remediated = [e for e in ledger.read(head) if e.type == "erasure-remediated"]
    assert len(remediated) == 1
    assert remediated[0].entity == model.id
    assert remediated[0].body == {"erasure": flag["erasure"], "model": world.m1.id}
    resolved = next(r for r in reg.remediations() if r["model"] == world.m1.id)
    assert resolved["status"] == "remediated" and resolved["resolved_by"] == model.id
    assert world.m1.id not in {f["model"] for f in reg.remediations(status="retrain-required")}

    # A flag once resolved cannot be resolved again.
    with (
        pytest.raises(EventRejected, match="not open"),
        reg.run("retrain", inputs=[cleaned]) as run,
    ):
        run.register_model(
            "clf", artifact_uri="s3://m/5", artifact_digest="sha256:a5", remediates=flag
        )
    digest = ledger.projection_digest()
    assert ledger.rebuild()["digest"] == digest


# --- interruptions -------------------------------------------------------------------------------


def test_an_interrupted_erasure_leaves_a_request_that_is_resumed(
    reg: Registry, world: Scenario, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    footprint, digest = reg.footprint("ann"), ledger.projection_digest()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("power cut")

    # The second transaction fails after its redactions and deletions: all rolled back.
    monkeypatch.setattr(Ledger, "append_locked", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        reg.erase("ann")
    monkeypatch.undo()
    last = ledger.last_event()
    assert last is not None and last.type == "subject-erasure-requested"
    assert erasure.pending_erasures(ledger, "test") == [last.body["erasure"]]
    assert count(ledger, "SELECT COUNT(*) FROM redactions") == 0
    assert reg.footprint("ann") == footprint  # not half-erased: all still there
    assert ledger.projection_digest() != digest  # only the request was recorded

    resumed = reg.resume_erasures()
    assert [r["status"] for r in resumed] == ["resumed"]
    assert resumed[0]["erasure"] == last.body["erasure"]
    assert ledger.last_event().type == "subject-erased"  # type: ignore[union-attr]
    assert erasure.pending_erasures(ledger, "test") == []
    assert reg.footprint("ann")["erased"]["erasure"] == last.body["erasure"]
    assert verify(ledger.store).ok


def test_erasing_a_subject_with_a_pending_request_completes_it(
    reg: Registry, world: Scenario, ledger: Ledger
) -> None:
    pseudo = ledger.pseudonymizer("test")
    subject = pseudo.subject("bob")
    requested = erasure.request(
        ledger, "test", subject, pseudo.erasure_reference(subject), actor="dpo"
    )
    outcome = reg.erase("bob", purge=False)
    assert (outcome["status"], outcome["erasure"]) == ("resumed", requested)


# --- the guard rails ------------------------------------------------------------------------------


def test_the_log_refuses_rewrites_outside_an_erasure(
    reg: Registry, world: Scenario, ledger: Ledger
) -> None:
    reg.erase("ann", purge=False)
    [fresh] = reg.log_predictions(world.api, model=world.m2, records=["rec-2"], outputs=[0.5])
    statements = [
        "UPDATE events SET body = '{}' WHERE position = 0",
        f"UPDATE event_payloads SET payload = payload WHERE position = {fresh}",
        # A redacted event still keeps its envelope.
        "UPDATE events SET actor = 'mallory' WHERE position = 3",
        "UPDATE events SET leaf_hash = leaf_hash || leaf_hash WHERE position = 3",
        "DELETE FROM events WHERE position = 3",
        "UPDATE redactions SET leaf = leaf",
        "DELETE FROM redactions",
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), ledger.store.engine.begin() as conn:
            conn.execute(text(statement))


def test_verify_finds_a_redacted_event_changed_after_its_erasure(
    reg: Registry, world: Scenario, ledger: Ledger
) -> None:
    outcome = reg.erase("ann", purge=False)
    with bypass(ledger.store) as conn:
        conn.execute(
            text("UPDATE events SET body = :b WHERE position = 3"),
            {"b": '{"records":[],"subjects":[]}'},
        )
    report = verify(ledger.store)
    assert not report.ok
    kinds = {f.kind for f in report.events.findings}
    assert "redacted-content" in kinds, report.summary()
    assert report.first_bad_position == 3
    assert outcome["erased_position"] > 3


def test_verify_finds_a_redaction_no_erasure_declared(
    reg: Registry, world: Scenario, ledger: Ledger
) -> None:
    reg.erase("ann", purge=False)
    with bypass(ledger.store) as conn:
        conn.execute(
            text("INSERT INTO redactions (position, erased_pos, leaf) VALUES (0, 1, :l)"),
            {"l": b"\x00" * 32},
        )
    report = verify(ledger.store)
    assert "redaction" in {f.kind for f in report.events.findings}, report.summary()


def test_clients_cannot_append_erasure_events(
    reg: Registry, world: Scenario, tmp_path: Path
) -> None:
    from registry.intake import from_wire

    item = {
        "event_id": "0190b4a4-3000-7000-8000-000000000099",
        "type": "subject-erased",
        "entity": "subject:test/" + "0" * 32,
        "actor": "mallory",
        "body": {},
    }
    with pytest.raises(EventRejected, match="only by the erasure process"):
        from_wire(item, 0, project="test")


def test_a_redacted_payload_keeps_no_byte_of_the_erased_rows() -> None:
    from registry.payloads import decode_predictions, encode_predictions, redact_predictions

    erased, kept = "a" * 32, "b" * 32
    payload = encode_predictions(
        [erased, kept, erased],
        [0, 0, 0],
        ['"secret-1"', '"public"', '"secret-2"'],
        ["2026-01-01T00:00:00.000000Z"] * 3,
        ["trace-secret", None, "trace-secret-2"],
    )
    redacted, rows = redact_predictions(payload, {erased})
    assert rows == 2
    table = decode_predictions(redacted)
    assert table.column("record").to_pylist() == [None, kept, None]
    assert table.column("output").to_pylist() == [None, '"public"', None]
    assert table.column("model").to_pylist() == [0, 0, 0]
    buffers = b"".join(
        bytes(buffer)
        for column in table.columns
        for chunk in column.chunks
        for buffer in chunk.buffers()
        if buffer is not None
    )
    for gone in (erased.encode(), b"secret", b"trace-secret"):
        assert gone not in buffers
    assert redact_predictions(redacted, {erased}) == (redacted, 0)
