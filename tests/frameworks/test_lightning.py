"""``registry.lightning.Callback``: a Lightning fit recorded as a run, or into the
active one: hyperparameters, metrics appended once every n steps, each checkpoint a
model version with its file's digest, the training data as run inputs, and the run's
end; a failure of the ledger never stops the training."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pyarrow as pa
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from sqlalchemy.exc import OperationalError
from torch.utils.data import DataLoader, TensorDataset

import registry.lightning
from registry.sdk import Registry
from registry.sdk.capture import file_digest
from registry.sdk.tables import content_digest
from tests.frameworks.recorded import Appends, only, run_events, started_run

ROWS = 16
BATCH = 2
EPOCHS = 2
STEPS = ROWS // BATCH * EPOCHS


class Diverged(RuntimeError):
    """The loss of a training that went wrong."""


class Linear(pl.LightningModule):
    """A linear regression; it raises ``Diverged`` at step ``fail_at`` when given."""

    def __init__(self, lr: float = 0.1, width: int = 3, fail_at: int = -1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        if self.global_step == self.hparams["fail_at"]:
            raise Diverged("loss is nan")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])


def points() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(ROWS, 3, generator=generator), torch.randn(ROWS, 1, generator=generator)


def loader() -> DataLoader[Any]:
    return DataLoader(TensorDataset(*points()), batch_size=BATCH)


def table() -> pa.Table:
    """The training data as a table: what ``datasets=`` registers."""
    x, y = points()
    return pa.table({"x0": x[:, 0].tolist(), "x1": x[:, 1].tolist(), "y": y[:, 0].tolist()})


def trainer_with(tmp_path: Path, callback: Any) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=EPOCHS,
        callbacks=[callback, ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_top_k=-1)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )


def fit(tmp_path: Path, callback: Any) -> pl.Trainer:
    trainer = trainer_with(tmp_path, callback)
    trainer.fit(Linear(), loader(), loader())
    return trainer


def test_the_callback_is_a_lightning_callback() -> None:
    callback = registry.lightning.Callback(every_n_steps=10)
    assert isinstance(callback, pl.Callback)
    assert registry.lightning.Callback is type(callback)
    assert registry.lightning.Callback.__module__ == "registry.lightning"


def test_a_fit_is_recorded_as_a_run(reg: Registry, tmp_path: Path) -> None:
    callback = registry.lightning.Callback(
        registry=reg, every_n_steps=4, datasets={"points": table()}
    )
    fit(tmp_path, callback)

    started = started_run(reg)
    assert started.body["job"] == "lightning.Linear"
    assert started.body["tags"] == {"mlledger.autolog": "lightning"}
    params = started.body["params"]
    assert params["lr"] == 0.1 and params["width"] == 3 and params["fail_at"] == -1
    assert params["trainer.max_epochs"] == EPOCHS
    assert params["trainer.precision"] == "32-true"
    assert params["trainer.accumulate_grad_batches"] == 1
    assert params["optimizer"] == "SGD" and params["optimizer.lr"] == 0.1

    events = run_events(reg, started.entity)
    assert events[0].type == "run-started" and events[-1].type == "run-completed"
    (used,) = only(events, "run-inputs-used")
    expected = content_digest(table())
    dataset = f"dataset:test/points@{expected[7:19]}"
    assert used.body["inputs"] == [dataset]

    logged = only(events, "run-metrics-logged")
    metrics = [m for e in logged for m in e.body["metrics"]]
    train_steps = sorted(m["step"] for m in metrics if m["key"] == "train_loss_step")
    assert train_steps == list(range(1, STEPS + 1))
    # Each at the time it was observed, not the time of its append.
    times = [e.occurred_at for e in logged]
    assert times == sorted(times) and len(set(times)) == len(times)
    per_epoch = {m["step"]: m["value"] for m in metrics if m["key"] == "train_loss_epoch"}
    assert sorted(per_epoch) == [STEPS // EPOCHS, STEPS]
    assert sorted(m["step"] for m in metrics if m["key"] == "val_loss") == sorted(per_epoch)
    assert sorted(m["value"] for m in metrics if m["key"] == "epoch") == [0.0, 1.0]
    # The epoch aggregates are not repeated at every step.
    assert len([m for m in metrics if m["key"] == "train_loss_epoch"]) == EPOCHS

    files = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert len(files) == EPOCHS
    models = only(events, "model-version-registered")
    assert [(m.body["artifact_uri"], m.body["artifact_digest"]) for m in models] == [
        (f.resolve().as_uri(), file_digest(f)) for f in files
    ]
    assert {m.body["framework"] for m in models} == {"lightning"}
    assert [m.body["name"] for m in models] == ["Linear", "Linear"]
    assert [m.body["tags"]["epoch"] for m in models] == ["0", "1"]
    assert [m.body["version"] for m in models] == ["1", "2"]

    model = f"model:test/Linear@{models[-1].body['version']}"
    assert [d["dataset"] for d in reg.trained_on(model)["datasets"]] == [dataset]
    nodes = {n["id"] for n in reg.lineage(model, direction="upstream")["nodes"]}
    assert {model, started.entity, dataset} <= nodes


def test_metrics_are_appended_once_every_n_steps(
    reg: Registry, tmp_path: Path, appends: Appends
) -> None:
    fit(tmp_path, registry.lightning.Callback(registry=reg, every_n_steps=4))
    run = started_run(reg).entity
    logged = only(run_events(reg, run), "run-metrics-logged")
    steps = {m["step"] for e in logged for m in e.body["metrics"]}
    assert steps == set(range(1, STEPS + 1))
    # One append per 4 steps and one at each epoch's end (with its aggregates), not one
    # per step: 16 steps, 4 + 2 appends holding metrics.
    batches = appends.with_type("run-metrics-logged")
    assert len(batches) == STEPS // 4 + EPOCHS
    assert len(appends.batches) <= STEPS // 4 + EPOCHS + 1
    assert sum(batch.count("run-metrics-logged") for batch in batches) == len(logged)


def test_every_step_is_an_append_when_every_n_steps_is_one(
    reg: Registry, tmp_path: Path, appends: Appends
) -> None:
    fit(tmp_path, registry.lightning.Callback(registry=reg, every_n_steps=1))
    assert len(appends.with_type("run-metrics-logged")) >= STEPS
    assert only(run_events(reg, started_run(reg).entity), "run-completed")


def test_the_active_run_is_joined_and_left_running(reg: Registry, tmp_path: Path) -> None:
    with reg.run("experiment", params={"seed": 7}) as run:
        fit(tmp_path, registry.lightning.Callback(every_n_steps=8, model_name="regressor"))
        assert run.status == "running"
        events = run_events(reg, run.id)
        assert not only(events, "run-completed")
    events = run_events(reg, run.id)
    assert [e.type for e in events].count("run-started") == 1
    assert started_run(reg).body["params"] == {"seed": 7}
    (params,) = only(events, "run-params-logged")
    assert params.body["params"]["lr"] == 0.1
    assert params.body["params"]["optimizer"] == "SGD"
    assert only(events, "run-metrics-logged")
    models = only(events, "model-version-registered")
    assert [m.body["name"] for m in models] == ["regressor", "regressor"]
    assert events[-1].type == "run-completed"


def test_an_exception_in_training_fails_the_run_with_its_class(
    reg: Registry, tmp_path: Path
) -> None:
    callback = registry.lightning.Callback(registry=reg, every_n_steps=100)
    trainer = trainer_with(tmp_path, callback)
    with pytest.raises(Diverged, match="loss is nan"):
        trainer.fit(Linear(fail_at=3), loader(), loader())
    events = run_events(reg, started_run(reg).entity)
    assert events[-1].type == "run-failed"
    assert events[-1].body["error_type"] == f"{__name__}.Diverged"
    # What was buffered before the error is appended with the run's end.
    metrics = [m for e in only(events, "run-metrics-logged") for m in e.body["metrics"]]
    assert sorted(m["step"] for m in metrics if m["key"] == "train_loss_step") == [1, 2, 3]
    # The trainer's own save_checkpoint is back.
    assert "save_checkpoint" not in vars(trainer) and callback.loop.training is None


def test_a_ledger_failure_is_warned_once_and_training_finishes(
    reg: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[int] = []

    def refuse(project: str, items: Any) -> list[int]:
        attempts.append(len(items))
        raise OperationalError("INSERT INTO events", {}, Exception("database is locked"))

    callback = registry.lightning.Callback(
        registry=reg, every_n_steps=2, datasets={"points": table()}
    )
    caplog.set_level(logging.WARNING, logger="mlledger.autolog")
    with monkeypatch.context() as patched:
        patched.setattr(reg.backend, "append", refuse)
        trainer = fit(tmp_path, callback)

    assert trainer.state.finished and trainer.global_step == STEPS
    assert len(attempts) > STEPS // 2  # every append was tried, and refused
    warnings = [r.getMessage() for r in caplog.records if r.name == "mlledger.autolog"]
    assert len(warnings) == len(set(warnings))
    steps = sorted(w.split(": could not ")[1].split(" (")[0] for w in warnings)
    assert steps == ["end the run", "log metrics", "record the training data"]
    assert all("OperationalError" in w and "database is locked" in w for w in warnings)
    assert reg.ledger.head() == -1
    # The run could not end: its records are dropped, not appended later as a run that
    # never ends, once the ledger answers again.
    assert reg.buffered() == 0
    reg.flush()
    assert reg.ledger.head() == -1
