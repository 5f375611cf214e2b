"""The answers of the audit endpoints, as typed models: a signed checkpoint, a
consistency proof between two sizes of a tree, an entry of the access trail, and the
proof bundle (``audit.proofs.ProofBundle``, declared where bundles are made).

Each reads like the mapping it is sent as (``lineage.answers.Shape``); members are in
wire order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from audit.proofs import ProofBundle
from lineage.answers import Shape

__all__ = ["AccessEntry", "CheckpointAnswer", "ConsistencyAnswer", "ProofBundle"]

#: Which tree: the log of events, or the access trail.
TreeName = Literal["events", "access"]


class _Answer(Shape):
    # Each member's description is the docstring below it.
    model_config = ConfigDict(use_attribute_docstrings=True)


class CheckpointAnswer(_Answer):
    """A signed checkpoint of a tree (``StoredCheckpoint.as_dict``)."""

    tree: TreeName
    seq: int
    """The checkpoint's number in its tree, from 0."""
    tree_size: int
    """How many leaves it covers."""
    root_hash: str
    """Merkle root of those leaves (base64)."""
    signed_at: str
    """When it was signed (RFC 3339)."""
    note: str
    """The signed note (C2SP signed-note format)."""


class ConsistencyAnswer(_Answer):
    """The RFC 9162 consistency proof between two sizes of a tree."""

    tree: TreeName
    size1: int
    size2: int
    proof: list[str]
    """The proof's hashes (base64)."""


class AccessEntry(_Answer):
    """An allow or deny decision of the access trail."""

    seq: int
    """Its sequence number in the trail."""
    at: str
    actor: str
    """The key id, 'anonymous', or who ran a command."""
    project: str | None
    action: str
    resource: str
    source: str
    outcome: Literal["allow", "deny"]
    status: int
    """The HTTP status answered."""
    reason: str
    trace_id: str | None
    leaf_hash: str
    """The entry's Merkle leaf hash (hex)."""
