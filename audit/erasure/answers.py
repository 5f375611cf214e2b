"""The answers of the erasure endpoints, as typed models: the plan of an erasure (what
a dry run reports), the outcome of one, a purge, the erasures of a project and the
remediation flags they put on model versions, and the certificate (the DSSE envelope
of ``audit.dsse.Envelope``, its signatures read in full).

They describe the JSON ``audit.erasure`` hands out (``Plan.as_dict``,
``Outcome.as_dict``, ``erasures``, ``remediations``), members in wire order, and read
like the mappings they are sent as (``lineage.answers.Shape``). The parts a
certificate also holds (``Records``, ``Flag``) are those of ``audit.erasure.schema``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from audit.dsse import Envelope, Signature
from audit.erasure.schema import Flag, Records
from audit.note import MAX_SIGNATURES
from lineage.answers import Shape

#: What an erasure did to a model version it affects.
FlagStatus = Literal["retrain-required", "retained-with-justification", "remediated"]


class PredictionsPlanned(Shape):
    count: int
    batches: list[int] = Field(description="Positions of the predictions-logged events.")


class PlanAnswer(Shape):
    """What erasing one subject touches (subject and records by erasure reference)."""

    project: str
    subject: str = Field(description="subject:<project>/<erasure reference>.")
    records: Records
    datasets: list[str]
    derived_datasets: list[str]
    runs: list[str]
    models: list[str]
    deployments: list[str]
    predictions: PredictionsPlanned
    vault_entries: int
    events_to_redact: list[int] = Field(description="Positions of the events rewritten.")


class PurgeReport(Shape):
    """A physical purge: how, when, how long, which tables it rewrote."""

    method: str
    seconds: float
    finished_at: str
    tables: list[str]
    details: dict[str, Any] = Field(description="Diagnostics of the database backend.")


class SignedCheckpoint(Shape):
    """The checkpoint signed after an erasure or purge."""

    seq: int
    size: int
    note: str


class OutcomeAnswer(Shape):
    """The result of one erasure: ``planned`` (dry run), ``erased``, ``resumed`` (an
    interrupted erasure completed) or ``already-erased`` (a no-op)."""

    status: Literal["planned", "erased", "resumed", "already-erased"]
    erasure: str | None = Field(description="The erasure's id (null for a plan).")
    subject: str
    plan: PlanAnswer | None
    requested_position: int | None
    erased_position: int | None
    models: list[Flag] = Field(description="What it decided for each affected model version.")
    redactions: int = Field(description="How many events were rewritten.")
    seconds: float
    purge: PurgeReport | None
    checkpoint: SignedCheckpoint | None
    certificate: str | None


class PurgeAnswer(Shape):
    """A purge of what erasures deleted, and the checkpoint signed after it."""

    purge: PurgeReport
    checkpoint: SignedCheckpoint | None


class ErasureListed(Shape):
    """An erasure of the project (references and counts, never pseudonyms)."""

    erasure: str
    subject: str
    status: str
    requested_by: str
    requested_at: str
    requested_position: int
    erased_at: str | None
    erased_position: int | None
    summary: dict[str, Any] | None = Field(description="Counts and ids of what it erased.")


class RemediationFlag(Shape):
    """A flag an erasure put on a model version, and what resolved it."""

    model: str
    erasure: str
    status: FlagStatus
    justification: str | None
    approver: str | None
    flagged_position: int
    resolved_by: str | None
    resolved_position: int | None


class Certificate(Envelope):
    """An erasure's certificate: an in-toto Statement in a DSSE envelope signed with the
    log's key (``audit.erasure.certificate``)."""

    signatures: list[Signature] = Field(
        min_length=1, max_length=MAX_SIGNATURES, description="One or more signatures."
    )
