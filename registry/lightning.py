"""PyTorch Lightning: ``registry.lightning.Callback``, a ``lightning.pytorch.Callback``
(``pytorch_lightning.Callback`` where only that package is installed) recording a
``trainer.fit`` as a run, or into the active run (``registry.active_run()``):

- params, at ``on_fit_start``: the module's ``hparams``, the trainer's
  ``trainer.max_epochs``, ``trainer.max_steps``, ``trainer.precision`` and
  ``trainer.accumulate_grad_batches``, and each optimizer's class and learning rate
  (``optimizer``, ``optimizer.lr``; ``optimizer.<i>`` when there are several);
- metrics, from ``trainer.callback_metrics``: after each training batch, the metrics
  the training step logged (the per-epoch aggregates ``*_epoch`` and the validation
  metrics left out), at the trainer's ``global_step``; after each validation (not the
  sanity check), the metrics it logged; at each training epoch's end, the metrics
  that changed (the epoch aggregates) with ``epoch``. They are buffered in memory
  and appended together once every ``every_n_steps`` steps and at each epoch's end:
  one append per batch of steps;
- each checkpoint the trainer saves (``ModelCheckpoint``'s, or a
  ``trainer.save_checkpoint`` call during the fit), once written, as a model version
  of the module's class name (or ``model_name``) whose artifact is the checkpoint
  file, with its digest, framework ``lightning``, tagged with its file name, epoch
  and step;
- the datasets, as run inputs: ``datasets=`` (dataset versions, their ids, data
  ``Registry.dataset_from`` reads, or a mapping of names to either); without it, the
  training data loader's dataset when it is tabular (a DataFrame, an Arrow table, a
  Hugging Face dataset);
- the end: ``on_fit_end`` completes a run the callback started, ``on_exception``
  fails it with the exception's class; a joined run is left running.

Only the process of global rank zero records. Nothing raises into the training: a
failure to record is warned about once (the ``mlledger.autolog`` logger) and the
training goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from registry.hooks.loops import LoopCallback
from registry.hooks.recording import metric_values, quietly

if TYPE_CHECKING:
    pass

HOOK = "lightning"

_built: dict[str, type] = {}
_built_lock = threading.Lock()


def _base() -> type:
    """Lightning's ``Callback`` class: ``lightning.pytorch``'s, else the older
    ``pytorch_lightning``'s."""
    try:
        from lightning.pytorch import Callback as Base
    except ImportError:
        try:
            from pytorch_lightning import Callback as Base
        except ImportError:
            raise ImportError(
                "registry.lightning.Callback needs Lightning: pip install lightning"
            ) from None
    base: type = Base
    return base


class Recording(LoopCallback):
    """Records a ``trainer.fit`` (see the module). ``registry``: the connection
    (default: ``registry.connect()`` from the environment); ``every_n_steps``: steps
    between two appends of the buffered metrics; ``log_checkpoints``: whether
    checkpoints become model versions; ``model_name``: their name (default: the
    module's class name); ``job``: the job of a run started (default
    ``lightning.<module class>``); ``datasets``: the training data (see the module);
    ``dataset_name``: the name data is registered under (default
    ``<model name>-training``); ``key`` / ``subject``: the columns of record keys and
    data-subject ids of the data registered; ``log_datasets``: whether to record the
    data; ``tags``: tags of a run started.

    ``registry.lightning.Callback`` is this class on top of Lightning's ``Callback``,
    built when first asked for."""

    hook = HOOK

    def _fresh(self) -> None:
        self._seen: dict[str, float] = {}
        self._step_keys: set[str] = set()
        self._eval_keys: set[str] = set()
        self._trainer: Any = None

    # --- the fit ---------------------------------------------------------------------

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        self._seen.clear()
        self._step_keys.clear()
        self._eval_keys.clear()
        name = self._model_name or type(pl_module).__name__
        self.loop.options.model_name = name
        self.loop.begin(
            f"lightning.{type(pl_module).__name__}",
            _params(trainer, pl_module),
            step=int(trainer.global_step),
        )
        self.loop.datasets()
        with quietly(HOOK, "watch the checkpoints"):
            self._watch_checkpoints(trainer, name)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero and self.loop.given_datasets is None:
            with quietly(HOOK, "read the training data"):
                loader = trainer.train_dataloader
                data = getattr(loader, "dataset", None)
                if data is not None:
                    self.loop.datasets({self._data_name(): data})

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._unwatch_checkpoints()
        if trainer.is_global_zero:
            self._look(trainer, epoch=False)
            self.loop.end()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._unwatch_checkpoints()
        if trainer.is_global_zero:
            self.loop.end(exception)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._unwatch_checkpoints()

    # --- metrics ---------------------------------------------------------------------

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.is_global_zero or not self.loop.recording:
            return
        with quietly(HOOK, "read the metrics"):
            values, changed = self._changed(trainer)
            self._step_keys |= {
                k for k in changed if not k.endswith("_epoch") and k not in self._eval_keys
            }
            step = int(trainer.global_step)
            self.loop.metrics({k: v for k, v in values.items() if k in self._step_keys}, step)
            self.loop.stepped(step)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero and self.loop.recording:
            with quietly(HOOK, "read the metrics"):
                self._changed(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero or not self.loop.recording:
            return
        with quietly(HOOK, "read the metrics"):
            values, changed = self._changed(trainer)
            logged = changed - self._step_keys
            self._eval_keys |= logged
            if not trainer.sanity_checking:
                step = int(trainer.global_step)
                self.loop.metrics({k: values[k] for k in logged}, step)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            self._look(trainer, epoch=True)

    def _look(self, trainer: Any, *, epoch: bool) -> None:
        """Buffer the metrics that changed since the last look, but the per-step ones
        (``*_step``); at an epoch's end, with ``epoch``, and append everything
        buffered (at the fit's end, ``Loop.end`` appends it with the run's end)."""
        if not self.loop.recording:
            return
        with quietly(HOOK, "read the metrics"):
            values, changed = self._changed(trainer)
            kept = {k: values[k] for k in changed if not k.endswith("_step")}
            if kept and epoch:
                kept["epoch"] = float(trainer.current_epoch)
            self.loop.metrics(kept, int(trainer.global_step))
        if epoch:
            self.loop.append()

    def _changed(self, trainer: Any) -> tuple[dict[str, float], set[str]]:
        """The numeric values of ``trainer.callback_metrics``, and the names of those
        whose value differs from the last look (or that are new)."""
        values = metric_values(trainer.callback_metrics)
        changed = {k for k, v in values.items() if self._seen.get(k) != v}
        self._seen.update(values)
        return values, changed

    # --- checkpoints -----------------------------------------------------------------

    def _watch_checkpoints(self, trainer: Any, name: str) -> None:
        """Make the trainer's ``save_checkpoint`` (which ``ModelCheckpoint`` and the
        user's code call) register each checkpoint once it is written; put back at the
        fit's end."""
        if not self.loop.recording or not self.loop.options.log_models:
            return
        original = trainer.save_checkpoint
        loop = self.loop

        def save_checkpoint(filepath: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(filepath, *args, **kwargs)
            if trainer.is_global_zero:
                loop.checkpoint(
                    filepath,
                    name,
                    "lightning",
                    {"epoch": str(trainer.current_epoch), "step": str(trainer.global_step)},
                )
            return result

        trainer.save_checkpoint = save_checkpoint
        self._trainer = (trainer, save_checkpoint)

    def _unwatch_checkpoints(self) -> None:
        if self._trainer is None:
            return
        trainer, wrapper = self._trainer
        self._trainer = None
        if trainer.__dict__.get("save_checkpoint") is wrapper:
            del trainer.save_checkpoint

    def _data_name(self) -> str:
        options = self.loop.options
        return options.dataset_name or f"{options.model_name or 'model'}-training"


def _params(trainer: Any, pl_module: Any) -> dict[str, Any]:
    """The module's hyperparameters, the trainer's settings and the optimizers'."""
    params: dict[str, Any] = {}
    hparams = getattr(pl_module, "hparams", None)
    if isinstance(hparams, Mapping):
        params.update({str(k): v for k, v in hparams.items()})
    for setting in ("max_epochs", "max_steps", "precision", "accumulate_grad_batches"):
        value = getattr(trainer, setting, None)
        if value is not None:
            params[f"trainer.{setting}"] = value
    optimizers = list(getattr(trainer, "optimizers", None) or [])
    for i, optimizer in enumerate(optimizers):
        prefix = "optimizer" if len(optimizers) == 1 else f"optimizer.{i}"
        params[prefix] = type(optimizer).__name__
        groups = getattr(optimizer, "param_groups", None) or [{}]
        if "lr" in groups[0]:
            params[f"{prefix}.lr"] = groups[0]["lr"]
    return params


if TYPE_CHECKING:
    #: For type checkers: the recording half of ``Callback`` (Lightning is not needed
    #: to check code using it).
    Callback = Recording


def __getattr__(name: str) -> Any:
    """``Callback``: ``Recording`` on top of Lightning's ``Callback`` class, built on
    first use, so that importing this module needs no Lightning."""
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
