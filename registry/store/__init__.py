"""Storage backends, chosen by URL."""

from __future__ import annotations

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


__all__ = ["Store", "open_store"]
