"""Prediction logging for model servers: a ``PredictionLogger`` journals each prediction
in a local spool before ``log()`` returns, and a background thread sends the journal to
the ledger in batches; ``@logger.predicts`` and ``PredictionMiddleware`` (ASGI) call it.

An acknowledged prediction (``log()`` returned) is never lost: it is in the spool file,
which survives a kill of the process (and, with ``fsync=True``, a power loss); it is
sent until the ledger holds it, after a restart by the next logger on the spool, and
each batch is sent under an id derived from its place in the journal, so that sending
it again (after a crash between sending it and recording that it was sent) writes it
once. See ``docs/serving-hooks.md`` and ``registry.hooks.spool`` for the layout.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from lineage import queries
from registry.errors import (
    ConfigError,
    Conflict,
    FieldError,
    InvalidInput,
    InvalidNodeId,
    LedgerError,
    NotFound,
)
from registry.hooks.spool import Batch, Lane, Sending, json_lines, private_directory
from registry.intake import key_problem
from registry.sdk import Deployment, ModelVersion, Registry, connect
from registry.timeutil import to_timestamp

log = logging.getLogger("mlledger.serving")

#: Rows per batch sent to the ledger (at most): one ``predictions-logged`` event.
BATCH_SIZE = 20_000
#: Seconds a logged prediction waits, at most, before its batch is sent.
FLUSH_INTERVAL = 1.0
#: Unsent journal bytes beyond which ``log()`` blocks or fails (``on_full``).
MAX_SPOOL_BYTES = 256 * 1024 * 1024
#: Bytes of a journal segment before the next one is begun.
SEGMENT_BYTES = 16 * 1024 * 1024
#: Bytes of one journaled prediction, at most.
MAX_LINE_BYTES = 1024 * 1024
#: Bytes read from the journal for one batch, at most.
READ_BYTES = 32 * 1024 * 1024
#: Seconds between looks for lanes left by ended processes.
ADOPT_INTERVAL = 10.0
#: Seconds between retries when the ledger cannot be reached: doubling up to the last.
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
#: Seconds an interpreter's exit waits for the journal to be sent (what is left is
#: sent by the next logger on the spool).
EXIT_FLUSH_SECONDS = 10.0
#: Request and response bodies the middleware reads for logging, at most.
MAX_BODY_BYTES = 1024 * 1024

#: Errors no retry can fix: the batch is kept under the lane's ``rejected/``.
REFUSED = (InvalidInput, InvalidNodeId, NotFound)

F = TypeVar("F", bound=Callable[..., Any])


class SpoolFull(ConfigError):
    """The spool holds ``max_spool_bytes`` of predictions not yet sent: the ledger has
    been unreachable (or slower than the predictions) for too long."""


def _plain(value: Any) -> Any:
    """A JSON value for what the encoder does not know: numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


_encode = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=_plain
).encode


class PredictionLogger:
    """Logs a deployment's predictions one at a time, journaled locally before
    ``log()`` returns and sent to the ledger in batches by a background thread.

    ``registry`` is a ``Registry``, a database or server URL, or None (``connect()``
    from the environment). ``spool`` is the journal's directory (created 0700).
    Batches of at most ``batch_size`` rows are sent every ``flush_interval`` seconds,
    or as soon as that many are waiting. When ``max_spool_bytes`` are waiting,
    ``on_full="block"`` makes ``log()`` wait for room (``SpoolFull`` after
    ``block_timeout`` seconds, when given) and ``on_full="fail"`` raises ``SpoolFull``
    at once. ``fsync=True`` flushes each line to disk before ``log()`` returns
    (calls in several threads share a flush): survives a power loss too.
    """

    def __init__(
        self,
        deployment: Deployment | str,
        *,
        model: ModelVersion | str | None = None,
        registry: Registry | str | None = None,
        spool: str | os.PathLike[str] = ".mlledger/spool",
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        max_spool_bytes: int = MAX_SPOOL_BYTES,
        on_full: Literal["block", "fail"] = "block",
        block_timeout: float | None = None,
        fsync: bool = False,
        segment_bytes: int = SEGMENT_BYTES,
    ):
        _check_settings(batch_size, flush_interval, max_spool_bytes, on_full, block_timeout)
        if not isinstance(deployment, Deployment | str) or not deployment:
            raise FieldError(
                "deployment",
                f"PredictionLogger: deployment is a {type(deployment).__name__}; "
                "expected a Deployment or a deployment's name or id",
            )
        self._owns_registry = not isinstance(registry, Registry)
        self.registry: Registry = (
            registry
            if isinstance(registry, Registry)
            else connect(registry)
            if registry is None or isinstance(registry, str)
            else _bad_registry(registry)
        )
        self.deployment = deployment.id if isinstance(deployment, Deployment) else deployment
        self._models: dict[Any, str] = {}
        self.model = None if model is None else self._model_id(model)
        self.spool = private_directory(Path(spool))
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_spool_bytes = max_spool_bytes
        self.on_full = on_full
        self.block_timeout = block_timeout
        self.fsync = fsync
        self.segment_bytes = segment_bytes

        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # waited on by a blocked log()
        self._progress = threading.Condition(self._lock)  # waited on by flush()
        self._sync_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False

        self._lane = Lane.create(self.spool, self.registry.project, self.deployment, sync=fsync)
        self._segment = 1
        self._fd = self._lane.open_segment(self._segment)
        self._segment_bytes_written = 0
        self._retired: list[int] = []  # descriptors of finished segments, fsync=True
        self._synced = 0
        self._adopted: list[Lane] = []
        self._adopted_bytes = 0
        self._unsent = 0  # bytes of every lane held, not yet sent
        self._since_wake = 0
        self._counts = dict.fromkeys(("logged", "sent", "rejected", "retries", "adopted"), 0)
        self._own_done = 0  # rows of this logger's own lane sent or refused
        self._warned: set[str] = set()

        self._adopt()
        self._thread = threading.Thread(
            target=self._run, name=f"mlledger-predictions-{self._lane.id}", daemon=True
        )
        self._thread.start()
        atexit.register(self._at_exit)

    # --- the hot path -------------------------------------------------------------------

    def log(
        self,
        record: str | int,
        output: Any,
        *,
        model: ModelVersion | str | None = None,
        at: Any = None,
        trace_id: str | None = None,
    ) -> None:
        """Journal one prediction: ``record`` (a record key), the model's ``output`` (a
        JSON value), the model version (default: the logger's), when (default: now) and
        a trace id. When it returns the prediction is acknowledged: it will reach the
        ledger, across crashes and outages."""
        if type(record) is not int and (
            type(record) is not str or not record or not record.isascii()
        ):
            why = key_problem(record, "record key")
            if why is not None:
                raise FieldError("record", f"PredictionLogger.log: {why}")
        version = self.model if model is None else self._model_id(model)
        if version is None:
            raise FieldError(
                "model",
                "PredictionLogger.log: no model version; give model= here or to the "
                "PredictionLogger",
            )
        when = time.time() if at is None else to_timestamp(at, "at")
        try:  # the common case, without a call
            line = (_encode([record, output, version, when, trace_id]) + "\n").encode()
        except (ValueError, TypeError):
            line = _line(record, output, version, when, trace_id)
        if len(line) > MAX_LINE_BYTES or (trace_id is not None and type(trace_id) is not str):
            line = _line(record, output, version, when, trace_id)
        with self._lock:
            if self._closed:
                raise ConfigError(
                    "PredictionLogger.log: the logger is closed; expected an open logger"
                )
            if self._unsent + len(line) > self.max_spool_bytes and self._unsent:
                self._make_room(len(line))
            self._write(line)
            sequence = self._counts["logged"]
        if self.fsync:
            self._sync(sequence)

    def _write(self, line: bytes) -> None:
        """Append one line (under the lock): one ``os.write``, O_APPEND."""
        written = os.write(self._fd, line)
        if written != len(line):
            # The disk is full: the partial line ends this segment, where it is skipped.
            self._rotate()
            raise OSError(
                f"PredictionLogger.log: the journal took {written} of {len(line)} bytes "
                f"(disk full?) in {self.spool}; the prediction was not logged"
            )
        self._segment_bytes_written += written
        self._unsent += written
        self._counts["logged"] += 1
        self._since_wake += 1
        if self._segment_bytes_written >= self.segment_bytes:
            self._rotate()
        if self._since_wake >= self.batch_size:
            self._since_wake = 0
            self._wake.set()

    def _rotate(self) -> None:
        """Begin the next segment (under the lock); the current one is final."""
        old = self._fd
        self._segment += 1
        self._fd = self._lane.open_segment(self._segment)
        self._segment_bytes_written = 0
        if self.fsync:
            self._retired.append(old)  # flushed and closed by the next _sync
        else:
            os.close(old)

    def _sync(self, sequence: int) -> None:
        """Flush the journal to disk up to line ``sequence``, or wait for the flush of
        another thread that covers it (group commit)."""
        with self._sync_lock:
            if self._synced >= sequence:
                return
            with self._lock:
                target, fd = self._counts["logged"], self._fd
                retired, self._retired = self._retired, []
            for old in retired:
                os.fsync(old)
                os.close(old)
            os.fsync(fd)
            self._synced = target

    def _make_room(self, size: int) -> None:
        """Wait (under the lock) until ``size`` more bytes fit in the spool."""
        full = (
            f"PredictionLogger.log: the spool {self.spool} holds {self._unsent} bytes of "
            f"predictions not yet in the ledger, its limit is {self.max_spool_bytes} "
            "(max_spool_bytes); the prediction was not logged"
        )
        if self.on_full == "fail":
            raise SpoolFull(full + " (on_full='fail')")
        deadline = None if self.block_timeout is None else time.monotonic() + self.block_timeout
        self._wake.set()
        while self._unsent and self._unsent + size > self.max_spool_bytes:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise SpoolFull(f"{full}; waited {self.block_timeout}s for room (block_timeout)")
            self._room.wait(left)
            if self._closed:
                raise ConfigError("PredictionLogger.log: the logger was closed while waiting")

    def _model_id(self, model: ModelVersion | str) -> str:
        """A model version's id, from a handle, an id or ``name@version``."""
        found = self._models.get(model)
        if found is None:
            if isinstance(model, ModelVersion):
                found = model.id
            elif isinstance(model, str):
                found = queries.resolve(model, "model", self.registry.project)
            else:
                raise FieldError(
                    "model",
                    f"PredictionLogger: model is a {type(model).__name__}; expected a "
                    "ModelVersion, a model version id or 'name@version'",
                )
            self._models[model] = found
        return found

    # --- the sender -------------------------------------------------------------------

    def _run(self) -> None:
        """Send the journal until closed; retry, with backoff, what did not get through."""
        failures = 0
        next_adopt = time.monotonic() + ADOPT_INTERVAL
        while True:
            self._wake.wait(self.flush_interval if not failures else _backoff(failures))
            self._wake.clear()
            if self._stop.is_set():
                return
            if time.monotonic() >= next_adopt:
                self._adopt()
                next_adopt = time.monotonic() + ADOPT_INTERVAL
            try:
                for lane in [self._lane, *self._adopted]:
                    self._drain(lane)
            except Exception as exc:  # anything but a refusal: retried, and warned about
                failures += 1
                with self._lock:
                    self._counts["retries"] += 1
                self._warn(
                    f"the ledger could not take a batch of predictions "
                    f"({type(exc).__name__}: {exc}); they stay in the spool and are sent "
                    "again"
                )
                continue
            if failures:
                log.info("mlledger: predictions are reaching the ledger again")
                self._warned.clear()
            failures = 0

    def _drain(self, lane: Lane) -> None:
        """Send every complete line of a lane, batch by batch."""
        if lane.sending is not None:  # a send a crash cut short: the same range, same id
            self._send(lane, lane.sending, lane.read_range(lane.sending))
        while not self._stop.is_set():
            batch = lane.read(self.batch_size, READ_BYTES)
            if batch is None:
                break
            self._send(lane, _sending(lane, batch), batch.lines)
        if lane is not self._lane and lane.drained():
            lane.release(remove=True)
            with self._lock:
                self._adopted.remove(lane)
                self._progress.notify_all()

    def _send(self, lane: Lane, sending: Sending, lines: list[bytes]) -> None:
        """Send one batch: its range first recorded as being sent, then sent under its
        batch id, then recorded as sent (or kept under ``rejected/``)."""
        if lane.sending is None:
            lane.sending = sending
            lane.save_state()
        refused: str | None = None
        try:
            columns = _columns(lines)
        except (ValueError, TypeError) as exc:
            refused = f"the journal's lines do not parse ({exc})"
        else:
            try:
                self.registry.log_predictions(lane.deployment, batch_id=sending.batch, **columns)
            except Conflict:
                # Its ids are in the ledger under other content: the batch went through
                # before, sent by another actor (another API key). Nothing to send.
                self._warn("a batch of predictions was already in the ledger; not sent again")
            except REFUSED as exc:
                refused = f"{type(exc).__name__}: {exc}"
            except LedgerError as exc:
                if type(exc) is not LedgerError:
                    raise
                refused = f"{type(exc).__name__}: {exc}"
        if refused is not None:
            where = lane.keep_rejected(sending.batch, lines, refused)
            self._warn(
                f"the ledger refused a batch of {len(lines)} predictions ({refused}); "
                f"kept in {where}, the rest of the journal is sent on",
                once=False,
            )
        lane.segment, lane.offset, lane.sending = sending.segment, sending.end, None
        lane.save_state()
        with self._lock:
            self._counts["rejected" if refused else "sent"] += len(lines)
            self._unsent -= sending.end - sending.start
            if lane is self._lane:
                self._own_done += len(lines)
            else:
                self._adopted_bytes -= sending.end - sending.start
            self._room.notify_all()
            self._progress.notify_all()

    def _adopt(self) -> None:
        """Take over the lanes whose process ended (their lock is free)."""
        held = {self._lane.path, *(lane.path for lane in self._adopted)}
        for path in Lane.candidates(self.spool):
            if path in held:
                continue
            lane = Lane.adopt(path, sync=self.fsync)
            if lane is None:
                continue
            if lane.project != self.registry.project:
                lane.release(remove=False)
                self._warn(
                    f"lane {path.name} of the spool holds predictions of another project; "
                    "left for a logger of that project"
                )
                continue
            unsent = lane.unsent_bytes()
            with self._lock:
                self._adopted.append(lane)
                self._adopted_bytes += unsent
                self._unsent += unsent
                self._counts["adopted"] += 1
            if unsent or lane.sending is not None:
                log.info(
                    "mlledger: sending %d bytes of predictions an ended process left in %s",
                    unsent,
                    path,
                )

    def _warn(self, message: str, *, once: bool = True) -> None:
        """A warning, once per distinct message (never any record key)."""
        if once:
            if message in self._warned:
                return
            self._warned.add(message)
        log.warning("mlledger: %s", message)

    # --- waiting, stats and closing ---------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every prediction logged so far (and every one an ended process
        left in an adopted lane) is in the ledger or kept as rejected; False when
        ``timeout`` seconds passed first (they stay in the spool)."""
        with self._lock:
            target = self._counts["logged"]
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self._own_done < target or self._adopted:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if not self._thread.is_alive():
                    raise ConfigError("PredictionLogger.flush: the logger is closed")
                self._progress.wait(min(left, 0.5) if left is not None else 0.5)
                self._wake.set()
        return True

    def stats(self) -> dict[str, int]:
        """Counts: ``logged`` (acknowledged by this logger), ``sent`` (rows the ledger
        took, adopted lanes' included), ``rejected`` (rows kept under ``rejected/``),
        ``pending`` (this logger's rows not yet sent), ``retries`` (failed sends),
        ``adopted`` (lanes taken over) and ``spool_bytes`` (unsent bytes held)."""
        with self._lock:
            return {
                **self._counts,
                "pending": self._counts["logged"] - self._own_done,
                "spool_bytes": self._unsent,
            }

    def close(self, timeout: float | None = None) -> bool:
        """Flush (for at most ``timeout`` seconds), stop the sender and release the
        lane; what was not sent stays in the spool for the next logger. Whether
        everything was sent."""
        if self._closed:
            return True
        done = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._room.notify_all()
        self._stop.set()
        self._wake.set()
        self._thread.join()
        atexit.unregister(self._at_exit)
        with self._sync_lock, self._lock:
            if self.fsync:
                os.fsync(self._fd)
            for fd in [*self._retired, self._fd]:
                os.close(fd)
            self._retired = []
        self._lane.release(remove=True)
        for lane in self._adopted:
            lane.release(remove=True)
        if self._owns_registry:
            self.registry.close()
        return done

    def _at_exit(self) -> None:
        if not self.close(EXIT_FLUSH_SECONDS):
            log.warning(
                "mlledger: predictions not yet in the ledger at exit stay in the spool "
                "%s; the next logger on it sends them",
                self.spool,
            )

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the decorator and the middleware ----------------------------------------------

    def predicts(
        self,
        record: str | Callable[[tuple[Any, ...], dict[str, Any]], Any],
        output: Callable[[Any], Any] | None = None,
        *,
        batch: bool = False,
        model: ModelVersion | str | None = None,
    ) -> Callable[[F], F]:
        """Decorate a predict function (sync or async) to log each call: ``record`` is
        the name of the argument holding the record key, or a function of
        ``(args, kwargs)``; ``output`` a function of the result (default: the result).
        With ``batch=True`` both are sequences, one prediction per element. The call
        returns after its predictions are acknowledged."""
        if not (isinstance(record, str) or callable(record)):
            raise FieldError(
                "record",
                f"predicts: record is a {type(record).__name__}; expected an argument's "
                "name or a function of (args, kwargs)",
            )

        def decorate(function: F) -> F:
            key_of = _key_getter(function, record)

            def logged(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
                keys, value = key_of(args, kwargs), result if output is None else output(result)
                if not batch:
                    self.log(keys, value, model=model)
                    return
                keys, values = list(keys), list(value)
                if len(keys) != len(values):
                    raise FieldError(
                        "output",
                        f"predicts: {len(keys)} records but {len(values)} outputs; expected "
                        "one output per record (batch=True)",
                    )
                for key, one in zip(keys, values, strict=True):
                    self.log(key, one, model=model)

            if inspect.iscoroutinefunction(function):

                @functools.wraps(function)
                async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
                    result = await function(*args, **kwargs)
                    logged(args, kwargs, result)
                    return result

                return cast(F, wrapped_async)

            @functools.wraps(function)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                result = function(*args, **kwargs)
                logged(args, kwargs, result)
                return result

            return cast(F, wrapped)

        return decorate

    def middleware(self, app: Any, **options: Any) -> PredictionMiddleware:
        """``PredictionMiddleware(app, logger=self, **options)``."""
        return PredictionMiddleware(app, logger=self, **options)


def _line(record: Any, output: Any, model: str, at: Any, trace_id: Any) -> bytes:
    """One journal line: compact JSON, newline-terminated."""
    try:
        text = _encode([record, output, model, at, None if trace_id is None else str(trace_id)])
        line = (text + "\n").encode("utf-8")
    except ValueError as exc:
        why = (
            "a lone surrogate, which UTF-8 cannot hold"
            if isinstance(exc, UnicodeEncodeError)
            else "nan or infinity, which JSON cannot hold"
        )
        raise FieldError(
            "output", f"PredictionLogger.log: the output holds {why}; expected JSON values"
        ) from None
    except TypeError as exc:
        raise FieldError(
            "output", f"PredictionLogger.log: the output is not JSON ({exc}); expected JSON values"
        ) from None
    if len(line) > MAX_LINE_BYTES:
        raise FieldError(
            "output",
            f"PredictionLogger.log: the prediction takes {len(line)} bytes as JSON; expected "
            f"at most {MAX_LINE_BYTES}",
        )
    return line


def _columns(lines: list[bytes]) -> dict[str, Any]:
    """``log_predictions`` keyword columns from journal lines."""
    rows = json_lines(lines)
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


def _check_settings(
    batch_size: int,
    flush_interval: float,
    max_spool_bytes: int,
    on_full: str,
    block_timeout: float | None,
) -> None:
    if type(batch_size) is not int or batch_size < 1:
        raise FieldError("batch_size", f"batch_size is {batch_size!r}; expected an int >= 1")
    if not isinstance(flush_interval, int | float) or not flush_interval > 0:
        raise FieldError(
            "flush_interval", f"flush_interval is {flush_interval!r}; expected seconds > 0"
        )
    if type(max_spool_bytes) is not int or max_spool_bytes < MAX_LINE_BYTES:
        raise FieldError(
            "max_spool_bytes",
            f"max_spool_bytes is {max_spool_bytes!r}; expected an int >= {MAX_LINE_BYTES}",
        )
    if on_full not in ("block", "fail"):
        raise FieldError("on_full", f"on_full is {on_full!r}; expected 'block' or 'fail'")
    if block_timeout is not None and (
        not isinstance(block_timeout, int | float) or block_timeout < 0
    ):
        raise FieldError(
            "block_timeout", f"block_timeout is {block_timeout!r}; expected seconds >= 0 or None"
        )


def _bad_registry(registry: object) -> Registry:
    raise FieldError(
        "registry",
        f"PredictionLogger: registry is a {type(registry).__name__}; expected a Registry, a "
        "database or server URL, or None (connect() from the environment)",
    )


def _key_getter(
    function: Callable[..., Any], record: str | Callable[[tuple[Any, ...], dict[str, Any]], Any]
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """A function of ``(args, kwargs)`` giving the record key(s) of a call."""
    if callable(record):
        return record
    signature = inspect.signature(function)
    if record not in signature.parameters:
        raise FieldError(
            "record",
            f"predicts: {function.__qualname__} has no argument {record!r}; expected one of "
            f"{', '.join(signature.parameters) or '(none)'}",
        )

    def key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments[record]

    return key


# --- ASGI -------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Getter = str | Callable[[Any], Any]


class PredictionMiddleware:
    """ASGI middleware logging the predictions a JSON API answers: for each request to
    one of ``paths`` (prefixes; default: every path) with a method in ``methods``
    (default: POST) and a JSON body, ``record`` (a dotted path into the request body,
    or a function of it) is the record key and ``output`` (a dotted path into the
    response body, or a function of it) the output. A JSON list body logs one
    prediction per element, matched with the response list's elements.

    The response is passed on unchanged, part by part (streaming is not held back); its
    last part goes out once its predictions are acknowledged, so a client never gets
    a complete answer whose prediction was not logged. Bodies over ``max_body_bytes``,
    non-JSON bodies and answers other than 2xx are passed through unlogged (warned
    about once per reason).
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        logger: PredictionLogger,
        record: Getter,
        output: Getter,
        paths: Sequence[str] | None = None,
        methods: Iterable[str] = ("POST",),
        model: ModelVersion | str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ):
        if not isinstance(logger, PredictionLogger):
            raise FieldError(
                "logger",
                f"PredictionMiddleware: logger is a {type(logger).__name__}; expected a "
                "PredictionLogger",
            )
        self.app = app
        self.logger = logger
        self.record = _getter(record, "record")
        self.output = _getter(output, "output")
        self.paths = tuple(paths) if paths is not None else ("/",)
        self.methods = frozenset(m.upper() for m in methods)
        self.model = model
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in self.methods
            or not str(scope.get("path", "")).startswith(self.paths)
            or not _is_json(scope.get("headers", ()))
        ):
            await self.app(scope, receive, send)
            return
        parts: list[Message] = []
        size = 0
        while True:  # the request body, kept to be handed on to the app as it came
            message = await receive()
            parts.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes or not message.get("more_body", False):
                break
        whole = size <= self.max_body_bytes and parts[-1]["type"] == "http.request"
        if not whole:
            self.logger._warn(
                f"a request body over {self.max_body_bytes} bytes (max_body_bytes) was "
                "passed on unlogged"
            )
        replay = iter(parts)

        async def replayed() -> Message:
            for message in replay:
                return message
            return await receive()

        if not whole:
            await self.app(scope, replayed, send)
            return
        request = b"".join(p.get("body", b"") for p in parts)
        await self.app(scope, replayed, self._sender(send, request))

    def _sender(self, send: Send, request: bytes) -> Send:
        """``send`` that keeps a copy of a JSON 2xx answer and logs it before its last
        part goes out."""
        kept: list[bytes] = []
        state = {"log": False, "size": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["log"] = 200 <= int(message["status"]) < 300 and _is_json(
                    message.get("headers", ())
                )
            elif message["type"] == "http.response.body" and state["log"]:
                body = message.get("body", b"")
                state["size"] += len(body)
                if state["size"] > self.max_body_bytes:
                    state["log"] = False
                    kept.clear()
                    self.logger._warn(
                        f"a response body over {self.max_body_bytes} bytes "
                        "(max_body_bytes) was passed on unlogged"
                    )
                else:
                    kept.append(body)
                    if not message.get("more_body", False):
                        self._log(request, b"".join(kept))
            await send(message)

        return sending

    def _log(self, request: bytes, response: bytes) -> None:
        try:
            asked, answered = json.loads(request), json.loads(response)
        except ValueError:
            self.logger._warn("a request or response said to be JSON did not parse; unlogged")
            return
        if isinstance(asked, list):
            if not isinstance(answered, list) or len(answered) != len(asked):
                self.logger._warn(
                    "a JSON list request was not answered by a list of as many elements; unlogged"
                )
                return
            pairs = list(zip(asked, answered, strict=True))
        else:
            pairs = [(asked, answered)]
        rows = []
        for one_request, one_response in pairs:
            try:
                rows.append((self.record(one_request), self.output(one_response)))
            except (KeyError, IndexError, TypeError) as exc:
                self.logger._warn(f"a request or response lacks {exc.args[0]}; unlogged")
                return
        for key, value in rows:
            try:
                self.logger.log(key, value, model=self.model)
            except FieldError as exc:  # the client's key or the model's output, not JSON
                self.logger._warn(f"a prediction was not logged: {exc}")


def _getter(path: Getter, what: str) -> Callable[[Any], Any]:
    """A function of a JSON body: ``path`` itself, or the dotted path ``a.b.0``."""
    if callable(path):
        return path
    if not isinstance(path, str) or not path:
        raise FieldError(
            what,
            f"PredictionMiddleware: {what} is {path!r}; expected a dotted path into the JSON "
            "body (such as 'id' or 'features.id') or a function of the body",
        )
    steps = path.split(".")

    def get(body: Any) -> Any:
        for step in steps:
            if isinstance(body, Mapping):
                if step not in body:
                    raise KeyError(f"the field {path!r} ({what})")
                body = body[step]
            elif isinstance(body, list) and step.isdigit() and int(step) < len(body):
                body = body[int(step)]
            else:
                raise KeyError(f"the field {path!r} ({what})")
        return body

    return get


def _is_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return False
