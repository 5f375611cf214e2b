"""Mutations of JSON documents for tests that tamper with one field at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def set_at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting the document's field at ``path`` (dots; digits index lists)
    to ``value``, or deleting it when ``value`` is ``KeyError``."""

    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is KeyError:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change
