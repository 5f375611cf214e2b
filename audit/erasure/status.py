"""What the ledger holds about erasures: pending requests, completed erasures, the
remediation flags on model versions and which record keys were erased. Read-only;
subjects and records appear by erasure reference, never by pseudonym."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from audit.erasure.plan import chunks
from registry.ids import subject_id
from registry.store.raw import Raw, placeholders

if TYPE_CHECKING:
    from registry.ledger import Ledger


def _position(value: Any) -> int | None:
    return None if value is None else int(value)


def pending_erasures(ledger: Ledger, project: str | None = None) -> list[str]:
    """Ids of erasures requested and not yet completed (oldest first)."""
    sql = "SELECT erasure FROM erasure_requests"
    params: tuple[str, ...] = ()
    if project is not None:
        sql += " WHERE project = ?"
        params = (project,)
    with ledger.store.read() as conn:
        return [r[0] for r in Raw(conn).all(sql + " ORDER BY requested_pos", params)]


def erasures(ledger: Ledger, project: str) -> list[dict[str, Any]]:
    """Every erasure of the project, oldest first (references and counts, no pseudonyms)."""
    with ledger.store.read() as conn:
        rows = Raw(conn).all(
            "SELECT erasure, reference, status, requested_by, requested_at, requested_pos, "
            "erased_at, erased_pos, summary FROM erasures WHERE project = ? "
            "ORDER BY requested_pos",
            (project,),
        )
    return [
        {
            "erasure": r[0],
            "subject": subject_id(project, r[1]),
            "status": r[2],
            "requested_by": r[3],
            "requested_at": r[4],
            "requested_position": int(r[5]),
            "erased_at": r[6],
            "erased_position": _position(r[7]),
            "summary": None if r[8] is None else json.loads(r[8]),
        }
        for r in rows
    ]


def remediations(ledger: Ledger, project: str, status: str | None = None) -> list[dict[str, Any]]:
    """Remediation flags of the project's model versions (``status`` filters: open
    flags are ``retrain-required``), in the order they were flagged."""
    sql = (
        "SELECT model, erasure, status, justification, approver, flagged_pos, resolved_by, "
        "resolved_pos FROM remediations WHERE project = ?"
    )
    params: tuple[Any, ...] = (project,)
    if status is not None:
        sql += " AND status = ?"
        params = (project, status)
    with ledger.store.read() as conn:
        rows = Raw(conn).all(sql + " ORDER BY flagged_pos, model", params)
    return [
        {
            "model": r[0],
            "erasure": r[1],
            "status": r[2],
            "justification": r[3],
            "approver": r[4],
            "flagged_position": int(r[5]),
            "resolved_by": r[6],
            "resolved_position": _position(r[7]),
        }
        for r in rows
    ]


def erased_keys(ledger: Ledger, project: str, keys: Sequence[str | int]) -> list[bool]:
    """For each record key, whether an erasure erased that record (training code drops
    those before it retrains a flagged model)."""
    pseudo = ledger.pseudonymizer(project)
    refs = [pseudo.erased_record(p) for p in pseudo.records(keys)]
    found: set[str] = set()
    with ledger.store.read() as conn:
        raw = Raw(conn)
        for chunk in chunks(sorted(set(refs))):
            found.update(
                r[0]
                for r in raw.all(
                    "SELECT reference FROM erased_refs WHERE project = ? AND kind = 'record' "
                    f"AND reference IN ({placeholders(len(chunk))})",
                    (project, *chunk),
                )
            )
    return [ref in found for ref in refs]
