"""mlledger's registry: the event log, stores, vault, SDK and CLI.

Start with ``registry.connect()``; see ``docs/sdk.md``.
"""

from registry.errors import (
    ConfigError,
    Conflict,
    EventRejected,
    FieldError,
    Forbidden,
    InvalidNodeId,
    LedgerError,
    NoLedger,
    NotFound,
    Unauthenticated,
)
from registry.ledger import Ledger
from registry.sdk import DatasetVersion, Deployment, ModelVersion, Registry, Run, connect

__all__ = [
    "ConfigError",
    "Conflict",
    "DatasetVersion",
    "Deployment",
    "EventRejected",
    "FieldError",
    "Forbidden",
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
