"""``mlledger audit verify``: recompute both trees from storage and check every
stored checkpoint and the chain of consistency between them.

For each tree (``events``, ``access``), in one pass over the stored rows (or, for
a large tree, by aligned ranges of it in several processes whose results are
taken in order, with the same findings: ``_Pool``):

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
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Protocol

from sqlalchemy import Connection

from audit import merkle
from audit.checkpoints import StoredCheckpoint, origin, stored_checkpoints
from audit.leaves import CompactRange, Leaf, leaves
from audit.note import Checkpoint, NoteError, VerifierKey, open_note, verify_checkpoint
from audit.trail import fold_trail
from audit.tree import EVENTS, TRAIL, TREES, StoredTree, TreeIncomplete, TreeSpec, leaf_count
from registry.errors import FieldError
from registry.events import PAYLOAD_TYPES
from registry.store import Store
from registry.store.raw import Raw
from registry.wording import counted

CHUNK = 10_000
PAYLOAD_CHUNK = 64
MAX_FINDINGS = 100

#: Told how far a verification is: the tree (``events``, ``access``), the leaves of it
#: checked so far and the leaves it holds. It may raise to stop the verification (the
#: exception then leaves ``verify``, with every worker process stopped).
Progress = Callable[[str, int, int], None]


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
    workers: int = 1

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


def verify(
    store: Store,
    public_key: VerifierKey | None = None,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify both trees of ``store``; signatures are checked when ``public_key`` is given.

    The leaves of a large tree are checked by ``workers`` processes (default: one per
    CPU; this one and ``workers - 1`` started for it), each over ranges of it; 1 checks
    everything in this process. The findings,
    and the report, are the same either way.

    ``progress``, when given, is told each tree's leaves checked: 0 at its start, then
    every ``CHUNK`` leaves (every range a worker finishes), and all of them at its end."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise FieldError(
            "workers",
            f"workers must be 1 or more (1: every leaf in this process), got {workers}",
        )
    began = time.perf_counter()
    fold_trail(store)  # the trail journal's entries are verified with the rest
    pool = _pool(store, workers)
    try:
        with store.read() as conn:
            events = _verify_tree(conn, EVENTS, public_key, pool, progress)
            access = _verify_tree(conn, TRAIL, public_key, pool, progress)
    finally:
        if pool is not None:
            pool.close()
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
        workers=pool.workers if pool is not None and pool.started else 1,
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


def _verify_tree(
    conn: Connection,
    spec: TreeSpec,
    key: VerifierKey | None,
    pool: _Pool | None,
    progress: Progress | None = None,
) -> TreeReport:
    report = TreeReport(spec.name)
    checkpoints = _read_checkpoints(conn, spec, key, report)
    walk = _TreeWalk(report, spec, StoredTree(conn, spec), checkpoints)
    walk.check_roots()  # a checkpoint of the empty tree
    if spec == EVENTS:
        walk.read_redactions(Raw(conn))
    count = leaf_count(conn, spec)

    def told(done: int) -> None:
        if progress is not None:
            progress(spec.name, done, max(count, done))

    told(0)
    results = pool.walk(conn, spec, count, walk.marks, told) if pool else None
    if results is not None:
        for result in results:
            walk.replay(result)
    else:
        for checked, leaf in enumerate(leaves(conn, spec), start=1):
            walk.step(leaf)
            if checked % CHUNK == 0:
                told(checked)
    walk.finish()
    told(walk.size)
    if spec == EVENTS:
        _check_payloads(conn, walk.digests, report)
    _check_stored_tree(walk.tree, spec, checkpoints, walk.compact, report)
    return report


class _Findings(Protocol):
    """Where a walk puts what it finds: the report itself, or a range's record of it."""

    def add(self, kind: str, index: int | None, message: str) -> None: ...


class _LeafWalk:
    """The checks of each stored leaf, in order: indexes without a gap, the leaf
    recomputed and compared with its stored hash and the tree's copy, the
    redactions each erasure declares, and each payload event's digest noted; every
    leaf is pushed onto the recomputed tree, and ``reached`` is told each size in
    ``marks`` (where a checkpoint's root is to be checked).

    The whole log in one process (``_TreeWalk``) or one aligned range of it in a
    worker (``_RangeWalk``): the same code, so both find the same things."""

    def __init__(
        self,
        findings: _Findings,
        spec: TreeSpec,
        tree: StoredTree,
        span: tuple[int, int | None] = (0, None),
    ) -> None:
        self.findings, self.spec, self.tree = findings, spec, tree
        start, self.stop = span
        # The leaves pushed: those folded into ``compact``, then the ``pending`` ones,
        # folded in blocks (``flush``) at each size in ``marks`` and each new chunk.
        self.compact = CompactRange()
        self.pending: list[bytes] = []
        self.size = 0
        self.marks: frozenset[int] = frozenset()
        self.digests: dict[int, str] = {}
        self.expected = start
        self.gap = self.lag_reported = False
        # Every redaction, by the erasure that made it; each subject-erased event must
        # declare exactly its own (what is left over at the end was declared by none).
        self.declared: dict[int, dict[int, tuple[str, str | None]]] = {}
        self.payloads_redacted: dict[int, str] = {}
        self.block = -1
        self.copies: dict[int, bytes] = {}
        self.erasures: list[int] = []  # indexes of the subject-erased events stepped over

    def reached(self) -> None:
        """Called when the walk has pushed as many leaves as a size in ``marks``."""

    def flush(self) -> CompactRange:
        """``compact`` with every leaf pushed so far."""
        if self.pending:
            self.compact.extend(self.pending)
            self.pending = []
        return self.compact

    def read_redactions(self, raw: Raw, where: str = "", params: tuple[int, ...] = ()) -> None:
        """The redactions (those ``where`` selects), by erasure and by position."""
        for position, erased_pos, leaf_hash, payload in raw.all(
            f"SELECT position, erased_pos, leaf, payload_digest FROM redactions {where} "
            "ORDER BY erased_pos, position",
            params,
        ):
            self.declared.setdefault(int(erased_pos), {})[int(position)] = (
                bytes(leaf_hash).hex(),
                payload,
            )
            if payload is not None:
                self.payloads_redacted[int(position)] = payload

    def step(self, leaf: Leaf) -> None:
        """Check one stored leaf and push it onto the recomputed tree."""
        index, stored, computed, type_, body, redacted = leaf
        if index // CHUNK != self.block:
            self.flush()
            self.block = index // CHUNK
            stop = (self.block + 1) * CHUNK
            self.copies = self.tree.leaf_copies(
                max(self.block * CHUNK, index), stop if self.stop is None else min(stop, self.stop)
            )
        if index != self.expected and not self.gap:
            self.gap = True
            self.findings.add(
                "gap",
                self.expected,
                f"no {self.spec.leaves} row at {self.spec.index} {self.expected} "
                f"(next: {index}): rows were deleted or renumbered",
            )
        if type_ == "subject-erased":
            self.erasures.append(index)
            _check_declared(body, index, self.declared.pop(index, {}), self.findings)
        # The usual leaf, in short: unredacted, read back, matching its stored hash and
        # the tree's copy; anything else goes the long way, which says what is wrong.
        if (
            redacted is not None
            or computed is None
            or computed != stored
            or self.copies.get(index) != computed
        ):
            computed = self._leaf_hash(leaf)
        if body is not None and type_ in PAYLOAD_TYPES:
            self._note_digest(index, body, redacted)
        self.pending.append(computed)
        self.expected = index + 1
        self.size += 1
        if self.size in self.marks:
            self.flush()
            self.reached()

    def _leaf_hash(self, leaf: Leaf) -> bytes:
        """The hash to push for ``leaf``: its recomputed one, or its stored one where
        that cannot be (a finding says why)."""
        spec, index, findings, computed = self.spec, leaf.number, self.findings, leaf.computed
        if leaf.redacted is not None and computed is not None and computed != leaf.stored:
            findings.add(
                "redacted-content",
                index,
                f"the event at position {index}, redacted by the erasure at position "
                f"{leaf.redacted}, does not hash to what that erasure declared: it was "
                "changed after the erasure",
            )
            return leaf.stored
        if computed is None:
            findings.add(
                "unreadable",
                index,
                f"the row at {spec.index} {index} cannot be read back to hash it",
            )
            return leaf.stored
        if computed != leaf.stored:
            findings.add(
                "leaf-mismatch",
                index,
                f"the row at {spec.index} {index} does not hash to its stored "
                "leaf hash: its content was changed (or it was moved)",
            )
        elif self.copies.get(index, leaf.stored) != leaf.stored:
            findings.add(
                "leaf-rewritten",
                index,
                f"the stored leaf hash at {spec.index} {index} differs from the "
                "tree's copy: the row and its hash were rewritten",
            )
        elif index not in self.copies and not self.lag_reported:
            self.lag_reported = True
            findings.add(
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
            self.findings.add(
                "unreadable",
                index,
                f"the body at {self.spec.index} {index} names no payload digest",
            )


class _TreeWalk(_LeafWalk):
    """One pass over a tree's stored leaves: recompute the tree, compare each leaf
    with its stored hash and the tree's copy, and each checkpoint's root on the way.

    The leaves are stepped through here, or checked by range in worker processes and
    their results replayed here in order (``replay``): the same findings either way."""

    def __init__(
        self,
        report: TreeReport,
        spec: TreeSpec,
        tree: StoredTree,
        checkpoints: list[StoredCheckpoint],
    ) -> None:
        super().__init__(report, spec, tree)
        self.report, self.checkpoints = report, checkpoints
        self.at_size: dict[int, list[StoredCheckpoint]] = {}
        for checkpoint in checkpoints:
            self.at_size.setdefault(checkpoint.size, []).append(checkpoint)
        self.marks = frozenset(self.at_size)
        self.last_good_size = 0

    def reached(self) -> None:
        self.check_roots()

    def check_roots(self, size: int | None = None, root: bytes | None = None) -> None:
        """The recomputed root at this size (or the ``root`` a range's walk found at
        ``size``) is the one each checkpoint of it signed."""
        report = self.report
        for checkpoint in self.at_size.get(self.compact.size if size is None else size, ()):
            if root is None:
                root = self.compact.root()
            if root == checkpoint.root:
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

    def replay(self, result: RangeResult) -> None:
        """Take in a range's walk as if its leaves were stepped through here: its
        findings and the checkpoint roots within it in their order, then its subtrees."""
        report, base = self.report, self.compact.hashes()
        for item in result.items:
            if isinstance(item, Finding):
                if item.kind == "tree-lags":
                    if self.lag_reported:
                        continue
                    self.lag_reported = True
                report.add(item.kind, item.index, item.message)
                continue
            size, hashes = item
            self.check_roots(size, merkle.fold(base + hashes))
        report.more_findings += result.more_findings
        for level, value in result.subtrees:
            self.compact.push_subtree(level, value)
        self.digests.update(result.digests)
        for index in result.erasures:
            self.declared.pop(index, None)
        self.expected, self.size = result.stop, self.compact.size

    def finish(self) -> None:
        """Findings for redactions no erasure declared and for a truncated log."""
        report, size = self.report, self.flush().size
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
    report: _Findings,
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


# --- in worker processes ----------------------------------------------------------------

#: Below this many leaves a tree is walked in this process: starting workers costs more.
PARALLEL_MIN_LEAVES = 65_536
#: Ranges per worker, so that a worker held up (a busy core) leaves less to wait for.
RANGES_PER_WORKER = 16
#: The smallest range a worker is given.
MIN_RANGE = 1 << 14


@dataclass
class RangeResult:
    """A worker's walk of the leaves ``[start, stop)``: its findings and, at each
    checkpoint size within it, the range's subtrees so far, in the order met; the
    range's subtrees at its end; the payload digests and the erasures it saw."""

    start: int
    stop: int
    complete: bool  # False: an index was missing, and the tree is walked in one pass
    items: list[Finding | tuple[int, list[bytes]]]
    more_findings: int
    subtrees: list[tuple[int, bytes]]
    digests: dict[int, str]
    erasures: list[int]


class _RangeFindings:
    """A range's findings in order; past ``MAX_FINDINGS`` only counted (the report keeps
    no more), except the one ``tree-lags`` the report may keep of all the ranges'."""

    def __init__(self, tree: str) -> None:
        self.tree = tree
        self.items: list[Finding | tuple[int, list[bytes]]] = []
        self.kept = self.more = 0

    def add(self, kind: str, index: int | None, message: str) -> None:
        if kind != "tree-lags":
            if self.kept >= MAX_FINDINGS:
                self.more += 1
                return
            self.kept += 1
        self.items.append(Finding(self.tree, kind, index, message))


class _RangeWalk(_LeafWalk):
    """The leaf checks over ``[start, stop)``, which starts on a multiple of a power of
    two at least its length (an RFC 9162 subtree, or the left part of the last one):
    its subtrees then sit whole in the tree, below those of the leaves before it."""

    def __init__(
        self,
        findings: _RangeFindings,
        spec: TreeSpec,
        tree: StoredTree,
        span: tuple[int, int],
        sizes: frozenset[int],
    ) -> None:
        super().__init__(findings, spec, tree, span)
        self.range_findings = findings
        self.start, self.end = span
        self.marks = frozenset(size - self.start for size in sizes)

    def reached(self) -> None:
        self.range_findings.items.append((self.start + self.size, self.compact.hashes()))

    def result(self) -> RangeResult:
        size = self.flush().size
        levels = [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]
        return RangeResult(
            start=self.start,
            stop=self.end,
            complete=not self.gap and self.expected == self.end,
            items=self.range_findings.items,
            more_findings=self.range_findings.more,
            subtrees=list(zip(levels, self.compact.hashes(), strict=True)),
            digests=self.digests,
            erasures=self.erasures,
        )


#: The store a worker process reads, opened once by ``_open_worker``.
_worker_store: Store | None = None


def _open_worker(url: str) -> None:
    global _worker_store
    from registry.store import open_store

    _worker_store = open_store(url, create=False)


def _walk_range(tree: str, start: int, stop: int, sizes: frozenset[int]) -> RangeResult:
    """In a worker: ``walk_range`` in a read transaction of the worker's own connection."""
    if _worker_store is None:
        raise RuntimeError("a verification worker was started without its store")
    with _worker_store.read() as conn:
        return walk_range(conn, TREES[tree], (start, stop), sizes)


def walk_range(
    conn: Connection, spec: TreeSpec, span: tuple[int, int], sizes: frozenset[int]
) -> RangeResult:
    """Check the leaves ``[start, stop)`` of tree ``spec``; note the range's subtrees at
    each of ``sizes`` within it."""
    start, stop = span
    walk = _RangeWalk(_RangeFindings(spec.name), spec, StoredTree(conn, spec), span, sizes)
    if spec == EVENTS:
        # The declarations of the erasures in the range, and every redaction of an
        # event in it (the latest payload digest wins, as over the whole log).
        walk.read_redactions(
            Raw(conn),
            "WHERE (erased_pos >= ? AND erased_pos < ?) OR (position >= ? AND position < ?)",
            (start, stop, start, stop),
        )
    for leaf in leaves(conn, spec, start, stop):
        walk.step(leaf)
    return walk.result()


def ranges(count: int, workers: int) -> list[tuple[int, int]]:
    """``[0, count)`` cut into ranges of one power-of-two length (the last one
    shorter), about ``RANGES_PER_WORKER`` per worker, each starting on a multiple of
    that length."""
    if count <= 0:
        return []
    target = -(-count // (workers * RANGES_PER_WORKER))
    length = max(MIN_RANGE, 1 << (target - 1).bit_length())
    return [(start, min(start + length, count)) for start in range(0, count, length)]


class _Pool:
    """``workers - 1`` worker processes, each with its own connection to the store, and
    this process: together they walk the ranges of a tree's leaves. The workers are
    started on first use, by 'forkserver' (or 'spawn'), never by forking this
    process, whose engine, connections and threads are not theirs."""

    def __init__(self, url: str, workers: int) -> None:
        self.url, self.workers = url, workers
        self._executor: ProcessPoolExecutor | None = None
        self.started = False  # whether any tree was large enough to start the workers
        self.broken = False  # whether they failed to start (then every tree is walked here)

    def walk(
        self,
        conn: Connection,
        spec: TreeSpec,
        count: int,
        sizes: frozenset[int],
        told: Callable[[int], None] | None = None,
    ) -> list[RangeResult] | None:
        """The ranges' results in order; None when the tree is better walked in one
        pass: a small tree, or a range missing an index (a gap changes every position
        after it, so only one pass in order says what it did).

        The workers take the ranges from the first on; this process (on ``conn``) from
        the last back, each one no worker has begun, so it works while they start.
        ``told`` is told the leaves of the ranges finished so far, after each range
        this process walks or takes from a worker."""
        if count < PARALLEL_MIN_LEAVES or self.broken:
            return None
        executor = self._start()
        cut = ranges(count, self.workers)
        within = [frozenset(s for s in sizes if start < s <= stop) for start, stop in cut]
        futures = [
            executor.submit(_walk_range, spec.name, start, stop, marks)
            for (start, stop), marks in zip(cut, within, strict=True)
        ]
        here: dict[int, RangeResult] = {}

        def tell() -> None:
            if told is not None:
                told(
                    sum(
                        stop - start
                        for number, (start, stop) in enumerate(cut)
                        if number in here or futures[number].done()
                    )
                )

        try:
            for number in reversed(range(len(cut))):
                if not futures[number].cancel():
                    break  # a worker has it, and every range before it
                here[number] = walk_range(conn, spec, cut[number], within[number])
                tell()
            results = []
            for number in range(len(cut)):
                results.append(here[number] if number in here else futures[number].result())
                tell()
        except BrokenProcessPool:
            # The workers could not start: a script that verifies when it is run, not
            # under `if __name__ == "__main__":`, runs again in each of them and fails.
            self.broken, self.started = True, False
            return None
        finally:
            for future in futures:
                future.cancel()
        return results if all(result.complete for result in results) else None

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self.started = True
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn"
            )
            if context.get_start_method() == "forkserver":
                context.set_forkserver_preload(["audit.verify"])
            self._executor = ProcessPoolExecutor(
                self.workers - 1,
                mp_context=context,
                initializer=_open_worker,
                initargs=(self.url,),
            )
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None


def _pool(store: Store, workers: int) -> _Pool | None:
    """Workers for ``store``, unless one is asked for or they could not reach it (a
    SQLite database in memory is this process's alone)."""
    url = store.url
    shared = url.startswith("postgresql") or (
        url.startswith("sqlite:///") and ":memory:" not in url and "mode=memory" not in url
    )
    return _Pool(url, workers) if workers > 1 and shared else None
