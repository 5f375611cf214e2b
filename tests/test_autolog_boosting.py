"""XGBoost and LightGBM autologging (``registry.xgboost``, ``registry.lightgbm``), with
the real libraries on small data: what each training appends, the questions it
answers, that the frameworks' results are unchanged, and that recording never
breaks a training."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost

import registry
import registry.lightgbm as lgb_hook
import registry.xgboost as xgb_hook
from registry.events import StoredEvent
from registry.hooks import recording
from registry.sdk import Registry

ROWS = 300
ROUNDS = 5


@pytest.fixture
def reg(tmp_path: Path, isolated_env: Path) -> Iterator[Registry]:
    """A connection to a new SQLite ledger (the hooks do not depend on the store)."""
    with registry.connect(
        f"sqlite:///{tmp_path}/ledger.db", project="test", actor="tester"
    ) as connection:
        yield connection


@pytest.fixture(autouse=True)
def hooks_off() -> Iterator[None]:
    """Each test starts and ends with both hooks off and no warning given yet."""
    recording._warned.clear()
    yield
    xgb_hook.autolog(disable=True)
    lgb_hook.autolog(disable=True)
    recording._warned.clear()


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """A small binary classification problem: training and validation halves."""
    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(ROWS, 4)), columns=["a", "b", "c", "d"])
    y = pd.Series((x["a"] + 0.5 * x["b"] + rng.normal(scale=0.5, size=ROWS) > 0).astype(int))
    y.name = "label"
    cut = ROWS * 2 // 3
    return x[:cut], y[:cut], x[cut:], y[cut:]


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


def events(reg: Registry, start: int = 0) -> list[StoredEvent]:
    return list(reg.ledger.tail(start))


def of_run(found: list[StoredEvent], run: str) -> list[StoredEvent]:
    return [e for e in found if e.entity == run]


def only_run(found: list[StoredEvent]) -> str:
    started = [e.entity for e in found if e.type == "run-started"]
    assert len(started) == 1, [e.type for e in found]
    return started[0]


def step_metrics(run_events: list[StoredEvent]) -> dict[int, dict[str, float]]:
    """``{step: {key: value}}`` of a run's per-step metric records, each step in one
    record."""
    found: dict[int, dict[str, float]] = {}
    for event in run_events:
        if event.type != "run-metrics-logged":
            continue
        steps = {m["step"] for m in event.body["metrics"]}
        if steps == {None}:
            continue
        assert len(steps) == 1, event.body  # one record per iteration
        (step,) = steps
        assert step not in found
        found[step] = {m["key"]: m["value"] for m in event.body["metrics"]}
    return found


def plain_metrics(run_events: list[StoredEvent]) -> dict[str, float]:
    return {
        m["key"]: m["value"]
        for e in run_events
        if e.type == "run-metrics-logged"
        for m in e.body["metrics"]
        if m["step"] is None
    }


def model_event(found: list[StoredEvent]) -> StoredEvent:
    models = [e for e in found if e.type == "model-version-registered"]
    assert len(models) == 1
    return models[0]


def artifact_of(event: StoredEvent) -> bytes:
    """The artifact a model version names, checked against its digest."""
    path = Path(urlparse(event.body["artifact_uri"]).path)
    payload = path.read_bytes()
    assert event.body["artifact_digest"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert path.name.startswith(event.body["artifact_digest"][7:])
    return payload


def series(results: dict[str, dict[str, list[Any]]]) -> dict[int, dict[str, float]]:
    """A framework's evaluation results as the expected per-step metrics."""
    found: dict[int, dict[str, float]] = {}
    for data, metrics in results.items():
        for metric, values in metrics.items():
            for step, value in enumerate(values):
                found.setdefault(step, {})[f"{data}-{metric}"] = float(value)
    return found


def xgb_params() -> dict[str, Any]:
    return {"objective": "binary:logistic", "eval_metric": "logloss", "nthread": 1, "seed": 3}


def lgb_params() -> dict[str, Any]:
    return {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 3}


# --- XGBoost's native API ------------------------------------------------------------------


def test_xgboost_train_records_params_metrics_and_booster(
    reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, xv, yv = data
    xgb_hook.autolog(registry=reg, artifacts=artifacts)
    dtrain, dvalid = xgboost.DMatrix(x, label=y), xgboost.DMatrix(xv, label=yv)
    heads: list[int] = []

    class Watch(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            heads.append(reg.ledger.head())
            return False

    booster = xgboost.train(
        xgb_params(),
        dtrain,
        num_boost_round=50,
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=2,
        verbose_eval=False,
        callbacks=[Watch()],
    )
    assert isinstance(booster, xgboost.Booster)
    assert set(heads) == {-1}  # buffered: nothing appended while it trains

    found = events(reg)
    run = only_run(found)
    mine = of_run(found, run)
    assert mine[0].type == "run-started" and mine[-1].type == "run-completed"
    started = mine[0].body
    assert started["job"] == "xgboost.train"
    assert started["tags"] == {"mlledger.autolog": "xgboost"}
    assert started["params"] == {
        **xgb_params(),
        "num_boost_round": 50,
        "early_stopping_rounds": 2,
    }
    steps = step_metrics(mine)
    rounds = booster.num_boosted_rounds()
    assert sorted(steps) == list(range(rounds)) and rounds < 50  # it stopped early
    assert set(steps[0]) == {"train-logloss", "validation-logloss"}
    assert plain_metrics(mine) == {
        "best_iteration": booster.best_iteration,
        "best_score": pytest.approx(booster.best_score),
    }
    assert not [e for e in found if e.type.startswith("dataset-")]  # a DMatrix: no dataset
    model = model_event(found)
    assert model.body["framework"] == "xgboost" and model.body["name"] == "xgboost.Booster"
    assert model.body["run"] == run and model.body["artifact_uri"].endswith(".ubj")
    payload = artifact_of(model)
    assert payload == bytes(booster.save_raw("ubj"))
    loaded = xgboost.Booster(model_file=bytearray(payload))
    np.testing.assert_array_equal(loaded.predict(dvalid), booster.predict(dvalid))

    lineage = reg.lineage(model.entity, direction="upstream")
    assert run in {n["id"] for n in lineage["nodes"]}
    assert reg.trained_on(model.entity)["runs"] == [{"run": run, "job": "xgboost.train"}]

    # The same training unrecorded gives the same booster.
    xgb_hook.autolog(disable=True)
    head = reg.ledger.head()
    plain = xgboost.train(
        xgb_params(),
        dtrain,
        num_boost_round=50,
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=2,
        verbose_eval=False,
    )
    assert reg.ledger.head() == head
    np.testing.assert_array_equal(plain.predict(dvalid), booster.predict(dvalid))
    assert plain.best_iteration == booster.best_iteration


def test_xgboost_train_fills_the_callers_evals_result(
    reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, xv, yv = data
    xgb_hook.autolog(registry=reg, artifacts=artifacts)
    dtrain, dvalid = xgboost.DMatrix(x, label=y), xgboost.DMatrix(xv, label=yv)
    mine: dict[str, Any] = {"earlier": {"logloss": [0.9]}}
    xgboost.training.train(
        {**xgb_params(), "eval_metric": ["logloss", "error"]},
        dtrain,
        ROUNDS,
        evals=[(dvalid, "eval")],
        evals_result=mine,
        verbose_eval=False,
    )
    # Filled as XGBoost fills it; what it held before is not this training's.
    assert set(mine) == {"earlier", "eval"} and len(mine["eval"]["logloss"]) == ROUNDS
    found = events(reg)
    run = only_run(found)
    assert step_metrics(of_run(found, run)) == series({"eval": mine["eval"]})
    assert plain_metrics(of_run(found, run)) == {}  # no early stopping: no best iteration
    params = of_run(found, run)[0].body["params"]
    assert params["eval_metric"] == ["logloss", "error"] and params["num_boost_round"] == 5
    assert of_run(found, run)[-1].type == "run-completed"
    model_event(found)


# --- XGBoost's scikit-learn API ----------------------------------------------------------


def test_xgboost_fit_records_data_metrics_and_booster(
    reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, xv, yv = data
    xgb_hook.autolog(registry=reg, artifacts=artifacts)
    clf = xgboost.XGBClassifier(n_estimators=ROUNDS, n_jobs=1, random_state=3)
    assert clf.fit(x, y, eval_set=[(xv, yv)], verbose=False) is clf

    found = events(reg)
    run = only_run(found)
    mine = of_run(found, run)
    started = mine[0].body
    assert started["job"] == "xgboost.XGBClassifier"
    expected = {k: recording.param_value(v) for k, v in clf.get_params().items()}
    assert started["params"] == expected and started["params"]["n_estimators"] == ROUNDS
    assert [e.type for e in mine] == [
        "run-started",
        "run-inputs-used",
        *["run-metrics-logged"] * ROUNDS,
        "run-completed",
    ]
    assert step_metrics(mine) == series(clf.evals_result())
    assert set(step_metrics(mine)[0]) == {"validation_0-logloss"}

    (registered,) = [e for e in found if e.type == "dataset-version-registered"]
    assert registered.body["name"] == "XGBClassifier-training"
    assert registered.body["row_count"] == len(x)
    assert set(registered.body["schema"]) == {"a", "b", "c", "d", "label"}
    assert mine[1].body["inputs"] == [registered.entity]

    model = model_event(found)
    assert model.body["name"] == "XGBClassifier" and model.body["framework"] == "xgboost"
    assert artifact_of(model) == bytes(clf.get_booster().save_raw("ubj"))
    trained = reg.trained_on(model.entity)
    assert [d["dataset"] for d in trained["datasets"]] == [registered.entity]
    assert trained["runs"] == [{"run": run, "job": "xgboost.XGBClassifier"}]
    nodes = {n["id"] for n in reg.lineage(registered.entity, direction="downstream")["nodes"]}
    assert {run, model.entity} <= nodes

    xgb_hook.autolog(disable=True)
    plain = xgboost.XGBClassifier(n_estimators=ROUNDS, n_jobs=1, random_state=3)
    plain.fit(x, y, eval_set=[(xv, yv)], verbose=False)
    np.testing.assert_array_equal(plain.predict_proba(xv), clf.predict_proba(xv))


def test_xgboost_fit_of_an_inherited_fit_with_early_stopping(
    reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, xv, yv = data
    xgb_hook.autolog(registry=reg, artifacts=artifacts, model_name="scorer")
    assert "fit" not in xgboost.XGBRegressor.__dict__  # XGBModel.fit, patched there
    est = xgboost.XGBRegressor(n_estimators=60, early_stopping_rounds=2, n_jobs=1)
    validation = [(xv.to_numpy(), yv.to_numpy())]
    assert est.fit(x.to_numpy(), y.to_numpy(), eval_set=validation, verbose=False) is est
    found = events(reg)
    run = only_run(found)
    mine = of_run(found, run)
    assert mine[0].body["job"] == "xgboost.XGBRegressor"
    assert mine[0].body["params"]["early_stopping_rounds"] == 2
    assert len(step_metrics(mine)) == est.get_booster().num_boosted_rounds() < 60
    assert plain_metrics(mine) == {
        "best_iteration": est.best_iteration,
        "best_score": pytest.approx(est.best_score),
    }
    (registered,) = [e for e in found if e.type == "dataset-version-registered"]
    assert registered.body["name"] == "scorer-training"
    assert set(registered.body["schema"]) == {"x0", "x1", "x2", "x3", "target"}
    assert model_event(found).body["name"] == "scorer"


# --- LightGBM's native API ------------------------------------------------------------------


def test_lightgbm_train_records_params_metrics_and_booster(
    reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, xv, yv = data
    lgb_hook.autolog(registry=reg, artifacts=artifacts)
    train_set = lightgbm.Dataset(x, label=y)
    valid_set = lightgbm.Dataset(xv, label=yv, reference=train_set)
    theirs: dict[str, Any] = {}
    callbacks = [lightgbm.early_stopping(2, verbose=False), lightgbm.record_evaluation(theirs)]
    booster = lightgbm.train(
        lgb_params(),
        train_set,
        num_boost_round=60,
        valid_sets=[train_set, valid_set],
        valid_names=["training", "valid"],
        callbacks=callbacks,
    )
    assert isinstance(booster, lightgbm.Booster)
    assert len(callbacks) == 2  # the caller's list is left as it was
    rounds = len(theirs["valid"]["binary_logloss"])
    assert booster.best_iteration < rounds < 60  # it stopped early

    found = events(reg)
    run = only_run(found)
    mine = of_run(found, run)
    assert mine[0].type == "run-started" and mine[-1].type == "run-completed"
    assert mine[0].body["job"] == "lightgbm.train"
    assert mine[0].body["tags"] == {"mlledger.autolog": "lightgbm"}
    assert mine[0].body["params"] == {
        **lgb_params(),
        "num_boost_round": 60,
        "early_stopping_rounds": 2,
        "first_metric_only": False,
        "min_delta": 0,
    }
    assert step_metrics(mine) == series(theirs)
    assert set(step_metrics(mine)[0]) == {"training-binary_logloss", "valid-binary_logloss"}
    assert sorted(step_metrics(mine)) == list(range(rounds))
    assert plain_metrics(mine) == {
        "best_iteration": booster.best_iteration,
        "best_score.training-binary_logloss": booster.best_score["training"]["binary_logloss"],
        "best_score.valid-binary_logloss": booster.best_score["valid"]["binary_logloss"],
    }
    assert not [e for e in found if e.type.startswith("dataset-")]
    model = model_event(found)
    assert model.body["name"] == "lightgbm.Booster" and model.body["framework"] == "lightgbm"
    assert model.body["artifact_uri"].endswith(".txt")
    payload = artifact_of(model)
    assert payload == booster.model_to_string().encode("utf-8")
    loaded = lightgbm.Booster(model_str=payload.decode("utf-8"))
    np.testing.assert_array_equal(loaded.predict(xv), booster.predict(xv))
    assert reg.trained_on(model.entity)["runs"] == [{"run": run, "job": "lightgbm.train"}]

    lgb_hook.autolog(disable=True)
    head = reg.ledger.head()
    plain = lightgbm.train(
        lgb_params(),
        lightgbm.Dataset(x, label=y),
        num_boost_round=60,
        valid_sets=[lightgbm.Dataset(xv, label=yv)],
        callbacks=[lightgbm.early_stopping(2, verbose=False)],
    )
    assert reg.ledger.head() == head
    np.testing.assert_array_equal(plain.predict(xv), booster.predict(xv))


# --- LightGBM's scikit-learn API ----------------------------------------------------------


def lgb_eval(xv: Any, yv: Any) -> dict[str, Any]:
    """The validation data as ``fit`` takes it (``eval_X``/``eval_y`` since 4.7)."""
    import inspect

    if "eval_X" in inspect.signature(lightgbm.LGBMModel.fit).parameters:
        return {"eval_X": (xv,), "eval_y": (yv,)}
    return {"eval_set": [(xv, yv)]}


def test_lightgbm_fit_records_data_metrics_and_booster(
    reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, xv, yv = data
    lgb_hook.autolog(registry=reg, artifacts=artifacts, key="index")
    clf = lightgbm.LGBMClassifier(n_estimators=ROUNDS, n_jobs=1, random_state=3, verbose=-1)
    assert clf.fit(x, y, **lgb_eval(xv, yv)) is clf

    found = events(reg)
    run = only_run(found)
    mine = of_run(found, run)
    assert mine[0].body["job"] == "lightgbm.LGBMClassifier"
    expected = {k: recording.param_value(v) for k, v in clf.get_params().items()}
    assert mine[0].body["params"] == expected
    assert [e.type for e in mine] == [
        "run-started",
        "run-inputs-used",
        *["run-metrics-logged"] * ROUNDS,
        "run-completed",
    ]
    assert step_metrics(mine) == series(clf.evals_result_)
    assert set(step_metrics(mine)[0]) == {"valid_0-binary_logloss"}

    registered = [e for e in found if e.type == "dataset-version-registered"]
    assert len(registered) == 1 and registered[0].body["row_count"] == len(x)
    (members,) = [e for e in found if e.type == "dataset-records-added"]
    assert len(members.body["records"]) == len(x)  # the index as record keys
    model = model_event(found)
    assert model.body["name"] == "LGBMClassifier"
    assert artifact_of(model) == clf.booster_.model_to_string().encode("utf-8")
    trained = reg.trained_on(model.entity)
    assert [d["dataset"] for d in trained["datasets"]] == [registered[0].entity]
    assert trained["datasets"][0]["records"] == len(x)

    lgb_hook.autolog(disable=True)
    plain = lightgbm.LGBMClassifier(n_estimators=ROUNDS, n_jobs=1, random_state=3, verbose=-1)
    plain.fit(x, y, **lgb_eval(xv, yv))
    np.testing.assert_array_equal(plain.predict_proba(xv), clf.predict_proba(xv))


def test_lightgbm_fit_without_validation_and_with_an_early_stopping_callback(
    reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, xv, yv = data
    lgb_hook.autolog(registry=reg, artifacts=artifacts)
    est = lightgbm.LGBMRegressor(n_estimators=ROUNDS, n_jobs=1, verbose=-1)
    assert est.fit(x, y) is est
    est.fit(x, y, callbacks=[lightgbm.early_stopping(3, verbose=False)], **lgb_eval(xv, yv))
    found = events(reg)
    started = [e for e in found if e.type == "run-started"]
    assert len(started) == 2
    first, second = (of_run(found, e.entity) for e in started)
    assert "early_stopping_rounds" not in first[0].body["params"]
    assert step_metrics(first) == {} and plain_metrics(first) == {}
    assert second[0].body["params"]["early_stopping_rounds"] == 3
    assert len(step_metrics(second)) == ROUNDS
    assert plain_metrics(second)["best_iteration"] == est.best_iteration_
    models = [e for e in found if e.type == "model-version-registered"]
    assert [m.entity for m in models] == [
        "model:test/LGBMRegressor@1",
        "model:test/LGBMRegressor@2",
    ]
    assert all(run[-1].type == "run-completed" for run in (first, second))


# --- every entry point ------------------------------------------------------------------------


def xgb_native(x: Any, y: Any) -> Any:
    return xgboost.train(xgb_params(), xgboost.DMatrix(x, label=y), ROUNDS)


def lgb_native(x: Any, y: Any) -> Any:
    return lightgbm.train(lgb_params(), lightgbm.Dataset(x, label=y), ROUNDS)


def xgb_sklearn(x: Any, y: Any) -> Any:
    return xgboost.XGBClassifier(n_estimators=ROUNDS, n_jobs=1).fit(x, y)


def lgb_sklearn(x: Any, y: Any) -> Any:
    return lightgbm.LGBMClassifier(n_estimators=ROUNDS, n_jobs=1, verbose=-1).fit(x, y)


ENTRY_POINTS: dict[str, tuple[Any, Callable[[Any, Any], Any]]] = {
    "xgboost.train": (xgb_hook, xgb_native),
    "lightgbm.train": (lgb_hook, lgb_native),
    "xgboost.XGBClassifier": (xgb_hook, xgb_sklearn),
    "lightgbm.LGBMClassifier": (lgb_hook, lgb_sklearn),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_training_inside_a_run_records_into_it(
    entry: str, reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, _, _ = data
    hook, train = ENTRY_POINTS[entry]
    hook.autolog(registry=reg, artifacts=artifacts)
    with reg.run("experiment", params={"lr": 0.3}) as run:
        result = train(x, y)
        assert run.status == "running"
    assert result is not None
    found = events(reg)
    assert only_run(found) == run.id
    mine = of_run(found, run.id)
    assert mine[0].body["job"] == "experiment" and mine[0].body["params"] == {"lr": 0.3}
    logged = [e for e in mine if e.type == "run-params-logged"]
    rounds = "num_boost_round" if entry.endswith(".train") else "n_estimators"
    assert len(logged) == 1 and logged[0].body["params"][rounds] == ROUNDS
    model = model_event(found)
    assert model.body["run"] == run.id
    assert mine[-1].type == "run-completed"
    assert [e.type for e in mine].count("run-completed") == 1


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("xgboost.train", "xgboost.core.XGBoostError"),
        ("lightgbm.train", "lightgbm.basic.LightGBMError"),
        ("xgboost.XGBClassifier", "xgboost.core.XGBoostError"),
        ("lightgbm.LGBMClassifier", "lightgbm.basic.LightGBMError"),
    ],
)
def test_a_training_error_propagates_and_fails_the_run(
    entry: str, error: str, reg: Registry, data: Any, artifacts: Path
) -> None:
    x, y, _, _ = data
    hook, train = ENTRY_POINTS[entry]
    hook.autolog(registry=reg, artifacts=artifacts)
    with pytest.raises(Exception) as raised:
        if entry == "xgboost.train":
            xgboost.train({"objective": "no-such"}, xgboost.DMatrix(x, label=y), ROUNDS)
        elif entry == "lightgbm.train":
            lightgbm.train({"objective": "no-such"}, lightgbm.Dataset(x, label=y), ROUNDS)
        else:
            train(x, y[:10])  # labels that do not match the rows
    raised_type = type(raised.value)
    assert f"{raised_type.__module__}.{raised_type.__qualname__}" == error
    found = events(reg)
    run = only_run(found)
    mine = of_run(found, run)
    assert mine[0].type == "run-started" and mine[-1].type == "run-failed"
    assert mine[-1].body["error_type"] == error
    assert not [e for e in found if e.type == "model-version-registered"]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_ledger_failure_is_warned_once_and_the_training_returns(
    entry: str,
    tmp_path: Path,
    data: Any,
    artifacts: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y, xv, _ = data
    hook, train = ENTRY_POINTS[entry]
    failing = registry.connect(f"sqlite:///{tmp_path}/failing.db", project="test", actor="t")

    def refuse(project: str, batch: Any) -> list[int]:
        raise OSError("disk I/O error")

    monkeypatch.setattr(failing.backend, "append", refuse)
    hook.autolog(registry=failing, artifacts=artifacts)
    with caplog.at_level(logging.WARNING, logger="mlledger.autolog"):
        first = train(x, y)
        second = train(x, y)
    for model in (first, second):
        predict = getattr(model, "predict_proba", None) or model.predict
        features = xgboost.DMatrix(xv) if isinstance(model, xgboost.Booster) else xv
        assert len(predict(features)) == len(xv)
    warnings = [r.getMessage() for r in caplog.records if r.name == "mlledger.autolog"]
    # Once, not again for the second training: the whole run (its training data
    # included) is one append, at its end.
    framework = entry.split(".")[0]
    assert warnings == [
        f"{framework} autologging: could not end the run (OSError: disk I/O error); "
        "training continues unrecorded there (this warning is not repeated)"
    ]
    assert failing.ledger.head() == -1  # nothing could be appended
    failing.backend.close()  # dropped with what it held: the backend refuses appends


def test_disable_restores_the_original_functions(reg: Registry, data: Any) -> None:
    x, y, _, _ = data
    originals = {
        "xgboost.train": xgboost.train,
        "xgboost.training.train": xgboost.training.train,
        "XGBClassifier.fit": xgboost.XGBClassifier.fit,
        "XGBModel.fit": xgboost.sklearn.XGBModel.fit,
        "lightgbm.train": lightgbm.train,
        "lightgbm.engine.train": lightgbm.engine.train,
        "LGBMClassifier.fit": lightgbm.LGBMClassifier.fit,
    }
    assert registry.autolog("xgboost", "lightgbm", registry=reg) == ["xgboost", "lightgbm"]
    assert xgboost.train is not originals["xgboost.train"]
    assert xgboost.train.__mlledger_hook__ == "xgboost"
    assert xgboost.training.train.__mlledger_hook__ == "xgboost"
    assert xgboost.XGBClassifier.fit.__mlledger_hook__ == "xgboost"
    assert lightgbm.train.__mlledger_hook__ == "lightgbm"
    assert lightgbm.LGBMRanker.fit.__mlledger_hook__ == "lightgbm"
    registry.autolog("xgboost", "lightgbm", registry=reg)  # again: nothing patched twice
    assert xgboost.train.__wrapped__ is originals["xgboost.train"]

    registry.autolog("xgboost", "lightgbm", disable=True)
    assert xgboost.train is originals["xgboost.train"]
    assert xgboost.training.train is originals["xgboost.train"]
    assert xgboost.XGBClassifier.fit is originals["XGBClassifier.fit"]
    assert xgboost.sklearn.XGBModel.fit is originals["XGBModel.fit"]
    assert "fit" not in xgboost.XGBRegressor.__dict__
    assert lightgbm.train is originals["lightgbm.train"]
    assert lightgbm.engine.train is originals["lightgbm.engine.train"]
    assert lightgbm.LGBMClassifier.fit is originals["LGBMClassifier.fit"]
    head = reg.ledger.head()
    xgb_native(x, y)
    lgb_sklearn(x, y)
    assert reg.ledger.head() == head == -1  # off: nothing appended


def test_autolog_enables_the_installed_boosting_frameworks(
    reg: Registry, data: Any, artifacts: Path
) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from registry import sklearn as sk_hook

    x, y, _, _ = data
    try:
        chosen = registry.autolog(registry=reg, artifacts=artifacts)
        assert {"xgboost", "lightgbm"} <= set(chosen)
        assert xgb_hook.HOOK.enabled and lgb_hook.HOOK.enabled
        xgb_sklearn(x, y)  # the XGBoost hook's, not the scikit-learn hook's
        head = reg.ledger.head()
        # A pipeline's boosting step belongs to the pipeline's run.
        pipeline = make_pipeline(
            StandardScaler(), lightgbm.LGBMClassifier(n_estimators=3, verbose=-1)
        )
        assert pipeline.fit(x, y) is pipeline
    finally:
        sk_hook.autolog(disable=True)
    found = events(reg, 0)
    first = [e for e in found if e.position <= head]
    run = only_run(first)
    assert of_run(first, run)[0].body["job"] == "xgboost.XGBClassifier"
    assert of_run(first, run)[0].body["tags"] == {"mlledger.autolog": "xgboost"}
    assert model_event(first).body["framework"] == "xgboost"
    later = events(reg, head + 1)
    run = only_run(later)
    assert of_run(later, run)[0].body["job"] == "sklearn.Pipeline"
    assert model_event(later).body["framework"] == "sklearn"
    assert of_run(later, run)[-1].type == "run-completed"
