"""Whole-ledger checks shared by the multi-process tests (concurrency and crashes)."""

from __future__ import annotations

from typing import Any

from registry.auth import read_trail
from registry.ledger import Ledger
from registry.store import Store


def all_trail(ledger: Ledger) -> list[dict[str, Any]]:
    """The whole access trail, in order."""
    rows: list[dict[str, Any]] = []
    while chunk := read_trail(ledger.store, since=len(rows), limit=1000):
        rows += chunk
    return rows


def check_projections(ledger: Ledger) -> None:
    """Projections at the head, and equal to a replay of the whole log."""
    with ledger.store.read() as conn:
        head = Store.max_position(conn)
        assert set(ledger.runner.positions(conn).values()) == {head}
    digest = ledger.projection_digest()
    assert ledger.rebuild()["digest"] == digest
