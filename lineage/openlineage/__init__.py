"""OpenLineage in and out: validation, ingestion, Marquez-shaped lineage, emission.

Four library functions; the HTTP routes call them and add nothing:

- ``validate(doc)`` (``validation``): check a document against the OpenLineage
  2-0-2 JSON schema (vendored under ``lineage/schemas/openlineage``) and the
  facets this package relies on; return its kind or raise ``FieldError`` naming
  the first bad field.
- ``to_events(ledger, project, actor, doc)`` (``ingest``): the batch of events one
  OpenLineage event means in this ledger (built, not appended; append it with
  ``first_wins=True``: its ids are derived, and the first claim of a run start
  or end stands).
- ``marquez_graph(ledger, project, node_id, depth)`` (``readmodel``): the lineage
  around a dataset or job, in the shape Marquez's ``GET /api/v1/lineage`` answers.
- ``emit(ledger, project, since=...)`` (``emission``): the project's runs, models
  and deployments as OpenLineage events, with mlledger's own facets.

``naming`` holds the dataset and job naming rules and derived ids; ``constants``
what the modules share. The mapping rules (names, versions, parents, facets kept,
idempotency, out-of-order events) are described in ``docs/openlineage.md``.
"""

from lineage.openlineage.constants import (
    CHUNK,
    ID_NAMESPACE,
    PRODUCER,
    REDACTED_FIELDS,
    SCHEMAS,
    SPEC,
    TERMINAL,
    Kind,
)
from lineage.openlineage.emission import EMITTED_TYPES, emit
from lineage.openlineage.ingest import to_events
from lineage.openlineage.naming import dataset_name, dataset_uri, job_name, version_label
from lineage.openlineage.readmodel import NodeType, marquez_graph
from lineage.openlineage.validation import CHECKED_FACETS, FORMATS, schema_url, validate

__all__ = [
    "CHECKED_FACETS",
    "CHUNK",
    "EMITTED_TYPES",
    "FORMATS",
    "ID_NAMESPACE",
    "PRODUCER",
    "REDACTED_FIELDS",
    "SCHEMAS",
    "SPEC",
    "TERMINAL",
    "Kind",
    "NodeType",
    "dataset_name",
    "dataset_uri",
    "emit",
    "job_name",
    "marquez_graph",
    "schema_url",
    "to_events",
    "validate",
    "version_label",
]
