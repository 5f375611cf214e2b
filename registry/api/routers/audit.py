"""Audit: the access trail, signed checkpoints, Merkle proofs and the public key.

Checkpoints cover the whole log (every project), so any auditor key may read
them; a proof bundle holds one event, so it is served only for events (and
trail entries) of the key's project. The public key is for everyone with a key.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy import Connection

from audit import answers
from audit import checkpoints as cps
from audit.proofs import make_bundle
from audit.tree import StoredTree, tree_spec
from registry import auth
from registry.api.deps import Asking, SettingsDep, asking
from registry.api.problems import answering, responses
from registry.errors import InvalidInput, NotFound

router = APIRouter(prefix="/projects/{project}", tags=["audit"])

Tree = Annotated[
    Literal["events", "access"],
    Query(description="`events` (the log) or `access` (the access trail)."),
]
Size = Annotated[int, Query(ge=0, le=2**62)]


def _holding(conn: Connection, tree: str, size: int, name: str) -> StoredTree:
    """The stored ``tree``, which must hold ``size`` leaves (NotFound otherwise: the tree
    only grows, so no checkpoint of that size exists yet); ``name`` is the parameter."""
    stored = StoredTree(conn, tree_spec(tree))
    held = stored.size()
    if size > held:
        raise NotFound(f"the {tree} log holds {held} leaves, fewer than {name} {size}")
    return stored


@router.get("/access-trail", response_model=list[answers.AccessEntry])
def access_trail(
    ask: Annotated[Asking, asking("audit", "access_trail.read")],
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """Every allow and deny decision about the project, from sequence ``since`` on."""
    return auth.read_trail(ask.ledger.store, project=ask.project, since=since, limit=limit)


@router.get("/audit/checkpoints", response_model=list[answers.CheckpointAnswer])
def checkpoints(
    ask: Annotated[Asking, asking("audit", "checkpoints.read")],
    tree: Tree = "events",
    since: Annotated[int, Query(ge=0, le=2**62, description="first checkpoint seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """Signed checkpoints of a tree, oldest first: seq, size, root and the signed note."""
    with ask.ledger.store.read() as conn:
        rows = cps.stored_checkpoints(conn, tree)
    return [c.as_dict() for c in rows if c.seq >= since][:limit]


@router.get("/audit/checkpoint", **answering(answers.CheckpointAnswer, "not-found"))
def latest_checkpoint(
    ask: Annotated[Asking, asking("audit", "checkpoints.read")],
    tree: Tree = "events",
) -> dict[str, Any]:
    """The newest signed checkpoint of a tree."""
    with ask.ledger.store.read() as conn:
        found = cps.latest_checkpoint(conn, tree)
    if found is None:
        raise NotFound(f"no {tree} checkpoint has been signed yet")
    return found.as_dict()


@router.get("/audit/proofs/{index}", **answering(answers.ProofBundle, "not-found", "conflict"))
def proof(
    ask: Annotated[Asking, asking("audit", "proofs.read")],
    index: Annotated[int, Path(ge=0, le=2**62, description="position (or trail seq)")],
    tree: Tree = "events",
    since: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**62,
            description="size of a checkpoint you hold: adds the "
            "consistency proof between it and the bundle's checkpoint",
        ),
    ] = None,
) -> dict[str, Any]:
    """A proof bundle (as `mlledger audit prove`): the entry, its inclusion proof and the
    latest checkpoint; check it offline with `mlledger audit verify-proof`."""
    if since is not None:
        with ask.ledger.store.read() as conn:
            _holding(conn, tree, since, "since")
    return make_bundle(ask.ledger.store, index, tree, since=since, project=ask.project)


@router.get(
    "/audit/consistency", **answering(answers.ConsistencyAnswer, "invalid-input", "not-found")
)
def consistency(
    ask: Annotated[Asking, asking("audit", "proofs.read")],
    size1: Size,
    size2: Size,
    tree: Tree = "events",
) -> dict[str, Any]:
    """The RFC 9162 consistency proof between two sizes of a tree (base64 hashes), for
    a verifier moving from a checkpoint it holds to a newer one: ``size1`` at most
    ``size2`` (400 otherwise), ``size2`` at most the tree's size (404 otherwise)."""
    if size1 > size2:
        raise InvalidInput(
            f"size1 {size1} is larger than size2 {size2}: expected size1 <= size2", field="size1"
        )
    with ask.ledger.store.read() as conn:
        proof = _holding(conn, tree, size2, "size2").consistency_proof(size1, size2)
    return {
        "tree": tree,
        "size1": size1,
        "size2": size2,
        "proof": [base64.b64encode(h).decode() for h in proof],
    }


@router.get("/audit/public-key", response_class=PlainTextResponse, responses=responses("not-found"))
def public_key(
    settings: SettingsDep,
    ask: Annotated[Asking, asking("read", "public_key.read")],
) -> str:
    """The verifier key that checks the log's checkpoints (C2SP note verifier format);
    404 until the first checkpoint is signed."""
    where = cps.key_path(ask.ledger.store.url, settings.signing_key)
    if not where.exists():
        raise NotFound(
            "no signing key yet: the server creates it when it signs its first checkpoint "
            "(or create one with `mlledger audit keygen`)"
        )
    key, _, _ = cps.load_signing_key(ask.ledger.store.url, settings.signing_key)
    return key.verifier().to_string() + "\n"
