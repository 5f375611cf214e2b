"""Modules loaded on first use, so that a command pays only for what it uses.

``lazy_import("networkx")`` returns the module at once, but runs it only when one of
its attributes is first read (the standard library's ``importlib.util.LazyLoader``).
A module imported this way is written, for type checkers::

    if TYPE_CHECKING:
        import networkx as nx
    else:
        nx = lazy_import("networkx")
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


def lazy_import(name: str) -> ModuleType:
    """The module ``name``, executed when an attribute of it is first read."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def lazy_attributes(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``package``: each name of ``names`` is
    read from the module it maps to when first asked for (and kept in ``namespace``, the
    package's globals, so later lookups skip the function); any other name is the
    package's submodule of that name, if it has one."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}"):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    return __getattr__
