"""Signed checkpoints: the size and root of a tree, signed with the log's Ed25519 key
as a C2SP signed note (``audit.note``), kept in the append-only ``checkpoints`` table.

Two trees have checkpoints: ``events`` (origin: the key's name) and ``access``
(origin: the key's name + ``/access-trail``). A checkpoint is written only over
what was checked first:

- the leaves added since the previous checkpoint are recomputed from their
  stored content and must equal the stored leaf hashes and the tree's copies;
- the root is computed twice, from the stored tree and by streaming the new
  leaves onto the previous checkpoint's frontier, and both must agree;
- the previous checkpoint's signature must verify with the key, and a
  consistency proof from it to the new size must verify (RFC 9162 2.1.4).

Any failure raises ``IntegrityViolation`` and nothing is signed.
"""

from __future__ import annotations

import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from audit import merkle
from audit.leaves import CompactRange, leaves
from audit.note import Checkpoint, NoteError, SigningKey, VerifierKey, open_note, sign_checkpoint
from audit.trail import fold_trail
from audit.tree import EVENTS, TRAIL, MerkleTree, StoredTree, TreeSpec, leaf_count, tree_spec
from registry.errors import ConfigError, IntegrityViolation
from registry.projection import ProjectionRunner
from registry.settings import (
    SIGNING_KEY_NAME,
    default_signing_key_file,
    key_file_path,
    make_private_dirs,
)
from registry.store.base import Store
from registry.store.lease import holder_label
from registry.store.raw import Raw
from registry.timeutil import now

_ORIGIN_SUFFIX = {EVENTS.name: "", TRAIL.name: "/access-trail"}
#: How often a server repeats a checkpoint failure that lasts (seconds).
FAILURE_REPEAT_S = 600.0
_COLUMNS = "tree, seq, tree_size, root_hash, note, signed_at"


def origin(key_name: str, tree: str) -> str:
    """The checkpoint origin of ``tree`` for a log whose key is called ``key_name``."""
    return key_name + _ORIGIN_SUFFIX[tree_spec(tree).name]


@dataclass(frozen=True)
class StoredCheckpoint:
    tree: str
    seq: int
    size: int
    root: bytes
    note: str
    signed_at: str

    def as_dict(self) -> dict[str, Any]:
        import base64

        return {
            "tree": self.tree,
            "seq": self.seq,
            "tree_size": self.size,
            "root_hash": base64.b64encode(self.root).decode(),
            "signed_at": self.signed_at,
            "note": self.note,
        }


def _row(row: Any) -> StoredCheckpoint:
    tree, seq, size, root, note, signed_at = row
    return StoredCheckpoint(tree, int(seq), int(size), bytes(root), note, signed_at)


def stored_checkpoints(conn: Connection, tree: str) -> list[StoredCheckpoint]:
    """Every checkpoint of ``tree``, oldest first (in ``seq`` order, as stored)."""
    rows = Raw(conn).all(
        f"SELECT {_COLUMNS} FROM checkpoints WHERE tree = ? ORDER BY seq", (tree_spec(tree).name,)
    )
    return [_row(r) for r in rows]


def newest_checkpoints(
    conn: Connection, tree: str, *, before: int | None = None, limit: int = 25
) -> list[StoredCheckpoint]:
    """At most ``limit`` checkpoints of ``tree``, newest first, those with ``seq`` below
    ``before`` when it is given (a page of the list, read by its index)."""
    sql = f"SELECT {_COLUMNS} FROM checkpoints WHERE tree = ?"
    params: list[Any] = [tree_spec(tree).name]
    if before is not None:
        sql += " AND seq < ?"
        params.append(before)
    rows = Raw(conn).all(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])
    return [_row(r) for r in rows]


def latest_checkpoint(conn: Connection, tree: str) -> StoredCheckpoint | None:
    """The newest checkpoint of ``tree``, or None."""
    row = Raw(conn).one(
        f"SELECT {_COLUMNS} FROM checkpoints WHERE tree = ? ORDER BY seq DESC LIMIT 1",
        (tree_spec(tree).name,),
    )
    return None if row is None else _row(row)


# --- the signing key -------------------------------------------------------------------------


def default_key_name() -> str:
    """A name for a new key: ``<host>/mlledger/<random>`` (key names may not hold spaces
    or '+')."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-.") or "localhost"
    return f"{host}/mlledger/{secrets.token_hex(4)}"


def key_path(url: str, path: str | Path | None = None) -> Path:
    """The absolute path of the signing key's file: ``path`` when given, else
    ``MLLEDGER_SIGNING_KEY``, else ``signing.key`` in the ledger's key directory. A
    relative path is taken inside the key directory, never the working directory
    (``registry.settings.key_file_path``)."""
    if path is None or str(path) == "":
        return default_signing_key_file(url)
    return key_file_path(url, path, SIGNING_KEY_NAME)


def create_signing_key(
    url: str, path: str | Path | None = None, name: str | None = None, *, store: Store | None = None
) -> tuple[SigningKey, Path]:
    """Generate a key and save it (mode 0600; missing directories 0700); refuse to
    replace an existing one, and refuse to make one for a log whose checkpoints
    another key signed (it could not extend them). ``store``: the open store at
    ``url``, when the caller has one."""
    where = key_path(url, path)
    if where.exists() or where.is_symlink():
        raise _key_exists(where)
    signed = _latest_signers(url, store)
    if signed:
        raise ConfigError(
            f"no signing key at {where}, but {_signed_by(signed)}: refusing to create a new "
            "key, whose checkpoints could not extend theirs. Restore that key's file to "
            f"{where} or set MLLEDGER_SIGNING_KEY to it"
        )
    key = SigningKey.generate(name or default_key_name())
    make_private_dirs(where.parent)
    try:
        key.save(where)
    except FileExistsError:
        raise _key_exists(where) from None
    return key, where


def _key_exists(where: Path) -> ConfigError:
    return ConfigError(
        f"a signing key already exists at {where}; it signs this log's checkpoints and "
        "must not be replaced (use --key PATH for another file)"
    )


_CREATE_LOCK = threading.Lock()


def load_signing_key(
    url: str, path: str | Path | None = None, *, create: bool = False, store: Store | None = None
) -> tuple[SigningKey, Path, bool]:
    """The signing key at ``path`` (default: ``MLLEDGER_SIGNING_KEY`` or ``signing.key``
    in the ledger's key directory). Returns (key, path, created).

    With ``create`` (the caller is about to sign) the key is made on first use, and
    it must be the key that signed the log's newest checkpoints: a missing key is
    not replaced by a new one while checkpoints exist, and a key other than
    theirs is refused, each with a ``ConfigError`` naming the expected key and the
    path looked at. ``store``: the open store at ``url``, when the caller has one
    (otherwise the database is looked at through a connection of its own).
    """
    where = key_path(url, path)
    if create:
        with _CREATE_LOCK:
            if not (where.exists() or where.is_symlink()):
                try:
                    key, _ = create_signing_key(url, where, store=store)
                    return key, where, True
                except ConfigError:
                    # Another process may have created it just now: load that one.
                    if not where.exists():
                        raise
    elif not where.exists():
        raise ConfigError(
            f"no signing key at {where}: create one with `mlledger audit keygen` "
            "or set MLLEDGER_SIGNING_KEY to its file"
        )
    try:
        key = SigningKey.load(where)
    except NoteError as exc:
        raise ConfigError(str(exc)) from None
    if create:
        check_signing_key(url, key, where, store=store)
    return key, where, False


def check_signing_key(
    url: str, key: SigningKey, where: Path, *, store: Store | None = None
) -> None:
    """Raise unless ``key`` (read from ``where``) signed the newest checkpoint of each
    tree of the log at ``url``: a ``ConfigError`` naming the key expected when
    another key signed it, an ``IntegrityViolation`` when the checkpoint names this
    key but its signature does not verify with it."""
    from audit.note import verify_checkpoint

    for checkpoint, signers in _latest_signers(url, store):
        if (key.name, key.key_id) not in signers:
            raise ConfigError(
                f"the signing key at {where} is {key.name} (key ID {key.key_id:08x}), but "
                f"{_signed_by([(checkpoint, signers)])}: refusing to sign with a key that "
                "cannot extend them. Set MLLEDGER_SIGNING_KEY (or --key) to that key's file"
            )
        try:
            verify_checkpoint(key.verifier(), checkpoint.note, origin(key.name, checkpoint.tree))
        except NoteError as exc:
            raise IntegrityViolation(
                f"the {checkpoint.tree} checkpoint #{checkpoint.seq} names the signing key "
                f"{key.name} at {where} but does not verify with it: {exc}; refusing to sign "
                "(run `mlledger audit verify`)"
            ) from None


_Signers = list[tuple[StoredCheckpoint, set[tuple[str, int]]]]


def _latest_signers(url: str, store: Store | None) -> _Signers:
    """The newest checkpoint of each tree, with the (name, key ID) of each signature
    line of its note; empty when the log has none."""
    newest: list[StoredCheckpoint] = []
    if store is not None:
        with store.read() as conn:
            newest = _newest(conn)
    else:
        from registry.store import peek

        with peek(url, "checkpoints") as conn:
            newest = [] if conn is None else _newest(conn)
    out: _Signers = []
    for checkpoint in newest:
        try:
            _, signatures = open_note(checkpoint.note)
        except NoteError as exc:
            raise IntegrityViolation(
                f"the {checkpoint.tree} checkpoint #{checkpoint.seq} is not a signed note: "
                f"{exc} (run `mlledger audit verify`)"
            ) from None
        out.append((checkpoint, {(name, key_id) for name, key_id, _ in signatures}))
    return out


def _newest(conn: Connection) -> list[StoredCheckpoint]:
    found = (latest_checkpoint(conn, spec.name) for spec in (EVENTS, TRAIL))
    return [c for c in found if c is not None]


def _signed_by(signed: _Signers) -> str:
    """'the log's events checkpoint #3 was signed by NAME (key ID ...)' for the first."""
    checkpoint, signers = signed[0]
    names = " and ".join(f"{name} (key ID {key_id:08x})" for name, key_id in sorted(signers))
    return (
        f"the log's {checkpoint.tree} checkpoint #{checkpoint.seq} was signed by "
        f"{names or 'no key'}"
    )


# --- writing ---------------------------------------------------------------------------------


def _check_new_leaves(
    conn: Connection, spec: TreeSpec, start: int, stop: int, frontier: CompactRange
) -> bytes:
    """Recompute leaves ``[start, stop)`` from their content onto ``frontier``; compare
    each with the stored leaf hash and the tree's copy; return the root at ``stop``."""
    tree = StoredTree(conn, spec)
    expected = start
    for chunk_start in range(start, stop, 4096):
        chunk_stop = min(stop, chunk_start + 4096)
        copies = tree.leaf_copies(chunk_start, chunk_stop)
        for leaf in leaves(conn, spec, chunk_start, chunk_stop):
            if leaf.number != expected:
                raise IntegrityViolation(
                    f"{spec.leaves} has no row at {spec.index} {expected}: refusing to sign "
                    "a checkpoint over a gap (run `mlledger audit verify`)"
                )
            if leaf.computed != leaf.stored or copies.get(leaf.number) != leaf.stored:
                raise IntegrityViolation(
                    f"the {spec.name} leaf at {spec.index} {leaf.number} does not match its "
                    "stored hash: refusing to sign (run `mlledger audit verify`)"
                )
            frontier.push(leaf.stored)
            expected += 1
    if expected != stop:
        raise IntegrityViolation(
            f"{spec.leaves} has no row at {spec.index} {expected}: refusing to sign"
        )
    return frontier.root()


def _tree_runner() -> ProjectionRunner:
    return ProjectionRunner([MerkleTree()])


def sync_tree(store: Store) -> int:
    """Bring the events' stored tree to the head of the log, as the next append would
    (it lags only in a database migrated from before it); return the events applied.
    The other projections are left to the next append."""
    runner = _tree_runner()
    with store.read() as conn:
        head = Store.max_position(conn)
        if min(runner.positions(conn).values()) >= head:
            return 0
    with store.append_transaction() as conn:
        return runner.catch_up(conn, Store.max_position(conn))


#: Rounds ``write_checkpoint`` computes before it leaves signing to the other writer
#: that kept signing first (each lost round means that writer signed a newer one).
SIGN_ROUNDS = 5


@dataclass(frozen=True)
class _Plan:
    """What one snapshot checked: the tree at ``size`` has ``root``, extends
    ``previous`` and its new leaves match their content."""

    previous: StoredCheckpoint | None
    size: int
    root: bytes


def write_checkpoint(
    store: Store, key: SigningKey, tree: str = "events", *, min_growth: int = 1
) -> tuple[StoredCheckpoint, bool]:
    """Sign and store a checkpoint of ``tree`` at its current size, unless it grew by
    fewer than ``min_growth`` leaves since the previous one. Returns the newest
    checkpoint and whether it was written now.

    The checks (every new leaf recomputed, the root, the previous checkpoint and
    the consistency proof) run in a read snapshot, without the append lock, so
    appends go on meanwhile; the size signed is the log's as of that snapshot.
    Only the signing runs under the lock, after confirming that the newest
    checkpoint is still the one built on and the stored root at that size is
    unchanged: two writers (server workers, a cron job) never sign the same
    sequence number, and one that finds another signed first computes again from
    that checkpoint (only the leaves added since).
    """
    spec = tree_spec(tree)
    if spec == TRAIL:
        fold_trail(store)  # what the trail journal holds belongs under the checkpoint
    lagging = False
    for _ in range(SIGN_ROUNDS):
        if spec == EVENTS:
            sync_tree(store)
        with store.snapshot() as conn:
            plan = _plan(conn, spec, key, min_growth)
        if isinstance(plan, StoredCheckpoint):
            return plan, False
        lagging = plan is None
        if plan is None:
            continue  # an append the tree missed came in after sync_tree: once more
        with store.append_transaction() as conn:
            signed = _sign(conn, spec, key, plan)
        if signed is not None:
            return signed, True
    with store.read() as conn:
        latest = latest_checkpoint(conn, spec.name)
    if lagging or latest is None:
        raise IntegrityViolation(
            f"the stored {spec.name} tree still lags the log after {SIGN_ROUNDS} rounds of "
            "bringing it up: refusing to sign (run `mlledger audit verify`)"
        )
    # Another writer signed first in every round: its checkpoint is the newest.
    return latest, False


def _plan(
    conn: Connection, spec: TreeSpec, key: SigningKey, min_growth: int
) -> _Plan | StoredCheckpoint | None:
    """Check, in one snapshot, what a checkpoint at the tree's current size would
    sign. Returns the plan; the previous checkpoint when the tree grew by fewer than
    ``min_growth`` leaves since; None when the events' stored tree lags the log (an
    append that did not extend it: ``sync_tree`` brings it up, then try again)."""
    size = leaf_count(conn, spec)
    stored = StoredTree(conn, spec)
    stored_size = stored.size()
    if stored_size != size:
        if spec == EVENTS and stored_size < size:
            return None
        raise IntegrityViolation(
            f"the stored {spec.name} tree holds {stored_size} leaves but the log "
            f"{size}: refusing to sign (run `mlledger audit verify`)"
        )
    previous = latest_checkpoint(conn, spec.name)
    if previous is not None and size < previous.size:
        raise _truncated(spec, size, previous)
    if previous is not None and size - previous.size < max(min_growth, 1):
        return previous
    root = stored.root(size)
    if previous is None:
        recomputed = _check_new_leaves(conn, spec, 0, size, CompactRange())
    else:
        _check_previous(previous, key, spec, stored, size, root)
        base = merkle.frontier(previous.size)
        hashes = stored.nodes(base)
        recomputed = _check_new_leaves(
            conn,
            spec,
            previous.size,
            size,
            CompactRange(previous.size, [hashes[k] for k in base]),
        )
    if recomputed != root:
        raise IntegrityViolation(
            f"the stored {spec.name} tree's root at size {size} differs from the root "
            "recomputed from the leaves: refusing to sign (run `mlledger audit verify`)"
        )
    return _Plan(previous, size, root)


def _sign(
    conn: Connection, spec: TreeSpec, key: SigningKey, plan: _Plan
) -> StoredCheckpoint | None:
    """Under the append lock: sign and insert the checkpoint ``plan`` checked, or
    return None when another writer signed a checkpoint since (``plan`` no longer
    extends the newest one)."""
    latest = latest_checkpoint(conn, spec.name)
    previous = plan.previous
    if latest != previous:
        if latest is not None and previous is not None and latest.seq == previous.seq:
            raise IntegrityViolation(
                f"the {spec.name} checkpoint #{latest.seq} changed while the next one was "
                "computed: refusing to sign (run `mlledger audit verify`)"
            )
        if latest is None or (previous is not None and latest.seq < previous.seq):
            raise IntegrityViolation(
                f"the {spec.name} checkpoint #{previous.seq if previous else 0} disappeared "
                "while the next one was computed: refusing to sign (run `mlledger audit verify`)"
            )
        return None
    size = leaf_count(conn, spec)
    if previous is not None and size < previous.size:
        raise _truncated(spec, size, previous)
    if size < plan.size:
        raise IntegrityViolation(
            f"the {spec.name} log holds {size} leaves, fewer than the {plan.size} checked "
            "for the next checkpoint a moment ago: it was truncated; refusing to sign"
        )
    if StoredTree(conn, spec).root(plan.size) != plan.root:
        raise IntegrityViolation(
            f"the stored {spec.name} tree's root at size {plan.size} changed while the "
            "checkpoint was computed: the log was rewritten; refusing to sign "
            "(run `mlledger audit verify`)"
        )
    note = sign_checkpoint(key, Checkpoint(origin(key.name, spec.name), plan.size, plan.root))
    checkpoint = StoredCheckpoint(
        spec.name, 0 if previous is None else previous.seq + 1, plan.size, plan.root, note, now()
    )
    Raw(conn).run(
        f"INSERT INTO checkpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (
            checkpoint.tree,
            checkpoint.seq,
            checkpoint.size,
            checkpoint.root,
            checkpoint.note,
            checkpoint.signed_at,
        ),
    )
    return checkpoint


def _truncated(spec: TreeSpec, size: int, previous: StoredCheckpoint) -> IntegrityViolation:
    return IntegrityViolation(
        f"the {spec.name} log holds {size} leaves, fewer than the {previous.size} of "
        f"checkpoint #{previous.seq}: it was truncated; refusing to sign"
    )


def _check_previous(
    previous: StoredCheckpoint,
    key: SigningKey,
    spec: TreeSpec,
    stored: StoredTree,
    size: int,
    root: bytes,
) -> None:
    """The previous checkpoint is ours and the new tree extends it."""
    from audit.note import verify_checkpoint

    verifier: VerifierKey = key.verifier()
    try:
        signed = verify_checkpoint(verifier, previous.note, origin(key.name, spec.name))
    except NoteError as exc:
        raise IntegrityViolation(
            f"the previous {spec.name} checkpoint (#{previous.seq}) does not verify with the "
            f"signing key {key.name}: {exc}; refusing to sign"
        ) from None
    if (signed.size, signed.root) != (previous.size, previous.root):
        raise IntegrityViolation(
            f"the previous {spec.name} checkpoint (#{previous.seq}) note says size "
            f"{signed.size}, but its row says {previous.size} or another root; refusing to sign"
        )
    if previous.size == 0:
        # The empty tree is a prefix of every tree (RFC 9162 has no proof for it).
        if previous.root != merkle.EMPTY_ROOT:
            raise IntegrityViolation(
                f"the previous {spec.name} checkpoint (#{previous.seq}) signs size 0 with a "
                "root that is not the empty tree's; refusing to sign"
            )
        return
    proof = stored.consistency_proof(previous.size, size)
    if not merkle.verify_consistency(previous.size, size, previous.root, root, proof):
        raise IntegrityViolation(
            f"the {spec.name} tree at size {size} is not consistent with checkpoint "
            f"#{previous.seq} (size {previous.size}): the log was rewritten; refusing to sign"
        )


# --- automatic checkpoints -------------------------------------------------------------------


class Checkpointer:
    """A server's background thread: checkpoints each tree once it has grown by
    ``every`` leaves, or by any leaf when ``seconds`` have passed since the last one.

    Several servers may share a database, each running one: only the holder of the
    database's ``checkpoints`` lease signs (``Store.lease``: a PostgreSQL advisory
    lock held on a connection of its own, or a file lock beside a SQLite file); the
    others try to take the lease at every poll, and do when its holder dies. Should
    two sign all the same (a lease handed over mid-checkpoint, a manual
    ``mlledger audit checkpoint``), ``write_checkpoint`` still never signs one
    sequence number twice.
    """

    def __init__(
        self, store: Store, key: SigningKey, *, every: int, seconds: float, poll: float = 1.0
    ):
        if every < 1:
            raise ConfigError(f"checkpoint interval {every} events: expected 1 or more")
        if seconds <= 0:
            raise ConfigError(f"checkpoint interval {seconds} s: expected more than 0")
        self.store = store
        self.key = key
        self.every = every
        self.seconds = seconds
        self.poll = min(poll, seconds)
        self.lease = store.lease("checkpoints")
        self._leading = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlledger-checkpointer", daemon=True)
        self._last: dict[str, float] = {}

    def start(self) -> None:
        import time

        self._last = {t: time.monotonic() for t in (EVENTS.name, TRAIL.name)}
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        self.lease.release()

    def leads(self) -> bool:
        """Whether this server holds the checkpoints lease now (taking it when free);
        a change is logged, the holder named when it is another."""
        import logging

        log = logging.getLogger("mlledger.checkpoints")
        leading = self.lease.acquire()
        if leading and not self._leading:
            log.info("this server (%s) holds the checkpoints lease: it signs them", holder_label())
        elif not leading:
            holder = self.lease.holder() or "another server"
            if self._leading:
                log.warning("the checkpoints lease was lost; %s holds it", holder)
            else:
                log.debug("not signing checkpoints: %s holds the lease", holder)
        self._leading = leading
        return leading

    def tick(self) -> list[StoredCheckpoint]:
        """Write the checkpoints that are due now, when this server holds the lease;
        return those written."""
        import time

        if not self.leads():
            return []
        with self.store.read() as conn:
            growth = {}
            for spec in (EVENTS, TRAIL):
                previous = latest_checkpoint(conn, spec.name)
                growth[spec.name] = leaf_count(conn, spec) - (
                    0 if previous is None else previous.size
                )
        written = []
        for tree, grown in growth.items():
            due = time.monotonic() - self._last.get(tree, 0.0) >= self.seconds
            if grown >= self.every or (due and grown > 0):
                checkpoint, new = write_checkpoint(
                    self.store, self.key, tree, min_growth=1 if due else self.every
                )
                if new:
                    written.append(checkpoint)
                    self._last[tree] = time.monotonic()
        return written

    def _run(self) -> None:
        import logging
        import time

        log = logging.getLogger("mlledger.checkpoints")
        failing: str | None = None
        logged_at = 0.0
        while not self._stop.wait(self.poll):
            try:
                for checkpoint in self.tick():
                    log.info(
                        "signed %s checkpoint #%d at size %d",
                        checkpoint.tree,
                        checkpoint.seq,
                        checkpoint.size,
                    )
                if failing is not None:
                    log.warning("checkpoints are signed again after: %s", failing)
                    failing = None
            except Exception as exc:  # logged and kept; the next tick tries again
                # The same failure every poll would flood the log: say it when it
                # changes, and again every FAILURE_REPEAT_S while it lasts.
                message = f"{type(exc).__name__}: {exc}"
                if message != failing or time.monotonic() - logged_at >= FAILURE_REPEAT_S:
                    log.error("checkpoint failed: %s", message)
                    failing, logged_at = message, time.monotonic()
