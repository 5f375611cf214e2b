"""``registry.transformers.Callback``: a ``Trainer.train`` recorded as a run, or into
the active one: the training arguments and the model's configuration, the logged
metrics appended once every n steps, each checkpoint directory a model version with
its digest, the datasets as run inputs, and the run's end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import datasets
import pytest
import transformers
from sqlalchemy.exc import OperationalError
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
)

import registry.transformers
from registry.sdk import Registry
from registry.sdk.capture import file_digest
from registry.sdk.tables import content_digest
from tests.frameworks.recorded import Appends, only, run_events, started_run

MAX_STEPS = 6
SAVE_STEPS = 3
WORDS = ["good", "bad", "film", "plot", "great", "awful", "acting", "long", "fun", "dull"]
LENGTH = 8


class Diverged(RuntimeError):
    """The loss of a training that went wrong."""


def reviews() -> datasets.Dataset:
    """32 short texts, tokenized in memory (a word's id is its place in ``WORDS``, after
    the padding id 0 and the unknown id 1), with a label each."""
    texts = [
        " ".join(WORDS[(i * 3 + j * 7) % len(WORDS)] for j in range(2 + i % 5)) for i in range(32)
    ]

    def tokenize(row: dict[str, Any]) -> dict[str, Any]:
        ids = [2 + WORDS.index(w) if w in WORDS else 1 for w in row["text"].split()][:LENGTH]
        padding = LENGTH - len(ids)
        return {"input_ids": ids + [0] * padding, "attention_mask": [1] * len(ids) + [0] * padding}

    data = datasets.Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(32)]})
    return data.map(tokenize)


def model() -> BertForSequenceClassification:
    config = BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=LENGTH,
    )
    return BertForSequenceClassification(config)


def arguments(tmp_path: Path, **more: Any) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=MAX_STEPS,
        save_steps=SAVE_STEPS,
        logging_steps=1,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **more,
    )


def train(tmp_path: Path, callback: Any, trainer: type[Trainer] = Trainer, **more: Any) -> Trainer:
    data = reviews()
    running = trainer(
        model=model(), args=arguments(tmp_path, **more), train_dataset=data, callbacks=[callback]
    )
    running.train()
    return running


def test_the_callback_is_a_trainer_callback() -> None:
    callback = registry.transformers.Callback(every_n_steps=10)
    assert isinstance(callback, transformers.TrainerCallback)
    assert registry.transformers.Callback is type(callback)


def test_a_training_is_recorded_as_a_run(reg: Registry, tmp_path: Path) -> None:
    data = reviews()
    callback = registry.transformers.Callback(
        registry=reg, every_n_steps=2, datasets={"reviews": data}
    )
    train(tmp_path, callback)

    started = started_run(reg)
    assert started.body["job"] == "transformers.BertForSequenceClassification"
    params = started.body["params"]
    assert params["max_steps"] == MAX_STEPS and params["save_steps"] == SAVE_STEPS
    assert params["learning_rate"] == 5e-05 and params["use_cpu"] is True
    assert params["model.hidden_size"] == 16 and params["model.vocab_size"] == 100
    assert params["model.num_attention_heads"] == 2
    assert "report_to" not in params  # a list: not a JSON scalar
    assert all(v is None or isinstance(v, bool | int | float | str) for v in params.values())

    events = run_events(reg, started.entity)
    assert events[0].type == "run-started" and events[-1].type == "run-completed"
    (used,) = only(events, "run-inputs-used")
    digest = content_digest(data.with_format("arrow")[:])
    dataset = f"dataset:test/reviews@{digest[7:19]}"
    assert used.body["inputs"] == [dataset]

    metrics = [m for e in only(events, "run-metrics-logged") for m in e.body["metrics"]]
    assert sorted(m["step"] for m in metrics if m["key"] == "loss") == list(range(1, MAX_STEPS + 1))
    assert [m["step"] for m in metrics if m["key"] == "train_loss"] == [MAX_STEPS]

    folders = [tmp_path / "out" / f"checkpoint-{s}" for s in (SAVE_STEPS, MAX_STEPS)]
    models = only(events, "model-version-registered")
    assert [(m.body["artifact_uri"], m.body["artifact_digest"]) for m in models] == [
        (f.resolve().as_uri(), file_digest(f)) for f in folders
    ]
    assert {m.body["framework"] for m in models} == {"transformers"}
    assert {m.body["name"] for m in models} == {"BertForSequenceClassification"}
    assert [m.body["tags"] for m in models] == [
        {"checkpoint": f"checkpoint-{s}", "step": str(s)} for s in (SAVE_STEPS, MAX_STEPS)
    ]

    model_id = f"model:test/BertForSequenceClassification@{models[-1].body['version']}"
    assert [d["dataset"] for d in reg.trained_on(model_id)["datasets"]] == [dataset]
    nodes = {n["id"] for n in reg.lineage(model_id, direction="upstream")["nodes"]}
    assert {model_id, started.entity, dataset} <= nodes


def test_metrics_are_appended_once_every_n_steps(
    reg: Registry, tmp_path: Path, appends: Appends
) -> None:
    train(tmp_path, registry.transformers.Callback(registry=reg, every_n_steps=3))
    logged = only(run_events(reg, started_run(reg).entity), "run-metrics-logged")
    assert len(logged) == MAX_STEPS + 1  # each step's loss, and the training's summary
    # An append at steps 3 and 6, and the run's end (with the summary): not one per step.
    batches = appends.with_type("run-metrics-logged")
    assert len(batches) == MAX_STEPS // 3 + 1
    assert sum(batch.count("run-metrics-logged") for batch in batches) == len(logged)


def test_the_training_set_is_read_from_the_trainer(reg: Registry, tmp_path: Path) -> None:
    train(tmp_path, registry.transformers.Callback(registry=reg))
    (used,) = only(run_events(reg, started_run(reg).entity), "run-inputs-used")
    (node,) = used.body["inputs"]
    assert node.startswith("dataset:test/BertForSequenceClassification-training@")
    (registered,) = [e for e in reg.ledger.tail() if e.entity == node]
    # The columns the model reads, as the trainer left them (the text is not one).
    assert set(registered.body["schema"]) == {"input_ids", "attention_mask", "label"}
    assert registered.body["row_count"] == 32


class Failing(Trainer):
    """A trainer whose loss raises at the third step."""

    def compute_loss(self, *args: Any, **kwargs: Any) -> Any:
        if self.state.global_step == 2:
            raise Diverged("loss is nan")
        return super().compute_loss(*args, **kwargs)


def test_the_active_run_is_joined_and_fails_with_the_training(
    reg: Registry, tmp_path: Path
) -> None:
    with pytest.raises(Diverged), reg.run("fine-tune") as run:
        train(tmp_path, registry.transformers.Callback(every_n_steps=1), trainer=Failing)
    events = run_events(reg, run.id)
    assert [e.type for e in events].count("run-started") == 1
    (params,) = only(events, "run-params-logged")
    assert params.body["params"]["max_steps"] == MAX_STEPS
    metrics = [m for e in only(events, "run-metrics-logged") for m in e.body["metrics"]]
    assert sorted(m["step"] for m in metrics if m["key"] == "loss") == [1, 2]
    assert events[-1].type == "run-failed"
    assert events[-1].body["error_type"] == f"{__name__}.Diverged"


def test_a_run_the_callback_started_fails_with_the_training(reg: Registry, tmp_path: Path) -> None:
    """``Trainer.train`` raising ends the callback's own run, failed with the error's
    class, its buffered metrics appended first; the error reaches the caller unchanged."""
    callback = registry.transformers.Callback(registry=reg, every_n_steps=100)
    with pytest.raises(Diverged, match="loss is nan"):
        train(tmp_path, callback, trainer=Failing)
    assert callback.run is not None
    events = run_events(reg, callback.run.id)
    assert events[0].type == "run-started"
    metrics = [m for e in only(events, "run-metrics-logged") for m in e.body["metrics"]]
    assert sorted(m["step"] for m in metrics if m["key"] == "loss") == [1, 2]
    assert events[-1].type == "run-failed"
    assert events[-1].body["error_type"] == f"{__name__}.Diverged"
    assert Trainer.train.__mlledger_hook__ == "transformers"  # wrapped once


def test_a_ledger_failure_is_warned_once_and_training_finishes(
    reg: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(project: str, items: Any) -> list[int]:
        raise OperationalError("INSERT INTO events", {}, Exception("database is locked"))

    caplog.set_level(logging.WARNING, logger="mlledger.autolog")
    callback = registry.transformers.Callback(registry=reg, every_n_steps=1)
    with monkeypatch.context() as patched:
        patched.setattr(reg.backend, "append", refuse)
        trainer = train(tmp_path, callback)
    assert trainer.state.global_step == MAX_STEPS
    warnings = [r.getMessage() for r in caplog.records if r.name == "mlledger.autolog"]
    steps = sorted(w.split(": could not ")[1].split(" (")[0] for w in warnings)
    assert steps == ["end the run", "log metrics", "record the training data"]
    assert reg.ledger.head() == -1
    # The run could not end: its records are dropped, not appended later as a run that
    # never ends, once the ledger answers again.
    assert reg.buffered() == 0
    reg.flush()
    assert reg.ledger.head() == -1
