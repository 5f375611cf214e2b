"""mlledger's registry: the event log, stores, vault, SDK and CLI.

Start with ``registry.connect()``; see ``docs/sdk.md``.
"""

from registry.errors import (
    ConfigError,
    Conflict,
    EventRejected,
    InvalidNodeId,
    LedgerError,
    NotFound,
)
from registry.ledger import Ledger
from registry.sdk import DatasetVersion, Deployment, ModelVersion, Registry, Run, connect

__all__ = [
    "ConfigError",
    "Conflict",
    "DatasetVersion",
    "Deployment",
    "EventRejected",
    "InvalidNodeId",
    "Ledger",
    "LedgerError",
    "ModelVersion",
    "NotFound",
    "Registry",
    "Run",
    "connect",
]
