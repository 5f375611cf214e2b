"""The prediction logger's journal: a spool directory of lanes, one per logger.

A lane is a directory ``lane-<uuid>`` holding

- ``lock``: locked (``fcntl.flock``) by the process that owns the lane, for as long as
  it lives; a lane whose lock is free was left by a process that ended, and any logger
  on the spool may adopt it and send what it holds;
- ``meta.json``: the project and deployment its lines belong to;
- ``seg-<n>.jsonl``: the journal, in segments; each line is one prediction
  (``[record, output, model, at, trace_id]``), appended with a single ``os.write`` on
  an ``O_APPEND`` descriptor. Only the lane's owner writes, and only to its newest
  segment; a segment is final once the next one exists;
- ``state.json``: how far the journal has been sent (``segment``, ``offset``) and the
  batch being sent (``sending``: its range and batch id, written before the batch is
  sent, so that after a crash the same range is sent again under the same id);
- ``rejected/<batch>.jsonl``: batches the ledger refused, line for line as journaled,
  with the reason in ``rejected/<batch>.error``.

Directories are created 0700 and files 0600: the journal holds record keys.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from registry.errors import ConfigError

DIR_MODE = 0o700
FILE_MODE = 0o600
LANE_PREFIX = "lane-"
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".jsonl"


def private_directory(path: Path) -> Path:
    """``path`` as a directory only its owner can enter: created 0700, or refused when
    it exists and group or others may read it."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
        path.chmod(DIR_MODE)  # mkdir's mode is masked by the umask; never widened by it
    except FileExistsError:
        if not path.is_dir():
            raise ConfigError(
                f"spool {path} is not a directory; expected a directory for the journal"
            ) from None
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"spool directory {path} has mode {mode:04o}: group or others may read "
                "it, and the journal holds record keys; expected 0700 "
                f"(chmod 700 {path})"
            ) from None
    return path


def write_private(path: Path, data: bytes, *, sync: bool) -> None:
    """Replace ``path`` atomically with ``data`` (mode 0600); with ``sync``, the file and
    its directory are flushed to disk first."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """Flush a directory's entries (a created, renamed or removed file) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_name(number: int) -> str:
    return f"{SEGMENT_PREFIX}{number:09d}{SEGMENT_SUFFIX}"


@dataclass
class Sending:
    """A batch about to be sent: lines ``[start, end)`` of segment ``segment``."""

    segment: int
    start: int
    end: int
    batch: str


@dataclass
class Batch:
    """Complete lines read from the journal, and where they lie."""

    segment: int
    start: int
    end: int
    data: bytes  # the lines, each ending in a newline


class Lane:
    """One lane of a spool, held (its lock taken) by this process."""

    def __init__(self, path: Path, lock_fd: int, *, sync: bool):
        self.path = path
        self.lock_fd = lock_fd
        self.sync = sync
        self.id = uuid.UUID(path.name[len(LANE_PREFIX) :])
        meta = json.loads((path / "meta.json").read_bytes())
        self.project: str = meta["project"]
        self.deployment: str = meta["deployment"]
        self.segment = 1
        self.offset = 0
        self.sending: Sending | None = None
        self._line_bytes = 256  # the length of a line, as the last batch read had them
        self._read_state()
        self.closed = False

    # --- opening ----------------------------------------------------------------------

    @classmethod
    def create(cls, spool: Path, project: str, deployment: str, *, sync: bool) -> Lane:
        """A new lane of this process: made under a temporary name, locked, then renamed
        into place, so that no other logger ever sees it unlocked."""
        lane_id = uuid.uuid4()
        making = private_directory(spool / f".new-{lane_id}")
        lock_fd = os.open(making / "lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        meta = {"project": project, "deployment": deployment, "pid": os.getpid()}
        write_private(making / "meta.json", json.dumps(meta).encode(), sync=sync)
        path = spool / f"{LANE_PREFIX}{lane_id}"
        os.rename(making, path)
        if sync:
            sync_directory(spool)
        return cls(path, lock_fd, sync=sync)

    @classmethod
    def adopt(cls, path: Path, *, sync: bool) -> Lane | None:
        """The lane at ``path`` when its lock is free (its process ended), else None."""
        try:
            lock_fd = os.open(path / "lock", os.O_RDWR)
        except FileNotFoundError:
            return None  # removed by the logger that drained it
        if not _lock_orphan(path, lock_fd):
            os.close(lock_fd)
            return None
        if not (path / "meta.json").exists():
            os.close(lock_fd)  # drained (and removed) by another logger
            return None
        return cls(path, lock_fd, sync=sync)

    @staticmethod
    def candidates(spool: Path) -> list[Path]:
        """Every lane directory of a spool, oldest first."""
        try:
            entries = list(os.scandir(spool))
        except FileNotFoundError:
            return []
        lanes = [Path(e.path) for e in entries if e.name.startswith(LANE_PREFIX) and e.is_dir()]
        return sorted(lanes, key=lambda p: p.stat().st_mtime)

    # --- state ------------------------------------------------------------------------

    def _read_state(self) -> None:
        try:
            state = json.loads((self.path / "state.json").read_bytes())
        except FileNotFoundError:
            numbers = self.segments()
            self.segment = numbers[0] if numbers else 1
            return
        self.segment, self.offset = int(state["segment"]), int(state["offset"])
        sending = state.get("sending")
        self.sending = None if sending is None else Sending(**sending)
        self.forget_before(self.segment)  # sent; their removal was cut short

    def reload(self) -> None:
        """Read the state again, as another process (its sender) left it."""
        self.segment, self.offset, self.sending = 1, 0, None
        self._read_state()

    def save_state(self) -> None:
        sending = None if self.sending is None else self.sending.__dict__
        state = {"segment": self.segment, "offset": self.offset, "sending": sending}
        write_private(self.path / "state.json", json.dumps(state).encode(), sync=self.sync)

    def segments(self) -> list[int]:
        """The numbers of the lane's journal segments, in order."""
        names = (p.name for p in self.path.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"))
        return sorted(int(n[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]) for n in names)

    def unsent_bytes(self) -> int:
        """Bytes of the journal not yet sent (nor refused)."""
        total = 0
        for number in self.segments():
            if number >= self.segment:
                size = _size(self.path / segment_name(number))
                total += size - self.offset if number == self.segment else size
        return max(total, 0)

    # --- writing (the owner's newest segment) -------------------------------------------

    def open_segment(self, number: int) -> int:
        """An ``O_APPEND`` descriptor of segment ``number``, created 0600."""
        fd = os.open(
            self.path / segment_name(number),
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
            FILE_MODE,
        )
        if self.sync:
            sync_directory(self.path)
        return fd

    # --- reading ------------------------------------------------------------------------

    def read(self, max_lines: int, max_bytes: int) -> Batch | None:
        """The next complete lines to send (at most ``max_lines`` and, unless one line
        is longer, ``max_bytes``), moving past finished segments; None when there are
        none yet. A segment is finished once the next one exists; an incomplete last
        line of a finished segment (its writer was killed in the middle of the write,
        before ``log()`` returned) is skipped. Reads about what ``max_lines`` lines of
        the last batch's length take, and more only when they do not hold that many."""
        while True:
            path = self.path / segment_name(self.segment)
            # Whether a later segment exists is asked before reading: once it does,
            # nothing more is ever written to this one.
            finished = any(n > self.segment for n in self.segments())
            data = self._lines(path, self.offset, max_lines, max_bytes)
            if data:
                return Batch(self.segment, self.offset, self.offset + len(data), data)
            if not finished:
                return None
            self.segment, self.offset = self.segment + 1, 0
            self.save_state()
            path.unlink(missing_ok=True)

    def peek(self, segment: int, offset: int, max_lines: int, max_bytes: int) -> Batch | None:
        """The batch ``read`` will give once the lines before ``offset`` of ``segment``
        are sent, read ahead without moving the lane's state: into the next segment
        when this one is finished and holds no complete line after ``offset``."""
        while True:
            path = self.path / segment_name(segment)
            finished = any(n > segment for n in self.segments())
            data = self._lines(path, offset, max_lines, max_bytes)
            if data:
                return Batch(segment, offset, offset + len(data), data)
            if not finished:
                return None
            segment, offset = segment + 1, 0

    def forget_before(self, segment: int) -> None:
        """Remove the segments before ``segment``: all of them sent (or refused)."""
        for number in self.segments():
            if number < segment:
                (self.path / segment_name(number)).unlink(missing_ok=True)

    def _lines(self, path: Path, offset: int, max_lines: int, max_bytes: int) -> bytes:
        """At most ``max_lines`` complete lines of ``path`` from ``offset`` (and, unless
        one line is longer, ``max_bytes``): about what that many lines of the last
        batch's length take, more only when they do not hold that many."""
        size = min(max_bytes, max_lines * self._line_bytes + 4096)
        data = self._read_at(path, offset, size)
        while len(data) == size and size < max_bytes and data.count(b"\n") < max_lines:
            size = min(max_bytes, size * 2)
            data = self._read_at(path, offset, size)
        # At most max_lines complete lines, cut after the last one's newline.
        rest = data.split(b"\n", max_lines)[-1] if data.count(b"\n") > max_lines else None
        cut = len(data) - len(rest) if rest is not None else data.rfind(b"\n") + 1
        if cut:
            self._line_bytes = max(1, cut // data.count(b"\n", 0, cut))
        return data[:cut]

    @staticmethod
    def _read_at(path: Path, offset: int, size: int) -> bytes:
        try:
            with path.open("rb") as journal:
                journal.seek(offset)
                return journal.read(size)
        except FileNotFoundError:
            return b""

    def read_range(self, sending: Sending) -> bytes:
        """The lines of a batch recorded as being sent."""
        with (self.path / segment_name(sending.segment)).open("rb") as journal:
            journal.seek(sending.start)
            return journal.read(sending.end - sending.start)

    def keep_rejected(self, batch: str, data: bytes, reason: str) -> Path:
        """Store a refused batch's lines under ``rejected/``; the file's path."""
        folder = private_directory(self.path / "rejected")
        target = folder / f"{batch}.jsonl"
        write_private(target, data, sync=self.sync)
        write_private(folder / f"{batch}.error", reason.encode() + b"\n", sync=self.sync)
        return target

    # --- closing ------------------------------------------------------------------------

    def drained(self) -> bool:
        return self.sending is None and self.unsent_bytes() == 0

    def release(self, *, remove: bool) -> None:
        """Give the lane up; with ``remove``, when all of it was sent, delete it (a lane
        holding refused batches is kept, its lock released)."""
        if self.closed:
            return
        self.closed = True
        if remove and self.drained():
            # Without meta.json a lane is never adopted again; one holding refused
            # batches keeps them (and its lock file), the others go entirely.
            for entry in self.path.iterdir():
                if entry.name not in ("lock", "rejected"):
                    entry.unlink()
            if not (self.path / "rejected").exists():
                # The lock goes last: a logger that opened it meanwhile finds no meta.json.
                (self.path / "lock").unlink(missing_ok=True)
                self.path.rmdir()
        os.close(self.lock_fd)


#: Seconds a logger waits, at most, for the sender process of a lane whose logger's
#: process ended to finish the batch it was sending and let the lane go.
ORPHAN_SECONDS = 30.0


def _lock_orphan(path: Path, lock_fd: int) -> bool:
    """Take the lock of lane ``path``: at once when it is free; when it is held but the
    process that made the lane ended (killed), its sender process still holds it for
    the batch in flight, so wait for it (``ORPHAN_SECONDS`` at most). Whether it was
    taken."""
    deadline = time.monotonic() + ORPHAN_SECONDS
    while True:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline or _owner_alive(path):
                return False
            time.sleep(0.05)


def _owner_alive(path: Path) -> bool:
    """Whether the process that made lane ``path`` is running (an unreadable lane, or
    one without its process id, counts as running: it is left alone)."""
    try:
        pid = int(json.loads((path / "meta.json").read_bytes())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def json_lines(data: bytes) -> list[Any]:
    """The rows of journal lines (each a JSON array, ending in a newline), parsed in one
    call: by orjson, three times as fast as the standard library's parser, which takes
    over for the lines orjson refuses (integers beyond 64 bits, ``NaN``, lone
    surrogates: values the ledger then refuses, saying why)."""
    text = b"[" + data[:-1].replace(b"\n", b",") + b"]"  # JSON text holds no raw newline
    try:
        rows = orjson.loads(text)
    except orjson.JSONDecodeError:
        rows = json.loads(text)
    return list(rows)
