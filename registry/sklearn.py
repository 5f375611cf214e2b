"""scikit-learn autologging: ``registry.sklearn.autolog()``.

While it is on, ``fit`` (and ``fit_transform`` / ``fit_predict``) of every
scikit-learn estimator and pipeline, and of estimators defined on top of
scikit-learn's ``BaseEstimator``, is recorded as a run, or into the active run:

- params: ``get_params(deep=True)``, flattened as scikit-learn names them
  (``clf__C``); values that are not JSON scalars (a step's estimator, a callable) as
  their ``repr``, cut to 500 characters;
- metrics: the estimator's own ``score`` on the training data, as
  ``training_accuracy`` (classifiers), ``training_r2`` (regressors) or
  ``training_score``; for a search (``GridSearchCV``...), ``best_cv_score`` and the
  best candidate's params as ``best.<name>``;
- the training data (``X`` with ``y`` as a column ``target``, or ``y``'s own name) as a
  dataset version whose digest is over its content (``Registry.dataset_from``), its
  record keys from the column ``key`` names (``"index"``: a DataFrame's index);
- the fitted estimator, pickled, as a model version of its class's name, with the
  pickle's digest; the pickle is written to the artifacts folder under that digest.

A pipeline's or a search's inner fits belong to the outer one: one run per call the
caller made. Estimators of XGBoost and LightGBM are left to their own hooks
(``registry.xgboost``, ``registry.lightgbm``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Unpack

from registry.hooks.patching import Hook
from registry.hooks.recording import AutologOptions, Training, quietly
from registry.hooks.tabular import fit_data, record_training_data

if TYPE_CHECKING:
    pass

#: Packages whose estimators another hook records.
OTHER_HOOKS = ("xgboost", "lightgbm")

#: The methods that fit an estimator.
FIT_METHODS = ("fit", "fit_transform", "fit_predict")


def _estimator_classes() -> list[type]:
    """Every estimator class to patch: scikit-learn's own (``all_estimators``, which
    imports its modules, and its meta-estimators) and the subclasses of ``BaseEstimator``
    defined so far elsewhere, but not those another hook records."""
    from sklearn.base import BaseEstimator
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.utils import all_estimators

    found: dict[type, None] = dict.fromkeys(cls for _, cls in all_estimators())
    found.update(
        dict.fromkeys([Pipeline, FeatureUnion, ColumnTransformer, TransformedTargetRegressor])
    )
    pending = list(BaseEstimator.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found.setdefault(cls, None)
    return [
        cls
        for cls in found
        if cls.__module__.split(".")[0] not in OTHER_HOOKS and not cls.__name__.startswith("_")
    ]


def _params(estimator: Any) -> dict[str, Any]:
    params: dict[str, Any] = estimator.get_params(deep=True)
    return params


def _metrics(estimator: Any, x: Any, y: Any) -> dict[str, Any]:
    """The estimator's score on its training data (when it has a target), and a
    search's best cross-validated score."""
    from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier, is_regressor

    metrics: dict[str, Any] = {}
    score = getattr(type(estimator), "score", None)
    if y is not None and callable(score):
        if is_classifier(estimator):
            name = "training_accuracy"
        elif is_regressor(estimator):
            name = "training_r2"
        else:
            name = "training_score"
        if score is ClassifierMixin.score:  # accuracy, without its checks of the input
            metrics[name] = _accuracy(estimator.predict(x), y)
        elif score is RegressorMixin.score:  # R², likewise
            metrics[name] = _r2(estimator.predict(x), y)
        else:
            metrics[name] = estimator.score(x, y)
    best = getattr(estimator, "best_score_", None)
    if best is not None:
        metrics["best_cv_score"] = best
    return metrics


def _accuracy(predicted: Any, y: Any) -> float | None:
    """The share of rows predicted right, as ``accuracy_score`` computes it for one
    label a row; None for other targets (``metric_values`` then leaves it out)."""
    import numpy as np

    truth, guess = np.asarray(y), np.asarray(predicted)
    if truth.ndim != 1 or truth.shape != guess.shape:
        return None
    return float(np.mean(truth == guess))


def _r2(predicted: Any, y: Any) -> float | None:
    """R² of one target, as ``r2_score`` computes it; None for other targets."""
    import numpy as np

    truth = np.asarray(y, dtype=float)
    guess = np.asarray(predicted, dtype=float)
    if truth.ndim != 1 or truth.shape != guess.shape:
        return None
    total = float(np.sum((truth - truth.mean()) ** 2))
    if total == 0.0:
        return None
    return 1.0 - float(np.sum((truth - guess) ** 2)) / total


def _record(training: Training, estimator: Any, x: Any, y: Any) -> None:
    """What one fit produced: metrics, best params of a search, data, model."""
    name = type(estimator).__name__
    best = getattr(estimator, "best_params_", None)
    if isinstance(best, Mapping):
        training.params({f"best.{k}": v for k, v in best.items()})
    record_training_data(training, x, y, name)
    with_metrics = _metrics_quietly(training, estimator, x, y)
    training.metrics(with_metrics)
    training.model(
        name,
        lambda: pickle.dumps(estimator, protocol=5),
        suffix=".pkl",
        framework="sklearn",
    )


def _metrics_quietly(training: Training, estimator: Any, x: Any, y: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with quietly(training.hook, "score the fitted model"):
        found = _metrics(estimator, x, y)
    return found


def _install(hook: Hook) -> None:
    for cls in _estimator_classes():
        for method in FIT_METHODS:
            if callable(getattr(cls, method, None)):
                hook.patch(cls, method, _wrapping(hook))


def _wrapping(hook: Hook) -> Any:
    def make(original: Any) -> Any:
        def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
            x, y = fit_data(args, kwargs)
            return hook.training(
                lambda: original(self, *args, **kwargs),
                job=lambda: f"sklearn.{type(self).__name__}",
                params=lambda: _params(self),
                after=lambda training, _result: _record(training, self, x, y),
            )

        return fit

    return make


HOOK = Hook("sklearn", _install)


def autolog(*, disable: bool = False, **options: Unpack[AutologOptions]) -> None:
    """Record every scikit-learn ``fit`` (see the module); ``disable=True`` turns it
    off again. The options are ``registry.hooks.recording.Options``'s: ``registry``,
    ``log_models``, ``log_datasets``, ``key``, ``subject``, ``job``, ``model_name``,
    ``dataset_name``, ``artifacts``, ``tags``."""
    HOOK.switch(disable, options)
