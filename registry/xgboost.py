"""XGBoost autologging: ``registry.xgboost.autolog()``.

While it is on, each training is recorded as a run, or into the active run:

- the native API, ``xgboost.train(params, dtrain, num_boost_round, evals=...)``:
  params: the ``params`` dict, ``num_boost_round``, and the early-stopping settings
  (``early_stopping_rounds``, from the argument or an ``EarlyStopping`` callback, and
  ``maximize``); metrics: every evaluation result of every iteration, one record per
  iteration at ``step`` = the iteration (from 0), named ``<eval name>-<metric>``
  (``validation-logloss``), kept by a training callback of the hook's own added to a
  copy of the callbacks (``evals_result`` is left to XGBoost, as without the hook),
  and with early stopping ``best_iteration`` (from 0, as XGBoost counts) and
  ``best_score``; the booster
  (``Booster.save_raw("ubj")``, UBJSON, suffix ``.ubj``) as a model version of
  ``xgboost.Booster``. A ``DMatrix`` does not give back the data it was built from:
  no dataset version is recorded for the native API.
- the scikit-learn API, ``fit(X, y, eval_set=...)`` of ``XGBClassifier``,
  ``XGBRegressor``, ``XGBRanker``, ``XGBRF*`` and every other subclass of
  ``xgboost.sklearn.XGBModel``: params: ``get_params()``; metrics: the estimator's
  ``evals_result()`` per iteration as above (``validation_0-logloss``: scikit-learn
  names the eval sets ``validation_<i>``) and ``best_iteration`` / ``best_score`` with
  early stopping; the training data (``X`` with ``y`` as a column ``target``, or
  ``y``'s own name) as a dataset version digested over its content
  (``Registry.dataset_from``); the fitted booster (``get_booster()``) as above, as a
  model version of the estimator's class name.

One run per call the caller made: the ``xgboost.train`` inside a scikit-learn API
``fit``, or any training inside another recorded one (a scikit-learn pipeline's step),
is part of the outer run. What XGBoost returns or raises is unchanged; a failure to
record is logged once as a warning (``registry.hooks.recording``).
"""

from __future__ import annotations

import inspect
from typing import Any, Unpack

from registry.hooks.boosting import (
    argument,
    bind,
    classes_defining,
    eval_series,
    params_of,
)
from registry.hooks.patching import Hook
from registry.hooks.recording import AutologOptions, Training
from registry.hooks.tabular import fit_data, record_training_data

#: The name the native API's boosters are registered under (unless ``model_name``).
BOOSTER = "xgboost.Booster"
#: The job of the runs the native API's trainings start (unless ``job``).
NATIVE_JOB = "xgboost.train"


def _early_stopping(callbacks: Any) -> dict[str, Any]:
    """The settings of an ``EarlyStopping`` callback among ``callbacks``."""
    from xgboost.callback import EarlyStopping

    for callback in callbacks or ():
        if isinstance(callback, EarlyStopping):
            return {"early_stopping_rounds": callback.rounds, "maximize": callback.maximize}
    return {}


def _native_params(bound: inspect.BoundArguments) -> dict[str, Any]:
    """What a native ``train`` call was given: its ``params`` and the boosting
    settings outside them."""
    params = params_of(argument(bound, "params"))
    params["num_boost_round"] = argument(bound, "num_boost_round")
    params.update(_early_stopping(argument(bound, "callbacks")))
    for name in ("early_stopping_rounds", "maximize"):
        value = argument(bound, name)
        if value is not None:
            params[name] = value
    return params


def _best(booster: Any) -> dict[str, Any]:
    """``best_iteration`` and ``best_score``, which XGBoost sets with early stopping."""
    found: dict[str, Any] = {}
    for name in ("best_iteration", "best_score"):
        value = booster.attr(name)
        if value is not None:
            found[name] = int(value) if name == "best_iteration" else float(value)
    return found


def _record_booster(training: Training, booster: Any, results: dict[str, Any], name: str) -> None:
    """The per-iteration evaluation results, the best iteration and the booster."""
    training.metric_series(eval_series(results))
    training.metrics(_best(booster))
    training.model(
        name,
        lambda: bytes(booster.save_raw("ubj")),
        suffix=".ubj",
        framework="xgboost",
    )


def _recorder(results: dict[str, Any]) -> Any:
    """A training callback keeping the evaluation history in ``results``: the caller's
    ``evals_result`` is left to XGBoost to fill, as without the hook."""
    from xgboost.callback import TrainingCallback

    class Recorder(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            results.update(evals_log)
            return False

    return Recorder()


def _native(hook: Hook) -> Any:
    def make(original: Any) -> Any:
        signature = inspect.signature(original)

        def train(*args: Any, **kwargs: Any) -> Any:
            bound = (
                None
                if not hook.enabled or hook.outer() is not None
                else bind(signature, args, kwargs)
            )
            if bound is None:  # off, inside another training, or a call XGBoost refuses
                return original(*args, **kwargs)
            results: dict[str, Any] = {}
            # The hook's recorder first (XGBoost stops calling callbacks at the first
            # that asks to stop), in a copy of the caller's list.
            given = bound.arguments.get("callbacks")
            bound.arguments["callbacks"] = [_recorder(results), *(given or ())]
            return hook.training(
                lambda: original(*bound.args, **bound.kwargs),
                job=lambda: NATIVE_JOB,
                params=lambda: _native_params(bound),
                after=lambda training, booster: _record_booster(
                    training, booster, results, BOOSTER
                ),
            )

        return train

    return make


def _record_estimator(training: Training, estimator: Any, x: Any, y: Any) -> None:
    """What a scikit-learn API fit produced: the training data, the per-iteration
    evaluation results (``evals_result_``, set when ``eval_set`` was given), the best
    iteration, and the booster."""
    name = type(estimator).__name__
    record_training_data(training, x, y, name)
    results = getattr(estimator, "evals_result_", None) or {}
    _record_booster(training, estimator.get_booster(), results, name)


def _fitting(hook: Hook) -> Any:
    def make(original: Any) -> Any:
        def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
            x, y = fit_data(args, kwargs)
            return hook.training(
                lambda: original(self, *args, **kwargs),
                job=lambda: f"xgboost.{type(self).__name__}",
                params=lambda: self.get_params(),
                after=lambda training, _result: _record_estimator(training, self, x, y),
            )

        return fit

    return make


def _install(hook: Hook) -> None:
    import xgboost
    import xgboost.training
    from xgboost.sklearn import XGBModel

    # The package's ``train`` and the module's are two names of one function: a caller
    # may use either. XGBoost's scikit-learn API calls its own import of it, left as is.
    hook.patch(xgboost.training, "train", _native(hook))
    hook.patch(xgboost, "train", _native(hook))
    for cls in classes_defining(XGBModel, "fit"):
        hook.patch(cls, "fit", _fitting(hook))


HOOK = Hook("xgboost", _install)


def autolog(*, disable: bool = False, **options: Unpack[AutologOptions]) -> None:
    """Record every XGBoost training (see the module); ``disable=True`` turns it off
    again. The options are ``registry.hooks.recording.Options``'s: ``registry``,
    ``log_models``, ``log_datasets``, ``key``, ``subject``, ``job``, ``model_name``,
    ``dataset_name``, ``artifacts``, ``tags``."""
    HOOK.switch(disable, options)
