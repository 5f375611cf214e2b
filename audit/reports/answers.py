"""The answer of the subject-access report (GDPR Art. 15), as a typed model: what
``audit.reports.subject.subject_report`` hands out, members in wire order, read like
the mapping it is sent as (``lineage.answers.Shape``).

The model dossier is answered as HTML, Markdown or JSON (its sections' data and the
proof bundles, by log position); it is described by its media types.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from lineage.answers import ErasureNote, Omitting, RunNode, Shape, SubjectRecord


class VaultEntry(Shape):
    """Personal attributes of the subject the vault holds (decrypted)."""

    entry: str = Field(description="Vault entry id.")
    stored_at: str
    attributes: dict[str, Any]


class DatasetHeld(Omitting):
    """A dataset version holding the subject's records (or derived from one); one
    missing from the catalogue is named by its label, without version, uri or digest."""

    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ("registered_at",)

    id: str
    name: str
    version: str | None
    uri: str | None
    digest: str | None
    registered_at: str | SkipJsonSchema[None] = None


class NodeLabelled(Shape):
    id: str
    label: str


class DeploymentHeld(Shape):
    id: str
    label: str
    models: list[str] = Field(description="Model versions it served the subject's data from.")


class PredictionMade(Shape):
    """A prediction made about one of the subject's records."""

    at: str
    record: str
    model: str
    model_label: str
    deployment: str
    deployment_label: str
    output: Any = Field(description="The prediction's JSON output.")
    position: int = Field(description="Log position of the predictions-logged event.")
    seq: int = Field(description="Its row in that batch.")


class ReportCounts(Shape):
    vault_entries: int
    records: int
    datasets: int
    derived_datasets: int
    runs: int
    models: int
    deployments: int
    predictions: int


class SubjectReport(Shape):
    """The subject-access report: the personal data held, the subject's records and the
    datasets holding them, where the data went, and every prediction made about them."""

    report: Literal["subject-access"]
    project: str
    subject: str = Field(description="subject:<project>/<erasure reference>.")
    generated_at: str
    purposes: str = Field(description="Why the data is processed.")
    personal_data: list[VaultEntry]
    records: list[SubjectRecord]
    datasets: list[DatasetHeld]
    derived_datasets: list[DatasetHeld]
    runs: list[RunNode]
    models: list[NodeLabelled]
    deployments: list[DeploymentHeld]
    predictions: list[PredictionMade]
    erased: ErasureNote | None = Field(description="The subject's latest erasure, if any.")
    counts: ReportCounts
