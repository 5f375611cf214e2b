"""``registry.autolog()``: the autologging of every supported framework installed, or
of those named, on or off at once."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Unpack

from registry.errors import ConfigError
from registry.hooks.recording import AutologOptions

#: Each framework's name, the package it patches, and the module of its hook.
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "sklearn": ("sklearn", "registry.sklearn"),
    "xgboost": ("xgboost", "registry.xgboost"),
    "lightgbm": ("lightgbm", "registry.lightgbm"),
}


def autolog(
    *frameworks: str, disable: bool = False, **options: Unpack[AutologOptions]
) -> list[str]:
    """Turn on (or with ``disable=True`` off) the autologging of ``frameworks`` (by
    default: each of ``FRAMEWORKS`` whose package is installed) with ``options``
    (``registry.hooks.recording.Options``); the frameworks switched. Calling it again
    replaces the options; it patches nothing twice."""
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown:
        raise ConfigError(
            f"autolog: unknown framework {unknown[0]!r}; expected one of "
            + ", ".join(sorted(FRAMEWORKS))
        )
    chosen = list(frameworks) or [
        name for name, (package, _) in FRAMEWORKS.items() if importlib.util.find_spec(package)
    ]
    for name in chosen:
        package, module = FRAMEWORKS[name]
        if disable and module not in sys.modules:
            continue  # never switched on in this process: nothing to put back
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"autolog: {name} is not installed (no package {package!r})")
        hook = importlib.import_module(module)
        hook.autolog(disable=disable, **options)
    return chosen
