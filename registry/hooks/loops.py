"""What the callbacks of the training loops (``registry.lightning``,
``registry.transformers``) share: one ``Loop`` records a training loop into a run it
starts or into the active run, with

- metrics buffered in memory and appended together, once every ``every_n_steps``
  optimizer steps and at each epoch's end (one append, one transaction, per batch of
  steps; never one per step);
- the datasets the loop reads, as run inputs: dataset versions given, data that
  ``Registry.dataset_from`` reads (registered by its content's digest), or the
  dataset of the loop's own data loader when it is such data;
- each checkpoint the loop saves (a file or a directory), as a model version whose
  artifact is the checkpoint itself, with its digest.

As everywhere in ``registry.hooks``, nothing here raises into the training: a failure
to record is warned about once (``recording.warn_once``) and the training goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InvalidInput
from registry.hooks.recording import Options, Training, metric_values, quietly
from registry.sdk import tables
from registry.sdk.capture import file_digest
from registry.sdk.handles import DatasetVersion, ModelVersion

if TYPE_CHECKING:
    from registry.sdk import Registry, Run

#: Steps between two appends of the buffered metrics, by default.
EVERY_N_STEPS = 50


def loop_options(
    *,
    registry: Registry | None,
    log_checkpoints: bool,
    log_datasets: bool,
    model_name: str | None,
    job: str | None,
    dataset_name: str | None,
    key: str | None,
    subject: str | None,
    tags: Mapping[str, str] | None,
) -> Options:
    """A callback's keyword arguments as the ``Options`` every hook reads
    (``log_checkpoints`` is ``log_models``: the checkpoints are the models)."""
    return Options(
        registry=registry,
        log_models=log_checkpoints,
        log_datasets=log_datasets,
        key=key,
        subject=subject,
        job=job,
        model_name=model_name,
        dataset_name=dataset_name,
        tags=dict(tags or {}),
    )


class Loop:
    """One training loop being recorded (``begin`` ... ``end``)."""

    def __init__(self, hook: str, options: Options, every_n_steps: int, datasets: Any):
        if every_n_steps < 1:
            raise InvalidInput(
                f"every_n_steps={every_n_steps}: expected a whole number of at least 1",
                field="every_n_steps",
            )
        self.hook = hook
        self.options = options
        self.every_n_steps = every_n_steps
        self.given_datasets = datasets
        self.training: Training | None = None
        #: The run recorded into (kept after the loop ends) and the model versions of
        #: the checkpoints registered.
        self.run: Run | None = None
        self.models: list[ModelVersion] = []
        self._pending: list[tuple[int | None, dict[str, float], datetime]] = []
        self._appended_at = 0
        self._inputs: set[str] = set()
        self._checkpoints: set[tuple[str, str]] = set()

    @property
    def recording(self) -> bool:
        """Whether a run is being recorded into (it started, or was joined)."""
        return self.training is not None and self.training.run is not None

    def begin(self, job: str, params: Mapping[str, Any], step: int = 0) -> None:
        """Join the active run or start one of ``job`` with ``params``; the loop is at
        ``step`` (a resumed training's first step)."""
        self._pending.clear()
        self._inputs.clear()
        self._checkpoints.clear()
        self._appended_at = step
        self.training = Training.begin(self.hook, self.options, job, params)
        self.run = self.training.run
        self.models = []

    def metrics(self, metrics: Mapping[str, Any], step: int | None) -> None:
        """Buffer the numeric values of ``metrics`` at ``step``, observed now (the
        time they are recorded at, whenever they are appended)."""
        values = metric_values(metrics)
        if values and self.recording:
            self._pending.append((step, values, datetime.now(UTC)))

    def stepped(self, step: int) -> None:
        """The loop reached optimizer step ``step``: append what is buffered when
        ``every_n_steps`` steps went by since the last append."""
        if step - self._appended_at >= self.every_n_steps:
            self.append(step)

    def append(self, step: int | None = None) -> None:
        """Append the buffered metrics (and the run's other buffered records) now, in
        one append."""
        if step is not None:
            self._appended_at = step
        run = self._hand_over()
        if run is not None:
            with quietly(self.hook, "log metrics"):
                run.flush()

    def _hand_over(self) -> Run | None:
        """Hand the buffered metrics to the run (which holds them in turn, until its
        connection appends); the run, if any."""
        pending, self._pending = self._pending, []
        training = self.training
        if training is None or training.run is None:
            return None
        run = training.run
        with quietly(self.hook, "log metrics"):
            for at, values, observed in pending:
                run.log_metrics(values, step=at, occurred_at=observed)
        return run

    def datasets(self, found: Mapping[str, Any] | None = None) -> None:
        """Record the loop's datasets as inputs of the run: those the callback was given,
        else ``found`` (``{name: data}``: a data loader's dataset, when it is tabular).
        A dataset already recorded by this loop is not recorded again."""
        if not self.recording or not self.options.log_datasets:
            return
        if self.given_datasets is not None:
            chosen = self._named(self.given_datasets)
        else:
            chosen = [(name, data) for name, data in (found or {}).items() if tables.is_table(data)]
        for name, data in chosen:
            self._input(name, data)

    def _named(self, given: Any) -> list[tuple[str, Any]]:
        """The given datasets as ``(name, dataset)``: a mapping's items; a dataset
        version or its id (a text starting ``dataset:``), alone or in a list; or data,
        named ``dataset_name`` (default ``<model name>-training``)."""
        default = self.options.dataset_name or f"{self.options.model_name or 'model'}-training"
        if isinstance(given, Mapping):
            return [(str(name), data) for name, data in given.items()]
        if isinstance(given, DatasetVersion) or _dataset_id(given):
            return [(default, given)]
        if isinstance(given, Sequence) and not isinstance(given, str | bytes):
            return [(default, item) for item in given]
        return [(default, given)]

    def _input(self, name: str, data: Any) -> None:
        training = self.training
        if training is None or training.run is None:
            return
        run = training.run
        with quietly(self.hook, "record the training data"):
            if isinstance(data, DatasetVersion) or _dataset_id(data):
                node = data.id if isinstance(data, DatasetVersion) else str(data)
            else:
                options = self.options
                uri = None if isinstance(data, str | Path) else f"memory:{name}"
                node = run.registry.dataset_from(
                    data, name, key=options.key, subject=options.subject, uri=uri
                ).id
            if node not in self._inputs:
                run.use(node)
                self._inputs.add(node)

    def checkpoint(
        self, path: str | Path, name: str, framework: str, tags: Mapping[str, str]
    ) -> None:
        """Register the checkpoint at ``path`` (a file or a directory) as a version of
        model ``name`` (the ``model_name`` option overrides it): its artifact is the
        checkpoint itself, with its digest. The same content at the same path is
        registered once."""
        training = self.training
        if training is None or training.run is None or not self.options.log_models:
            return
        run = training.run
        with quietly(self.hook, "register a checkpoint"):
            target = Path(path)
            digest = file_digest(target, "checkpoint")
            if (str(target), digest) in self._checkpoints:
                return
            made = run.register_model(
                self.options.model_name or name,
                artifact_uri=target.resolve().as_uri(),
                artifact_digest=digest,
                framework=framework,
                tags={"checkpoint": target.name, **tags},
            )
            self._checkpoints.add((str(target), digest))
            self.models.append(made)

    def end(self, error: BaseException | None = None) -> None:
        """End a run started for the loop (completed, or failed with ``error``'s class
        when given), its buffered records appended with its end, in one append; a
        joined run is left running, its buffered records appended."""
        training = self.training
        if training is None:
            return
        run = self._hand_over()
        self.training = None
        if run is not None and not training.owned:
            with quietly(self.hook, "log metrics"):
                run.flush()
        training.end(error)


class LoopCallback:
    """What the two callbacks (``registry.lightning``, ``registry.transformers``) take
    and expose: their keyword arguments, made a ``Loop`` of ``hook``, and the run and
    model versions of the last training. Each callback's ``Recording`` builds on it, and
    its ``Callback`` puts the framework's callback class after it."""

    hook: str

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        every_n_steps: int = EVERY_N_STEPS,
        log_checkpoints: bool = True,
        model_name: str | None = None,
        job: str | None = None,
        datasets: Any = None,
        dataset_name: str | None = None,
        key: str | None = None,
        subject: str | None = None,
        log_datasets: bool = True,
        tags: Mapping[str, str] | None = None,
    ):
        super().__init__()
        options = loop_options(
            registry=registry,
            log_checkpoints=log_checkpoints,
            log_datasets=log_datasets,
            model_name=model_name,
            job=job,
            dataset_name=dataset_name,
            key=key,
            subject=subject,
            tags=tags,
        )
        self.loop = Loop(self.hook, options, every_n_steps, datasets)
        self._model_name = model_name
        self._fresh()

    def _fresh(self) -> None:
        """Make what a callback keeps besides its loop (called by the constructor)."""

    @property
    def run(self) -> Run | None:
        """The run the last training was recorded into (None before one started)."""
        return self.loop.run

    @property
    def models(self) -> list[ModelVersion]:
        """The model versions of the checkpoints the last training saved."""
        return list(self.loop.models)


def _dataset_id(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("dataset:")
