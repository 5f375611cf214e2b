"""Personal data never reaches the database in the clear.

Canary strings planted as record keys, subject ids and personal attributes
must appear nowhere in what the database holds: not in the SQLite files (main
file, WAL, shared memory; as UTF-8 or UTF-16) and not in any PostgreSQL table.
The questions asked by the original keys still work, a wrong master key is a
clear error, and pseudonyms are keyed per project, not plain hashes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

import registry
from registry.errors import ConfigError, NotFound
from registry.events import StoredEvent
from registry.ledger import Ledger
from registry.sdk import DatasetVersion, Deployment, ModelVersion, Registry

PROJECT = "test"

LastEvent = Callable[[], StoredEvent]


def canary() -> str:
    """A string that can only be in the database if it leaked there."""
    return f"CANARY-{uuid.uuid4().hex}"


@dataclass
class Planted:
    """Everything planted, and what it was planted in."""

    records: list[str]
    subjects: list[str]
    scored_only: str  # a record key that is only ever scored, never in a dataset
    looked_up: list[str]  # keys only ever asked about (unknown to the ledger)
    attributes: dict[str, str]
    marker: str  # not personal: stored in the clear, proves the scan reads the data
    dataset: DatasetVersion
    model: ModelVersion
    deployment: Deployment
    entry: str

    def secrets(self) -> list[str]:
        """Every planted personal value."""
        return [*self.records, *self.subjects, self.scored_only, *self.looked_up,
                *self.attributes.values()]

    def identifiers(self) -> list[str]:
        """Every planted record key and subject id."""
        return [*self.records, *self.subjects, self.scored_only, *self.looked_up]


def plant(reg: Registry, last_event: LastEvent) -> Planted:
    """Write canaries through every path that takes record keys, subject ids or attributes."""
    records = [canary() for _ in range(3)]
    subjects = [canary() for _ in range(2)]
    marker = f"MARKER-{uuid.uuid4().hex}"
    pseudo = reg.ledger.pseudonymizer(PROJECT)

    dataset = reg.register_dataset(
        "people", "1", uri="file:///data/people.csv", digest="sha256:" + "c" * 64,
        records=records, subjects=[subjects[0], subjects[1], None], tags={"marker": marker})
    event = last_event()
    assert (event.type, event.entity) == ("dataset-records-added", dataset.id)
    assert event.body["records"] == pseudo.records(records)
    assert event.body["subjects"] == [pseudo.subject(subjects[0]), pseudo.subject(subjects[1]),
                                      None]

    with reg.run("train", inputs=[dataset]) as run:
        model = run.register_model("clf", artifact_uri="file:///m/clf",
                                   artifact_digest="sha256:" + "d" * 64)
    deployment = reg.deploy("api", endpoint="https://api.example", served=[model])
    event = last_event()
    assert (event.type, event.entity) == ("deployment-configured", deployment.id)

    scored_only = canary()
    reg.log_predictions(deployment, model=model, records=[records[0], scored_only],
                        outputs=[0.9, {"label": "low"}], trace_ids=["trace-1", None])
    event = last_event()
    assert (event.type, event.entity) == ("predictions-logged", deployment.id)
    assert event.body["models"] == [model.id]

    attributes = {"email": canary(), "name": canary()}
    entry = reg.store_subject_data(subjects[0], attributes)
    event = last_event()
    assert (event.type, event.entity) == ("subject-data-stored",
                                          f"subject:{PROJECT}/{pseudo.subject(subjects[0])}")
    assert event.body == {"entry": entry, "fields": ["email", "name"]}
    assert event.personal_refs == (entry,)

    # Questions asked by keys the ledger never saw must leave no trace either.
    looked_up = [canary(), canary()]
    with pytest.raises(NotFound) as missing_record:
        reg.scored(looked_up[0])
    with pytest.raises(NotFound) as missing_subject:
        reg.footprint(looked_up[1])
    for caught, key in ((missing_record, looked_up[0]), (missing_subject, looked_up[1])):
        assert key not in str(caught.value)  # errors do not echo the raw key
    assert reg.subject_data(looked_up[1]) == []
    return Planted(records, subjects, scored_only, looked_up, attributes, marker, dataset, model,
                   deployment, entry)


# --- what the database holds ------------------------------------------------------------------


def sqlite_dir(store_url: str) -> Path:
    return Path(store_url[len("sqlite:///"):]).parent


def stored_content(store_url: str, ledger: Ledger) -> dict[str, bytes]:
    """Everything the database holds: each file under the SQLite database's directory,
    or the text of every row of every PostgreSQL table."""
    if store_url.startswith("sqlite"):
        return {str(path): path.read_bytes()
                for path in sorted(sqlite_dir(store_url).rglob("*")) if path.is_file()}
    with ledger.store.engine.connect() as conn:
        tables = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "ORDER BY tablename")).scalars().all()
        assert "events" in tables and "vault_entries" in tables, tables
        dump = {}
        for table in tables:
            rows = conn.execute(text(f'SELECT t::text FROM "{table}" AS t')).scalars().all()
            dump[table] = "\n".join(rows).encode("utf-8")
    return dump


def forms(value: str | bytes) -> list[bytes]:
    """How a value could sit in a database: UTF-8, UTF-16 either way, and hex of each."""
    raw = [value] if isinstance(value, bytes) else [
        value.encode("utf-8"), value.encode("utf-16-le"), value.encode("utf-16-be")]
    return [*raw, *(r.hex().encode("ascii") for r in raw)]


def leaks(content: dict[str, bytes], values: Iterable[str | bytes]) -> list[tuple[str, str]]:
    """(where, value) for each value found in any of its forms."""
    found = []
    for value in values:
        for where, data in content.items():
            lowered = data.lower()
            if any(form in data or form.lower() in lowered for form in forms(value)):
                found.append((where, repr(value)))
    return found


def plain_hashes(key: str) -> list[str | bytes]:
    """Unkeyed digests someone could compute from a guessed key."""
    raw = key.encode("utf-8")
    out: list[str | bytes] = []
    for data in (raw, b"record\x00" + raw, b"subject\x00" + raw):
        for name in ("sha256", "sha1", "md5", "sha512"):
            digest = hashlib.new(name, data)
            out += [digest.hexdigest(), digest.hexdigest()[:32], digest.digest()]
    return out


# --- tests ----------------------------------------------------------------------------------


def test_canaries_never_reach_the_database(
        store_url: str, reg: Registry, ledger: Ledger, last_event: LastEvent) -> None:
    planted = plant(reg, last_event)
    pseudo = reg.ledger.pseudonymizer(PROJECT)

    def check(content: dict[str, bytes], moment: str) -> None:
        assert content, f"nothing to scan {moment}"
        assert not leaks(content, planted.secrets()), moment
        # Positive controls: the scan does see what is stored in the clear.
        assert leaks(content, [planted.marker]), f"marker not found {moment}"
        assert leaks(content, [pseudo.record(planted.records[0])]), moment
        assert leaks(content, [pseudo.subject(planted.subjects[0])]), moment

    reg.flush()
    while_open = stored_content(store_url, ledger)
    if store_url.startswith("sqlite"):
        assert any(name.endswith("ledger.db-wal") for name in while_open), list(while_open)
    check(while_open, "while the ledger is open")

    reg.close()
    ledger.close()
    after_close = stored_content(store_url, ledger)
    if store_url.startswith("sqlite"):
        assert any(name.endswith("ledger.db") for name in after_close), list(after_close)
    check(after_close, "after closing")

    # Nor any unkeyed hash of a key: pseudonyms are keyed.
    for key in planted.identifiers():
        assert not leaks(after_close, plain_hashes(key)), key
        assert pseudo.record(key) not in {h for h in plain_hashes(key) if isinstance(h, str)}

    # A fresh connection still answers by the original keys.
    again = registry.connect(store_url, project=PROJECT, actor="auditor")
    try:
        scored = again.scored(planted.records[0])
        assert scored["times_scored"] == 1
        assert scored["record"] == f"record:{PROJECT}/{pseudo.record(planted.records[0])}"
        prediction = scored["predictions"][0]
        assert (prediction["model"], prediction["deployment"], prediction["output"]) == (
            planted.model.id, planted.deployment.id, 0.9)
        only = again.scored(planted.scored_only)
        assert only["times_scored"] == 1
        assert only["predictions"][0]["output"] == {"label": "low"}
        assert again.scored(planted.records[1])["times_scored"] == 0  # in a dataset, unscored

        footprint = again.footprint(planted.subjects[0])
        reference = pseudo.erasure_reference(pseudo.subject(planted.subjects[0]))
        assert footprint["subject"] == f"subject:{PROJECT}/{reference}"
        assert footprint["records"] == [{
            "record": f"record:{PROJECT}/{pseudo.record(planted.records[0])}",
            "datasets": [planted.dataset.id]}]
        assert [d["dataset"] for d in footprint["datasets"]] == [planted.dataset.id]
        assert [p["model"] for p in footprint["predictions"]] == [planted.model.id]
        assert footprint["vault_entries"] == 1
        assert len(again.footprint(planted.subjects[1])["records"]) == 1

        vault = again.subject_data(planted.subjects[0])
        assert [(v["entry"], v["attributes"]) for v in vault] == [(planted.entry,
                                                                   planted.attributes)]
        assert again.subject_data(planted.subjects[1]) == []
        for answer in (scored, only, footprint):
            assert not any(secret in repr(answer) for secret in planted.secrets())
    finally:
        again.close()


def test_another_master_key_is_a_clear_error(
        store_url: str, reg: Registry, ledger: Ledger, last_event: LastEvent,
        monkeypatch: pytest.MonkeyPatch) -> None:
    planted = plant(reg, last_event)
    reg.close()
    head = ledger.head()

    monkeypatch.setenv("MLLEDGER_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    wrong = registry.connect(store_url, project=PROJECT, actor="intruder")
    try:
        attempts: list[Callable[[], object]] = [
            lambda: wrong.scored(planted.records[0]),
            lambda: wrong.footprint(planted.subjects[0]),
            lambda: wrong.subject_data(planted.subjects[0]),
            lambda: wrong.store_subject_data(planted.subjects[0], {"email": canary()}),
            lambda: wrong.log_predictions(planted.deployment.id, model=planted.model.id,
                                          records=[planted.records[1]], outputs=[1]),
            lambda: wrong.register_dataset("more", "1", uri="file:///more", digest="sha256:e",
                                           records=[canary()]),
        ]
        for attempt in attempts:
            with pytest.raises(ConfigError, match="master key") as caught:
                attempt()
            assert "MLLEDGER_MASTER_KEY" in str(caught.value)
            assert not any(secret in str(caught.value) for secret in planted.secrets())
    finally:
        wrong.close()
    assert ledger.head() == head  # nothing was appended by the refused writes
    assert last_event().type == "subject-data-stored"

    # The right key (from the key file) still works.
    monkeypatch.delenv("MLLEDGER_MASTER_KEY")
    right = registry.connect(store_url, project=PROJECT, actor="tester")
    try:
        assert right.scored(planted.records[0])["times_scored"] == 1
        assert right.subject_data(planted.subjects[0])[0]["attributes"] == planted.attributes
    finally:
        right.close()


def test_pseudonyms_are_keyed_per_project(
        store_url: str, reg: Registry, ledger: Ledger, last_event: LastEvent) -> None:
    key, subject = canary(), canary()
    ours = reg.register_dataset("people", "1", uri="file:///p", digest="sha256:p",
                                records=[key], subjects=[subject])
    mine = last_event()
    other = registry.connect(store_url, project="other", actor="tester")
    try:
        theirs = other.register_dataset("people", "1", uri="file:///p", digest="sha256:p",
                                        records=[key], subjects=[subject])
        their = last_event()
        assert (mine.type, mine.entity, mine.project) == ("dataset-records-added", ours.id,
                                                          PROJECT)
        assert (their.type, their.entity, their.project) == ("dataset-records-added",
                                                             theirs.id, "other")
        assert mine.body["records"] != their.body["records"]
        assert mine.body["subjects"] != their.body["subjects"]

        a, b = ledger.pseudonymizer(PROJECT), ledger.pseudonymizer("other")
        assert a.record(key) == mine.body["records"][0]
        assert b.record(key) == their.body["records"][0]
        assert a.record(key) != b.record(key) and a.subject(subject) != b.subject(subject)
        assert a.record(key) != a.subject(key)  # records and subjects are separate domains
        for pseudonym in (a.record(key), b.record(key), a.subject(subject), b.subject(subject)):
            assert len(pseudonym) == 32 and int(pseudonym, 16) >= 0
            assert pseudonym not in {h for h in plain_hashes(key) + plain_hashes(subject)
                                     if isinstance(h, str)}

        # Each project answers only about its own records.
        assert [d["dataset"] for d in reg.footprint(subject)["datasets"]] == [ours.id]
        assert [d["dataset"] for d in other.footprint(subject)["datasets"]] == [theirs.id]
    finally:
        other.close()
    content = stored_content(store_url, ledger)
    assert not leaks(content, [key, subject])
    assert not leaks(content, plain_hashes(key) + plain_hashes(subject))
