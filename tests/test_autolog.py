"""scikit-learn autologging, ``@registry.track`` and ``registry.active_run()``, with the
real scikit-learn: what each training call appends, what the questions then answer,
and that recording never changes what the training returns or raises."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import registry
import registry.sklearn
from registry import Registry
from registry.errors import ConfigError
from registry.events import StoredEvent
from registry.hooks import recording

ORIGINAL_FIT = LogisticRegression.__dict__["fit"]


def log_of(reg: Registry) -> list[StoredEvent]:
    reg.flush()
    store = reg.ledger.store
    with store.read() as conn:
        return list(store.select_events(conn, 0))


def types(events: list[StoredEvent]) -> list[str]:
    return [e.type for e in events]


def iris() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    x.index = y.index = [f"flower-{i}" for i in range(len(x))]
    return x, y


@pytest.fixture
def autologged(reg: Registry, tmp_path: Path) -> Iterator[Registry]:
    """scikit-learn autologging into ``reg``, artifacts under the test's folder; off
    again after the test."""
    registry.sklearn.autolog(registry=reg, artifacts=tmp_path / "artifacts", key="index")
    recording._warned.clear()
    yield reg
    registry.sklearn.autolog(disable=True)


def file_of(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def test_a_pipeline_fit_is_one_run_with_params_metrics_data_and_model(
    autologged: Registry,
) -> None:
    reg = autologged
    x, y = iris()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=300))
    returned = pipeline.fit(x, y)
    assert returned is pipeline  # what the framework returns, unchanged

    events = log_of(reg)
    assert types(events) == [
        "run-started",
        "dataset-version-registered",
        "dataset-records-added",
        "run-inputs-used",
        "run-metrics-logged",
        "model-version-registered",
        "run-completed",
    ]
    started, dataset, records, used, metrics, model, completed = events
    run = started.entity
    # One run for the pipeline: its steps' fits are part of it.
    assert started.body["job"] == "sklearn.Pipeline"
    params = started.body["params"]
    assert params["logisticregression__C"] == 0.5
    assert params["logisticregression__max_iter"] == 300
    assert params["standardscaler__with_mean"] is True
    assert params["logisticregression"].startswith("LogisticRegression(")
    assert started.body["tags"]["mlledger.autolog"] == "sklearn"

    assert dataset.entity.startswith("dataset:test/Pipeline-training@")
    assert dataset.body["row_count"] == 150
    assert set(dataset.body["schema"]) == {"index", *x.columns, "target"}
    assert dataset.body["uri"] == "memory:training-data"
    assert len(records.body["records"]) == 150  # sealed: pseudonyms, not the keys
    assert not any(str(r).startswith("flower-") for r in records.body["records"])
    assert used.entity == run and used.body["inputs"] == [dataset.entity]

    accuracy = metrics.body["metrics"][0]
    assert accuracy["key"] == "training_accuracy"
    assert accuracy["value"] == pytest.approx(pipeline.score(x, y))

    assert model.entity == "model:test/Pipeline@1"
    assert model.body["run"] == run and model.body["framework"] == "sklearn"
    artifact = file_of(model.body["artifact_uri"])
    blob = artifact.read_bytes()
    assert model.body["artifact_digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert (pickle.loads(blob).predict(x) == pipeline.predict(x)).all()
    assert completed.entity == run

    # The questions answer for what was recorded.
    trained = reg.trained_on(model.entity)
    assert [d["dataset"] for d in trained["datasets"]] == [dataset.entity]
    lineage = reg.lineage(model.entity, direction="upstream")
    ids = {n["id"] for n in lineage["nodes"]}
    assert {run, dataset.entity, model.entity} <= ids


def test_the_same_data_is_one_dataset_version_and_models_count_up(
    autologged: Registry,
) -> None:
    reg = autologged
    x, y = iris()
    LogisticRegression(max_iter=300).fit(x, y)
    LogisticRegression(C=2.0, max_iter=300).fit(x, y)
    events = log_of(reg)
    assert types(events).count("run-started") == 2
    assert types(events).count("dataset-version-registered") == 1
    assert [e.entity for e in events if e.type == "model-version-registered"] == [
        "model:test/LogisticRegression@1",
        "model:test/LogisticRegression@2",
    ]
    used = [e.body["inputs"] for e in events if e.type == "run-inputs-used"]
    assert used[0] == used[1]


def test_a_fit_inside_a_run_joins_it(autologged: Registry) -> None:
    reg = autologged
    x, y = iris()
    with reg.run("experiment", params={"seed": 1}) as run:
        assert registry.active_run() is run
        LogisticRegression(max_iter=300).fit(x, y)
    assert registry.active_run() is None
    events = log_of(reg)
    assert types(events).count("run-started") == 1
    assert next(e.body["params"] for e in events if e.type == "run-params-logged")["C"] == 1.0
    model = next(e for e in events if e.type == "model-version-registered")
    assert model.body["run"] == run.id
    assert events[-1].type == "run-completed" and events[-1].entity == run.id


def test_a_search_is_one_run_with_its_best_candidate(autologged: Registry) -> None:
    reg = autologged
    x, y = iris()
    search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]}, cv=2)
    search.fit(x, y)
    events = log_of(reg)
    assert types(events).count("run-started") == 1
    best = next(e for e in events if e.type == "run-params-logged").body["params"]
    assert best == {"best.C": search.best_params_["C"]}
    metrics = next(e for e in events if e.type == "run-metrics-logged").body["metrics"]
    by_key = {m["key"]: m["value"] for m in metrics}
    assert by_key["best_cv_score"] == pytest.approx(search.best_score_)
    assert next(e for e in events if e.type == "model-version-registered").entity == (
        "model:test/GridSearchCV@1"
    )


def test_a_training_error_is_raised_unchanged_and_fails_the_run(autologged: Registry) -> None:
    reg = autologged
    x, _ = iris()
    with pytest.raises(ValueError, match="classes") as raised:
        LogisticRegression().fit(x, np.zeros(len(x)))  # one class only
    assert raised.type is ValueError
    events = log_of(reg)
    assert types(events) == ["run-started", "run-failed"]
    assert events[-1].body["error_type"] == "builtins.ValueError"


def test_a_ledger_failure_is_warned_once_and_the_fit_goes_on(
    autologged: Registry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reg = autologged
    x, y = iris()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(reg.backend, "append", refuse)
    with caplog.at_level(logging.WARNING, logger="mlledger.autolog"):
        first = LogisticRegression(max_iter=300).fit(x, y)
        second = LogisticRegression(max_iter=300).fit(x, y)
    assert first.score(x, y) > 0.9 and second.score(x, y) > 0.9
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "could not end the run (OSError: disk full)" in warnings[0]
    assert "training continues" in warnings[0]
    assert not any("flower-" in w for w in warnings)  # no record key in a warning
    monkeypatch.undo()
    # What could not be written is dropped, not appended later as a run that never
    # ends: once the ledger is back, the next fit is one whole run.
    assert reg.buffered() == 0 and log_of(reg) == []
    LogisticRegression(max_iter=300).fit(x, y)
    events = log_of(reg)
    assert types(events).count("run-started") == 1
    assert types(events)[-1] == "run-completed"
    assert events[-1].entity == events[0].entity


def test_turning_it_off_restores_the_methods_and_on_again_patches_once(
    reg: Registry, tmp_path: Path
) -> None:
    registry.sklearn.autolog(registry=reg, artifacts=tmp_path)
    registry.sklearn.autolog(registry=reg, artifacts=tmp_path, log_models=False)
    patched = LogisticRegression.__dict__["fit"]
    assert patched.__wrapped__ is ORIGINAL_FIT  # one wrapper, not a wrapper of one
    registry.sklearn.autolog(disable=True)
    assert LogisticRegression.__dict__["fit"] is ORIGINAL_FIT
    assert "fit" not in StandardScaler.__dict__ or not hasattr(
        StandardScaler.__dict__["fit"], "__mlledger_hook__"
    )
    x, y = iris()
    LogisticRegression(max_iter=300).fit(x, y)
    assert log_of(reg) == []


def test_autolog_names_the_frameworks_it_switched(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown framework 'caffe'"):
        registry.autolog("caffe")
    try:
        assert registry.autolog("sklearn", registry=reg, artifacts=tmp_path) == ["sklearn"]
        assert hasattr(LogisticRegression.__dict__["fit"], "__mlledger_hook__")
    finally:
        assert registry.autolog("sklearn", disable=True) == ["sklearn"]
    assert LogisticRegression.__dict__["fit"] is ORIGINAL_FIT


# --- @registry.track ---------------------------------------------------------------------


def test_track_records_a_call_as_a_run(reg: Registry, tmp_path: Path) -> None:
    x, y = iris()
    frame = x.assign(label=y)

    @registry.track(
        registry=reg,
        register="iris-model",
        datasets=["data"],
        exclude=["verbose"],
        artifacts=tmp_path,
        key="index",
    )
    def train(data: pd.DataFrame, C: float = 1.0, verbose: bool = False) -> Any:
        return LogisticRegression(C=C, max_iter=300).fit(data[x.columns], data["label"])

    model = train(frame, C=0.25)
    assert isinstance(model, LogisticRegression) and model.C == 0.25
    events = log_of(reg)
    assert types(events) == [
        "run-started",
        "dataset-version-registered",
        "dataset-records-added",
        "run-inputs-used",
        "model-version-registered",
        "run-completed",
    ]
    started = events[0]
    assert started.body["job"] == "test_autolog.train"
    assert started.body["params"] == {"C": 0.25}
    assert events[1].entity.startswith("dataset:test/data@")
    assert events[1].body["row_count"] == 150
    registered = events[4]
    assert registered.entity == "model:test/iris-model@1"
    assert registered.body["framework"] == "sklearn"
    assert registered.body["run"] == started.entity
    trained = reg.trained_on(registered.entity)["datasets"]
    assert [d["dataset"] for d in trained] == [events[1].entity]


def test_track_records_a_failure_by_class_and_raises_it(reg: Registry) -> None:
    class Diverged(RuntimeError):
        pass

    @registry.track(registry=reg, job="unstable", include=["lr"])
    def train(lr: float, epochs: int = 3) -> None:
        raise Diverged("loss is nan")

    with pytest.raises(Diverged, match="loss is nan"):
        train(10.0)
    events = log_of(reg)
    assert types(events) == ["run-started", "run-failed"]
    assert events[0].body["params"] == {"lr": 10.0}
    assert events[1].body["error_type"].endswith("Diverged")


def test_track_on_a_coroutine_and_nested_runs(reg: Registry) -> None:
    @registry.track(registry=reg, job="inner", nested=True)
    async def inner(step: int) -> int:
        return step * 2

    @registry.track(registry=reg, job="outer")
    def outer(steps: int) -> list[int]:
        return [asyncio.run(inner(s)) for s in range(steps)]

    assert outer(2) == [0, 2]
    events = log_of(reg)
    started = [e for e in events if e.type == "run-started"]
    assert [e.body["job"] for e in started] == ["outer", "inner", "inner"]
    parent = started[0].entity
    assert [e.body["parent_run"] for e in started[1:]] == [parent, parent]
    assert types(events).count("run-completed") == 3
    assert events[-1].entity == parent  # the outer run ends last


def test_track_refuses_a_dataset_argument_the_function_lacks() -> None:
    with pytest.raises(ConfigError, match="has no argument 'frame'"):

        @registry.track(datasets=["frame"])
        def train(data: Any) -> None:
            return None


# --- a job's run, from the environment --------------------------------------------------------


def test_code_in_a_job_records_into_the_run_started_elsewhere(
    store_url: str, reg: Registry, tmp_path: Path
) -> None:
    """An executor starts a run and sets MLLEDGER_RUN_ID, MLLEDGER_DB, MLLEDGER_PROJECT and
    TRACEPARENT: a fit in the job's process records into that run, in that trace."""
    run = reg.run("nightly").begin()
    reg.flush()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    script = textwrap.dedent(
        """
        import registry
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        registry.autolog("sklearn", artifacts="artifacts")
        x, y = load_iris(return_X_y=True)
        LogisticRegression(max_iter=300).fit(x, y)
        print(registry.active_run().id)
        """
    )
    env = {
        **os.environ,
        "MLLEDGER_RUN_ID": run.id,
        "MLLEDGER_DB": store_url,
        "MLLEDGER_PROJECT": "test",
        "TRACEPARENT": f"00-{trace}-00f067aa0ba902b7-01",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == run.id
    events = [e for e in log_of(reg) if e.position > 0]
    assert types(events) == [
        "run-params-logged",
        "dataset-version-registered",
        "run-inputs-used",
        "run-metrics-logged",
        "model-version-registered",
    ]
    assert all(e.trace_id == trace for e in events)
    model = events[-1]
    assert model.body["run"] == run.id
    # The job's run is the executor's to end: the process appended no end.
    assert "run-completed" not in types(events)


def test_data_passed_as_an_argument_is_described_not_recorded(reg: Registry) -> None:
    """A DataFrame, an array or a long list given to a tracked function is recorded as
    its type and size: its rows may hold personal data, which the log cannot forget."""
    people = pd.DataFrame({"email": ["alice@example.com", "bob@example.com"]})

    @registry.track(registry=reg, job="described")
    def train(
        frame: Any, array: Any, names: list[str], grid: dict[str, float], small: list[int]
    ) -> None:
        return None

    train(people, np.zeros((3, 2)), [f"n{i}" for i in range(40)], {"C": 0.5}, [1, 2])
    started = log_of(reg)[0]
    assert started.body["params"] == {
        "frame": "<pandas.DataFrame shape=(2, 1)>",
        "array": "<numpy.ndarray shape=(3, 2)>",
        "names": "<builtins.list of 40 items>",
        "grid": {"C": 0.5},
        "small": [1, 2],
    }
    assert "alice" not in str(log_of(reg))


def test_a_data_error_is_warned_without_quoting_the_data(
    autologged: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """The training data cannot be read as a table (a column of mixed types): the
    warning names the error's class, not its message, which quotes a value."""
    from sklearn.dummy import DummyClassifier

    frame = pd.DataFrame({"who": ["alice@example.com", 3] * 5, "n": range(10)})
    with caplog.at_level(logging.WARNING, logger="mlledger.autolog"):
        DummyClassifier().fit(frame, [0, 1] * 5)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "could not register the training data" in warning
    assert "message withheld" in warning and "alice" not in warning
    events = log_of(autologged)
    assert "dataset-version-registered" not in types(events)
    assert types(events)[-1] == "run-completed"


def test_training_scores_are_the_estimators_own(autologged: Registry) -> None:
    """The training score recorded is what the estimator's ``score`` gives, for a
    classifier and a regressor."""
    from sklearn.linear_model import Ridge

    x, y = iris()
    classifier = LogisticRegression(max_iter=300).fit(x, y)
    accuracy = classifier.score(x, y)
    features, target = x.drop(columns="petal width (cm)"), x["petal width (cm)"]
    regressor = Ridge().fit(features, target)
    recorded = {
        m["key"]: m["value"]
        for e in log_of(autologged)
        if e.type == "run-metrics-logged"
        for m in e.body["metrics"]
    }
    assert recorded["training_accuracy"] == pytest.approx(accuracy)
    assert recorded["training_r2"] == pytest.approx(regressor.score(features, target))
