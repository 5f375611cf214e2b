"""mlledger's registry: the event log, stores, vault, SDK and CLI.

Start with ``registry.connect()``; see ``docs/sdk.md``.

The errors are imported with the package; the SDK and the ledger, which pull in
SQLAlchemy, pyarrow and networkx, only when first named (PEP 562), so that a command
line asking for ``--help`` or a module importing one error pays for neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.errors import (
    ConfigError,
    Conflict,
    EventRejected,
    FieldError,
    Forbidden,
    InvalidInput,
    InvalidNodeId,
    LedgerError,
    NoLedger,
    NotFound,
    Unauthenticated,
)

if TYPE_CHECKING:
    from registry.ledger import Ledger
    from registry.sdk import DatasetVersion, Deployment, ModelVersion, Registry, Run, connect

# Names loaded on first use, and the module that defines each.
_LAZY = {
    "Ledger": "registry.ledger",
    "DatasetVersion": "registry.sdk",
    "Deployment": "registry.sdk",
    "ModelVersion": "registry.sdk",
    "Registry": "registry.sdk",
    "Run": "registry.sdk",
    "connect": "registry.sdk",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ConfigError",
    "Conflict",
    "DatasetVersion",
    "Deployment",
    "EventRejected",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "InvalidNodeId",
    "Ledger",
    "LedgerError",
    "ModelVersion",
    "NoLedger",
    "NotFound",
    "Registry",
    "Run",
    "Unauthenticated",
    "connect",
]
