"""Proof bundles: one event (or access-trail entry), its RFC 9162 inclusion proof
and the signed checkpoint it is proved against, checked offline with nothing but
the log's public key.

A bundle is JSON (``FORMAT``)::

    {"format": "mlledger-proof/1", "tree": "events", "index": 42,
     "entry": "<the leaf data: RFC 8785 JSON of the event's hashed form>",
     "leaf_hash": "<base64>", "tree_size": 1000,
     "inclusion_proof": ["<base64>", ...],
     "checkpoint": "<the C2SP signed note>",
     "consistency": {"size1": 500, "size2": 1000, "proof": ["<base64>", ...]}}

``consistency`` is there when the bundle was made for a verifier holding an
earlier (or later) checkpoint: it proves the two checkpoints' trees are one
log, the smaller a prefix of the larger. A verifier that kept a checkpoint
rejects a bundle whose checkpoint is not consistent with it: a fork, a rewrite
or a rollback.

``ProofBundle`` is the bundle as a pydantic model: ``make_bundle`` writes it,
``verify_bundle`` reads through it, and ``docs/schemas/proof-bundle.schema.json``
is its JSON Schema (``audit.schemas``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from audit import merkle
from audit.checkpoints import latest_checkpoint, origin
from audit.leaves import entry, redactions
from audit.note import Checkpoint, NoteError, VerifierKey, verify_checkpoint
from audit.tree import EVENTS, StoredTree, tree_spec
from registry.errors import Conflict, FieldError, IntegrityViolation, NotFound
from registry.store import Store

FORMAT: Final = "mlledger-proof/1"


class ProofError(IntegrityViolation):
    """A proof bundle that does not verify; the message says which check failed."""


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


#: A SHA-256 hash in base64 (44 characters, one ``=`` of padding).
HASH_PATTERN = "^[A-Za-z0-9+/]{43}=$"


def _decoded(item: Any) -> bytes | None:
    """The hash ``item`` is base64 of, or None when it is not base64 of 32 bytes."""
    try:
        decoded = base64.b64decode(item, validate=True) if isinstance(item, str) else None
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded is not None and len(decoded) == merkle.HASH_SIZE else None


def _hash_text(value: str) -> str:
    """``value`` if it is base64 of a 32-byte hash (refused with ValueError otherwise)."""
    if _decoded(value) is None:
        raise ValueError("not base64 of a 32-byte hash")
    return value


Hash = Annotated[
    str,
    AfterValidator(_hash_text),
    Field(description="A SHA-256 hash, base64.", json_schema_extra={"pattern": HASH_PATTERN}),
]
Size = Annotated[int, Field(ge=0)]


class _Part(BaseModel):
    model_config = ConfigDict(strict=True)


class Redacted(_Part):
    """What stands for the entry of an event whose personal data was erased."""

    erased_position: Size = Field(description="Position of the erasure's own event.")
    entry: str = Field(description="The redacted entry (RFC 8785 JSON), not what was proved.")


class Consistency(_Part):
    """An RFC 9162 consistency proof between two sizes of the tree."""

    size1: Size
    size2: Size
    proof: list[Hash]


class ProofBundle(_Part):
    """A proof bundle (format ``mlledger-proof/1``): one leaf, its inclusion proof and
    the signed checkpoint it is proved against; with ``consistency``, also proof that the
    checkpoint's tree extends (or is extended by) one of another size."""

    model_config = ConfigDict(title="mlledger proof bundle")

    format: Literal["mlledger-proof/1"]
    tree: Literal["events", "access"]
    index: Size = Field(description="The leaf's position (events) or seq (access trail).")
    entry: str | None = Field(
        description="The leaf data: RFC 8785 JSON of the entry's hashed form; null when redacted."
    )
    leaf_hash: Hash
    tree_size: Size = Field(description="The checkpoint's tree size.")
    inclusion_proof: list[Hash]
    checkpoint: str = Field(description="The C2SP signed note of the checkpoint.")
    redacted: Redacted | None = Field(default=None, exclude_if=lambda v: v is None)
    consistency: Consistency | None = Field(default=None, exclude_if=lambda v: v is None)


def _hashes_message(what: str, loc: tuple[Any, ...]) -> str:
    if len(loc) > 1:
        return f"{what}[{loc[1]}] is not base64 of a 32-byte hash"
    return f"{what} is not a list of base64 hashes"


#: The message for a bundle member of the wrong shape, by its name; checked in this order.
_REFUSALS: dict[str, Callable[[Any, tuple[Any, ...]], str]] = {
    "tree": lambda value, loc: f"tree {value!r} is not one of events, access",
    "index": lambda value, loc: f"index {value!r} is not a whole number of 0 or more",
    "tree_size": lambda value, loc: f"tree_size {value!r} is not a whole number of 0 or more",
    "checkpoint": lambda value, loc: "the bundle holds no checkpoint note",
    "entry": lambda value, loc: "the bundle holds no entry",
    "redacted": lambda value, loc: (
        f"redacted.erased_position {value!r} is not a whole number of 0 or more"
        if loc[1:2] == ("erased_position",)
        else "the bundle's redacted entry is not text"
    ),
    "leaf_hash": lambda value, loc: "leaf_hash[0] is not base64 of a 32-byte hash",
    "inclusion_proof": lambda value, loc: _hashes_message("inclusion_proof", loc),
    "consistency": lambda value, loc: (
        _hashes_message("consistency.proof", loc[1:])
        if loc[1:2] == ("proof",)
        else "the bundle's consistency is not an object of size1, size2 and proof"
    ),
}


def read_bundle(bundle: Any) -> ProofBundle:
    """``bundle`` (parsed JSON) as a ProofBundle; raise ProofError naming the first member
    of the wrong shape."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise ProofError(f"not a proof bundle: expected a JSON object with format {FORMAT!r}")
    try:
        return ProofBundle.model_validate(bundle)
    except ValidationError as exc:
        order = list(_REFUSALS)
        err = min(exc.errors(), key=lambda e: order.index(str(e["loc"][0])))
        loc = tuple(err["loc"])
        value = None if err["type"] == "missing" else err["input"]
        raise ProofError(_REFUSALS[str(loc[0])](value, loc)) from None


def make_bundle(
    store: Store,
    index: int,
    tree: str = "events",
    *,
    since: int | None = None,
    project: str | None = None,
) -> dict[str, Any]:
    """The proof bundle for leaf ``index`` of ``tree`` against the latest checkpoint;
    with ``since`` (the size of a checkpoint the verifier holds), also the consistency
    proof between that size and the latest checkpoint's. With ``project``, a leaf of
    another project is not found (as an absent one)."""
    spec = tree_spec(tree)
    what = "position" if spec.name == "events" else "access-trail entry"
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise FieldError("index", f"{what} {index!r} is not a whole number of 0 or more")
    with store.read() as conn:
        found = entry(conn, spec, index)
        if found is None:
            raise NotFound(f"no {what} {index} in the {spec.name} log")
        data, stored_leaf = found
        if project is not None and json.loads(data).get("project") != project:
            raise NotFound(f"no {what} {index} in project {project}")
        checkpoint = latest_checkpoint(conn, spec.name)
        if checkpoint is None or checkpoint.size <= index:
            covers = (
                "no checkpoint yet"
                if checkpoint is None
                else (f"the latest checkpoint covers {checkpoint.size}")
            )
            raise Conflict(
                f"{what} {index} is not covered by a signed checkpoint ({covers}): "
                "write one with `mlledger audit checkpoint`"
            )
        redaction = redactions(conn, index, index + 1).get(index) if spec == EVENTS else None
        leaf = merkle.leaf_hash(data)
        if leaf != (stored_leaf if redaction is None else redaction.leaf):
            raise ProofError(
                f"{what} {index} does not hash to its stored leaf hash: the log was changed "
                "(run `mlledger audit verify`)"
            )
        stored = StoredTree(conn, spec)
        bundle = ProofBundle(
            format=FORMAT,
            tree=cast(Literal["events", "access"], spec.name),
            index=index,
            entry=data.decode("utf-8") if redaction is None else None,
            leaf_hash=_b64(stored_leaf),
            tree_size=checkpoint.size,
            inclusion_proof=[_b64(h) for h in stored.inclusion_proof(index, checkpoint.size)],
            checkpoint=checkpoint.note,
        )
        if redaction is not None:
            # The original text is gone; the leaf hash is proved, the redacted content is
            # vouched for by the erasure's own (provable) event.
            bundle.redacted = Redacted(
                erased_position=redaction.erased_pos, entry=data.decode("utf-8")
            )
        if since is not None:
            if isinstance(since, bool) or not isinstance(since, int) or since < 0:
                raise FieldError("since", f"since {since!r} is not a tree size (0 or more)")
            size1, size2 = sorted((since, checkpoint.size))
            if size2 > stored.size():
                raise FieldError(
                    "since", f"size {since} is beyond the {spec.name} log ({stored.size()} leaves)"
                )
            bundle.consistency = Consistency(
                size1=size1,
                size2=size2,
                proof=[_b64(h) for h in stored.consistency_proof(size1, size2)],
            )
    return bundle.model_dump()


@dataclass
class Verified:
    """What a bundle proved."""

    tree: str
    index: int
    tree_size: int
    root: bytes
    entry: dict[str, Any]
    checkpoint: Checkpoint
    trusted_size: int | None  # the size of the trusted checkpoint it was checked against
    redacted_by: int | None = None  # the erasure's position, for a redacted event

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "tree": self.tree,
            "index": self.index,
            "tree_size": self.tree_size,
            "root_hash": _b64(self.root),
            "origin": self.checkpoint.origin,
            "entry": self.entry,
            "consistent_with_trusted_size": self.trusted_size,
            "redacted_by": self.redacted_by,
        }


def _hashes(value: Any, what: str) -> list[bytes]:
    """The hashes of ``value``, a list of base64 hashes; raise ProofError naming ``what``."""
    if not isinstance(value, list):
        raise ProofError(f"{what} is not a list of base64 hashes")
    out = []
    for i, item in enumerate(value):
        decoded = _decoded(item)
        if decoded is None:
            raise ProofError(f"{what}[{i}] is not base64 of a 32-byte hash")
        out.append(decoded)
    return out


def verify_bundle(bundle: Any, key: VerifierKey, trusted: str | None = None) -> Verified:
    """Check a bundle offline against the log's public key; with ``trusted`` (a signed
    checkpoint the verifier kept), also that the bundle's checkpoint is consistent with
    it. Raises ProofError naming the first check that fails."""
    read = read_bundle(bundle)
    try:
        checkpoint = verify_checkpoint(key, read.checkpoint, origin(key.name, read.tree))
    except NoteError as exc:
        raise ProofError(f"the checkpoint does not verify with the public key: {exc}") from None
    if checkpoint.size != read.tree_size:
        raise ProofError(
            f"tree_size {read.tree_size} is not the checkpoint's size {checkpoint.size}"
        )
    leaf = _hashes([read.leaf_hash], "leaf_hash")[0]
    if read.entry is not None:
        text = read.entry
        if merkle.leaf_hash(text.encode("utf-8")) != leaf:
            raise ProofError("the entry does not hash to leaf_hash: the entry was changed")
    elif read.redacted is not None:
        # A redacted event: the leaf hash is what is proved; its original text is gone.
        text = read.redacted.entry
    else:
        raise ProofError("the bundle holds no entry")
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ProofError("the entry is not JSON") from None
    index, size = read.index, read.tree_size
    field = "position" if read.tree == "events" else "seq"
    if not isinstance(parsed, dict) or parsed.get(field) != index:
        raise ProofError(f"the entry's {field} is not the bundle's index {index}")
    proof = _hashes(read.inclusion_proof, "inclusion_proof")
    if not merkle.verify_inclusion(index, size, leaf, proof, checkpoint.root):
        raise ProofError(
            f"the inclusion proof does not lead from {field} {index} to the checkpoint's root "
            f"at size {size}"
        )
    trusted_size = None
    if trusted is not None:
        trusted_size = _check_trusted(read, key, checkpoint, trusted)
    redacted = read.redacted if read.entry is None else None
    redacted_by = None if redacted is None else redacted.erased_position
    return Verified(
        read.tree, index, size, checkpoint.root, parsed, checkpoint, trusted_size, redacted_by
    )


def _check_trusted(
    bundle: ProofBundle, key: VerifierKey, checkpoint: Checkpoint, trusted: str
) -> int:
    try:
        kept = verify_checkpoint(key, trusted, origin(key.name, bundle.tree))
    except NoteError as exc:
        raise ProofError(f"the trusted checkpoint does not verify: {exc}") from None
    if kept.size == checkpoint.size:
        if kept.root != checkpoint.root:
            raise ProofError(
                f"the log signed two different roots for size {kept.size}: a fork "
                "(keep both notes: they prove it)"
            )
        return kept.size
    consistency = bundle.consistency
    size1, size2 = sorted((kept.size, checkpoint.size))
    if consistency is None or (consistency.size1, consistency.size2) != (size1, size2):
        raise ProofError(
            f"the bundle's checkpoint (size {checkpoint.size}) differs from the trusted one "
            f"(size {kept.size}) and the bundle holds no consistency proof between them: "
            f"make it with `mlledger audit prove ... --since {kept.size}`"
        )
    proof = _hashes(consistency.proof, "consistency.proof")
    older, newer = (kept, checkpoint) if kept.size < checkpoint.size else (checkpoint, kept)
    if size1 == 0 and not proof:
        return kept.size  # the empty tree is a prefix of every tree
    if not merkle.verify_consistency(size1, size2, older.root, newer.root, proof):
        raise ProofError(
            f"the checkpoint at size {checkpoint.size} is not consistent with the trusted one at "
            f"size {kept.size}: the log was forked, rewritten or rolled back"
        )
    return kept.size
