"""Prediction logging for model servers: a ``PredictionLogger`` journals each prediction
in a local spool before ``log()`` returns, and its sender (``registry.hooks.sender``: a
process of its own, or a thread) sends the journal to the ledger in batches;
``@logger.predicts`` and ``PredictionMiddleware`` (ASGI) call it.

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
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from lineage import queries
from registry.errors import (
    ConfigError,
    FieldError,
)
from registry.hooks.sender import Report, Sender
from registry.hooks.spool import Lane, private_directory
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
#: Seconds a new logger waits, at most, for its sender process to start and adopt the
#: lanes of ended processes.
SENDER_START_SECONDS = 60.0
#: Seconds a closing logger waits, at most, for its sender process to stop.
SENDER_STOP_SECONDS = 30.0
#: Seconds an interpreter's exit waits for the journal to be sent (what is left is
#: sent by the next logger on the spool).
EXIT_FLUSH_SECONDS = 10.0
#: Request and response bodies the middleware reads for logging, at most.
MAX_BODY_BYTES = 1024 * 1024

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
    ``log()`` returns and sent to the ledger in batches by its sender: a process of its
    own (``sender="process"``, the default: the sending takes nothing from the serving
    threads), or a thread of this process (``sender="thread"``).

    ``registry`` is a ``Registry``, a database or server URL, or None (``connect()``
    from the environment). ``spool`` is the journal's directory (created 0700).
    Batches of at most ``batch_size`` rows are sent every ``flush_interval`` seconds,
    or as soon as that many are waiting. When ``max_spool_bytes`` are waiting,
    ``on_full="block"`` makes ``log()`` wait for room (``SpoolFull`` after
    ``block_timeout`` seconds, when given) and ``on_full="fail"`` raises ``SpoolFull``
    at once. ``fsync=True`` flushes each line to disk before ``log()`` returns
    (calls in several threads share a flush): survives a power loss too. With
    ``seal_ahead`` (the default) a sender process on a local database that falls
    behind (a full batch waiting) starts a second process, which seals the next batch
    (parses it, pseudonymises its record keys, makes its payload) while the sender
    appends the last one: about a third more throughput, for a second process's
    memory; ``seal_ahead=False`` keeps the sending to one process.
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
        sender: Literal["process", "thread"] = "process",
        seal_ahead: bool = True,
    ):
        _check_settings(batch_size, flush_interval, max_spool_bytes, on_full, block_timeout)
        if sender not in ("process", "thread"):
            raise FieldError(
                "sender", f"PredictionLogger: sender {sender!r}; expected 'process' or 'thread'"
            )
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
        self.seal_ahead = bool(seal_ahead)

        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # waited on by a blocked log()
        self._progress = threading.Condition(self._lock)  # waited on by flush()
        self._sync_lock = threading.Lock()
        self._ready = threading.Event()  # the sender process's first adoption is done
        self._closed = False

        self._lane = Lane.create(self.spool, self.registry.project, self.deployment, sync=fsync)
        self._segment = 1
        self._fd = self._lane.open_segment(self._segment)
        self._segment_bytes_written = 0
        self._retired: list[int] = []  # descriptors of finished segments, fsync=True
        self._synced = 0
        self._adopting = 0  # lanes of ended processes the sender holds, not yet drained
        self._adopted_bytes = 0
        self._unsent = 0  # bytes of every lane held, not yet sent
        self._since_wake = 0
        self._counts = dict.fromkeys(("logged", "sent", "rejected", "retries", "adopted"), 0)
        self._own_done = 0  # rows of this logger's own lane sent or refused
        self._warned: set[str] = set()

        #: Where the sender process opens the ledger again: the same database or server.
        self._target = self.registry.backend.opened_with()
        self.sender_mode = sender
        self._sender: Sender | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._input = -1
        self._start_sender()
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
            self._poke()

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
        self._poke()
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

    def _start_sender(self) -> None:
        """Start the sender: a process of its own, or a thread of this one."""
        if self.sender_mode == "thread":
            self._sender = Sender(
                self.registry,
                self._lane,
                self.spool,
                batch_size=self.batch_size,
                flush_interval=self.flush_interval,
                fsync=self.fsync,
                report=self._apply,
            )
            self._sender.adopt()
            self._thread = threading.Thread(
                target=self._sender.run, name=f"mlledger-predictions-{self._lane.id}", daemon=True
            )
            self._thread.start()
            return
        target, api_key = self._target
        settings = {
            "target": target,
            "api_key": api_key,
            "project": self.registry.project,
            "actor": self.registry.actor,
            "spool": str(self.spool),
            "lane": str(self._lane.path),
            "lock_fd": self._lane.lock_fd,
            "batch_size": self.batch_size,
            "flush_interval": self.flush_interval,
            "fsync": self.fsync,
            "seal_ahead": self.seal_ahead,
        }
        self._ready.clear()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "registry.hooks.sender"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(self._lane.lock_fd,),
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._input = self._process.stdin.fileno()
        os.write(self._input, json.dumps(settings).encode() + b"\n")
        os.set_blocking(self._input, False)
        self._thread = threading.Thread(
            target=self._listen,
            args=(self._process,),
            name=f"mlledger-predictions-{self._lane.id}",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(SENDER_START_SECONDS):
            self._warn(
                f"the sender process did not start within {SENDER_START_SECONDS}s; "
                "predictions are journaled and sent once it does"
            )

    def _listen(self, process: subprocess.Popen[bytes]) -> None:
        """Apply the reports of a sender process until it ends."""
        assert process.stdout is not None
        for line in process.stdout:
            try:
                report = json.loads(line)
            except ValueError:
                self._warn("the sender process wrote a line that is not a report; ignored")
                continue
            self._apply(report)
        process.wait()
        with self._lock:
            self._progress.notify_all()
            self._room.notify_all()

    def _apply(self, report: Report) -> None:
        """What the sender did, in the counts and the waits of this logger."""
        kind = report["kind"]
        if kind == "warn":
            self._warn(report["message"], once=report["once"])
            return
        if kind == "info":
            log.info("mlledger: %s", report["message"])
            return
        if kind == "recovered":
            log.info("mlledger: predictions are reaching the ledger again")
            self._warned.clear()
            return
        if kind == "ready":
            self._ready.set()
            return
        with self._lock:
            if kind == "done":
                self._counts["rejected" if report["rejected"] else "sent"] += report["rows"]
                self._unsent -= report["bytes"]
                if report["own"]:
                    self._own_done += report["rows"]
                else:
                    self._adopted_bytes -= report["bytes"]
            elif kind == "retry":
                self._counts["retries"] += 1
            elif kind == "adopted":
                self._adopting += 1
                self._adopted_bytes += report["bytes"]
                self._unsent += report["bytes"]
                self._counts["adopted"] += 1
            elif kind == "released":
                self._adopting -= 1
            self._room.notify_all()
            self._progress.notify_all()

    def _poke(self) -> None:
        """Wake the sender: a batch is waiting, or a flush asks for one."""
        if self._sender is not None:
            self._sender.wake.set()
            return
        if self._process is None or self._process.poll() is not None:
            return
        try:
            os.write(self._input, b"w")
        except BlockingIOError:
            return  # wake-ups already wait in the pipe: one is enough
        except BrokenPipeError:
            return  # the process ended: _sender_alive says so

    def _sender_alive(self) -> bool:
        if self._sender is not None:
            return self._thread is not None and self._thread.is_alive()
        return self._process is not None and self._process.poll() is None

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
        ``timeout`` seconds passed first (they stay in the spool). A sender that ended
        unexpectedly is started again."""
        with self._lock:
            target = self._counts["logged"]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._own_done >= target and not self._adopting:
                    return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if not self._sender_alive():
                if self._closed:
                    raise ConfigError("PredictionLogger.flush: the logger is closed")
                self._restart_sender()
            self._poke()
            with self._progress:
                if self._own_done < target or self._adopting:
                    self._progress.wait(min(left, 0.5) if left is not None else 0.5)

    def _restart_sender(self) -> None:
        """Start the sender again after it ended unexpectedly; the lanes it had adopted
        are looked for again by the new one."""
        status = None if self._process is None else self._process.returncode
        self._warn(f"the sender ended unexpectedly (exit status {status}); starting it again")
        if self._sender is not None:
            self._sender.release_adopted()
        with self._lock:
            self._unsent -= self._adopted_bytes
            self._adopted_bytes = 0
            self._adopting = 0
        self._start_sender()

    def _stop_sender(self) -> None:
        """Stop the sender after the batch it is sending; it gives up the lanes it
        adopted (each removed when drained)."""
        if self._sender is not None:
            self._sender.stop.set()
            self._sender.wake.set()
            if self._thread is not None:
                self._thread.join()
            self._sender.release_adopted()
            return
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # the end of its input: it stops
        try:
            process.wait(SENDER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._warn(
                f"the sender process did not stop within {SENDER_STOP_SECONDS}s; killed "
                "(a batch it was sending is sent again by the next logger, under its id)"
            )
            process.kill()
            process.wait()
        if self._thread is not None:
            self._thread.join()
        assert process.stdout is not None
        process.stdout.close()

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
        self._stop_sender()
        atexit.unregister(self._at_exit)
        with self._sync_lock, self._lock:
            if self.fsync:
                os.fsync(self._fd)
            for fd in [*self._retired, self._fd]:
                os.close(fd)
            self._retired = []
        self._lane.reload()  # as the sender left it (a sender process wrote it)
        self._lane.release(remove=True)
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
