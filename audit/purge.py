"""Where the physical purge was: kept for older imports; it is ``audit.erasure.purge``."""

from __future__ import annotations

from audit.erasure.purge import (
    ATTESTED,
    BUSY_SECONDS,
    ERASURE_TABLES,
    STATISTICS_CATALOGS,
    PurgeBusy,
    PurgeReport,
    attested,
    find_bytes,
    purge,
)

__all__ = [
    "ATTESTED",
    "BUSY_SECONDS",
    "ERASURE_TABLES",
    "STATISTICS_CATALOGS",
    "PurgeBusy",
    "PurgeReport",
    "attested",
    "find_bytes",
    "purge",
]
