"""Reports: a model version's dossier and a data subject's access report (GDPR Art. 15).

The dossier holds no personal data, so any key of the project may read it; the
subject-access report decrypts the subject's vault entries and needs the
``personal`` permission (data-protection officers), as every other question that
takes a subject's raw id. The id travels in the request body, never in the URL
(the access trail records URLs).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import Field

from audit import checkpoints as cps
from audit.reports import answers
from registry import services
from registry.api.deps import Asking, SettingsDep, asking
from registry.api.problems import answering, responses
from registry.api.schemas import NAME_PATTERN, Key, Strict

router = APIRouter(prefix="/projects/{project}/reports", tags=["reports"])

ModelRef = Annotated[
    str,
    Path(
        min_length=3,
        max_length=300,
        description="The model version: name@version, name@alias or name@latest.",
        json_schema_extra={"pattern": f"^{NAME_PATTERN[1:-1]}@{NAME_PATTERN[1:-1]}$"},
    ),
]
Format = Literal["html", "markdown", "json"]


class SubjectReportRequest(Strict):
    subject: Key = Field(description="Data-subject id (raw), sent in the body.")


@router.get(
    "/models/{model}",
    response_class=Response,
    responses={
        200: {
            "description": "The dossier: an HTML page (default), the Markdown model card, "
            "or JSON with every section's data and the proof bundles.",
            "content": {
                "text/html": {},
                "text/markdown": {},
                "application/json": {},
            },
        },
        **responses("invalid-node-id", "not-found"),
    },
)
def model_dossier(
    model: ModelRef,
    settings: SettingsDep,
    ask: Annotated[Asking, asking("read", "reports.model")],
    format: Annotated[Format, Query(description="html, markdown or json.")] = "html",
) -> Response:
    """A model version's dossier: identity, training-data lineage (picture and list),
    params, metrics, code and environment, alias history with approvers, deployment
    timeline, prediction volume, erasures and remediation, and the proof bundles of
    its key events (a checkpoint is signed first when the latest does not cover them)."""
    from audit.reports import build_model_dossier

    # Named as every question names a model version; another project's stays unknown.
    node = services.resolve_model(ask.ledger, ask.project, model)
    key, _, _ = cps.load_signing_key(ask.ledger.store.url, settings.signing_key, create=True)
    dossier = build_model_dossier(ask.ledger, ask.project, node, key)
    if format == "markdown":
        return PlainTextResponse(dossier.markdown, media_type="text/markdown; charset=utf-8")
    if format == "json":
        return JSONResponse(
            {
                "data": dossier.data,
                "evidence": {str(p): b for p, b in sorted(dossier.evidence.items())},
            }
        )
    return HTMLResponse(dossier.html)


@router.post("/subjects", **answering(answers.SubjectReport, "not-found"))
def subject_report(
    request: SubjectReportRequest,
    ask: Annotated[Asking, asking("personal", "reports.subject")],
) -> dict[str, Any]:
    """The subject-access report: the personal data held (decrypted), the subject's
    records and the datasets holding them, where the data went (derived datasets, runs,
    models, deployments) and every prediction made about their records."""
    from audit.reports.subject import subject_report as report

    return report(ask.ledger, ask.project, request.subject)
