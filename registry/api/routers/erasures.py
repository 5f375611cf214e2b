"""Erasure of data subjects (GDPR Art. 17), their certificates and remediation flags.

Erasing, resuming and purging need the ``personal`` permission (data-protection
officers). Listing erasures, their certificates and the remediation flags holds
no personal data (subjects appear by erasure reference only), so any key of the
project may read them; training code checks which record keys were erased with
a ``write`` key.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from audit.erasure import answers
from registry import erasures as services
from registry import services as questions
from registry.api.deps import Asking, asking
from registry.api.problems import answering
from registry.api.schemas import (
    MODEL_REF_PATTERN,
    TEXT_PATTERN,
    UUID_PATTERN,
    Key,
    Long,
    Strict,
    Text,
)
from registry.errors import InvalidNodeId
from registry.ids import NodeId, kind_of, openlineage_id

router = APIRouter(prefix="/projects/{project}", tags=["erasure"])


#: OpenLineage's dataset ids (``dataset:<namespace>:<name>``; the namespace may hold ':').
_TEXT = TEXT_PATTERN[1:-2]
_OPENLINEAGE = f"{_TEXT}*:{_TEXT}*"
#: What a rule's ``model`` may be, in its errors.
_RETAINED = (
    "expected a model version (name@version, name@alias, name@latest, its id or "
    "dataset:<namespace>:model/<name>) or '*' for every affected one"
)


def _retained(value: str) -> str:
    """A model version as the questions name one, or ``*``, its form checked here (the
    version it names is resolved when the erasure runs, ``services.retained``)."""
    if value == "*" or _REF.match(value):
        return value
    kind = kind_of(value)
    if openlineage_id(value):
        if kind == "dataset":
            return value
        raise PydanticCustomError("node_id", f"{value!r} is an OpenLineage {kind} id: {_RETAINED}")
    try:
        kind = NodeId.parse(value).kind
    except InvalidNodeId:
        raise PydanticCustomError("node_id", f"model {value!r}: {_RETAINED}") from None
    raise PydanticCustomError("node_id", f"{value!r} is a {kind} id: {_RETAINED}")


_REF = re.compile(MODEL_REF_PATTERN)


class RetainRule(Strict):
    model: Annotated[Long, AfterValidator(_retained)] = Field(
        description="Model version: name@version, name@alias, name@latest, its id or "
        "dataset:<namespace>:model/<name>; or '*' for every affected one.",
        json_schema_extra={"pattern": rf"^(\*|{MODEL_REF_PATTERN[1:-1]}|dataset:{_OPENLINEAGE})$"},
    )
    justification: Text = Field(min_length=1, max_length=2000, description="Why it is kept.")
    approver: Long = Field(min_length=1, description="Who approved keeping it.")


class ErasureCreate(Strict):
    subject: Key = Field(description="Data-subject id (raw), sent in the body.")
    dry_run: bool = Field(default=False, description="Return the plan; change nothing.")
    retain: list[RetainRule] = Field(
        default_factory=list,
        max_length=1000,
        description="Affected model versions kept in service (at most 1,000 rules); the "
        "others: retrain-required.",
    )
    purge: bool = Field(default=True, description="Purge deleted bytes physically now.")
    sign: bool = Field(default=True, description="Sign a checkpoint covering the erasure.")


class ResumeRequest(Strict):
    purge: bool = Field(default=True, description="Purge once the erasures are complete.")


class ErasedQuery(Strict):
    records: list[Key] = Field(max_length=100_000, description="Record keys (raw).")


class ErasedAnswer(Strict):
    erased: list[bool] = Field(description="For each record key, whether it was erased.")


ErasureId = Annotated[
    str,
    Path(
        min_length=36,
        max_length=36,
        description="Erasure id.",
        json_schema_extra={"pattern": UUID_PATTERN},
    ),
]


@router.post(
    "/erasures",
    **answering(answers.OutcomeAnswer, "invalid-input", "not-found", "event-rejected"),
)
def erase(
    request: ErasureCreate,
    ask: Annotated[Asking, asking("personal", "erasures.create")],
) -> dict[str, Any]:
    """Erase a data subject everywhere (or plan it, with ``dry_run``): vault, key,
    records, predictions and the events that held their pseudonyms; flags every
    affected model version. Erasing an erased subject is a no-op that says so. A rule of
    ``retain`` must name a model version the erasure affects (400 otherwise; a dry run
    plans without checking)."""
    return services.erase(
        ask.ledger,
        ask.project,
        request.subject,
        actor=ask.actor,
        dry_run=request.dry_run,
        retain=questions.retained(
            ask.ledger, ask.project, [rule.model_dump() for rule in request.retain]
        ),
        purge=request.purge,
        sign=request.sign,
    )


@router.post("/erasures/resume", response_model=list[answers.OutcomeAnswer])
def resume(
    request: ResumeRequest,
    ask: Annotated[Asking, asking("personal", "erasures.resume")],
) -> list[dict[str, Any]]:
    """Complete every erasure of the project that was interrupted."""
    return services.resume_erasures(ask.ledger, ask.project, purge=request.purge)


@router.post("/erasures/purge", response_model=answers.PurgeAnswer)
def purge(ask: Annotated[Asking, asking("personal", "erasures.purge")]) -> dict[str, Any]:
    """Physically purge what erasures deleted (after a batch), and sign a checkpoint."""
    return services.purge(ask.ledger)


@router.get("/erasures", response_model=list[answers.ErasureListed])
def erasures(ask: Annotated[Asking, asking("read", "erasures.read")]) -> list[dict[str, Any]]:
    """The project's erasures, oldest first: reference, status, positions and counts."""
    return services.erasures(ask.ledger, ask.project)


@router.get("/erasures/{erasure}/certificate", **answering(answers.Certificate, "not-found"))
def certificate(
    erasure: ErasureId,
    ask: Annotated[Asking, asking("read", "erasures.certificate")],
) -> dict[str, Any]:
    """The erasure's certificate: an in-toto Statement in a DSSE envelope signed with the
    log's key, with the inclusion proofs of its two events (``mlledger audit
    verify-certificate`` checks it offline)."""
    return services.certificate(ask.ledger, ask.project, erasure)


@router.post("/erasures/check", response_model=ErasedAnswer)
def check(
    query: ErasedQuery,
    ask: Annotated[Asking, asking("write", "erasures.check")],
) -> ErasedAnswer:
    """Which of these record keys were erased (training code drops them before it
    retrains a flagged model version)."""
    return ErasedAnswer(erased=services.erased_records(ask.ledger, ask.project, query.records))


@router.get("/remediations", response_model=list[answers.RemediationFlag])
def remediations(
    ask: Annotated[Asking, asking("read", "remediations.read")],
    status: Annotated[
        Literal["retrain-required", "retained-with-justification", "remediated"] | None,
        Query(description="Only flags with this status (retrain-required: the open ones)."),
    ] = None,
) -> list[dict[str, Any]]:
    """Remediation flags erasures put on model versions, and what resolved them."""
    return services.remediations(ask.ledger, ask.project, status)
