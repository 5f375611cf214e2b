"""Events and access-trail entries built by hand, and writes made behind the service
layer's back.

``dataset_event`` builds a valid ``dataset-version-registered`` event in project
``PROJECT`` by ``ACTOR``; ``access_entry`` an allowed access decision for the trail;
``bypass`` opens a transaction in which the database's append-only triggers do not
fire, as someone with raw database access could; ``at_revision`` one on a database
migrated to an old schema revision, to write rows as that revision's code did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, text

from registry.auth import AccessEntry
from registry.events import NewEvent, make_event
from registry.ids import dataset_id
from registry.settings import normalise_url
from registry.store import Store
from registry.store.base import MIGRATIONS

PROJECT = "test"
ACTOR = "tester"
WHEN = "2024-05-01T12:00:00.000000Z"


def dataset_event(
    name: str,
    version: str = "1",
    *,
    derived_from: Sequence[str] = (),
    event_id: str | None = None,
    **extra: Any,
) -> NewEvent:
    """A valid ``dataset-version-registered`` event for ``name@version`` in PROJECT."""
    body = {
        "name": name,
        "version": version,
        "digest": f"sha256:{name}-{version}",
        "uri": f"file:///data/{name}-{version}.csv",
        "derived_from": list(derived_from),
        **extra,
    }
    return make_event(
        "dataset-version-registered",
        project=PROJECT,
        entity=dataset_id(PROJECT, name, version),
        actor=ACTOR,
        body=body,
        occurred_at=WHEN,
        event_id=event_id,
    )


def access_entry(n: int = 0, **fields: Any) -> AccessEntry:
    """An allowed ``questions.scored`` decision on record ``n`` of project ``p``, asked
    by key ``0123456789abcdef`` from 10.0.0.1; ``fields`` override any of its fields."""
    defaults: dict[str, Any] = {
        "actor": "0123456789abcdef",
        "project": "p",
        "action": "questions.scored",
        "resource": f"record:p/{n:032x}",
        "source": "10.0.0.1",
        "outcome": "allow",
        "status": 200,
        "reason": "role viewer allows read",
    }
    return AccessEntry(**{**defaults, **fields})


@contextmanager
def at_revision(url: str, revision: str) -> Iterator[Connection]:
    """A transaction on the database at ``url`` once migrated to schema ``revision``
    (an old one, not the head): rows written in it are as that revision's code wrote
    them. The next ``open_store`` migrates them to the head."""
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            yield conn
    finally:
        engine.dispose()


@contextmanager
def bypass(store: Store) -> Iterator[Connection]:
    """A transaction in which the append-only triggers do not fire: what someone with
    raw access to the database can do."""
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            yield conn
            return
        saved = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        ).all()
        for name, _ in saved:
            conn.execute(text(f"DROP TRIGGER {name}"))
        yield conn
        for _, sql in saved:
            conn.execute(text(sql))
