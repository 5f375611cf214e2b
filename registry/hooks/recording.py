"""One training call being recorded (``Training``): into the active run when there is
one (``registry.active_run()``), else into a run started for it; its params, metrics,
training data (a dataset version digested from its content), and the fitted model (a
model version whose artifact is written, content-addressed, to the artifacts folder).

Nothing here raises into the caller's code. A failure to record (the ledger cannot be
opened or reached, refuses an event, an artifact cannot be written, data cannot be
digested) is logged once per hook and kind of failure, as a warning of the
``mlledger.autolog`` logger naming the step and the error's class and message, and the
training goes on. Errors of the training itself propagate unchanged; the run is then
marked failed with the error's class."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from registry.errors import LedgerError
from registry.sdk.connection import active_run, connect

if TYPE_CHECKING:
    from registry.sdk import DatasetVersion, ModelVersion, Registry, Run

log = logging.getLogger("mlledger.autolog")

#: The longest text a parameter's value is cut to (values that are not JSON scalars
#: are recorded as their ``repr``).
MAX_PARAM_TEXT = 500
#: The most items a list or mapping parameter is recorded with (longer: its size only).
MAX_PARAM_ITEMS = 32

_warned: set[tuple[str, str, str]] = set()
_warned_lock = threading.Lock()
_default: dict[str, Registry] = {}


@dataclass
class Options:
    """What a hook records, and where (``autolog``'s keyword arguments).

    ``registry``: the connection to record into (default: ``registry.connect()``, from
    the environment, opened on first use); ``log_models`` / ``log_datasets``: whether to
    register fitted models and training data; ``key`` / ``subject``: the column of the
    training data holding record keys (``"index"``: a DataFrame's index) and data-subject
    ids; ``job``: the job name of the runs started (default: per framework and class);
    ``model_name``: the name the fitted models are registered under (default: the
    class's name); ``dataset_name``: the name of the training data's dataset
    (default: ``<model name>-training``); ``artifacts``: the folder model artifacts are
    written to (default: ``.mlledger/artifacts``); ``tags``: tags of the runs started."""

    registry: Registry | None = None
    log_models: bool = True
    log_datasets: bool = True
    key: str | None = None
    subject: str | None = None
    job: str | None = None
    model_name: str | None = None
    dataset_name: str | None = None
    artifacts: str | Path | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class AutologOptions(TypedDict, total=False):
    """The keyword arguments of each framework's ``autolog``: ``Options``'s fields."""

    registry: Registry | None
    log_models: bool
    log_datasets: bool
    key: str | None
    subject: str | None
    job: str | None
    model_name: str | None
    dataset_name: str | None
    artifacts: str | Path | None
    tags: Mapping[str, str]


def warn_once(hook: str, step: str, exc: BaseException) -> None:
    """Log, once per hook, step and error class, that ``step`` could not be recorded.
    The message names the error's class, quotes what ``_said`` allows of its message,
    and says the training continues."""
    key = (hook, step, type(exc).__name__)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(
        "%s autologging: could not %s (%s: %s); training continues unrecorded there "
        "(this warning is not repeated)",
        hook,
        step,
        type(exc).__name__,
        _said(exc),
    )


def _said(exc: BaseException) -> str:
    """What of ``exc``'s message a warning may quote: the ledger's, the operating
    system's and the HTTP client's messages; of a database error, the driver's message
    alone (``database is locked``), not the statement and parameters SQLAlchemy adds;
    nothing of another library's, which may quote the data."""
    if isinstance(exc, LedgerError | OSError) or type(exc).__module__.startswith("httpx"):
        return str(exc)
    driver = getattr(exc, "orig", None)
    if type(exc).__module__.startswith("sqlalchemy") and driver is not None:
        return str(driver)
    return "message withheld"


@contextmanager
def quietly(hook: str, step: str) -> Iterator[None]:
    """Run a recording step; an ``Exception`` it raises is warned about once
    (``warn_once``) instead of reaching the caller."""
    try:
        yield
    except Exception as exc:
        warn_once(hook, step, exc)


def default_registry(options: Options) -> Registry:
    """The connection a hook records into: the option's, else one opened from the
    environment on first use and kept for the process."""
    if options.registry is not None:
        return options.registry
    reg = _default.get("environment")
    if reg is None:
        reg = _default["environment"] = connect()
    return reg


def param_value(value: Any) -> Any:
    """A parameter's value as the ledger keeps it: JSON scalars as they are (a float
    that is not finite as text, text cut to ``MAX_PARAM_TEXT`` characters); a short
    list or mapping of scalars as JSON; data (anything with a ``shape``: arrays,
    DataFrames, tables, tensors) and long collections as a description of their type
    and size, never their content, which may be personal data the log cannot forget;
    anything else (an estimator, a callable) as its ``repr``, cut."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value[:MAX_PARAM_TEXT]
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    shape = getattr(value, "shape", None)
    if shape is not None:
        if shape == () and callable(getattr(value, "item", None)):  # a numpy scalar
            return param_value(value.item())
        return f"<{kind} shape={tuple(shape)!r}>"
    small = len(value) <= MAX_PARAM_ITEMS if isinstance(value, list | tuple | dict) else False
    if small and isinstance(value, list | tuple) and all(map(_scalar, value)):
        return [param_value(v) for v in value]
    if small and isinstance(value, dict) and all(map(_scalar, value.values())):
        return {str(k): param_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | dict | set | frozenset):
        return f"<{kind} of {len(value)} items>"
    return repr(value)[:MAX_PARAM_TEXT]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with each value as ``param_value`` makes it, the keys as text."""
    return {str(k): param_value(v) for k, v in params.items()}


def metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric values of ``metrics`` (a tensor or numpy scalar read as a
    float); the others are left out, as the ledger records numbers only."""
    kept: dict[str, float] = {}
    for name, value in metrics.items():
        item = getattr(value, "item", None)
        if callable(item):
            try:
                value = item()
            except (TypeError, ValueError):
                continue  # not a single number (a tensor of several values)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            kept[str(name)] = float(value)
    return kept


def store_artifact(payload: bytes, suffix: str, folder: str | Path | None) -> tuple[str, str]:
    """Write ``payload`` to the artifacts folder under its own digest (once: the same
    bytes are the same file) and return ``(uri, "sha256:<hex>")``."""
    digest = hashlib.sha256(payload).hexdigest()
    target_dir = Path(folder or ".mlledger/artifacts")
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{digest}{suffix}"
    if not target.exists():
        # Written aside and renamed: a reader never sees half an artifact.
        fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, target)
    return target.resolve().as_uri(), "sha256:" + digest


class Training:
    """One training call being recorded into ``run``: a run started for it (ended by
    ``end``) or the active run, joined (left running). Every method records quietly
    (``quietly``); with no run (it could not be started) each does nothing."""

    def __init__(self, hook: str, options: Options, run: Run | None, owned: bool, mark: int = 0):
        self.hook = hook
        self.options = options
        self.run = run
        self.owned = owned
        #: The connection's buffer before this training's records (``discard_buffered``).
        self.mark = mark

    @classmethod
    def begin(
        cls,
        hook: str,
        options: Options,
        job: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
        *,
        nested: bool = False,
    ) -> Training:
        """Join the active run (logging ``params`` into it), or with ``nested`` start a
        child run of it; without an active run, start a run of ``job`` with ``params``
        on the options' connection. Never raises."""
        run: Run | None = None
        owned = False
        mark = 0
        with quietly(hook, "start a run"):
            current = active_run()
            if current is not None and current.status != "running":
                current = None  # a run that ended: nothing to join
            if current is not None and not nested:
                run = current
                run.log_params(plain_params(params))
            else:
                reg = current.registry if current is not None else default_registry(options)
                mark = reg.buffered()
                run = reg.run(
                    options.job or job,
                    params=plain_params(params),
                    parent=current,
                    tags={"mlledger.autolog": hook, **options.tags, **(tags or {})},
                ).begin()
                owned = True
        return cls(hook, options, run, owned, mark)

    @property
    def registry(self) -> Registry | None:
        return None if self.run is None else self.run.registry

    def params(self, params: Mapping[str, Any]) -> None:
        if self.run is not None and params:
            with quietly(self.hook, "log params"):
                self.run.log_params(plain_params(params))

    def metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = metric_values(metrics)
        if self.run is not None and values:
            with quietly(self.hook, "log metrics"):
                self.run.log_metrics(values, step=step)

    def metric_series(self, series: Mapping[str, list[Any]]) -> None:
        """Per-step values of metrics (``{name: [value at step 0, 1, ...]}``), buffered
        with the run's other records and appended together."""
        if self.run is None:
            return
        with quietly(self.hook, "log metrics"):
            steps = max((len(v) for v in series.values()), default=0)
            for step in range(steps):
                at = {k: v[step] for k, v in series.items() if step < len(v)}
                values = metric_values(at)
                if values:
                    self.run.log_metrics(values, step=step)

    def dataset(self, make: Callable[[Registry], DatasetVersion]) -> DatasetVersion | None:
        """Register a dataset version (``make`` registers it on the run's connection) and
        record that the run read it."""
        if self.run is None or not self.options.log_datasets:
            return None
        found: DatasetVersion | None = None
        with quietly(self.hook, "register the training data"):
            found = make(self.run.registry)
            self.run.use(found)
        return found

    def model(
        self,
        name: str,
        payload: Callable[[], bytes],
        *,
        suffix: str,
        framework: str,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion | None:
        """Register a model version of ``name`` whose artifact is ``payload()``'s bytes,
        written to the artifacts folder."""
        if self.run is None or not self.options.log_models:
            return None
        made: ModelVersion | None = None
        with quietly(self.hook, "register the model"):
            uri, digest = store_artifact(payload(), suffix, self.options.artifacts)
            made = self.run.register_model(
                self.options.model_name or name,
                artifact_uri=uri,
                artifact_digest=digest,
                framework=framework,
                tags=dict(tags or {}),
            )
        return made

    def end(self, error: BaseException | None = None) -> None:
        """End a run started for this call (failed with ``error``'s class when given);
        a joined run is left running."""
        if self.run is None or not self.owned:
            return
        try:
            self.run.end(type(error) if error is not None else None)
        except Exception as exc:
            # Its records, still buffered, would be appended with the next write as a
            # run that never ends: they are dropped (not retried) instead.
            self.run.registry.discard_buffered(self.mark)
            warn_once(self.hook, "end the run", exc)
