"""What the hooks of the gradient-boosting libraries (``registry.xgboost``,
``registry.lightgbm``) share: the estimator classes of their scikit-learn API to
patch and the per-iteration evaluation results a booster records, as per-step metric series."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

#: The separator between an evaluation set's name and a metric's: ``validation_0-logloss``.
SEPARATOR = "-"


def classes_defining(base: type, method: str) -> list[type]:
    """``base`` and its subclasses defined so far that define ``method`` themselves:
    patching those covers every class (one inheriting the method calls the patched
    one), and each call is wrapped once."""
    found: dict[type, None] = {base: None}
    pending: list[type] = list(base.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found.setdefault(cls, None)
    return [cls for cls in found if method in cls.__dict__]


def eval_series(results: Mapping[str, Mapping[str, Sequence[Any]]]) -> dict[str, list[Any]]:
    """Per-iteration evaluation results (``{eval set: {metric: [value at iteration 0,
    1, ...]}}``, as both libraries keep them) as metric series named
    ``<eval set>-<metric>``."""
    return {
        f"{data}{SEPARATOR}{metric}": list(values)
        for data, metrics in results.items()
        for metric, values in metrics.items()
    }


def bind(signature: inspect.Signature, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """``signature.bind(*args, **kwargs)``, or None when the call does not match the
    signature (the framework then raises its own error)."""
    try:
        return signature.bind(*args, **kwargs)
    except TypeError:
        return None


def argument(bound: inspect.BoundArguments, parameter: str) -> Any:
    """The value ``bound`` gives ``parameter``: the caller's, else its default (None
    when it has none)."""
    if parameter in bound.arguments:
        return bound.arguments[parameter]
    found = bound.signature.parameters.get(parameter)
    if found is None or found.default is inspect.Parameter.empty:
        return None
    return found.default


def params_of(params: Any) -> dict[str, Any]:
    """A native API's ``params``: a mapping, or pairs (XGBoost takes a list of pairs,
    a key repeated for several values: those values become a list)."""
    if params is None:
        return {}
    if isinstance(params, Mapping):
        return dict(params)
    found: dict[str, Any] = {}
    for key, value in params:
        if key in found:
            held = found[key]
            found[key] = [*held, value] if isinstance(held, list) else [held, value]
        else:
            found[key] = value
    return found
