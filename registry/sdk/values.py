"""The SDK's checks and conversions of what callers pass: record keys and subject ids,
and columns given as lists, numpy arrays or Arrow columns."""

from __future__ import annotations

from typing import Any

from registry.errors import FieldError
from registry.intake import check_keys, key_problem


def checked_key(key: Any, field: str) -> Any:
    """``key`` if it is a record key or subject id; else FieldError naming ``field``."""
    why = key_problem(key, "record key" if field == "record" else "subject id")
    if why is not None:
        raise FieldError(field, f"{field}: {why}")
    return key


def checked_keys(keys: list[Any], field: str) -> list[Any]:
    """``keys`` if each is a record key; else FieldError naming the first bad one."""
    try:
        check_keys(keys, field)
    except FieldError as exc:
        raise FieldError(exc.field, f"{exc.field}: {exc}") from None
    return keys


def plain(values: Any) -> list[Any]:
    """A list of JSON values from a list, numpy array or Arrow column."""
    if hasattr(values, "to_pylist"):
        return list(values.to_pylist())
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return [
        v.item() if hasattr(v, "item") and not isinstance(v, str | bytes) else v for v in values
    ]
