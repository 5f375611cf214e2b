"""The erasure certificate's wire shape, as pydantic models, and its JSON Schema.

A certificate file is a DSSE envelope (``audit.dsse.Envelope``) whose payload is an
in-toto Statement (``Statement``) with an erasure predicate (``ErasurePredicate``).
``json_schema()`` is the published schema, ``docs/schemas/erasure-certificate.schema.
json`` (``python -m audit.erasure schema`` prints it): the envelope at the top, the
statement under ``$defs`` and named by the payload's ``contentSchema``.

The schema says what a certificate looks like; only ``audit.erasure.certificate.
verify_certificate`` says whether one is true (signatures, proofs, and every field
equal to what the two proved events say).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from audit.dsse import Envelope

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlledger.dev/attestations/erasure/v1"
STATEMENT = (
    "This certificate attests that the ledger's erasure process ran for this data subject "
    "and records what that process reported erasing, redacting and flagging; it is not a "
    "proof of absence: copies held outside the ledger, or missed by the process, are not "
    "covered."
)
REQUEST_TYPE = "subject-erasure-requested"
ERASED_TYPE = "subject-erased"
SCHEMA_ID = "https://mlledger.dev/schemas/erasure-certificate.schema.json"

Count = Annotated[int, Field(ge=0)]
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Uuid = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
DatasetId = Annotated[str, Field(pattern=r"^dataset:[\s\S]")]
RunId = Annotated[str, Field(pattern=r"^run:[\s\S]")]
ModelId = Annotated[str, Field(pattern=r"^model:[\s\S]")]
DeploymentId = Annotated[str, Field(pattern=r"^deployment:[\s\S]")]


class _Shape(BaseModel):
    """A closed object: the verifier refuses fields a certificate does not have."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Moment(_Shape):
    """Where in the log an event is, and when it was recorded."""

    position: Count = Field(description="The event's position in the events log.")
    at: str = Field(description="When the ledger recorded it (UTC, RFC 3339).")


class Records(_Shape):
    """The subject's records, by erasure reference."""

    count: Count
    references: list[Hex32] = Field(description="Erasure references of the records.")


class Affected(_Shape):
    """What the erasure touched, as its ``subject-erased`` event declares."""

    records: Records
    datasets: list[DatasetId] = Field(description="Dataset versions that held the records.")
    derived_datasets: list[DatasetId] = Field(description="Dataset versions derived from them.")
    runs: list[RunId]
    models: list[ModelId]
    deployments: list[DeploymentId]
    predictions: Count
    vault_entries: Count


class Flag(_Shape):
    """An affected model version's remediation status."""

    model: ModelId
    status: Literal["retrain-required", "retained-with-justification"]
    justification: str | None = Field(description="Why it is kept (retained only).")
    approver: str | None = Field(description="Who approved keeping it (retained only).")


class Purge(BaseModel):
    """The physical purge that ran after the erasure: the signer's own claim. mlledger
    writes the four fields below; a verifier accepts any object."""

    model_config = ConfigDict(extra="allow")

    method: str | None = None
    finished_at: str | None = Field(default=None, description="UTC, RFC 3339.")
    seconds: float | None = None
    tables: list[str] | None = None


class LogEvent(_Shape):
    """One of the two events as the log holds it, with its inclusion proof."""

    index: Count = Field(description="Its leaf index (its position).")
    entry: str = Field(description="The event's RFC 8785 text: the leaf's data.")
    inclusion_proof: list[str] = Field(description="Base64 SHA-256 hashes, leaf to root.")


class Log(_Shape):
    """The signed checkpoint both events are proved against."""

    origin: str = Field(description="The events log's origin: the signing key's name.")
    tree_size: Count
    checkpoint: str = Field(description="The signed checkpoint (a signed note).")
    events: list[LogEvent] = Field(
        min_length=2, max_length=2, description="The request, then the erasure."
    )


class ErasurePredicate(_Shape):
    """What an erasure certificate attests (``PREDICATE_TYPE``)."""

    statement: str = Field(description="What the certificate does and does not attest.")
    erasure: Uuid
    project: str
    subject: str = Field(
        pattern=r"^subject:[\s\S]+/[0-9a-f]{32}$", description="The subject's erasure reference."
    )
    requested: Moment
    completed: Moment
    requested_by: str
    affected: Affected
    remediation: list[Flag]
    redactions: list[Count] = Field(description="Positions of the events rewritten.")
    purge: Purge | None
    log: Log


class Digest(_Shape):
    """An in-toto digest set: here, SHA-256 only."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Subject(_Shape):
    """The statement's subject: the ``subject-erased`` event."""

    name: str = Field(description="<origin>/events/<position>")
    digest: Digest = Field(description="SHA-256 of the event's RFC 8785 text.")


class Statement(_Shape):
    """An in-toto Statement v1 of an erasure: the envelope's payload."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject] = Field(min_length=1, max_length=1)
    predicate_type: Literal["https://mlledger.dev/attestations/erasure/v1"] = Field(
        alias="predicateType"
    )
    predicate: ErasurePredicate


def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a certificate file, made from the models."""
    _, top = models_json_schema(
        [(Envelope, "validation"), (Statement, "validation")], ref_template="#/$defs/{model}"
    )
    defs = dict(top["$defs"])
    envelope = defs.pop("Envelope")
    envelope["properties"]["payload"]["contentSchema"] = {"$ref": "#/$defs/Statement"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **envelope,
        "title": "mlledger erasure certificate",
        "description": "A DSSE envelope whose base64 payload is an in-toto Statement "
        "(see $defs/Statement) attesting one erasure; `mlledger audit verify-certificate` "
        "checks it with the log's public key.",
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    """``json_schema()`` as the published file holds it."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
