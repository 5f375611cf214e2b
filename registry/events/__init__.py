"""The event catalogue: every event type the log can hold, frozen and documented, and
the envelope every event shares.

- ``catalogue``: the base of every body (``Body``), the table of types (``CATALOGUE``),
  ``@event_type``, upcasters and the checks body fields share;
- ``bodies``, ``erasure``, ``execution``, ``grants``, ``openlineage``: the types, by
  subject; the order they are imported in (alphabetical) is the order of ``CATALOGUE``
  and so of ``docs/events.md``;
- ``envelope``: ``NewEvent``, ``StoredEvent``, the hashed form and its canonical JSON;
- ``validation``: ``make_event``, ``validate_new``, ``normalised``.

Bodies hold no personal data: record keys and subject ids appear only as keyed
pseudonyms, personal attributes only as references to vault entries.
"""

from __future__ import annotations

from registry.events.bodies import (
    PAYLOAD_TYPES,
    DatasetRecordsAdded,
    DatasetVersionRegistered,
    DeploymentConfigured,
    DeploymentRetired,
    Metric,
    ModelAliasMoved,
    ModelVersionRegistered,
    PredictionsLogged,
    RunCompleted,
    RunFailed,
    RunInputsUsed,
    RunMetricsLogged,
    RunParamsLogged,
    RunStarted,
    Served,
    SubjectDataStored,
)
from registry.events.catalogue import (
    CATALOGUE,
    PSEUDONYM_RE,
    UPCASTERS,
    Body,
    EventType,
    Part,
    event_type,
    upcast,
)
from registry.events.envelope import (
    NewEvent,
    StoredEvent,
    canonical_event,
    envelope_problem,
    hashed_form,
)
from registry.events.erasure import (
    INTERNAL_TYPES,
    REMEDIATION_STATUSES,
    ErasureRemediated,
    Flag,
    Redacted,
    Retention,
    SubjectErased,
    SubjectErasureRequested,
)
from registry.events.execution import (
    DeploymentDrifted,
    JobAttemptFailed,
    JobCancelled,
    JobFailed,
    JobScheduled,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    Resources,
)
from registry.events.grants import ProjectAccessGranted, ProjectAccessRevoked
from registry.events.openlineage import (
    OpenLineageDatasetEvent,
    OpenLineageEventType,
    OpenLineageInput,
    OpenLineageJob,
    OpenLineageJobEvent,
    OpenLineageOutput,
    OpenLineageRunEvent,
)
from registry.events.validation import (
    body_problem,
    make_event,
    normalised,
    validate_new,
)

__all__ = [
    "CATALOGUE",
    "INTERNAL_TYPES",
    "PAYLOAD_TYPES",
    "PSEUDONYM_RE",
    "REMEDIATION_STATUSES",
    "UPCASTERS",
    "Body",
    "DatasetRecordsAdded",
    "DatasetVersionRegistered",
    "DeploymentConfigured",
    "DeploymentDrifted",
    "DeploymentRetired",
    "ErasureRemediated",
    "EventType",
    "Flag",
    "JobAttemptFailed",
    "JobCancelled",
    "JobFailed",
    "JobScheduled",
    "JobStarted",
    "JobSubmitted",
    "JobSucceeded",
    "Metric",
    "ModelAliasMoved",
    "ModelVersionRegistered",
    "NewEvent",
    "OpenLineageDatasetEvent",
    "OpenLineageEventType",
    "OpenLineageInput",
    "OpenLineageJob",
    "OpenLineageJobEvent",
    "OpenLineageOutput",
    "OpenLineageRunEvent",
    "Part",
    "PredictionsLogged",
    "ProjectAccessGranted",
    "ProjectAccessRevoked",
    "Redacted",
    "Resources",
    "Retention",
    "RunCompleted",
    "RunFailed",
    "RunInputsUsed",
    "RunMetricsLogged",
    "RunParamsLogged",
    "RunStarted",
    "Served",
    "StoredEvent",
    "SubjectDataStored",
    "SubjectErased",
    "SubjectErasureRequested",
    "body_problem",
    "canonical_event",
    "envelope_problem",
    "event_type",
    "hashed_form",
    "make_event",
    "normalised",
    "upcast",
    "validate_new",
]
