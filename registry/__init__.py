"""mlledger's registry: the event log, stores, vault, SDK and CLI.

Start with ``registry.connect()``; see ``docs/sdk.md``. Inside training code,
``registry.autolog()`` records the frameworks' training calls (``docs/autolog.md``),
``@registry.track`` records a function's calls as runs, and ``registry.active_run()``
is the run they record into.

The errors are imported with the package; the SDK and the ledger, which pull in
SQLAlchemy, pyarrow and networkx, only when first named (PEP 562), so that a command
line asking for ``--help`` or a module importing one error pays for neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from registry.lazy import lazy_attributes

if TYPE_CHECKING:
    from registry.hooks.autolog import autolog
    from registry.hooks.serving import PredictionLogger, PredictionMiddleware
    from registry.hooks.track import track
    from registry.ledger import Ledger
    from registry.sdk import DatasetVersion, Deployment, ModelVersion, Registry, Run, connect
    from registry.sdk.connection import active_run

# Names loaded on first use, and the module that defines each.
_LAZY = {
    "Ledger": "registry.ledger",
    "DatasetVersion": "registry.sdk",
    "Deployment": "registry.sdk",
    "ModelVersion": "registry.sdk",
    "PredictionLogger": "registry.hooks.serving",
    "PredictionMiddleware": "registry.hooks.serving",
    "Registry": "registry.sdk",
    "Run": "registry.sdk",
    "connect": "registry.sdk",
    "active_run": "registry.sdk.connection",
    "autolog": "registry.hooks.autolog",
    "track": "registry.hooks.track",
}


__getattr__ = lazy_attributes("registry", _LAZY, globals())


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
    "PredictionLogger",
    "PredictionMiddleware",
    "Registry",
    "Run",
    "Unauthenticated",
    "active_run",
    "autolog",
    "connect",
    "track",
]
