"""The access trail, for auditors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from registry import auth
from registry.api.deps import LedgerDep, Principal, allow

router = APIRouter(prefix="/projects/{project}", tags=["audit"])


@router.get("/access-trail", response_model=list[dict[str, Any]])
def access_trail(
    ledger: LedgerDep,
    who: Annotated[Principal, allow("audit", "access_trail.read")],
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """Every allow and deny decision about the project, from sequence ``since`` on."""
    return auth.read_trail(ledger.store, project=who.project, since=since, limit=limit)
