"""mlledger's registry: the event log, stores, vault, SDK and CLI.

Start with ``registry.connect()``; see ``docs/sdk.md``.
"""

from registry.errors import (
    ConfigError,
    Conflict,
    EventRejected,
    ImmutableLog,
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
    "ImmutableLog",
    "InvalidNodeId",
    "Ledger",
    "LedgerError",
    "ModelVersion",
    "NotFound",
    "Registry",
    "Run",
    "connect",
]
