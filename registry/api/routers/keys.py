"""API keys of a project, managed over HTTP by its admins."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, status

from registry import auth
from registry.api.answers import KeyCreated, KeyPublic
from registry.api.deps import Asking, SourceDep, asking
from registry.api.problems import answering
from registry.api.schemas import KeyCreate, TextPath

router = APIRouter(prefix="/projects/{project}/keys", tags=["keys"])


def _public(key: auth.ApiKey) -> KeyPublic:
    return KeyPublic(**asdict(key))


@router.get("", response_model=list[KeyPublic])
def list_keys(ask: Annotated[Asking, asking("admin", "keys.list")]) -> list[KeyPublic]:
    """The project's keys, revoked ones included (never their secrets)."""
    return [_public(k) for k in auth.list_keys(ask.ledger.store, project=ask.project)]


@router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(
    data: KeyCreate,
    source: SourceDep,
    ask: Annotated[Asking, asking("admin", "keys.create")],
) -> KeyCreated:
    """Create a key for the project; its token is in this response only."""
    key, token = auth.create_key(
        ask.ledger.store,
        project=ask.project,
        role=data.role,
        name=data.name,
        created_by=ask.actor,
        source=source,
    )
    return KeyCreated(**asdict(key), token=token)


@router.delete("/{key_id}", **answering(KeyPublic, "not-found"))
def revoke_key(
    key_id: TextPath,
    source: SourceDep,
    ask: Annotated[Asking, asking("admin", "keys.revoke")],
) -> KeyPublic:
    """Revoke a key of the project; it stops working at once."""
    key = auth.revoke_key(
        ask.ledger.store,
        key_id=key_id,
        project=ask.project,
        revoked_by=ask.actor,
        source=source,
    )
    return _public(key)
