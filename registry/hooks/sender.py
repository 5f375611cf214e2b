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
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

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
        """Send every complete line of a lane, batch by batch."""
        if lane.sending is not None:  # a send a crash cut short: the same range, same id
            self.send(lane, lane.sending, lane.read_range(lane.sending))
        while not self.stop.is_set():
            batch = lane.read(self.batch_size, READ_BYTES)
            if batch is None:
                break
            self.send(lane, _sending(lane, batch), batch.data)
        if lane is not self.lane and lane.drained():
            lane.release(remove=True)
            self.adopted.remove(lane)
            self.report({"kind": "released"})

    def send(self, lane: Lane, sending: Sending, data: bytes) -> None:
        """Send one batch: its range first recorded as being sent, then sent under its
        batch id, then recorded as sent (or kept under ``rejected/``)."""
        if lane.sending is None:
            lane.sending = sending
            lane.save_state()
        refused: str | None = None
        rows = data.count(b"\n")
        try:
            columns = _columns(data)
        except (ValueError, TypeError) as exc:
            refused = f"the journal's lines do not parse ({exc})"
        else:
            try:
                self.registry.log_predictions(lane.deployment, batch_id=sending.batch, **columns)
            except Conflict:
                # Its ids are in the ledger under other content: the batch went through
                # before, sent by another actor (another API key). Nothing to send.
                self.warn("a batch of predictions was already in the ledger; not sent again")
            except REFUSED as exc:
                refused = f"{type(exc).__name__}: {exc}"
            except LedgerError as exc:
                if type(exc) is not LedgerError:
                    raise
                refused = f"{type(exc).__name__}: {exc}"
        if refused is not None:
            where = lane.keep_rejected(sending.batch, data, refused)
            self.warn(
                f"the ledger refused a batch of {rows} predictions ({refused}); "
                f"kept in {where}, the rest of the journal is sent on",
                once=False,
            )
        lane.segment, lane.offset, lane.sending = sending.segment, sending.end, None
        lane.save_state()
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


def _columns(data: bytes) -> dict[str, Any]:
    """``log_predictions`` keyword columns from journal lines."""
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


def _backoff(failures: int) -> float:
    return RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1]


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


def _warm_up() -> None:
    """Load what sending a batch loads (pyarrow, for the predictions' payload) before
    the first batch waits for it: a third of a second, once."""
    from registry import payloads

    payloads.decode_predictions(payloads.encode_predictions(["r"], [0], ["0"], ["t"], None))


def main() -> None:
    """``python -m registry.hooks.sender``: a logger's sender process."""
    from registry.sdk import connect

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

    reg = connect(
        settings["target"],
        project=settings["project"],
        actor=settings["actor"],
        api_key=settings["api_key"],
        create=False,
    )
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
    _warm_up()
    # A batch makes hundreds of thousands of short-lived objects: collected in fewer,
    # larger passes, which skip what was loaded to start (frozen).
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    sender.adopt()
    report({"kind": "ready"})
    try:
        sender.run()
    finally:
        sender.release_adopted()
        reg.close()


if __name__ == "__main__":
    main()
