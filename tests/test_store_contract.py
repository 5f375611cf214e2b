"""The log's contract, checked the same way on SQLite and on a real PostgreSQL server.

Gap-free 0-based positions, idempotent appends by ``event_id``, atomic batches
(a rejected event leaves the log and every projection as they were), a log the
database itself refuses to change, leaf hashes that the RFC 8785 reference
encoder reproduces, projections kept at the head in the same transaction,
``rebuild`` reproducing the projections, and persistence across reopening.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import rfc8785
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from registry.assembly import open_ledger
from registry.canonical import leaf_hash
from registry.errors import EventRejected, FieldError, LedgerError
from registry.events import NewEvent, StoredEvent, make_event
from registry.ids import dataset_id, deployment_id, model_id, run_id
from registry.ledger import Ledger
from registry.sdk import Registry
from registry.store import Store
from registry.store.schema import LOG_TABLES, T
from tests.support.events import ACTOR, PROJECT, WHEN, dataset_event

LastEvent = Callable[[], StoredEvent]


# --- builders ---------------------------------------------------------------------------


def records_event(dataset: str, n: int) -> NewEvent:
    """A ``dataset-records-added`` event with ``n`` random record pseudonyms."""
    records = [uuid.uuid4().hex for _ in range(n)]
    subjects = [uuid.uuid4().hex if i % 2 else None for i in range(n)]
    return make_event("dataset-records-added", project=PROJECT, entity=dataset, actor=ACTOR,
                      body={"records": records, "subjects": subjects}, occurred_at=WHEN)


def run_started(run: str, **params: Any) -> NewEvent:
    """A ``run-started`` event for ``run``."""
    return make_event("run-started", project=PROJECT, entity=run, actor=ACTOR,
                      body={"job": "train", "params": params}, occurred_at=WHEN)


def new_run() -> str:
    """A fresh run id."""
    return run_id(uuid.uuid4())


def event_ids(events: Sequence[StoredEvent | NewEvent]) -> list[str]:
    return [e.event_id for e in events]


def projections_at(ledger: Ledger) -> tuple[int, dict[str, int]]:
    """The head and every projection's tracking position, read in one snapshot."""
    with ledger.store.read() as conn:
        return Store.max_position(conn), ledger.runner.positions(conn)


def assert_projections_at_head(ledger: Ledger) -> int:
    """Every projection tracks exactly the head of the log; return the head."""
    head, positions = projections_at(ledger)
    assert positions, "no projections registered"
    assert set(positions.values()) == {head}, f"tracking {positions} but head is {head}"
    return head


def populate(reg: Registry) -> dict[str, Any]:
    """A ledger touching every projection: datasets with records, a derived version,
    runs (one failed), models with params and metrics, aliases moved, a deployment
    that switched models, a retired one, predictions and personal data."""
    raw = reg.register_dataset(
        "patients", "1", uri="file:///data/patients.csv", digest="sha256:" + "a" * 64,
        schema={"age": "int", "label": "int"}, tags={"source": "ehr"},
        records=[f"rec-{i}" for i in range(40)], subjects=[f"sub-{i % 8}" for i in range(40)])
    clean = reg.register_dataset(
        "patients-clean", "1", uri="file:///data/clean.csv", digest="sha256:" + "b" * 64,
        records=[f"rec-{i}" for i in range(0, 40, 2)],
        subjects=[f"sub-{i % 8}" for i in range(0, 40, 2)], derived_from=[raw])
    with reg.run("train", params={"C": 1.0, "layers": [64, 32]}, inputs=[clean]) as run:
        run.log_params(seed=7)
        run.log_metrics({"auc": 0.91, "loss": 0.4}, step=1)
        run.log_metrics({"auc": 0.93}, step=2)
        v1 = run.register_model("clf", artifact_uri="file:///m/1", framework="sklearn",
                                artifact_digest="sha256:" + "1" * 64)
        v2 = run.register_model("clf", artifact_uri="file:///m/2", framework="sklearn",
                                artifact_digest="sha256:" + "2" * 64)
        features = run.register_dataset("features", "1", uri="file:///data/features.parquet",
                                        digest="sha256:" + "f" * 64, records=["rec-0", "rec-2"])
    with pytest.raises(RuntimeError), reg.run("evaluate", inputs=[v1], parent=run):
        raise RuntimeError("evaluation crashed")
    reg.set_alias(v1, "production")
    reg.set_alias(v2, "staging")
    reg.set_alias(v2, "production")
    api = reg.deploy("clf-api", endpoint="https://clf.example/v1", served={v1: 100})
    reg.log_predictions(api, model=v1, records=["rec-0", "rec-2", "walk-in"],
                        outputs=[0.1, 0.7, {"label": "high", "p": [0.2, 0.8]}])
    reg.deploy("clf-api", endpoint="https://clf.example/v1", served={v1: 20, v2: 80})
    reg.log_predictions(api, models=[v1, v2, v2], records=["rec-0", "rec-4", "rec-6"],
                        outputs=[0, 1.5e-7, "ünï😀"], trace_ids=["t-1", None, "t-3"])
    reg.deploy("clf-api", endpoint="https://clf.example/v2", served=[v2])
    reg.log_predictions(api, model=v2, records=["rec-8"], outputs=[1])
    old = reg.deploy("old-api", endpoint="https://old.example", served=[v1])
    reg.retire(old, reason="replaced by clf-api")
    reg.store_subject_data("sub-1", {"email": "sub1@example.org", "age": 41})
    return {"raw": raw, "clean": clean, "features": features, "run": run, "v1": v1, "v2": v2,
            "api": api, "old": old}


# --- the contract -------------------------------------------------------------------------


class TestLogContract:
    """One suite, run against every backend through ``store_url``."""

    # positions -------------------------------------------------------------------------

    def test_positions_are_zero_based_and_gap_free_across_batches(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        assert ledger.head() == -1
        assert ledger.read() == []
        assert ledger.last_event() is None
        batches = [[dataset_event("a")],
                   [dataset_event(f"b{i}") for i in range(3)],
                   [dataset_event(f"c{i}") for i in range(5)]]
        returned = [ledger.append(batch) for batch in batches]
        assert returned == [[0], [1, 2, 3], [4, 5, 6, 7, 8]]
        assert ledger.head() == 8

        events = ledger.read()
        assert [e.position for e in events] == list(range(9))
        assert event_ids(events) == event_ids([e for batch in batches for e in batch])
        assert [e.position for e in ledger.read(2, 3)] == [2, 3, 4]
        assert [e.position for e in ledger.read(7, 100)] == [7, 8]
        assert [e.position for e in ledger.read(0, 1)] == [0]
        assert ledger.read(9) == []
        assert ledger.read(100, 10) == []
        assert [e.position for e in ledger.tail(0, batch=2)] == list(range(9))

        newest = last_event()
        assert (newest.position, newest.type) == (8, "dataset-version-registered")
        assert newest.entity == dataset_id(PROJECT, "c4", "1")
        assert newest.body["name"] == "c4" and newest.body["digest"] == "sha256:c4-1"
        assert (newest.project, newest.actor, newest.occurred_at) == (PROJECT, ACTOR, WHEN)
        assert newest.event_id == batches[2][4].event_id

    # idempotency -----------------------------------------------------------------------

    def test_reappending_an_event_returns_its_position_and_writes_nothing(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        first = dataset_event("once")
        assert ledger.append([first]) == [0]
        stored = last_event()
        digest = ledger.projection_digest()

        assert ledger.append([first]) == [0]
        assert ledger.append([first]) == [0]

        assert ledger.head() == 0
        assert ledger.read() == [stored]  # same row: same recorded_at and leaf hash
        assert ledger.projection_digest() == digest
        assert_projections_at_head(ledger)
        assert (stored.type, stored.entity) == ("dataset-version-registered",
                                                dataset_id(PROJECT, "once", "1"))
        assert stored.event_id == first.event_id and stored.body["name"] == "once"

    def test_batch_mixing_old_and_new_ids_writes_only_the_new(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        a, b = dataset_event("a"), dataset_event("b")
        assert ledger.append([a, b]) == [0, 1]
        before = ledger.read()

        c, d = dataset_event("c"), dataset_event("d")
        assert ledger.append([a, c, b, d]) == [0, 2, 1, 3]

        events = ledger.read()
        assert events[:2] == before
        assert event_ids(events) == event_ids([a, b, c, d])
        assert [e.position for e in events] == [0, 1, 2, 3]
        newest = last_event()
        assert (newest.type, newest.entity, newest.event_id) == (
            "dataset-version-registered", dataset_id(PROJECT, "d", "1"), d.event_id)
        assert newest.body["name"] == "d"
        assert_projections_at_head(ledger)

    def test_duplicate_ids_within_one_batch_are_written_once(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        a, b = dataset_event("a"), dataset_event("b")
        assert ledger.append([a, a, b, a, b]) == [0, 0, 1, 0, 1]
        events = ledger.read()
        assert event_ids(events) == [a.event_id, b.event_id]
        newest = last_event()
        assert (newest.position, newest.type, newest.entity) == (
            1, "dataset-version-registered", dataset_id(PROJECT, "b", "1"))
        assert newest.body["name"] == "b"
        with ledger.store.read() as conn:
            cat = T["cat_datasets"]
            assert conn.execute(select(func.count()).select_from(cat)).scalar_one() == 2

    def test_reappending_a_whole_run_is_a_no_op(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """Retrying a batch that already went through (e.g. after a lost reply) is safe,
        even though the events would be refused as new (run already started)."""
        run = new_run()
        batch = [run_started(run, lr=0.1),
                 make_event("run-completed", project=PROJECT, entity=run, actor=ACTOR, body={})]
        assert ledger.append(batch) == [0, 1]
        digest = ledger.projection_digest()
        assert ledger.append(batch) == [0, 1]
        assert ledger.head() == 1
        assert ledger.projection_digest() == digest
        newest = last_event()
        assert (newest.type, newest.entity, newest.body) == ("run-completed", run, {})

    # atomic batches --------------------------------------------------------------------

    @staticmethod
    def _seed(ledger: Ledger) -> dict[str, str]:
        """Some state in every projection, so that an unchanged digest means something."""
        base = dataset_event("base")
        run = new_run()
        ledger.append([base, records_event(base.entity, 6), run_started(run, C=1.0)])
        return {"dataset": base.entity, "run": run}

    @pytest.mark.parametrize("case", ["unknown-parent", "unknown-run", "ended-run",
                                      "bad-body-type", "unknown-body-field", "unknown-input"])
    def test_a_bad_event_rejects_the_whole_batch(
            self, ledger: Ledger, last_event: LastEvent, case: str) -> None:
        seeded = self._seed(ledger)
        head, digest = ledger.head(), ledger.projection_digest()
        _, tracking = projections_at(ledger)
        before = ledger.read()

        good = [dataset_event("fresh"), records_event(dataset_id(PROJECT, "fresh", "1"), 3)]
        missing = dataset_id(PROJECT, "nope", "1")
        bad: NewEvent
        if case == "unknown-parent":
            bad = dataset_event("child", derived_from=[seeded["dataset"], missing])
            field, words = "body.derived_from.1", ["unknown dataset version", missing]
        elif case == "unknown-run":
            ghost = new_run()
            bad = make_event("run-metrics-logged", project=PROJECT, entity=ghost, actor=ACTOR,
                             body={"metrics": [{"key": "auc", "value": 0.9}]})
            field, words = "entity", ["unknown run", ghost]
        elif case == "ended-run":
            # Ended earlier in the same batch: the check sees the batch so far.
            good.append(make_event("run-completed", project=PROJECT, entity=seeded["run"],
                                   actor=ACTOR, body={}))
            bad = make_event("run-params-logged", project=PROJECT, entity=seeded["run"],
                             actor=ACTOR, body={"params": {"late": True}})
            field, words = "entity", ["already ended", "completed"]
        elif case == "bad-body-type":
            # Built directly, as a client sending events over the wire would.
            bad = NewEvent(event_id=str(uuid.uuid4()), type="dataset-version-registered",
                           schema_version=1, project=PROJECT,
                           entity=dataset_id(PROJECT, "typed", "1"), actor=ACTOR,
                           occurred_at=WHEN, body={"name": "typed", "version": "1",
                                                   "digest": "sha256:x", "uri": "file:///x",
                                                   "row_count": "many"})
            field, words = "body.row_count", ["integer"]
        elif case == "unknown-body-field":
            bad = NewEvent(event_id=str(uuid.uuid4()), type="run-completed", schema_version=1,
                           project=PROJECT, entity=seeded["run"], actor=ACTOR, occurred_at=WHEN,
                           body={"email": "someone@example.org"})
            field, words = "body.email", ["extra"]
        else:
            bad = make_event("run-inputs-used", project=PROJECT, entity=seeded["run"],
                             actor=ACTOR, body={"inputs": [seeded["dataset"], missing]})
            field, words = "body.inputs.1", [missing]
        batch = [*good, bad, dataset_event("after")]
        index = len(good)

        with pytest.raises(EventRejected) as caught:
            ledger.append(batch)

        rejected = caught.value
        assert rejected.index == index
        assert rejected.field == field
        assert rejected.event_id == bad.event_id and rejected.event_type == bad.type
        message = str(rejected)
        assert f"event #{index}" in message and repr(field) in message
        assert "nothing in the batch was written" in message
        for word in words:
            assert word.lower() in message.lower(), (word, message)

        assert ledger.head() == head
        assert ledger.read() == before
        assert ledger.projection_digest() == digest
        assert projections_at(ledger) == (head, tracking)
        newest = last_event()
        assert newest == before[-1] and newest.type == "run-started"

        # The same batch without the bad event goes through, at the next positions.
        batch.remove(bad)
        assert ledger.append(batch) == list(range(head + 1, head + 1 + len(batch)))
        newest = last_event()
        assert (newest.type, newest.entity) == ("dataset-version-registered",
                                                dataset_id(PROJECT, "after", "1"))
        assert newest.body["name"] == "after"
        assert_projections_at_head(ledger)

    def test_events_may_refer_to_what_the_same_batch_registers(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        parent = dataset_event("parent")
        run = new_run()
        batch = [parent, dataset_event("child", derived_from=[parent.entity]),
                 records_event(parent.entity, 2), run_started(run),
                 make_event("run-inputs-used", project=PROJECT, entity=run, actor=ACTOR,
                            body={"inputs": [parent.entity]})]
        assert ledger.append(batch) == [0, 1, 2, 3, 4]
        newest = last_event()
        assert (newest.type, newest.entity) == ("run-inputs-used", run)
        assert newest.body == {"inputs": [parent.entity]}

    def test_a_failure_after_the_projections_ran_rolls_everything_back(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """A write that must stand or fall with the events (``before_commit``) failing
        after the events were stored and projected leaves nothing behind."""
        self._seed(ledger)
        head, digest = ledger.head(), ledger.projection_digest()
        before = ledger.read()
        seen: list[tuple[int, dict[str, int]]] = []

        def fail(conn: Any) -> None:
            seen.append((Store.max_position(conn), ledger.runner.positions(conn)))
            raise RuntimeError("vault write failed")

        with pytest.raises(RuntimeError, match="vault write failed"):
            ledger.append([dataset_event("doomed"), records_event(
                dataset_id(PROJECT, "doomed", "1"), 4)], before_commit=fail)

        # Inside the transaction the events and projections were there ...
        assert seen == [(head + 2, dict.fromkeys(seen[0][1], head + 2))]
        # ... and after it, none of it is.
        assert ledger.head() == head
        assert ledger.read() == before
        assert ledger.projection_digest() == digest
        assert last_event() == before[-1]
        assert_projections_at_head(ledger)

    def test_an_invalid_name_in_a_body_is_an_event_rejected(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """A body ``name`` that is not a valid name must be rejected like any other bad
        field: EventRejected naming the event and ``body.name``."""
        ledger.append([dataset_event("ok")])
        head, digest = ledger.head(), ledger.projection_digest()
        bad = NewEvent(event_id=str(uuid.uuid4()), type="dataset-version-registered",
                       schema_version=1, project=PROJECT, entity=dataset_id(PROJECT, "fine", "1"),
                       actor=ACTOR, occurred_at=WHEN,
                       body={"name": "not a name!", "version": "1", "digest": "sha256:x",
                             "uri": "file:///x"})
        with pytest.raises(EventRejected) as caught:
            ledger.append([dataset_event("first"), bad])
        assert (caught.value.index, caught.value.field) == (1, "body.name")
        assert ledger.head() == head and ledger.projection_digest() == digest
        assert last_event().entity == dataset_id(PROJECT, "ok", "1")

    def test_an_integer_outside_the_json_safe_range_is_an_event_rejected(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """JSON (I-JSON, RFC 8785) numbers are doubles: an integer beyond 2**53 - 1 cannot
        be canonicalised. ``make_event`` refuses it naming the field; an event whose body
        was given one afterwards is refused by append as an EventRejected naming the
        field, not with an encoder's internal exception."""
        ledger.append([dataset_event("ok")])
        head, digest = ledger.head(), ledger.projection_digest()
        run = new_run()
        with pytest.raises(FieldError) as built:
            run_started(run, seed=2**60)
        assert built.value.field == "body.params.seed" and str(2**60) in str(built.value)
        fine = run_started(run, seed=1)
        copied = fine.model_copy(update={"body": {**fine.body, "params": {"seed": 2**60}}})
        with pytest.raises(LedgerError) as caught:
            ledger.append([dataset_event("fine"), copied])
        assert isinstance(caught.value, EventRejected), type(caught.value)
        assert caught.value.index == 1 and caught.value.field == "body.params.seed"
        assert str(2**60) in str(caught.value)
        assert ledger.head() == head and ledger.projection_digest() == digest
        assert last_event().entity == dataset_id(PROJECT, "ok", "1")

    def test_a_copied_event_with_a_changed_body_is_validated_again(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """``make_event`` validates once; a copy whose body was replaced afterwards
        (``model_copy(update=...)``) must not inherit that approval."""
        event = dataset_event("copied")
        changed = event.model_copy(update={"body": {**event.body, "row_count": -5}})
        with pytest.raises(EventRejected) as caught:
            ledger.append([changed])
        assert (caught.value.index, caught.value.field) == (0, "body.row_count")
        assert ledger.head() == -1
        assert ledger.append([event]) == [0]
        stored = last_event()
        assert (stored.type, stored.entity) == ("dataset-version-registered", event.entity)
        assert stored.body["row_count"] is None

    def test_an_event_built_directly_is_stored_in_its_schema_form(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """An event validated against its schema must be stored as the schema reads it
        (or be rejected): the log must not keep ``"row_count": "12"`` for an integer
        field because validation coerced a copy."""
        event = NewEvent(event_id=str(uuid.uuid4()), type="dataset-version-registered",
                         schema_version=1, project=PROJECT, entity=dataset_id(PROJECT, "lax", "1"),
                         actor=ACTOR, occurred_at=WHEN,
                         body={"name": "lax", "version": "1", "digest": "sha256:x",
                               "uri": "file:///x", "row_count": "12"})
        try:
            ledger.append([event])
        except EventRejected as rejected:
            assert rejected.field == "body.row_count"
            assert ledger.head() == -1
            return
        stored = last_event()
        assert (stored.type, stored.entity) == ("dataset-version-registered", event.entity)
        assert stored.body["row_count"] == 12, stored.body

    # immutability ----------------------------------------------------------------------

    def test_the_database_refuses_to_change_the_log(
            self, ledger: Ledger, reg: Registry, last_event: LastEvent) -> None:
        populate(reg)  # predictions too, so every log table holds rows
        marker = dataset_event("marker")
        head = ledger.append([marker])[0]
        before = ledger.read()
        digest = ledger.projection_digest()

        def snapshot() -> dict[str, list[tuple[Any, ...]]]:
            with ledger.store.read() as conn:
                return {table: [tuple(row) for row in conn.execute(
                    text(f"SELECT * FROM {table} ORDER BY position"))] for table in LOG_TABLES}

        rows = snapshot()
        assert all(rows.values()), {table: len(r) for table, r in rows.items()}
        statements = [
            "UPDATE events SET actor = 'mallory' WHERE position = 1",
            "UPDATE events SET body = '{}'",
            f"UPDATE events SET leaf_hash = leaf_hash WHERE position = {head}",
            "DELETE FROM events WHERE position = 1",
        ]
        for table in LOG_TABLES:
            statements += [
                f"UPDATE {table} SET position = position + 1000",
                f"DELETE FROM {table} WHERE position = (SELECT MAX(position) FROM {table})",
                f"DELETE FROM {table}",
            ]
            if ledger.store.dialect == "postgresql":
                statements += [f"TRUNCATE {table}", f"TRUNCATE TABLE {table} CASCADE"]
        for statement in statements:
            with pytest.raises(DBAPIError, match="append-only"), \
                    ledger.store.engine.begin() as conn:
                conn.execute(text(statement))
            assert snapshot() == rows, statement

        assert ledger.read() == before
        assert ledger.projection_digest() == digest
        newest = last_event()
        assert (newest.position, newest.type, newest.entity) == (
            head, "dataset-version-registered", marker.entity)
        assert newest.body["name"] == "marker"
        # The log still takes appends after the refused statements.
        assert ledger.append([dataset_event("after")]) == [head + 1]
        assert last_event().entity == dataset_id(PROJECT, "after", "1")

    # leaf hashes -----------------------------------------------------------------------

    def test_leaf_hashes_match_the_reference_encoder(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        run = new_run()
        model = model_id(PROJECT, "clf", "1")
        deployment = deployment_id(PROJECT, "api")
        subject = uuid.uuid4().hex
        floats = [0.1, 1e-7, 1e-6, 2.5e-5, 1e21, 1.5e300, 5e-324, 1.0, -0.0, 3.141592653589793,
                  123456.789, 1e15, -1.5, 2.0**52]
        tricky = {
            "floats": floats,
            "ints": [0, -1, 2**53 - 1, -(2**53 - 1)],
            "unicode": ["é", "€", "😀", "模型", "e\u0301", "\u2028\u2029", "\u0001\u001f\u007f",
                        "\"quoted\" \\ back/slash", "tab\tnew\nline"],
            # UTF-16 order (JCS) puts the astral key first; code-point order would not.
            "keys": {"\ufb01": 1, "😀": 2, "a": 3, "A": 4, "é": 5, "": 6},
            "nested": {"layers": [64, {"dropout": 0.5, "act": None, "flags": [True, False]}],
                       "empty": {}, "none": []},
        }
        batch = [
            run_started(run, **tricky),
            make_event("run-metrics-logged", project=PROJECT, entity=run, actor="tëster 😀",
                       body={"metrics": [{"key": "auc", "value": 0.9312, "step": 1},
                                         {"key": "loss", "value": 1e-9, "step": None},
                                         {"key": "big", "value": 1e100}]},
                       trace_id="trace-Ω-1"),
            dataset_event("unicode-tags", tags={"owner": "José", "note": "Ǆ 𝄞 ☃"},
                          schema={"naïve": "float"}),
            make_event("model-version-registered", project=PROJECT, entity=model, actor=ACTOR,
                       body={"name": "clf", "version": "1", "run": run,
                             "artifact_uri": "s3://bücket/模型", "artifact_digest": "sha256:00"}),
            make_event("deployment-configured", project=PROJECT, entity=deployment, actor=ACTOR,
                       body={"endpoint": "https://api", "served": [
                           {"model": model, "traffic": 100.0}]}),
            make_event("subject-data-stored", project=PROJECT,
                       entity=f"subject:{PROJECT}/{subject}", actor=ACTOR,
                       body={"entry": str(uuid.uuid4()), "fields": ["email"]},
                       personal_refs=(str(uuid.uuid4()),)),
            make_event("run-completed", project=PROJECT, entity=run, actor=ACTOR, body={}),
        ]
        assert ledger.append(batch) == list(range(len(batch)))

        stored = ledger.read()
        assert len(stored) == len(batch)
        for sent, event in zip(batch, stored, strict=True):
            reference = leaf_hash(rfc8785.dumps(event.hashed_form()))
            assert event.leaf_hash == reference, (event.position, event.type)
            assert len(event.leaf_hash) == 32
            assert event.body == sent.body  # 1.0 reads back as 1, -0.0 as 0: equal values
            assert event.personal_refs == sent.personal_refs
            assert event.trace_id == sent.trace_id
        assert len({e.leaf_hash for e in stored}) == len(stored)
        started = stored[0].body["params"]
        assert started["floats"] == floats
        assert started["keys"] == tricky["keys"]
        newest = last_event()
        assert (newest.type, newest.entity, newest.body) == ("run-completed", run, {})

    def test_leaf_hashes_of_random_bodies_match_the_reference_encoder(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """Seeded random nested values: long lists with a few floats that need the
        reference encoder, deep dicts, keys from every Unicode plane."""
        rng = random.Random(8785)
        batch = [run_started(new_run(), **{f"p{i}": random_json(rng, 4) for i in range(6)})
                 for _ in range(25)]
        ledger.append(batch)
        stored = ledger.read()
        for sent, event in zip(batch, stored, strict=True):
            assert event.leaf_hash == leaf_hash(rfc8785.dumps(event.hashed_form()))
            assert event.body == sent.body
        newest = last_event()
        assert (newest.type, newest.entity) == ("run-started", batch[-1].entity)
        assert newest.body["params"] == batch[-1].body["params"]

    def test_leaf_hash_of_a_large_integral_float_is_reproducible(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """1e16 is canonicalised as the integer literal 10000000000000000, which reads
        back as a Python int beyond 2**53: the reference encoder then refuses the
        event's own hashed form, so nobody can re-verify its leaf hash."""
        run = new_run()
        ledger.append([run_started(run, budget=1e16)])
        event = last_event()
        assert (event.type, event.entity) == ("run-started", run)
        assert event.body["params"]["budget"] == 1e16
        assert event.leaf_hash == leaf_hash(rfc8785.dumps(event.hashed_form()))

    def test_leaf_hashes_of_sdk_events_match_the_reference_encoder(
            self, ledger: Ledger, reg: Registry, last_event: LastEvent) -> None:
        populate(reg)
        events = ledger.read()
        assert len(events) > 20
        for event in events:
            assert event.leaf_hash == leaf_hash(rfc8785.dumps(event.hashed_form())), event.type
        newest = last_event()
        assert newest.type == "subject-data-stored"
        assert newest.body["fields"] == ["age", "email"]
        assert newest.personal_refs == (newest.body["entry"],)

    # projections -----------------------------------------------------------------------

    def test_records_repeated_across_a_versions_events_count_once(
            self, ledger: Ledger, reg: Registry, last_event: LastEvent) -> None:
        """A version's records span several ``dataset-records-added`` events (10,000
        each); one listed again, in its own event or a later one, stays one row."""
        keys = [f"k{i}" for i in range(12_000)] + ["k5", "k11000", "k3"]
        raw = reg.register_dataset("many", "1", uri="file:///many", digest="sha256:m",
                                   records=keys)
        assert raw.records == 12_000
        events = [e for e in ledger.read() if e.type == "dataset-records-added"]
        assert [len(e.body["records"]) for e in events] == [10_000, 2_003]
        assert {e.entity for e in events} == {raw.id} and last_event().entity == raw.id
        with ledger.store.read() as conn:
            index, counts = T["record_index"], T["dataset_record_counts"]
            rows = conn.execute(select(func.count()).select_from(index)
                                .where(index.c.dataset == raw.id)).scalar()
            counted = conn.execute(select(counts.c.records)
                                   .where(counts.c.dataset == raw.id)).scalar()
        assert rows == counted == 12_000

    def test_projections_track_the_head_after_every_append(
            self, ledger: Ledger, reg: Registry, last_event: LastEvent) -> None:
        assert projections_at(ledger)[0] == -1
        raw = reg.register_dataset("raw", "1", uri="file:///raw", digest="sha256:r",
                                   records=["k1", "k2", "k3"], subjects=["s1", None, "s1"])
        assert assert_projections_at_head(ledger) == 1
        event = last_event()
        assert (event.type, event.entity) == ("dataset-records-added", raw.id)
        assert len(event.body["records"]) == 3 and event.body["subjects"][1] is None

        run = reg.run("train", params={"C": 0.5}, inputs=[raw])
        run.__enter__()
        assert assert_projections_at_head(ledger) == 1  # a run's records are buffered

        run.log_metrics({"auc": 0.8})
        model = run.register_model("clf", artifact_uri="file:///m", artifact_digest="sha256:m")
        run.flush()
        assert assert_projections_at_head(ledger) == 5
        started = ledger.read(2, 1)[0]
        assert (started.type, started.entity, started.body["job"]) == ("run-started", run.id,
                                                                        "train")
        assert started.body["params"] == {"C": 0.5}
        event = last_event()
        assert (event.type, event.entity) == ("model-version-registered", model.id)
        assert event.body["run"] == run.id

        run.__exit__(None, None, None)
        assert assert_projections_at_head(ledger) == 6
        assert (last_event().type, last_event().entity) == ("run-completed", run.id)

        reg.set_alias(model, "production")
        assert assert_projections_at_head(ledger) == 7
        event = last_event()
        assert (event.type, event.entity, event.body) == (
            "model-alias-moved", model.id, {"alias": "production"})

        api = reg.deploy("api", endpoint="https://api", served=[model])
        assert assert_projections_at_head(ledger) == 8
        event = last_event()
        assert (event.type, event.entity) == ("deployment-configured", api.id)
        assert event.body["served"] == [{"model": model.id, "traffic": 100.0}]

        reg.log_predictions(api, model=model, records=["k1", "k9"], outputs=[1, 0])
        assert assert_projections_at_head(ledger) == 9
        event = last_event()
        assert (event.type, event.entity) == ("predictions-logged", api.id)
        assert event.body["models"] == [model.id]

        extra = dataset_event("extra")
        assert ledger.append([extra]) == [10]
        assert assert_projections_at_head(ledger) == 10
        event = last_event()
        assert (event.type, event.entity, event.body["name"]) == (
            "dataset-version-registered", extra.entity, "extra")

        # A retried batch writes nothing and leaves the tracking where it was.
        assert ledger.append([extra]) == [10]
        assert assert_projections_at_head(ledger) == 10

        # A rejected batch leaves it too.
        with pytest.raises(EventRejected):
            ledger.append([dataset_event("orphan", derived_from=[dataset_id(PROJECT, "x", "9")])])
        assert assert_projections_at_head(ledger) == 10

        # Read-your-writes: the catalogue knows what was just appended.
        with ledger.store.read() as conn:
            runs = T["cat_runs"]
            status = conn.execute(select(runs.c.status).where(runs.c.id == run.id)).scalar()
        assert status == "completed"
        assert reg.scored("k1")["times_scored"] == 1

    def test_an_append_catches_up_projections_left_behind(
            self, ledger: Ledger, reg: Registry, last_event: LastEvent) -> None:
        populate(reg)
        with ledger.store.append_transaction() as conn:
            ledger.runner.reset(conn)
        head, tracking = projections_at(ledger)
        assert set(tracking.values()) == {-1} and head > 0

        late = reg.register_dataset("late", "1", uri="file:///late", digest="sha256:l",
                                    records=["rec-0"], subjects=["sub-0"])
        assert assert_projections_at_head(ledger) == head + 2
        event = last_event()
        assert (event.type, event.entity) == ("dataset-records-added", late.id)
        caught_up = ledger.projection_digest()
        assert ledger.rebuild()["digest"] == caught_up
        assert len(reg.footprint("sub-0")["datasets"]) >= 2

    def test_rebuild_reproduces_every_projection(
            self, ledger: Ledger, reg: Registry, last_event: LastEvent) -> None:
        made = populate(reg)
        head = ledger.head()
        digest = ledger.projection_digest()

        # The ledger really holds what the digest is meant to cover.
        history = reg.history(made["api"])
        assert [i["model"] for i in history["intervals"]] == [
            made["v1"].id, made["v1"].id, made["v2"].id, made["v2"].id]
        assert history["intervals"][0]["to"] is not None
        assert reg.scored("rec-0")["times_scored"] == 2
        with ledger.store.read() as conn:
            counts = {name: conn.execute(select(func.count()).select_from(T[name])).scalar_one()
                      for name in ("record_index", "prediction_index", "alias_history",
                                   "deployment_history", "lineage_edges", "cat_runs")}
        assert all(counts.values()), counts

        result = ledger.rebuild()
        assert result == {"events": head + 1, "digest": digest}
        assert ledger.projection_digest() == digest
        assert assert_projections_at_head(ledger) == head

        # The digest does see a difference: an emptied projection changes it.
        with ledger.store.append_transaction() as conn:
            ledger.runner.reset(conn)
        assert ledger.projection_digest() != digest
        assert ledger.rebuild()["digest"] == digest

        # A ledger opened afresh rebuilds to the same state.
        other = open_ledger(ledger.store.url)
        try:
            assert other.rebuild()["digest"] == digest
        finally:
            other.close()
        assert ledger.head() == head
        newest = last_event()
        assert newest.type == "subject-data-stored" and newest.body["fields"] == ["age", "email"]

    # persistence -----------------------------------------------------------------------

    def test_a_reopened_store_sees_the_same_events(
            self, store_url: str, reg: Registry, last_event: LastEvent) -> None:
        populate(reg)
        first = open_ledger(store_url)
        try:
            events, digest, head = first.read(), first.projection_digest(), first.head()
        finally:
            first.close()
        reg.close()
        assert head == len(events) - 1 > 0

        again = open_ledger(store_url)
        try:
            assert again.head() == head
            assert again.read() == events
            assert again.projection_digest() == digest
            added = dataset_event("after-reopen")
            assert again.append([added]) == [head + 1]
            assert again.read(head + 1) == [again.last_event()]
        finally:
            again.close()
        newest = last_event()
        assert (newest.position, newest.type, newest.entity) == (
            head + 1, "dataset-version-registered", added.entity)
        assert newest.event_id == added.event_id and newest.body["name"] == "after-reopen"


    def test_a_batch_checks_the_runs_it_names_together(
            self, ledger: Ledger, last_event: LastEvent) -> None:
        """The references of a batch are looked up at once: runs of earlier appends,
        runs started earlier in the batch, and an unknown run all answer as alone."""
        earlier = new_run()
        ledger.append([run_started(earlier)])
        head = ledger.head()
        runs = [new_run() for _ in range(600)]  # more than one lookup chunk
        batch = [run_started(r, i=i) for i, r in enumerate(runs)]
        batch += [make_event("run-completed", project=PROJECT, entity=r, actor=ACTOR,
                             body={}, occurred_at=WHEN) for r in [earlier, *runs[:5]]]
        positions = ledger.append(batch)
        assert positions == list(range(head + 1, head + 1 + len(batch)))
        newest = last_event()
        assert (newest.type, newest.entity) == ("run-completed", runs[4])

        unknown = new_run()
        again = [run_started(new_run()),
                 make_event("run-completed", project=PROJECT, entity=runs[5], actor=ACTOR,
                            body={}, occurred_at=WHEN),
                 make_event("run-completed", project=PROJECT, entity=unknown, actor=ACTOR,
                            body={}, occurred_at=WHEN),
                 run_started(runs[6])]
        with pytest.raises(EventRejected) as raised:
            ledger.append(again)
        assert raised.value.index == 2 and unknown in str(raised.value)
        assert ledger.head() == positions[-1]  # nothing of the batch was written
        with pytest.raises(EventRejected, match="already started"):
            ledger.append([run_started(runs[6])])
        with pytest.raises(EventRejected, match="already ended"):
            ledger.append([make_event("run-completed", project=PROJECT, entity=earlier,
                                      actor=ACTOR, body={}, occurred_at=WHEN)])
        assert ledger.head() == positions[-1]


@pytest.mark.postgres
def test_a_growing_postgresql_log_has_its_statistics_refreshed(
        pg_server: Any, isolated_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each time the log doubles, the planner's statistics are refreshed in the
    background: a log growing faster than autovacuum analyses it is planned from
    what it holds, not from an empty database."""
    import time

    from registry.store import postgres

    monkeypatch.setattr(postgres, "ANALYZE_FROM", 16)
    url = pg_server.create_database()
    ledger = open_ledger(url)
    try:
        def analysed() -> Any:
            with ledger.store.read() as conn:
                return conn.execute(text(
                    "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'events'"
                )).scalar()

        ledger.append([dataset_event("first")])
        assert analysed() is None  # the size a process first sees is its baseline
        ledger.append([dataset_event(f"d{i}") for i in range(40)])
        assert ledger.head() == 40
        assert (last_event := ledger.read(40, 1)[0]).type == "dataset-version-registered"
        assert last_event.body["name"] == "d39"
        deadline = time.monotonic() + 60
        while analysed() is None:
            assert time.monotonic() < deadline, "the statistics were never refreshed"
            time.sleep(0.2)
    finally:
        ledger.close()
        pg_server.drop_database(url.rsplit("/", 1)[1])


SAMPLE_CHARS = "aZ09 _-é€ﬁ\u2028\u0000\u001f\"\\/😀𝄞模"


def random_float(rng: random.Random) -> float:
    """A finite float whose JSON form the reference encoder reads back unchanged:
    below 2**53 or at least 1e21 in magnitude (see the large-integral-float test)."""
    exponent = rng.choice([*range(-320, 15), *range(21, 308)])
    value = rng.choice([1.0, -1.0]) * (1.0 + 9.0 * rng.random()) * 10.0 ** exponent
    return float(round(value)) if rng.random() < 0.2 and abs(value) < 2**52 else value


def random_json(rng: random.Random, depth: int) -> Any:
    """A random JSON value (seeded: the same value on every run)."""
    roll = rng.random()
    if depth <= 0 or roll < 0.45:
        return rng.choice([
            lambda: random_float(rng),
            lambda: rng.randint(-(2**53 - 1), 2**53 - 1),
            lambda: rng.randint(-1000, 1000),
            lambda: "".join(rng.choice(SAMPLE_CHARS) for _ in range(rng.randint(0, 8))),
            lambda: rng.choice([True, False, None]),
        ])()
    if roll < 0.75:
        return [random_json(rng, depth - 1) for _ in range(rng.randint(0, 12))]
    return {"".join(rng.choice(SAMPLE_CHARS) for _ in range(rng.randint(0, 4))):
            random_json(rng, depth - 1) for _ in range(rng.randint(0, 6))}
