"""Storage backends, chosen by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


__all__ = ["Store", "open_store", "opened"]
