"""The training data of a fit: ``(X, y)`` of the call (``fit_data``), as one table
(``training_table``), registered as a dataset version digested over its content
(``record_training_data``, ``registry.sdk.tables``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from registry.errors import InvalidInput
from registry.hooks.recording import Training
from registry.lazy import lazy_import

if TYPE_CHECKING:
    import pyarrow as pa

    from registry.sdk import DatasetVersion, Registry
else:
    pa = lazy_import("pyarrow")

#: The column a DataFrame's index becomes when it holds the record keys (``key="index"``).
INDEX = "index"


def _columns_of(data: Any, prefix: str) -> dict[str, Any]:
    """Named columns of a DataFrame, a Series, an array or a list (``<prefix><i>`` for
    an array's columns)."""
    if hasattr(data, "columns") and hasattr(data, "dtypes"):  # a pandas DataFrame
        return {str(c): data[c].to_numpy() for c in data.columns}
    if hasattr(data, "to_numpy") and hasattr(data, "name"):  # a pandas Series
        return {str(data.name) if data.name is not None else prefix: data.to_numpy()}
    if isinstance(data, pa.Table):
        return {name: data.column(name) for name in data.column_names}
    import numpy as np

    if hasattr(data, "toarray"):  # a scipy sparse matrix
        raise InvalidInput("sparse training data is not digested: register it yourself")
    array = np.asarray(data)
    if array.ndim == 1:
        return {prefix: array}
    if array.ndim != 2:
        raise InvalidInput(f"training data of {array.ndim} dimensions: expected 1 or 2")
    return {f"{prefix}{i}": array[:, i] for i in range(array.shape[1])}


def training_table(x: Any, y: Any = None, key: str | None = None) -> pa.Table:
    """``x`` and, when given, ``y`` (as the column ``target`` unless it is a named
    Series) as one table; with ``key="index"``, a DataFrame's index first, as the column
    ``index``."""
    columns: dict[str, Any] = {}
    if key == INDEX and hasattr(x, "index") and hasattr(x, "columns"):
        columns[INDEX] = x.index.to_numpy()
    columns.update(_columns_of(x, "x"))
    if y is not None:
        for name, values in _columns_of(y, "target").items():
            columns[name if name not in columns else f"target.{name}"] = values
    return pa.table(columns)


def fit_data(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(X, y)`` of a scikit-learn API ``fit`` call."""
    x = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    return x, y


def record_training_data(training: Training, x: Any, y: Any, name: str) -> None:
    """Register ``x`` with ``y`` as a dataset version (``Registry.dataset_from``, the
    options' key and subject columns) that the training's run read; nothing when ``x``
    is missing. The registration goes with the run's other records, in one append."""
    if x is None:
        return
    options = training.options

    def register(reg: Registry) -> DatasetVersion:
        table = training_table(x, y, options.key)
        return reg.dataset_from(
            table,
            options.dataset_name or f"{options.model_name or name}-training",
            key=options.key,
            subject=options.subject,
            uri="memory:training-data",
            defer=True,
        )

    training.dataset(register)
