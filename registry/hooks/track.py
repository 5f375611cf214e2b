"""``@registry.track``: a training function as a run.

    @registry.track(register="churn", datasets=["frame"], exclude=["verbose"])
    def train(frame, C=1.0, verbose=False):
        ...
        return model

Each call is a run of the job named after the function (``job=`` to choose), or joins
the active run (``registry.active_run()``: a ``with reg.run(...)`` block around the
call, or a job's run); ``nested=True`` starts a child run of the active one instead.

- Its arguments, defaults applied, are the run's params: JSON scalars as they are,
  anything else as its ``repr`` cut to 500 characters; ``include=`` keeps only the
  names given, ``exclude=`` drops them, and ``self`` / ``cls`` are never params.
- Arguments named in ``datasets=`` are not params but inputs: tabular data (a pandas
  DataFrame, a pyarrow Table, an array) or the path of a Parquet or CSV file, each
  registered as a dataset version digested over its content (``Registry.dataset_from``)
  under the argument's name, with record keys and subjects from the columns ``key=`` and
  ``subject=`` name.
- With ``register="name"``, the returned model is registered as a version of ``name``,
  pickled into the artifacts folder; ``framework=`` names its framework (default: the
  top-level package of its class).
- An exception of the function marks the run failed with the exception's class and is
  re-raised unchanged; what it returns is returned unchanged.

Recording never raises into the function's caller: as with autologging
(``registry.hooks.recording``), a failure to record is logged once as a warning and the
function runs anyway. Autologged fits inside the function record into its run.
"""

from __future__ import annotations

import functools
import inspect
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from registry.errors import ConfigError
from registry.hooks.recording import Options, Training, quietly
from registry.hooks.tabular import training_table
from registry.sdk.runs import current

if TYPE_CHECKING:
    from registry.sdk import DatasetVersion, Registry

P = ParamSpec("P")
R = TypeVar("R")

_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def job_name(function: Callable[..., Any]) -> str:
    """A valid job name for ``function``: its module and name (``train.fit_model``)."""
    module = (function.__module__ or "").rsplit(".", 1)[-1]
    name = f"{module}.{function.__name__}" if module and module != "__main__" else function.__name__
    return _NOT_NAME.sub("-", name).strip("-._")[:128] or "track"


@overload
def track(function: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def track(
    function: None = None,
    /,
    *,
    job: str | None = ...,
    include: Iterable[str] | None = ...,
    exclude: Iterable[str] = ...,
    datasets: Iterable[str] = ...,
    key: str | None = ...,
    subject: str | None = ...,
    register: str | None = ...,
    framework: str | None = ...,
    nested: bool = ...,
    registry: Registry | None = ...,
    artifacts: str | Path | None = ...,
    tags: Mapping[str, str] | None = ...,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def track(
    function: Callable[P, R] | None = None,
    /,
    *,
    job: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    datasets: Iterable[str] = (),
    key: str | None = None,
    subject: str | None = None,
    register: str | None = None,
    framework: str | None = None,
    nested: bool = False,
    registry: Registry | None = None,
    artifacts: str | Path | None = None,
    tags: Mapping[str, str] | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call of the decorated function as a run (see the module)."""
    options = Options(
        registry=registry,
        key=key,
        subject=subject,
        job=job,
        model_name=register,
        artifacts=artifacts,
        tags=dict(tags or {}),
    )
    tracked = Tracked(
        include=None if include is None else set(include),
        exclude=set(exclude),
        datasets=list(datasets),
        register=register,
        framework=framework,
        nested=nested,
        options=options,
    )
    if function is not None:
        return tracked.wrap(function)
    return tracked.wrap


class Tracked:
    """What ``track`` was asked to record, and the wrapping of one function."""

    def __init__(
        self,
        *,
        include: set[str] | None,
        exclude: set[str],
        datasets: list[str],
        register: str | None,
        framework: str | None,
        nested: bool,
        options: Options,
    ):
        self.include = include
        self.exclude = exclude
        self.datasets = datasets
        self.register = register
        self.framework = framework
        self.nested = nested
        self.options = options

    def wrap(self, function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)
        missing = [n for n in self.datasets if n not in signature.parameters]
        if missing:
            raise ConfigError(
                f"track: {function.__name__}() has no argument {missing[0]!r} "
                f"(datasets=); expected one of {', '.join(signature.parameters)}"
            )
        job = self.options.job or job_name(function)
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def call_async(*args: Any, **kwargs: Any) -> Any:
                training = self.begin(job, signature, args, kwargs)
                return await self.finish_async(training, function(*args, **kwargs))

            return call_async  # type: ignore[return-value]

        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            training = self.begin(job, signature, args, kwargs)
            try:
                if training.run is not None:
                    with current(training.run):
                        result = function(*args, **kwargs)
                else:
                    result = function(*args, **kwargs)
            except BaseException as exc:
                training.end(exc)
                raise
            self.finish(training, result)
            return result

        return call

    async def finish_async(self, training: Training, pending: Any) -> Any:
        try:
            if training.run is not None:
                with current(training.run):
                    result = await pending
            else:
                result = await pending
        except BaseException as exc:
            training.end(exc)
            raise
        self.finish(training, result)
        return result

    def begin(
        self,
        job: str,
        signature: inspect.Signature,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Training:
        """The run of one call: its params and datasets from the call's arguments."""
        arguments: dict[str, Any] = {}
        with quietly("track", "read the arguments"):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
        params = {
            name: value
            for name, value in arguments.items()
            if name not in ("self", "cls")
            and name not in self.datasets
            and name not in self.exclude
            and (self.include is None or name in self.include)
            and signature.parameters[name].kind
            not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }
        training = Training.begin("track", self.options, job, params, nested=self.nested)
        for name in self.datasets:
            value = arguments.get(name)
            if value is not None:
                training.dataset(_dataset(name, value, self.options))
        return training

    def finish(self, training: Training, result: Any) -> None:
        if self.register is not None and result is not None:
            framework = self.framework or type(result).__module__.split(".")[0]
            training.model(
                self.register,
                lambda: pickle.dumps(result, protocol=5),
                suffix=".pkl",
                framework=framework,
            )
        training.end()


def _dataset(name: str, value: Any, options: Options) -> Callable[[Registry], DatasetVersion]:
    """How to register the argument ``name``'s ``value`` as a dataset version."""

    def register(reg: Registry) -> DatasetVersion:
        if isinstance(value, str | Path):
            return reg.dataset_from(
                value, name, key=options.key, subject=options.subject, defer=True
            )
        table = training_table(value, None, options.key)
        return reg.dataset_from(
            table,
            name,
            key=options.key,
            subject=options.subject,
            uri=f"memory:{name}",
            defer=True,
        )

    return register
