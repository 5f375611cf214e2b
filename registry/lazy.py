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

import importlib.util
import sys
from types import ModuleType


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
