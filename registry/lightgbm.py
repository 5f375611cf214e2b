"""LightGBM autologging: ``registry.lightgbm.autolog()``.

While it is on, each training is recorded as a run, or into the active run:

- the native API, ``lightgbm.train(params, train_set, num_boost_round,
  valid_sets=..., callbacks=...)``: params: the ``params`` dict (early stopping set
  there, ``early_stopping_round``, included), ``num_boost_round``, and the settings of
  an ``early_stopping`` callback (``early_stopping_rounds``, ``first_metric_only``,
  ``min_delta``); metrics: every evaluation result of every iteration, one record per
  iteration at ``step`` = the iteration (from 0), named ``<valid name>-<metric>``
  (``valid_0-binary_logloss``; ``training`` for the training set among the valid
  sets), recorded by a ``lightgbm.record_evaluation`` callback of the hook's own added
  to a copy of the callbacks, and with early stopping ``best_iteration`` (from 1, as
  LightGBM counts) and ``best_score.<valid name>-<metric>``; the booster
  (``Booster.model_to_string()``, LightGBM's text format, UTF-8, suffix ``.txt``; with
  early stopping it holds the iterations up to the best one, as the booster predicts
  with by default) as a model version of ``lightgbm.Booster``. A ``Dataset`` frees the
  data it was built from once it is constructed: no dataset version is recorded for the
  native API.
- the scikit-learn API, ``fit(X, y, eval_set=...)`` of ``LGBMClassifier``,
  ``LGBMRegressor``, ``LGBMRanker`` and every other subclass of
  ``lightgbm.sklearn.LGBMModel``: params: ``get_params()`` and the settings of an
  ``early_stopping`` callback given to ``fit``; metrics: ``evals_result_`` per iteration
  as above (``valid_0-binary_logloss``) and ``best_iteration`` / ``best_score.*`` with
  early stopping; the training data (``X`` with ``y`` as a column ``target``, or
  ``y``'s own name) as a dataset version digested over its content
  (``Registry.dataset_from``); the fitted booster (``booster_``) as above, as a model
  version of the estimator's class name.

One run per call the caller made: the ``lightgbm.train`` inside a scikit-learn API
``fit``, or any training inside another recorded one (a scikit-learn pipeline's step),
is part of the outer run. What LightGBM returns or raises is unchanged; a failure to
record is logged once as a warning (``registry.hooks.recording``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Unpack

from registry.hooks.boosting import (
    SEPARATOR,
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
BOOSTER = "lightgbm.Booster"
#: The job of the runs the native API's trainings start (unless ``job``).
NATIVE_JOB = "lightgbm.train"


def _early_stopping(callbacks: Any) -> dict[str, Any]:
    """The settings of an ``early_stopping`` callback among ``callbacks`` (the
    callback ``lightgbm.early_stopping`` makes holds them as attributes)."""
    for callback in callbacks or ():
        settings = {
            "early_stopping_rounds": getattr(callback, "stopping_rounds", None),
            "first_metric_only": getattr(callback, "first_metric_only", None),
            "min_delta": getattr(callback, "min_delta", None),
        }
        if settings["early_stopping_rounds"] is not None:
            return {k: v for k, v in settings.items() if v is not None}
    return {}


def _native_params(bound: inspect.BoundArguments) -> dict[str, Any]:
    """What a native ``train`` call was given: its ``params``, the number of rounds
    and an early-stopping callback's settings."""
    params = params_of(argument(bound, "params"))
    params["num_boost_round"] = argument(bound, "num_boost_round")
    params.update(_early_stopping(argument(bound, "callbacks")))
    return params


def _best(booster: Any) -> dict[str, Any]:
    """``best_iteration`` and the scores there, which LightGBM sets with early
    stopping (without it, ``best_iteration`` is 0)."""
    iteration = getattr(booster, "best_iteration", 0) or 0
    if iteration <= 0:
        return {}
    found: dict[str, Any] = {"best_iteration": iteration}
    scores: Mapping[str, Mapping[str, Any]] = getattr(booster, "best_score", None) or {}
    for data, metrics in scores.items():
        for metric, value in metrics.items():
            found[f"best_score.{data}{SEPARATOR}{metric}"] = value
    return found


def _record_booster(
    training: Training, booster: Any, results: Mapping[str, Any], name: str
) -> None:
    """The per-iteration evaluation results, the best iteration and the booster."""
    training.metric_series(eval_series(results))
    training.metrics(_best(booster))
    training.model(
        name,
        lambda: booster.model_to_string().encode("utf-8"),
        suffix=".txt",
        framework="lightgbm",
    )


def _native(hook: Hook) -> Any:
    def make(original: Any) -> Any:
        signature = inspect.signature(original)

        def train(*args: Any, **kwargs: Any) -> Any:
            bound = (
                None
                if not hook.enabled or hook.outer() is not None
                else bind(signature, args, kwargs)
            )
            if bound is None:  # off, inside another training, or a call LightGBM refuses
                return original(*args, **kwargs)
            from lightgbm import record_evaluation

            results: dict[str, Any] = {}
            # A copy of the caller's list, with the hook's recorder added.
            given = bound.arguments.get("callbacks")
            bound.arguments["callbacks"] = [*(given or ()), record_evaluation(results)]
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
    evaluation results (``evals_result_``, empty without ``eval_set``), the best
    iteration, and the booster."""
    name = type(estimator).__name__
    record_training_data(training, x, y, name)
    results = getattr(estimator, "evals_result_", None) or {}
    _record_booster(training, estimator.booster_, results, name)


def _fit_params(estimator: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = estimator.get_params()
    params.update(_early_stopping(kwargs.get("callbacks")))
    return params


def _fitting(hook: Hook) -> Any:
    def make(original: Any) -> Any:
        def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
            x, y = fit_data(args, kwargs)
            return hook.training(
                lambda: original(self, *args, **kwargs),
                job=lambda: f"lightgbm.{type(self).__name__}",
                params=lambda: _fit_params(self, kwargs),
                after=lambda training, _result: _record_estimator(training, self, x, y),
            )

        return fit

    return make


def _install(hook: Hook) -> None:
    import lightgbm
    import lightgbm.engine
    from lightgbm.sklearn import LGBMModel

    # The package's ``train`` and the module's are two names of one function: a caller
    # may use either. LightGBM's scikit-learn API calls its own import of it, left as is.
    hook.patch(lightgbm.engine, "train", _native(hook))
    hook.patch(lightgbm, "train", _native(hook))
    for cls in classes_defining(LGBMModel, "fit"):
        hook.patch(cls, "fit", _fitting(hook))


HOOK = Hook("lightgbm", _install)


def autolog(*, disable: bool = False, **options: Unpack[AutologOptions]) -> None:
    """Record every LightGBM training (see the module); ``disable=True`` turns it off
    again. The options are ``registry.hooks.recording.Options``'s: ``registry``,
    ``log_models``, ``log_datasets``, ``key``, ``subject``, ``job``, ``model_name``,
    ``dataset_name``, ``artifacts``, ``tags``."""
    HOOK.switch(disable, options)
