"""The event types of erasure (GDPR Art. 17): a subject's erasure requested and
completed, and a model version that remediates one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from registry.events.catalogue import (
    Body,
    Part,
    check_model,
    check_pseudonym,
    check_uuid,
    each,
    event_type,
    validates,
)

# --- erasure ---------------------------------------------------------------------------------

REMEDIATION_STATUSES = ("retrain-required", "retained-with-justification")


class Retention(Part):
    """A model version kept in service despite the erasure, and who approved why."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description="Model version id, or '*' for every affected model version.")
    justification: str = Field(min_length=1, max_length=2000, description="Why it is kept.")
    approver: str = Field(min_length=1, max_length=300, description="Who approved keeping it.")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return value if value == "*" else check_model(value)


@event_type("subject-erasure-requested", entity="subject")
class SubjectErasureRequested(Body):
    """A data subject's erasure was requested (GDPR Art. 17) and is under way.

    The entity is ``subject:<project>/<reference>``, the reference being a keyed
    hash of the subject's pseudonym (``Pseudonymizer.erasure_reference``): it
    names the erasure without naming the pseudonym the erased data carried.
    ``retain`` lists the affected model versions kept in service, with a
    justification and an approver; every other one is flagged
    ``retrain-required``. Appended only by ``mlledger erase``.
    """

    erasure: str = Field(description="Erasure id (uuid), shared by the request and completion.")
    retain: tuple[Retention, ...] = Field(
        default=(), description="Model versions retained with a justification ('*': all)."
    )

    _erasure = validates("erasure", check_uuid)


class Flag(Part):
    """The remediation status an erasure gave one affected model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description="Model version id.")
    status: Literal["retrain-required", "retained-with-justification"] = Field(
        description="retrain-required, or retained-with-justification."
    )
    justification: str | None = Field(default=None, description="Why it is retained, if it is.")
    approver: str | None = Field(default=None, description="Who approved retaining it.")

    _model = validates("model", check_model)


class Redacted(Part):
    """One event the erasure rewrote, and the hashes of what it now holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    position: int = Field(ge=0, description="Position of the rewritten event.")
    leaf: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Hex leaf hash (SHA-256 of 0x00 and the RFC 8785 form) of its new content.",
    )
    payload: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="'sha256:<hex>' of its new payload, when its payload was rewritten.",
    )


@event_type("subject-erased", entity="subject")
class SubjectErased(Body):
    """A data subject's erasure completed: what it touched and what it asks of models.

    Same entity as its ``subject-erasure-requested``. In the same transaction the
    subject's vault entries and key were deleted, their records and predictions
    removed from the indexes, and every event that held their pseudonyms
    rewritten (``redactions``): each keeps its original leaf hash, so every
    checkpoint and proof stands, and this event declares the hash of what each
    now holds. ``record_refs`` are the erased records' erasure references, kept so
    that a question about them answers "erased". Appended only by
    ``mlledger erase``.
    """

    erasure: str = Field(description="Erasure id (uuid) of the request.")
    request: int = Field(ge=0, description="Position of the subject-erasure-requested event.")
    records: int = Field(ge=0, description="Number of the subject's records erased.")
    record_refs: tuple[str, ...] = Field(
        default=(), description="Erasure references of those records, sorted."
    )
    datasets: tuple[str, ...] = Field(
        default=(), description="Dataset versions that held the records."
    )
    derived_datasets: tuple[str, ...] = Field(
        default=(), description="Dataset versions downstream of those."
    )
    runs: tuple[str, ...] = Field(default=(), description="Runs downstream of the datasets.")
    models: tuple[Flag, ...] = Field(
        default=(), description="Model versions downstream, each with its remediation status."
    )
    deployments: tuple[str, ...] = Field(
        default=(), description="Deployments that served those model versions."
    )
    predictions: int = Field(ge=0, description="Predictions about the records, redacted.")
    vault_entries: int = Field(ge=0, description="Vault entries of the subject, deleted.")
    redactions: tuple[Redacted, ...] = Field(
        default=(), description="Events rewritten, by position."
    )

    _erasure = validates("erasure", check_uuid)

    _refs = validates("record_refs", each(check_pseudonym))


@event_type("erasure-remediated", entity="model")
class ErasureRemediated(Body):
    """This model version remediates an erasure: it replaces ``model``, which the
    erasure flagged ``retrain-required``, and was trained without the erased records.

    The ledger checks that the flag is open and that no dataset version the
    producing run read holds an erased record or was affected by the erasure;
    the flag is then resolved by this event.
    """

    erasure: str = Field(description="Erasure id (uuid).")
    model: str = Field(description="The flagged model version this one replaces.")

    _erasure = validates("erasure", check_uuid)

    _model = validates("model", check_model)


# Types only the ledger's own erasure process appends; a client sending one is refused.
INTERNAL_TYPES = frozenset({"subject-erasure-requested", "subject-erased"})
