"""The answers of the audit endpoints, as typed models: a signed checkpoint, a
consistency proof between two sizes of a tree, an entry of the access trail, and the
proof bundle (``audit.proofs.ProofBundle``, declared where bundles are made).

Each reads like the mapping it is sent as (``lineage.answers.Shape``); members are in
wire order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from audit.proofs import ProofBundle
from lineage.answers import Shape

__all__ = ["AccessEntry", "CheckpointAnswer", "ConsistencyAnswer", "ProofBundle"]

#: Which tree: the log of events, or the access trail.
TreeName = Literal["events", "access"]


class CheckpointAnswer(Shape):
    """A signed checkpoint of a tree (``StoredCheckpoint.as_dict``)."""

    tree: TreeName
    seq: int = Field(description="The checkpoint's number in its tree, from 0.")
    tree_size: int = Field(description="How many leaves it covers.")
    root_hash: str = Field(description="Merkle root of those leaves (base64).")
    signed_at: str = Field(description="When it was signed (RFC 3339).")
    note: str = Field(description="The signed note (C2SP signed-note format).")


class ConsistencyAnswer(Shape):
    """The RFC 9162 consistency proof between two sizes of a tree."""

    tree: TreeName
    size1: int
    size2: int
    proof: list[str] = Field(description="The proof's hashes (base64).")


class AccessEntry(Shape):
    """An allow or deny decision of the access trail."""

    seq: int = Field(description="Its sequence number in the trail.")
    at: str
    actor: str = Field(description="The key id, 'anonymous', or who ran a command.")
    project: str | None
    action: str
    resource: str
    source: str
    outcome: Literal["allow", "deny"]
    status: int = Field(description="The HTTP status answered.")
    reason: str
    trace_id: str | None
    leaf_hash: str = Field(description="The entry's Merkle leaf hash (hex).")
