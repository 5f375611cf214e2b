"""Answers of the API that only the API gives: API keys and grants between projects.

(The answers of the questions are in ``lineage.answers``, those of the audit, erasure
and report endpoints in ``audit.answers``, ``audit.erasure.answers`` and
``audit.reports.answers``.)
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from registry.auth import ApiKey


def sent(answer: BaseModel) -> Response:
    """``answer`` as its JSON, rendered once by its own model. A route returning the model
    itself would have FastAPI dump it, validate the dump against the route's response model
    and dump that again: for an answer of thousands of parts, more than the question cost.
    The route still declares its response model, which the OpenAPI document shows."""
    return Response(answer.model_dump_json(), media_type="application/json")


# --- keys -------------------------------------------------------------------------


@pydantic_dataclass(frozen=True)
class KeyPublic(ApiKey):
    # The fields of registry.auth.ApiKey (never the secret or its hash), declared once there.
    pass


@pydantic_dataclass(frozen=True)
class KeyCreated(KeyPublic):
    token: str = Field(description="Shown once: store it now.")


# --- grants -----------------------------------------------------------------------


class GrantPublic(BaseModel):
    """A grant made by the project or to it, revoked or not."""

    project: str = Field(description="The project that granted access.")
    grantee: str = Field(description="The project granted access.")
    granted_position: int = Field(description="Position of the project-access-granted event.")
    granted_by: str = Field(description="Who granted it (the actor of that event).")
    granted_at: str
    reason: str | None
    revoked_position: int | None = Field(description="Position of the revocation, if any.")
    revoked_by: str | None
    revoked_at: str | None


class GrantChanged(BaseModel):
    """The event a grant or revocation appended."""

    position: int = Field(description="Its position in the log.")
    project: str
    grantee: str
