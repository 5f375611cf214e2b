"""Storage backends, chosen by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.pool import NullPool

from registry.errors import ConfigError, NoLedger
from registry.settings import normalise_url, shown_url
from registry.store.base import Store
from registry.store.postgres import PostgresStore
from registry.store.sqlite import SQLiteStore


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open (and migrate) the store at ``url``; ``MLLEDGER_DB`` or the default file if None.

    With ``create=False`` a database that holds no ledger yet (a SQLite file that does
    not exist, a PostgreSQL database without the log's tables) is not created: the
    error says so, since a mistyped path would otherwise answer from a new, empty
    ledger."""
    full = normalise_url(url)
    if full.startswith("sqlite:///"):
        path = Path(full[len("sqlite:///") :].split("?", 1)[0])
        if path.is_dir():
            raise ConfigError(
                f"the database {path} is a directory; expected a SQLite file (or a "
                "postgresql:// URL): check --db (or MLLEDGER_DB)"
            )
    if not create:
        with peek(full, "events") as found:
            if found is None:
                raise NoLedger(_where(full))
    store: Store = SQLiteStore(full) if full.startswith("sqlite") else PostgresStore(full)
    store.migrate()
    return store


def _where(url: str) -> str:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :].split("?", 1)[0]
        what = (
            f"the database file {path} holds no ledger"
            if Path(path).exists()
            else f"the database file {path} does not exist"
        )
    else:
        what = f"the PostgreSQL database {shown_url(url)} holds no ledger"
    return (
        f"{what}; check --db (or MLLEDGER_DB). Nothing was created: 'mlledger init' "
        "creates a ledger there, as do 'mlledger demo' and a first write"
    )


@contextmanager
def opened(url: str | None = None, *, create: bool = True) -> Iterator[Store]:
    """``open_store(url, create=create)``, disposed of on leaving the block."""
    store = open_store(url, create=create)
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


__all__ = ["NoLedger", "Store", "open_store", "opened", "peek"]
