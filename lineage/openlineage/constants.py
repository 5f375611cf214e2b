"""Constants shared by the OpenLineage modules: where the schemas live, the spec
version, the namespace of derived ids, name limits and the default producer."""

from __future__ import annotations

import importlib.metadata
import re
import uuid
from pathlib import Path
from typing import Literal

Kind = Literal["RunEvent", "DatasetEvent", "JobEvent"]
KINDS: tuple[Kind, ...] = ("RunEvent", "DatasetEvent", "JobEvent")

#: The vendored JSON schemas: the OpenLineage spec and facets, and mlledger's facets
#: (shipped as package data of ``lineage``).
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
# uuid5 namespace of every event id this package derives (fixed forever: changing it
# would make re-sent OpenLineage events look new).
ID_NAMESPACE = uuid.UUID("5e9d6dd7-7835-4258-aba1-eb73099527b4")
SAFE_INT = 2**53 - 1
UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
NAME_MAX = 128
JOB_MAX = 300  # cat_runs.job and lineage_nodes.label hold 300 characters
#: Log events read per transaction when emitting.
CHUNK = 500
#: OpenLineage eventType -> the ledger event that ends a run.
TERMINAL = {"COMPLETE": "run-completed", "FAIL": "run-failed", "ABORT": "run-failed"}
# Run-facet fields removed before storage: they may hold personal data or secrets.
REDACTED_FIELDS: dict[str, tuple[str, ...]] = {
    "errorMessage": ("message", "stackTrace"),
    "environmentVariables": ("environmentVariables",),
}


def _package_version() -> str:
    try:
        return importlib.metadata.version("mlledger")
    except importlib.metadata.PackageNotFoundError:
        return "0"


#: Default ``producer`` of emitted events (and ``_producer`` of their facets).
PRODUCER = f"urn:mlledger:{_package_version()}"


def event_url(kind: Kind) -> str:
    """The ``schemaURL`` of an event of kind ``kind``."""
    return f"{SPEC}#/$defs/{kind}"
