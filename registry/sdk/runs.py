"""Runs: ``with reg.run(...) as run:`` and what a run records (inputs, params, metrics,
the model and dataset versions it produced), buffered until the run ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Unpack

from registry import writes
from registry.errors import InvalidInput
from registry.ids import run_id
from registry.limits import MAX_ERROR_TYPE
from registry.sdk.capture import capture_code, capture_environment
from registry.sdk.handles import DatasetVersion, ModelVersion, NodeLike, node_of

if TYPE_CHECKING:
    from registry.sdk.connection import Registry
    from registry.sdk.models import ModelFields


def error_type(exc_type: type[BaseException]) -> str:
    """The qualified name of an exception class, cut short to what the ledger keeps."""
    name = f"{exc_type.__module__}.{exc_type.__qualname__}"
    if len(name) > MAX_ERROR_TYPE:  # still record the failure, the name cut short
        name = name[: MAX_ERROR_TYPE - 3] + "..."
    return name


#: The run whose ``with`` block the caller is in (the innermost, per thread and task).
_CURRENT: ContextVar[Run | None] = ContextVar("mlledger_run", default=None)


def current_run() -> Run | None:
    """The run whose ``with`` block the caller is in (the innermost), or None."""
    return _CURRENT.get()


@contextmanager
def current(run: Run) -> Iterator[Run]:
    """Make ``run`` the caller's current run (``current_run``) inside the block, without
    starting or ending it."""
    token = _CURRENT.set(run)
    try:
        yield run
    finally:
        _CURRENT.reset(token)


class Run:
    """A run; use it as a context manager (``with reg.run(...) as run:``)."""

    def __init__(
        self,
        registry: Registry,
        job: str,
        *,
        params: dict[str, Any],
        inputs: list[str],
        tags: dict[str, str],
        parent: str | None,
        uuid_: uuid.UUID,
        code_dir: str,
        occurred_at: Any,
        ended_at: Any = None,
        attached: bool = False,
    ):
        self.registry = registry
        self.job = job
        self.id = run_id(uuid_)
        self.uuid = str(uuid_)
        self._start = dict(
            params=params,
            inputs=inputs,
            tags=tags,
            parent=parent,
            code_dir=code_dir,
            occurred_at=occurred_at,
        )
        # A backfilled run's records default to its start time, its end to ended_at.
        self._default_time = occurred_at
        self._ended_at = ended_at if ended_at is not None else occurred_at
        # A run started elsewhere (by an executor): this code records into it, and
        # neither starts it nor ends it.
        self.attached = attached
        self.status = "new"
        self.models: list[ModelVersion] = []
        self.datasets: list[DatasetVersion] = []
        self._tokens: list[Token[Run | None]] = []

    def __str__(self) -> str:
        return self.id

    def __enter__(self) -> Run:
        self.begin()
        self._tokens.append(_CURRENT.set(self))
        return self

    def begin(self) -> Run:
        """Start the run (buffer its ``run-started``) without making it the current run
        of a ``with`` block: for a run that spans more than one block, ended by
        ``end()``. An attached run (``job_run``) is only marked running."""
        s = self._start
        if self.attached:
            self.status = "running"
            if s["inputs"]:
                self.use(*s["inputs"])
            return self
        body = {
            "job": self.job,
            "params": s["params"],
            "code": capture_code(s["code_dir"]),
            "environment": capture_environment(),
            "parent_run": s["parent"],
            "tags": s["tags"],
        }
        reg = self.registry
        reg._hold(writes.event(reg, "run-started", self.id, body, s["occurred_at"]))
        self.status = "running"
        if s["inputs"]:
            self.use(*s["inputs"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if self._tokens:
            _CURRENT.reset(self._tokens.pop())
        self.end(exc_type)
        return False

    def end(self, exc_type: type[BaseException] | None = None) -> None:
        """End a run started by ``begin()``: completed, or failed with the class of
        ``exc_type`` when given. An attached run is only flushed: its executor records
        how the job ended."""
        if self.attached:
            # The executor records how the job ended, from its exit code.
            self.registry.flush()
            self.status = "attached"
            return
        if exc_type is None:
            type_, body, status = "run-completed", {}, "completed"
        else:
            type_, body, status = "run-failed", {"error_type": error_type(exc_type)}, "failed"
        self.registry._append_one(type_, self.id, body, occurred_at=self._ended_at)
        self.status = status

    def _require_running(self, advice: str) -> None:
        """InvalidInput unless the run is inside its ``with`` block."""
        if self.status != "running":
            raise InvalidInput(f"run {self.id} is {self.status}: {advice}")

    def _buffer(self, type: str, entity: str, body: dict[str, Any], occurred_at: Any) -> None:
        """Buffer one record of this run, at ``occurred_at`` or the run's default time."""
        reg = self.registry
        reg._hold(writes.event(reg, type, entity, body, occurred_at or self._default_time))

    def _record(self, type: str, body: dict[str, Any], occurred_at: Any = None) -> None:
        self._require_running("record inside its 'with' block")
        self._buffer(type, self.id, body, occurred_at)

    def use(self, *inputs: NodeLike) -> None:
        """Declare dataset or model versions this run reads."""
        if inputs:
            self._record("run-inputs-used", {"inputs": [node_of(i) for i in inputs]})

    def log_params(self, params: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Record parameters (a key logged again keeps the latest value)."""
        merged = {**(params or {}), **more}
        if merged:
            self._record("run-params-logged", {"params": merged})

    def log_metrics(
        self, metrics: Mapping[str, float], *, step: int | None = None, occurred_at: Any = None
    ) -> None:
        """Record metric values."""
        if metrics:
            observed = [
                {"key": k, "value": v if type(v) is int else float(v), "step": step}
                for k, v in metrics.items()
            ]
            self._record("run-metrics-logged", {"metrics": observed}, occurred_at=occurred_at)

    def register_model(
        self,
        name: str,
        version: str | None = None,
        *,
        remediates: Mapping[str, Any] | Sequence[Mapping[str, Any]] = (),
        **fields: Unpack[ModelFields],
    ) -> ModelVersion:
        """A model version this run produced (appended with the run's other records);
        its artifact, framework, tags and time as ``Registry.register_model`` takes them.

        ``remediates`` takes remediation flags (``Registry.remediations()`` items:
        ``{"erasure", "model"}``) this version resolves: it replaces the flagged
        version, and the ledger refuses the run's batch unless the run read none of
        the erased records nor any dataset version the erasure touched."""
        self._require_running("register its models inside the block")
        occurred_at = fields.get("occurred_at")
        at: ModelFields = {**fields, "occurred_at": occurred_at or self._default_time}
        event, model = self.registry._model_event(name, version, self.id, at)
        self.registry._hold(event)
        flags = [remediates] if isinstance(remediates, Mapping) else list(remediates)
        for flag in flags:
            body = {"erasure": flag["erasure"], "model": flag["model"]}
            self._buffer("erasure-remediated", model.id, body, occurred_at)
        self.models.append(model)
        return model

    def register_dataset(self, name: str, version: str | None = None, **kw: Any) -> DatasetVersion:
        """A dataset version this run wrote (``produced_by`` this run)."""
        self.registry.flush()
        dataset = self.registry.register_dataset(name, version, produced_by=self.id, **kw)
        self.datasets.append(dataset)
        return dataset

    def flush(self) -> None:
        """Append this run's buffered records now."""
        self.registry.flush()
