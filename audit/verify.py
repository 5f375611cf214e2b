"""``mlledger audit verify``: recompute both trees from storage and check every
stored checkpoint and the chain of consistency between them.

For each tree (``events``, ``access``), in one pass over the stored rows:

- indexes run 0, 1, 2, ... with no gap (a deleted or renumbered row shows here);
- each leaf hash is recomputed from the row's content and compared with the
  stored ``leaf_hash`` and with the tree's copy (an edited row, a reordered row,
  a rewritten leaf hash);
- each prediction payload's SHA-256 is compared with its event's digest;
- an event an erasure redacted keeps its original leaf hash (the tree and the
  checkpoints vouch for it); its redacted content must hash to what the
  erasure's ``subject-erased`` event declared, and every row of ``redactions``
  must be declared by that event, no more and no less;
- the root of the recomputed tree at each checkpoint's size is compared with the
  checkpoint's signed root (the signature checked with the public key), so a
  change that rewrote the leaf hashes and the tree as well is still found;
- checkpoints run ``seq`` 0, 1, 2, ... with sizes never shrinking and never
  beyond the log (a truncated log), and a consistency proof served by the
  stored tree verifies between each and the next;
- the stored tree's root at the current size equals the recomputed one.

Findings name the tree, the kind and the first index concerned; the report's
``first_bad_position`` is the lowest position in the event log any of them
implicates.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection

from audit import merkle
from audit.checkpoints import StoredCheckpoint, origin, stored_checkpoints
from audit.leaves import CompactRange, Leaf, leaves
from audit.note import Checkpoint, NoteError, VerifierKey, open_note, verify_checkpoint
from audit.trail import fold_trail
from audit.tree import EVENTS, TRAIL, StoredTree, TreeIncomplete, TreeSpec
from registry.events import PAYLOAD_TYPES
from registry.store import Store
from registry.store.raw import Raw
from registry.wording import counted

CHUNK = 10_000
PAYLOAD_CHUNK = 64
MAX_FINDINGS = 100


@dataclass
class Finding:
    """One thing that is not as it was written."""

    tree: str
    kind: str
    index: int | None  # first leaf index (position, seq) concerned, when there is one
    message: str


@dataclass
class TreeReport:
    tree: str
    size: int = 0
    root: str = ""
    checkpoints: int = 0
    latest_checkpoint: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)
    more_findings: int = 0

    @property
    def first_bad(self) -> int | None:
        indexes = [f.index for f in self.findings if f.index is not None]
        return min(indexes) if indexes else None

    def add(self, kind: str, index: int | None, message: str) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(self.tree, kind, index, message))
        else:
            self.more_findings += 1


@dataclass
class VerifyReport:
    ok: bool
    first_bad_position: int | None
    first_bad_trail_seq: int | None
    signatures: str
    seconds: float
    events: TreeReport
    access: TreeReport

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["leaves_per_second"] = (
            round((self.events.size + self.access.size) / self.seconds) if self.seconds else None
        )
        return out

    def summary(self) -> str:
        lines = []
        for report in (self.events, self.access):
            latest = report.latest_checkpoint
            lines.append(
                f"{report.tree}: {counted(report.size, 'leaf', 'leaves')}, root {report.root}, "
                f"{counted(report.checkpoints, 'checkpoint')}"
                + (f", latest #{latest['seq']} at size {latest['tree_size']}" if latest else "")
            )
            for finding in report.findings:
                where = "" if finding.index is None else f" at {finding.index}"
                lines.append(f"  {finding.kind}{where}: {finding.message}")
            if report.more_findings:
                lines.append(f"  ... and {report.more_findings} more")
        lines.append(f"signatures: {self.signatures}")
        if self.ok:
            lines.append(f"OK: the log and the access trail verify ({self.seconds:.2f} s)")
        else:
            bad = []
            if self.first_bad_position is not None:
                bad.append(f"first bad position {self.first_bad_position}")
            if self.first_bad_trail_seq is not None:
                bad.append(f"first bad access-trail entry {self.first_bad_trail_seq}")
            lines.append("FAILED: " + (", ".join(bad) or "see the findings above"))
        return "\n".join(lines)


def verify(store: Store, public_key: VerifierKey | None = None) -> VerifyReport:
    """Verify both trees of ``store``; signatures are checked when ``public_key`` is given."""
    began = time.perf_counter()
    fold_trail(store)  # the trail journal's entries are verified with the rest
    with store.read() as conn:
        events = _verify_tree(conn, EVENTS, public_key)
        access = _verify_tree(conn, TRAIL, public_key)
    seconds = time.perf_counter() - began
    signatures = (
        f"checked with {public_key.name}+{public_key.key_id:08x}"
        if public_key is not None
        else "not checked (no public key given)"
    )
    return VerifyReport(
        ok=not events.findings and not access.findings,
        first_bad_position=events.first_bad,
        first_bad_trail_seq=access.first_bad,
        signatures=signatures,
        seconds=round(seconds, 3),
        events=events,
        access=access,
    )


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _read_checkpoints(
    conn: Connection, spec: TreeSpec, key: VerifierKey | None, report: TreeReport
) -> list[StoredCheckpoint]:
    """The checkpoints whose notes check out, in order; findings for the others."""
    stored = stored_checkpoints(conn, spec.name)
    report.checkpoints = len(stored)
    good: list[StoredCheckpoint] = []
    last_size = 0
    for expected, checkpoint in enumerate(stored):
        if checkpoint.seq != expected:
            report.add(
                "checkpoint-sequence",
                None,
                f"checkpoint #{expected} is missing (next stored: #{checkpoint.seq}): "
                "a checkpoint was deleted",
            )
            break
        try:
            if key is not None:
                signed = verify_checkpoint(key, checkpoint.note, origin(key.name, spec.name))
            else:
                signed = Checkpoint.parse(open_note(checkpoint.note)[0])
        except NoteError as exc:
            report.add(
                "checkpoint-signature", None, f"checkpoint #{checkpoint.seq} does not verify: {exc}"
            )
            continue
        if (signed.size, signed.root) != (checkpoint.size, checkpoint.root):
            report.add(
                "checkpoint-row",
                None,
                f"checkpoint #{checkpoint.seq}'s row (size {checkpoint.size}) differs "
                f"from its signed note (size {signed.size}, root {_b64(signed.root)})",
            )
            continue
        if checkpoint.size < last_size:
            report.add(
                "checkpoint-order",
                checkpoint.size,
                f"checkpoint #{checkpoint.seq} has size {checkpoint.size}, smaller than "
                f"the {last_size} of an earlier one",
            )
            continue
        last_size = checkpoint.size
        good.append(checkpoint)
    if stored:
        report.latest_checkpoint = stored[-1].as_dict()
    return good


def _verify_tree(conn: Connection, spec: TreeSpec, key: VerifierKey | None) -> TreeReport:
    report = TreeReport(spec.name)
    checkpoints = _read_checkpoints(conn, spec, key, report)
    walk = _TreeWalk(report, spec, StoredTree(conn, spec), checkpoints)
    walk.check_roots()  # a checkpoint of the empty tree
    if spec == EVENTS:
        walk.read_redactions(Raw(conn))
    for leaf in leaves(conn, spec):
        walk.step(leaf)
    walk.finish()
    if spec == EVENTS:
        _check_payloads(conn, walk.digests, report)
    _check_stored_tree(walk.tree, spec, checkpoints, walk.compact, report)
    return report


class _TreeWalk:
    """One pass over a tree's stored leaves: recompute the tree, compare each leaf
    with its stored hash and the tree's copy, and each checkpoint's root on the way."""

    def __init__(
        self,
        report: TreeReport,
        spec: TreeSpec,
        tree: StoredTree,
        checkpoints: list[StoredCheckpoint],
    ) -> None:
        self.report, self.spec, self.tree, self.checkpoints = report, spec, tree, checkpoints
        self.at_size: dict[int, list[StoredCheckpoint]] = {}
        for checkpoint in checkpoints:
            self.at_size.setdefault(checkpoint.size, []).append(checkpoint)
        self.compact = CompactRange()
        self.digests: dict[int, str] = {}
        self.expected = 0
        self.gap = self.lag_reported = False
        self.last_good_size = 0
        # Every redaction, by the erasure that made it; each subject-erased event must
        # declare exactly its own (what is left over at the end was declared by none).
        self.declared: dict[int, dict[int, tuple[str, str | None]]] = {}
        self.payloads_redacted: dict[int, str] = {}
        self.block = -1
        self.copies: dict[int, bytes] = {}

    def check_roots(self) -> None:
        """The recomputed root at this size is the one each checkpoint of it signed."""
        report, compact = self.report, self.compact
        for checkpoint in self.at_size.get(compact.size, ()):
            if compact.root() == checkpoint.root:
                self.last_good_size = checkpoint.size
                continue
            if report.first_bad is None or report.first_bad >= checkpoint.size:
                report.add(
                    "checkpoint-root",
                    self.last_good_size,
                    f"checkpoint #{checkpoint.seq} (size {checkpoint.size}) signed another "
                    f"root: a leaf at {self.last_good_size} to {checkpoint.size - 1} was "
                    "changed, with its stored hash and the tree rewritten to match",
                )
            else:
                report.add(
                    "checkpoint-root",
                    None,
                    f"checkpoint #{checkpoint.seq} (size {checkpoint.size}) signed another "
                    "root (explained by the findings above)",
                )

    def read_redactions(self, raw: Raw) -> None:
        for position, erased_pos, leaf_hash, payload in raw.all(
            "SELECT position, erased_pos, leaf, payload_digest FROM redactions "
            "ORDER BY erased_pos, position"
        ):
            self.declared.setdefault(int(erased_pos), {})[int(position)] = (
                bytes(leaf_hash).hex(),
                payload,
            )
            if payload is not None:
                self.payloads_redacted[int(position)] = payload

    def step(self, leaf: Leaf) -> None:
        """Check one stored leaf and push it onto the recomputed tree."""
        spec, index = self.spec, leaf.number
        if index // CHUNK != self.block:
            self.block = index // CHUNK
            self.copies = self.tree.leaf_copies(self.block * CHUNK, (self.block + 1) * CHUNK)
        if index != self.expected and not self.gap:
            self.gap = True
            self.report.add(
                "gap",
                self.expected,
                f"no {spec.leaves} row at {spec.index} {self.expected} (next: {index}): "
                "rows were deleted or renumbered",
            )
        if leaf.type == "subject-erased":
            _check_declared(leaf.body, index, self.declared.pop(index, {}), self.report)
        computed = self._leaf_hash(leaf)
        if leaf.type in PAYLOAD_TYPES and leaf.body is not None:
            self._note_digest(index, leaf.body, leaf.redacted)
        self.compact.push(computed)
        self.expected = index + 1
        self.check_roots()

    def _leaf_hash(self, leaf: Leaf) -> bytes:
        """The hash to push for ``leaf``: its recomputed one, or its stored one where
        that cannot be (a finding says why)."""
        spec, index, report, computed = self.spec, leaf.number, self.report, leaf.computed
        if leaf.redacted is not None and computed is not None and computed != leaf.stored:
            report.add(
                "redacted-content",
                index,
                f"the event at position {index}, redacted by the erasure at position "
                f"{leaf.redacted}, does not hash to what that erasure declared: it was "
                "changed after the erasure",
            )
            return leaf.stored
        if computed is None:
            report.add(
                "unreadable",
                index,
                f"the row at {spec.index} {index} cannot be read back to hash it",
            )
            return leaf.stored
        if computed != leaf.stored:
            report.add(
                "leaf-mismatch",
                index,
                f"the row at {spec.index} {index} does not hash to its stored "
                "leaf hash: its content was changed (or it was moved)",
            )
        elif self.copies.get(index, leaf.stored) != leaf.stored:
            report.add(
                "leaf-rewritten",
                index,
                f"the stored leaf hash at {spec.index} {index} differs from the "
                "tree's copy: the row and its hash were rewritten",
            )
        elif index not in self.copies and not self.lag_reported:
            self.lag_reported = True
            report.add(
                "tree-lags",
                index,
                f"the stored tree has no leaf {index}: it lags the log or nodes were "
                "deleted; `mlledger rebuild` rebuilds it",
            )
        return computed

    def _note_digest(self, index: int, body: str, redacted: int | None) -> None:
        try:
            self.digests[index] = json.loads(body)["payload_digest"]
            rewritten = self.payloads_redacted.get(index)
            if redacted is not None and rewritten is not None:
                self.digests[index] = rewritten
        except (ValueError, KeyError, TypeError):
            self.report.add(
                "unreadable",
                index,
                f"the body at {self.spec.index} {index} names no payload digest",
            )

    def finish(self) -> None:
        """Findings for redactions no erasure declared and for a truncated log."""
        report, size = self.report, self.compact.size
        for erased_pos in sorted(self.declared):
            report.add(
                "redaction",
                min(self.declared[erased_pos]),
                f"redactions are recorded for an erasure at position {erased_pos}, but no "
                "subject-erased event there declares them: events were rewritten outside an "
                "erasure",
            )
        report.size = size
        report.root = _b64(self.compact.root())
        stored_size = self.tree.size()
        if stored_size > size:
            report.add(
                "truncated",
                size,
                f"the stored tree holds {stored_size} leaves but the log {size}: "
                f"leaves from {size} on were deleted",
            )
        for checkpoint in self.checkpoints:
            if checkpoint.size > size:
                report.add(
                    "truncated",
                    size,
                    f"checkpoint #{checkpoint.seq} covers {checkpoint.size} leaves but the "
                    f"log holds {size}: leaves from {size} on were deleted",
                )


def _check_declared(
    body: str | None,
    index: int,
    recorded: dict[int, tuple[str, str | None]],
    report: TreeReport,
) -> None:
    """The redactions a subject-erased event declares are those recorded for it."""
    try:
        items = json.loads(body or "")["redactions"]
        claimed = {int(r["position"]): (r["leaf"], r.get("payload")) for r in items}
    except (ValueError, KeyError, TypeError):
        report.add("unreadable", index, f"the erasure at position {index} declares no redactions")
        return
    if claimed != recorded:
        differ = sorted(set(claimed) ^ set(recorded)) or sorted(
            p for p in claimed if claimed[p] != recorded.get(p)
        )
        report.add(
            "redaction",
            differ[0] if differ and differ[0] < index else index,
            f"the erasure at position {index} declares other redactions than those "
            f"recorded (first difference: position {differ[0] if differ else '?'})",
        )
    for position in claimed:
        if position >= index:
            report.add(
                "redaction",
                index,
                f"the erasure at position {index} declares a redaction of position "
                f"{position}, which is not before it",
            )


def _check_payloads(conn: Connection, digests: dict[int, str], report: TreeReport) -> None:
    """Each payload hashes to its event's digest; no payload is missing or extra."""
    raw = Raw(conn)
    start = -1
    seen: set[int] = set()
    while True:
        rows = raw.all(
            "SELECT position, payload FROM event_payloads WHERE position > ? ORDER BY position "
            f"LIMIT {PAYLOAD_CHUNK}",
            (start,),
        )
        for position, payload in rows:
            position = int(position)
            seen.add(position)
            wanted = digests.get(position)
            if wanted is None:
                report.add(
                    "payload",
                    position,
                    f"a payload is stored at position {position}, whose event has none",
                )
            elif "sha256:" + hashlib.sha256(bytes(payload)).hexdigest() != wanted:
                report.add(
                    "payload",
                    position,
                    f"the payload at position {position} does not match its event's "
                    "digest: its rows were changed",
                )
        if len(rows) < PAYLOAD_CHUNK:
            break
        start = int(rows[-1][0])
    for position in sorted(set(digests) - seen):
        report.add("payload", position, f"the payload of position {position} is missing")


def _check_stored_tree(
    tree: StoredTree,
    spec: TreeSpec,
    checkpoints: list[StoredCheckpoint],
    compact: CompactRange,
    report: TreeReport,
) -> None:
    """The stored tree serves the recomputed root, and consistency proofs between
    successive checkpoints that verify."""
    if report.findings:
        return  # proofs over a log already found changed prove nothing more
    try:
        if compact.size and tree.root(compact.size) != compact.root():
            report.add(
                "tree",
                None,
                f"the stored {spec.name} tree's root differs from the recomputed one: "
                "`mlledger rebuild` rebuilds it",
            )
            return
        for older, newer in pairwise(checkpoints):
            if older.size == 0:
                continue  # the empty tree is a prefix of every tree
            proof = tree.consistency_proof(older.size, newer.size)
            if not merkle.verify_consistency(older.size, newer.size, older.root, newer.root, proof):
                report.add(
                    "consistency",
                    older.size,
                    f"checkpoint #{newer.seq} is not consistent with #{older.seq}",
                )
    except TreeIncomplete as exc:
        report.add("tree", None, str(exc))
