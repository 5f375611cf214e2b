"""Hugging Face transformers: ``registry.transformers.Callback``, a
``transformers.TrainerCallback`` recording a ``Trainer.train`` as a run, or into the
active run (``registry.active_run()``):

- params, at ``on_train_begin``: the ``TrainingArguments`` (``args.to_dict()``, the
  values that are JSON scalars: numbers, text, booleans, null) and the model
  configuration's scalar fields, prefixed ``model.`` (``model.hidden_size``);
- metrics: what the trainer logs (``on_log``: the loss, learning rate, gradient norm,
  evaluation metrics, the final training summary), at ``state.global_step``. They are
  buffered in memory and appended together once every ``every_n_steps`` steps and at
  each epoch's end: one append per batch of steps;
- each checkpoint the trainer saves (``on_save``: the directory
  ``<output_dir>/checkpoint-<step>``), as a model version of the model's class name
  (or ``model_name``) whose artifact is that directory, with its digest (over its
  files' names and contents), framework ``transformers``, tagged with its directory
  name and step;
- the datasets, as run inputs: ``datasets=`` (dataset versions, their ids, data
  ``Registry.dataset_from`` reads, such as a ``datasets.Dataset``, or a mapping of
  names to either); without it, the datasets of the trainer's data loaders (the
  training set at the start, the evaluation set at the first evaluation) when they
  are Hugging Face datasets: the columns the model reads, as the trainer left them;
- the end: ``on_train_end`` completes a run the callback started; a joined run is
  left running.

- an exception: ``TrainerCallback`` has no hook for one, so when ``Callback`` is first
  used, ``Trainer.train`` is wrapped (once, for the process): an exception it raises
  first ends the run of each of the trainer's ``Callback``s, failed with the
  exception's class (the metrics buffered are appended first), and is then raised
  unchanged. What ``train`` returns is unchanged.

Only the main process (``state.is_world_process_zero``) records. Nothing raises into
the training: a failure to record is warned about once (the ``mlledger.autolog``
logger) and the training goes on.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from registry.hooks.loops import LoopCallback
from registry.hooks.recording import quietly

if TYPE_CHECKING:
    pass

HOOK = "transformers"

#: The prefix of the trainer's checkpoint directories (``checkpoint-<step>``).
CHECKPOINT_PREFIX = "checkpoint"

_built: dict[str, type] = {}
_built_lock = threading.Lock()


def _base() -> type:
    try:
        from transformers import Trainer, TrainerCallback
    except ImportError:
        raise ImportError(
            "registry.transformers.Callback needs transformers: pip install transformers"
        ) from None
    _wrap_train(Trainer)
    base: type = TrainerCallback
    return base


def _wrap_train(trainer: Any) -> None:
    """Wrap ``trainer.train`` so that an exception it raises fails the runs of the
    trainer's ``Callback``s before it propagates (once: a wrapped ``train`` is kept)."""
    original = trainer.train
    if getattr(original, "__mlledger_hook__", None) == HOOK:
        return

    @functools.wraps(original)
    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except BaseException as error:
            handler = getattr(self, "callback_handler", None)
            for callback in getattr(handler, "callbacks", ()):
                if isinstance(callback, Recording):
                    callback.failed(error)
            raise

    train.__mlledger_hook__ = HOOK  # type: ignore[attr-defined]
    trainer.train = train


def _scalars(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The entries of ``values`` that are JSON scalars, their names prefixed."""
    return {
        f"{prefix}{k}": v
        for k, v in values.items()
        if v is None or isinstance(v, bool | int | float | str)
    }


class Recording(LoopCallback):
    """Records a ``Trainer.train`` (see the module). ``registry``: the connection
    (default: ``registry.connect()`` from the environment); ``every_n_steps``: steps
    between two appends of the buffered metrics; ``log_checkpoints``: whether
    checkpoints become model versions; ``model_name``: their name (default: the
    model's class name); ``job``: the job of a run started (default
    ``transformers.<model class>``); ``datasets``: the data (see the module);
    ``dataset_name``: the name data is registered under (default
    ``<model name>-training``, and ``<model name>-evaluation`` for the evaluation set
    read from the trainer); ``key`` / ``subject``: the columns of record keys and
    data-subject ids of the data registered; ``log_datasets``: whether to record the
    data; ``tags``: tags of a run started.

    ``registry.transformers.Callback`` is this class on top of ``TrainerCallback``,
    built when first asked for."""

    hook = HOOK

    def _fresh(self) -> None:
        self._evaluated = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        model = kwargs.get("model")
        kind = type(model).__name__ if model is not None else "model"
        self.loop.options.model_name = self._model_name or kind
        params = _scalars(args.to_dict())
        config = getattr(model, "config", None)
        with quietly(HOOK, "read the model's configuration"):
            if config is not None:
                params.update(_scalars(config.to_dict(), "model."))
        self.loop.begin(f"transformers.{kind}", params, step=int(state.global_step))
        self._evaluated = False
        self._data(kwargs.get("train_dataloader"), "training")

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and not self._evaluated:
            self._evaluated = True
            self._data(kwargs.get("eval_dataloader"), "evaluation")

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        step = int(state.global_step)
        self.loop.metrics(logs, step)
        self.loop.stepped(step)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.loop.append()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"{CHECKPOINT_PREFIX}-{state.global_step}")
        options = self.loop.options
        self.loop.checkpoint(
            folder,
            options.model_name or "model",
            "transformers",
            {"step": str(state.global_step)},
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.loop.end()

    def failed(self, error: BaseException) -> None:
        """The training raised ``error``: end a run this callback started, failed
        with the error's class (``Trainer.train``'s wrapper calls it)."""
        self.loop.end(error)

    def _data(self, loader: Any, role: str) -> None:
        """Record the datasets given, else the dataset of ``loader`` (a Hugging Face
        dataset), named ``<model name>-<role>`` unless ``dataset_name`` is given for
        the training set."""
        if self.loop.given_datasets is not None:
            if role == "training":
                self.loop.datasets()
            return
        data = getattr(loader, "dataset", None)
        if data is None:
            return
        options = self.loop.options
        name = f"{options.model_name or 'model'}-{role}"
        if role == "training" and options.dataset_name:
            name = options.dataset_name
        self.loop.datasets({name: data})


if TYPE_CHECKING:
    #: For type checkers: the recording half of ``Callback`` (transformers is not
    #: needed to check code using it).
    Callback = Recording


def __getattr__(name: str) -> Any:
    """``Callback``: ``Recording`` on top of ``transformers.TrainerCallback``, built on
    first use, so that importing this module needs no transformers."""
    if name != "Callback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _built_lock:
        built = _built.get(name)
        if built is None:
            built = _built[name] = type(
                "Callback",
                (Recording, _base()),
                {"__module__": __name__, "__qualname__": "Callback", "__doc__": __doc__},
            )
    return built
