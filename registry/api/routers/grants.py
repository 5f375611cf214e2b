"""Grants of access between projects, managed by the granting project's admins.

A grant lets another project's runs use this project's dataset and model versions and
its readers see them in answers (``registry.grants``). Grants and revocations are
events of the granting project's log; every request is in the access trail.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from registry import grants, services
from registry.api.answers import GrantChanged, GrantPublic
from registry.api.deps import Asking, asking, project_path
from registry.api.problems import answering, responses
from registry.api.schemas import TEXT_PATTERN

router = APIRouter(prefix="/projects/{project}/grants", tags=["grants"])
GranteePath = Annotated[str, project_path("The project granted access.")]


class GrantCreate(BaseModel):
    """Let another project use and read this project's dataset and model versions."""

    model_config = ConfigDict(extra="forbid")
    grantee: StrictStr = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$",
        description="The project granted access.",
    )
    reason: StrictStr | None = Field(
        default=None,
        max_length=1000,
        description="Why, in a few words (no NUL).",
        json_schema_extra={"pattern": TEXT_PATTERN},
    )


@router.get("", response_model=list[GrantPublic])
def list_grants(ask: Annotated[Asking, asking("read", "grants.list")]) -> list[dict[str, Any]]:
    """Grants the project made and received, oldest first, revoked ones included."""
    return services.project_grants(ask.ledger, ask.project)


@router.post(
    "",
    response_model=GrantChanged,
    status_code=status.HTTP_201_CREATED,
    responses=responses("event-rejected"),
)
def grant(
    data: GrantCreate,
    ask: Annotated[Asking, asking("admin", "grants.create")],
) -> GrantChanged:
    """Grant another project access to this project's dataset and model versions
    (422 when it already has access, or names this project)."""
    position = grants.grant(
        ask.ledger, ask.project, data.grantee, actor=ask.actor, reason=data.reason
    )
    return GrantChanged(position=position, project=ask.project, grantee=data.grantee)


@router.delete("/{grantee}", **answering(GrantChanged, "event-rejected"))
def revoke(
    grantee: GranteePath,
    ask: Annotated[Asking, asking("admin", "grants.revoke")],
) -> GrantChanged:
    """End the access granted to ``grantee`` (422 when it has none)."""
    position = grants.revoke(ask.ledger, ask.project, grantee, actor=ask.actor)
    return GrantChanged(position=position, project=ask.project, grantee=grantee)
