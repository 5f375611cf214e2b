"""Storage backends, chosen by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.pool import NullPool

from registry.settings import normalise_url
from registry.store.base import Store


def open_store(url: str | None = None) -> Store:
    """Open (and migrate) the store at ``url``; ``MLLEDGER_DB`` or the default file if None."""
    full = normalise_url(url)
    store: Store
    if full.startswith("sqlite"):
        from registry.store.sqlite import SQLiteStore

        store = SQLiteStore(full)
    else:
        from registry.store.postgres import PostgresStore

        store = PostgresStore(full)
    store.migrate()
    return store


@contextmanager
def opened(url: str | None = None) -> Iterator[Store]:
    """``open_store(url)``, disposed of on leaving the block."""
    store = open_store(url)
    try:
        yield store
    finally:
        store.dispose()


@contextmanager
def peek(url: str, table: str) -> Iterator[Connection | None]:
    """A read-only look at ``table`` of the database at ``url``, which is neither
    created nor migrated: a connection, or None when there is no database file
    (SQLite) or no such table yet.

    For checks made before creating a key file, where opening the store itself
    would create what is being checked for.
    """
    full = normalise_url(url)
    if full.startswith("sqlite:///"):
        path = full[len("sqlite:///") :].split("?", 1)[0]
        if not path or path == ":memory:" or not Path(path).exists():
            yield None
            return
    engine = create_engine(full, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn if inspect(conn).has_table(table) else None
    finally:
        engine.dispose()


__all__ = ["Store", "open_store", "opened", "peek"]
