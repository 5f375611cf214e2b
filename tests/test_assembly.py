"""The ledger core and its composition root: projections and rules come from the layers
that own them (``registry.assembly``), and the core works with whatever it is given."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection

from registry.assembly import PROJECTIONS, RULES, assemble
from registry.errors import EventRejected
from registry.events import NewEvent
from registry.ledger import Ledger
from registry.store import open_store
from registry.store.raw import Raw
from tests.support.events import ACTOR, PROJECT, dataset_event


def test_every_layer_hands_in_its_projections_and_rules() -> None:
    assert [p.name for p in PROJECTIONS] == [
        "catalogue", "record_index", "prediction_index", "lineage", "erasures", "executions",
        "merkle",
    ]  # fmt: skip
    assert set(RULES) == {"erasure-remediated"}


def test_a_bare_core_keeps_the_log_and_the_assembled_ledger_catches_up(
    tmp_path: Path, isolated_env: Path
) -> None:
    """A ledger built without projections appends to the log alone; the next ledger
    built with them applies what it missed before its own batch."""
    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        bare = Ledger(store)
        assert bare.append([dataset_event("first")]) == [0]
        with store.read() as conn:
            raw = Raw(conn)
            assert raw.scalar("SELECT COUNT(*) FROM cat_datasets") == 0
            assert raw.scalar("SELECT COUNT(*) FROM projection_tracking") == 0
        whole = assemble(store)
        assert whole.append([dataset_event("second")]) == [1]
        with store.read() as conn:
            raw = Raw(conn)
            names = [r[0] for r in raw.all("SELECT name FROM cat_datasets ORDER BY name")]
            tracked = dict(raw.all("SELECT name, position FROM projection_tracking"))
        assert names == ["first", "second"]
        assert tracked == {p.name: 1 for p in PROJECTIONS}
        event = whole.last_event()
        assert event is not None and event.entity.endswith("second@1")
    finally:
        store.dispose()


def test_a_rule_refuses_its_whole_batch(tmp_path: Path, isolated_env: Path) -> None:
    seen: list[tuple[int, str]] = []

    def no_drafts(ledger: Ledger, conn: Connection, index: int, event: NewEvent) -> None:
        seen.append((index, event.body["name"]))
        if event.body["name"].startswith("draft"):
            raise EventRejected(index, event.event_id, event.type, "body.name", "a draft")

    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        ledger = Ledger(store, projections=PROJECTIONS,
                        rules={"dataset-version-registered": [no_drafts]})  # fmt: skip
        with pytest.raises(EventRejected) as caught:
            ledger.append([dataset_event("kept"), dataset_event("draft-1")])
        assert (caught.value.index, caught.value.field) == (1, "body.name")
        assert seen == [(0, "kept"), (1, "draft-1")]  # run once the batch was projected
        assert ledger.head() == -1  # the whole batch rolled back, projections too
        assert ledger.append([dataset_event("kept")]) == [0]
        stored = ledger.last_event()
        assert stored is not None and (stored.project, stored.actor) == (PROJECT, ACTOR)
    finally:
        store.dispose()


def test_the_ledger_uses_the_settings_it_is_opened_with(
    tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One Settings instance, handed to the composition root, decides the database, the
    master key file and the signing key of an erasure; the environment is not read
    again behind it."""
    from audit import erasure
    from registry.assembly import open_ledger
    from registry.settings import Settings

    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(tmp_path / "elsewhere" / "master.key"))
    monkeypatch.setenv("MLLEDGER_SIGNING_KEY", str(tmp_path / "elsewhere" / "signing.key"))
    settings = Settings(
        db=f"sqlite:///{tmp_path}/chosen.db",
        key_file=str(tmp_path / "keys" / "master.key"),
        signing_key=str(tmp_path / "keys" / "signing.key"),
    )
    ledger = open_ledger(settings=settings)
    try:
        assert ledger.settings is settings
        assert ledger.store.url == f"sqlite:///{tmp_path}/chosen.db"
        ledger.append([dataset_event("first")])
        appended = ledger.last_event()
        assert appended is not None and appended.type == "dataset-version-registered"
        ledger.vault.keyring.wrap(b"k" * 32, b"context")
        erasure.signing_key(ledger)
    finally:
        ledger.close()
    assert (tmp_path / "keys" / "master.key").exists()
    assert (tmp_path / "keys" / "signing.key").exists()
    assert not (tmp_path / "elsewhere").exists()
