"""Events built by hand, and writes made behind the service layer's back.

``dataset_event`` builds a valid ``dataset-version-registered`` event in project
``PROJECT`` by ``ACTOR``; ``bypass`` opens a transaction in which the database's
append-only triggers do not fire, as someone with raw database access could.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text

from registry.events import NewEvent, make_event
from registry.ids import dataset_id
from registry.store import Store

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
