"""The sender of a prediction logger: it reads the journal of the logger's lane from
where it was last sent, sends it in batches (each under an id derived from its place in
the journal, its range recorded before it is sent), retries with backoff what did not
get through, and adopts the lanes of ended processes.

It runs as a process of its own (``sender="process"``, the default:
``python -m registry.hooks.sender``), so that its work (reading the journal, sealing
the record keys, appending) takes nothing from the serving process's threads, or as a
thread of the serving process (``sender="thread"``). Either way, what it does reaches
the logger as reports (``Report``): rows sent or refused, retries, lanes adopted and
released, warnings. A sender process reads its settings from the first line of its
standard input and is woken by each byte after it; the end of its input (the logger
closed, or its process ended) stops it after the batch in flight. It writes its
reports to its standard output, one JSON line each.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypedDict

from registry.backend import LocalBackend
from registry.errors import Conflict, InvalidInput, InvalidNodeId, LedgerError, NotFound
from registry.hooks.spool import Batch, Lane, Sending, json_lines

log = logging.getLogger("mlledger.serving")

#: Bytes read from the journal for one batch, at most.
READ_BYTES = 32 * 1024 * 1024
#: Seconds between looks for lanes left by ended processes.
ADOPT_INTERVAL = 10.0
#: Seconds between retries when the ledger cannot be reached: doubling up to the last.
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
#: Allocations between two collections of the youngest objects in a sender process.
GC_THRESHOLD = 100_000
#: Seconds a sealing process may take to start before the sender gives up on it.
SEALER_START_SECONDS = 20.0
#: Seconds a sealing process may take over one batch before the sender gives up on it
#: (a batch of 20,000 predictions takes about a tenth of a second).
SEAL_SECONDS = 60.0
#: Seconds a sender waits, at most, for its sealing process to end once told to.
SEALER_STOP_SECONDS = 10.0
#: prctl(2)'s request to be sent a signal when the parent process ends.
PR_SET_PDEATHSIG = 1
#: Errors no retry can fix: the batch is kept under the lane's ``rejected/``.
REFUSED = (InvalidInput, InvalidNodeId, NotFound)


class Report(TypedDict, total=False):
    """What a sender tells its logger. ``kind``: ``done`` (``rows`` and ``bytes`` of a
    batch sent, or ``rejected``, from the logger's own lane when ``own``), ``retry``,
    ``adopted`` (a lane of an ended process, ``bytes`` unsent), ``released`` (an
    adopted lane, drained), ``warn`` (``message``, ``once``), ``info`` (``message``),
    ``recovered`` (sends get through again) or ``ready`` (the first look for lanes to
    adopt is done)."""

    kind: str
    rows: int
    bytes: int
    own: bool
    rejected: bool
    message: str
    once: bool


class Sender:
    """Sends the journal of ``lane`` (the logger's own) and of the lanes it adopts from
    ``spool`` through ``registry``, telling ``report`` what it did."""

    def __init__(
        self,
        registry: Any,
        lane: Lane,
        spool: Path,
        *,
        batch_size: int,
        flush_interval: float,
        fsync: bool,
        report: Callable[[Report], None],
    ):
        self.registry = registry
        self.lane = lane
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.fsync = fsync
        self.report = report
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.adopted: list[Lane] = []
        #: What a sealing process is started with once the sender falls behind (a full
        #: batch waits), or None: never (a thread, a ledger over HTTP, or not wanted).
        self.seal_with: Settings | None = None
        #: The sealing process: it seals the next batch while this one is appended.
        self.sealer: SealingProcess | None = None

    def warn(self, message: str, *, once: bool = True) -> None:
        self.report({"kind": "warn", "message": message, "once": once})

    def run(self) -> None:
        """Send the journal until stopped; retry, with backoff, what did not get
        through."""
        failures = 0
        next_adopt = time.monotonic() + ADOPT_INTERVAL
        while True:
            self.wake.wait(self.flush_interval if not failures else _backoff(failures))
            self.wake.clear()
            if self.stop.is_set():
                return
            if time.monotonic() >= next_adopt:
                self.adopt()
                next_adopt = time.monotonic() + ADOPT_INTERVAL
            try:
                for lane in [self.lane, *self.adopted]:
                    self.drain(lane)
            except Exception as exc:  # anything but a refusal: retried, and warned about
                failures += 1
                self.report({"kind": "retry"})
                self.warn(
                    f"the ledger could not take a batch of predictions "
                    f"({type(exc).__name__}: {exc}); they stay in the spool and are sent "
                    "again"
                )
                continue
            if failures:
                self.report({"kind": "recovered"})
            failures = 0

    def drain(self, lane: Lane) -> None:
        """Send every complete line of a lane, batch by batch: once a sealing process
        is ready, with the next batch sealed there while this one is appended."""
        while not self.stop.is_set():
            if lane.sending is not None:  # a send cut short: the same range, same id
                self.send(lane, lane.sending, lane.read_range(lane.sending))
                continue
            if self._sealer_ready():
                try:
                    self._drain_ahead(lane)
                    break
                except SealerLost as exc:
                    self.lose_sealer(exc)
                    continue
            batch = lane.read(self.batch_size, READ_BYTES)
            if batch is None:
                break
            if (
                self.sealer is None
                and self.seal_with is not None
                and _behind(lane, batch, self.batch_size)
            ):
                self.sealer = SealingProcess(self.seal_with)
            self.send(lane, _sending(lane, batch), batch.data)
        if lane is not self.lane and lane.drained():
            lane.release(remove=True)
            self.adopted.remove(lane)
            self.report({"kind": "released"})

    def _sealer_ready(self) -> bool:
        if self.sealer is None:
            return False
        was = self.sealer.started
        try:
            ready = self.sealer.ready()
        except SealerLost as exc:
            self.lose_sealer(exc)
            return False
        if ready and not was:
            self.report(
                {
                    "kind": "info",
                    "message": "the sender fell behind: a sealing process now seals each next "
                    "batch while the last one is appended",
                }
            )
        return ready

    def lose_sealer(self, why: SealerLost) -> None:
        """Go on without the sealing process, which failed: seal each batch here."""
        if self.sealer is not None:
            self.sealer.close()
            self.sealer = None
        self.seal_with = None
        self.warn(f"{why}; the sender seals its batches itself from now on")

    def _drain_ahead(self, lane: Lane) -> None:
        """Send a lane's batches with the next one sealed by the sealing process while
        this one is appended."""
        assert self.sealer is not None
        batch = lane.read(self.batch_size, READ_BYTES)
        if batch is None:
            return
        current = (_sending(lane, batch), batch.data)
        self.sealer.submit(lane.deployment, current[0].batch, current[1])
        try:
            while True:
                sealed = self.sealer.outcome()
                ahead = None
                if not self.stop.is_set():
                    after = lane.peek(
                        current[0].segment, current[0].end, self.batch_size, READ_BYTES
                    )
                    if after is not None:
                        ahead = (_sending(lane, after), after.data)
                        self.sealer.submit(lane.deployment, ahead[0].batch, ahead[1])
                self.send(lane, *current, sealed=sealed)
                if ahead is None:
                    return
                current = ahead
        finally:
            self.sealer.settle()

    def send(self, lane: Lane, sending: Sending, data: bytes, *, sealed: Sealed = None) -> None:
        """Send one batch: its range first recorded as being sent, then sent under its
        batch id, then recorded as sent (or kept under ``rejected/``). ``sealed``: what
        the sealing process made of it (its events, or why they cannot be made)."""
        if lane.sending is None:
            lane.sending = sending
            lane.save_state()
        refused: str | None = None
        rows = data.count(b"\n")
        try:
            if sealed is None:
                self.registry.log_predictions(
                    lane.deployment, batch_id=sending.batch, **_columns(data)
                )
            elif sealed[0] == "sealed":
                self.registry.ledger.append(sealed[1])
            elif sealed[0] == "refused":
                refused = sealed[1]
            else:
                raise SealingFailed(sealed[1])
        except Conflict:
            # Its ids are in the ledger under other content: the batch went through
            # before, sent by another actor (another API key). Nothing to send.
            self.warn("a batch of predictions was already in the ledger; not sent again")
        except Exception as exc:
            refused = refusal(exc)
            if refused is None:
                raise
        if refused is not None:
            where = lane.keep_rejected(sending.batch, data, refused)
            self.warn(
                f"the ledger refused a batch of {rows} predictions ({refused}); "
                f"kept in {where}, the rest of the journal is sent on",
                once=False,
            )
        moved = sending.segment > lane.segment  # read ahead into the next segment
        lane.segment, lane.offset, lane.sending = sending.segment, sending.end, None
        lane.save_state()
        if moved:
            lane.forget_before(lane.segment)
        self.report(
            {
                "kind": "done",
                "rows": rows,
                "bytes": sending.end - sending.start,
                "own": lane is self.lane,
                "rejected": refused is not None,
            }
        )

    def adopt(self) -> None:
        """Take over the lanes whose process ended (their lock is free)."""
        held = {self.lane.path, *(lane.path for lane in self.adopted)}
        for path in Lane.candidates(self.spool):
            if path in held:
                continue
            lane = Lane.adopt(path, sync=self.fsync)
            if lane is None:
                continue
            if lane.project != self.registry.project:
                lane.release(remove=False)
                self.warn(
                    f"lane {path.name} of the spool holds predictions of another project; "
                    "left for a logger of that project"
                )
                continue
            unsent = lane.unsent_bytes()
            self.adopted.append(lane)
            self.report({"kind": "adopted", "bytes": unsent})
            if unsent or lane.sending is not None:
                self.report(
                    {
                        "kind": "info",
                        "message": f"sending {unsent} bytes of predictions an ended process "
                        f"left in {path}",
                    }
                )

    def release_adopted(self) -> None:
        """Give up the adopted lanes (each removed when drained)."""
        for lane in self.adopted:
            lane.release(remove=True)
        self.adopted = []


def refusal(exc: Exception) -> str | None:
    """Why the ledger refuses a batch for good (its lines do not parse, or it holds
    what no retry can fix), or None when sending it again may get through."""
    if isinstance(exc, JournalUnreadable):
        return str(exc)
    if isinstance(exc, REFUSED) or type(exc) is LedgerError:
        return f"{type(exc).__name__}: {exc}"
    return None


class JournalUnreadable(ValueError):
    """Lines of the journal that do not parse as predictions."""


class SealingFailed(Exception):
    """The sealing process could not seal a batch, for a reason a retry may fix."""


class SealerLost(Exception):
    """The sealing process ended, or what it said could not be read."""


def _columns(data: bytes) -> dict[str, Any]:
    """``log_predictions`` keyword columns from journal lines."""
    try:
        return _parsed_columns(data)
    except (ValueError, TypeError) as exc:
        raise JournalUnreadable(f"the journal's lines do not parse ({exc})") from None


def _parsed_columns(data: bytes) -> dict[str, Any]:
    rows = json_lines(data)
    if not all(isinstance(row, list) and len(row) == 5 for row in rows):
        raise ValueError("expected [record, output, model, at, trace_id] on each line")
    records, outputs, models, times, traces = (list(column) for column in zip(*rows, strict=True))
    one_model = models[0] if models.count(models[0]) == len(models) else None
    return {
        "records": records,
        "outputs": outputs,
        **({"models": models} if one_model is None else {"model": one_model}),
        "at": times,
        "trace_ids": None if all(t is None for t in traces) else traces,
    }


def _sending(lane: Lane, batch: Batch) -> Sending:
    """The record of a batch about to be sent; its id is derived from its place."""
    batch_id = uuid.uuid5(lane.id, f"{batch.segment}:{batch.start}")
    return Sending(batch.segment, batch.start, batch.end, str(batch_id))


def _behind(lane: Lane, batch: Batch, batch_size: int) -> bool:
    """Whether a sender fell behind: a full batch was waiting when ``batch`` was read
    (in it, or beyond the end of its segment)."""
    rows = batch.data.count(b"\n")
    if rows >= batch_size:
        return True
    return lane.unsent_bytes() >= batch_size * (len(batch.data) / rows)


def _backoff(failures: int) -> float:
    return RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1]


# --- the sealing process -------------------------------------------------------------

#: What the sealing process made of a batch: ``("sealed", events)``, ``("refused",
#: why)`` (for good) or ``("failed", why)`` (a retry may get through); None: not sealed
#: there.
Sealed = tuple[str, Any] | None
_LENGTH = struct.Struct("<Q")


def _write_frame(out: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LENGTH.pack(len(data)))
    out.write(data)
    out.flush()


def _read_frame(source: IO[bytes]) -> Any:
    """The next value written by ``_write_frame``; EOFError at the end of the input."""
    head = source.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the input ended")
    (size,) = _LENGTH.unpack(head)
    data = source.read(size)
    if len(data) < size:
        raise EOFError("the input ended within a value")
    return pickle.loads(data)


class SealingProcess:
    """A second process (``python -m registry.hooks.sender --seal``) that seals a
    sender process's next batch (parses its lines, pseudonymises the record keys,
    makes the payload: about half of ``log_predictions``) while the sender appends the
    last one. It opens the same ledger; what passes between the two is pickled over
    the pipes between them, nothing else reads them."""

    def __init__(self, settings: Settings):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "registry.hooks.sender", "--seal"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.input, self.output = self.process.stdin, self.process.stdout
        opened = {
            "target": settings["target"],
            "api_key": settings["api_key"],
            "project": settings["project"],
            "actor": settings["actor"],
            "sender": os.getpid(),
        }
        self.input.write(json.dumps(opened).encode() + b"\n")
        self.input.flush()
        self.owed = 0  # batches submitted whose outcome is not read yet
        self.started = False
        self.began = time.monotonic()
        self.broken: SealerLost | None = None

    def submit(self, deployment: str, batch: str, data: bytes) -> None:
        try:
            _write_frame(self.input, (deployment, batch, data))
        except OSError as exc:
            raise self._lost(exc) from None
        self.owed += 1

    def ready(self) -> bool:
        """Whether the process has opened the ledger and loaded what sealing loads
        (it starts beside the sender's work, which goes on meanwhile); SealerLost when
        it ended, or did not start within ``SEALER_START_SECONDS``."""
        if self.broken is not None:
            raise self.broken
        if self.started:
            return True
        if select.select([self.output], [], [], 0)[0]:
            self._started()
            return True
        if self.process.poll() is not None:
            raise self._lost(EOFError("it ended while starting"))
        if time.monotonic() - self.began > SEALER_START_SECONDS:
            self.process.kill()
            raise self._lost(TimeoutError(f"it did not start within {SEALER_START_SECONDS}s"))
        return False

    def _started(self) -> None:
        try:
            ready = _read_frame(self.output)
        except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise self._lost(exc) from None
        if ready != ("ready",):
            raise self._lost(ValueError(f"it began with {ready!r}; expected ('ready',)"))
        self.started = True

    def outcome(self) -> tuple[str, Any]:
        """What became of the oldest batch submitted (once ``ready``); SealerLost when
        the process ended or gave no answer within ``SEAL_SECONDS``."""
        if not select.select([self.output], [], [], SEAL_SECONDS)[0]:
            self.process.kill()
            raise self._lost(TimeoutError(f"it sealed no batch within {SEAL_SECONDS}s"))
        try:
            sealed = _read_frame(self.output)
        except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise self._lost(exc) from None
        self.owed -= 1
        if not (isinstance(sealed, tuple) and len(sealed) == 2 and isinstance(sealed[0], str)):
            raise self._lost(ValueError(f"it answered {type(sealed).__name__}"))
        return sealed

    def settle(self) -> None:
        """Read and drop the outcome of a batch submitted but not sent (a send failed
        first): it is read from the journal and sealed again. A failure here is kept
        for the next ``ready()`` rather than raised over the send's own error."""
        try:
            while self.owed:
                self.outcome()
        except SealerLost as exc:
            self.broken = exc

    def _lost(self, exc: BaseException) -> SealerLost:
        self.owed = 0
        status = self.process.poll()
        ended = "" if status is None else f", exit status {status}"
        return SealerLost(f"the sealing process failed ({type(exc).__name__}: {exc}{ended})")

    def close(self) -> None:
        """End the sealing process: its input closed, then killed if it lingers."""
        try:
            self.input.close()
        except BrokenPipeError:
            log.debug("the sealing process had ended before its input was closed")
        try:
            self.process.wait(timeout=SEALER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()


def seal_main() -> None:
    """``python -m registry.hooks.sender --seal``: the sealing process of a sender
    process. It reads the ledger's settings from the first line of its input, then
    batches (``(deployment, batch id, journal lines)``, one pickled frame each) and
    answers each with what it made of it, in order; the end of its input ends it."""
    source = sys.stdin.buffer
    opened = json.loads(source.readline())
    _end_with(opened["sender"])
    # The answers go to a descriptor of their own: anything a library prints lands on
    # standard error, never among them.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    reg = _open(opened)
    _warm_up()
    try:
        _write_frame(out, ("ready",))
        while True:
            try:
                deployment, batch, data = _read_frame(source)
            except EOFError:
                return  # the sender closed its end, or ended
            _write_frame(out, _seal(reg, deployment, batch, data))
    except BrokenPipeError:
        return  # the sender ended while the answer was being written: nobody to tell
    finally:
        reg.close()


def _end_with(sender: int) -> None:
    """Have Linux kill this process when its parent, the sender (process ``sender``),
    ends, however it ends (a ``kill -9`` included), rather than seal on for nobody;
    elsewhere it ends at the end of its input."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning(
            "the sealing process could not ask to end with its sender (errno %d)",
            ctypes.get_errno(),
        )
    if os.getppid() != sender:  # the sender ended before the request was made
        sys.exit(0)


def _seal(reg: Any, deployment: str, batch: str, data: bytes) -> tuple[str, Any]:
    try:
        return "sealed", reg._seal_predictions(deployment, batch_id=batch, **_columns(data))
    except Exception as exc:  # every outcome goes back to the sender, which judges it
        refused = refusal(exc)
        if refused is not None:
            return "refused", refused
        return "failed", f"{type(exc).__name__}: {exc}"


# --- the sender process --------------------------------------------------------------


class Settings(TypedDict):
    """The first line of a sender process's input: the ledger (``target``, a database
    or server URL, with ``api_key``), the ``project`` and ``actor``, the lane (its path
    and the descriptor of its lock, inherited), the spool and the sending settings."""

    target: str
    api_key: str | None
    project: str
    actor: str
    spool: str
    lane: str
    lock_fd: int
    batch_size: int
    flush_interval: float
    fsync: bool
    seal_ahead: bool


def _warm_up() -> None:
    """Load what sending a batch loads (pyarrow, for the predictions' payload) before
    the first batch waits for it: a third of a second, once. Then, as a batch makes
    hundreds of thousands of short-lived objects, have them collected in fewer, larger
    passes, which skip what was loaded to start (frozen)."""
    from registry import payloads

    payloads.decode_predictions(payloads.encode_predictions(["r"], [0], ["0"], ["t"], None))
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


def _open(settings: Any) -> Any:
    """The ledger a sender or sealing process was told to open (``target``,
    ``project``, ``actor``, ``api_key``), which must exist."""
    from registry.sdk import connect

    return connect(
        settings["target"],
        project=settings["project"],
        actor=settings["actor"],
        api_key=settings["api_key"],
        create=False,
    )


def main() -> None:
    """``python -m registry.hooks.sender``: a logger's sender process."""
    first = bytearray()
    while not first.endswith(b"\n"):  # byte by byte: what follows is read unbuffered
        byte = os.read(0, 1)
        if not byte:
            return  # the logger went away before saying anything
        first += byte
    settings: Settings = json.loads(bytes(first))
    out = sys.stdout.buffer
    out_lock = threading.Lock()

    def report(what: Report) -> None:
        line = json.dumps(what, separators=(",", ":")).encode() + b"\n"
        with out_lock:
            out.write(line)
            out.flush()

    reg = _open(settings)
    lane = Lane(Path(settings["lane"]), settings["lock_fd"], sync=settings["fsync"])
    sender = Sender(
        reg,
        lane,
        Path(settings["spool"]),
        batch_size=settings["batch_size"],
        flush_interval=settings["flush_interval"],
        fsync=settings["fsync"],
        report=report,
    )

    def listen() -> None:
        """Each byte of input wakes the sender; the end of it stops the sender."""
        while os.read(0, 4096):
            sender.wake.set()
        sender.stop.set()
        sender.wake.set()

    threading.Thread(target=listen, name="mlledger-sender-input", daemon=True).start()
    if settings.get("seal_ahead", True) and isinstance(reg.backend, LocalBackend):
        sender.seal_with = settings
    _warm_up()
    sender.adopt()
    report({"kind": "ready"})
    try:
        sender.run()
    finally:
        if sender.sealer is not None:
            sender.sealer.close()
        sender.release_adopted()
        reg.close()


if __name__ == "__main__":
    seal_main() if sys.argv[1:] == ["--seal"] else main()
