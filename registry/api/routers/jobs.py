"""The jobs that execute the project's runs: the list, and one run's job with its events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from lineage import answers
from lineage.jobqueries import MAX_JOBS
from registry import services
from registry.api.answers import sent
from registry.api.deps import Asking, asking
from registry.api.problems import answering
from registry.api.schemas import RunPath

router = APIRouter(prefix="/projects/{project}", tags=["jobs"])


@router.get("/jobs", **answering(answers.JobsAnswer))
def jobs(
    ask: Annotated[Asking, asking("read", "jobs.read")],
    status: Annotated[
        Literal["submitted", "scheduled", "running", "retrying", "succeeded", "failed", "cancelled"]
        | None,
        Query(description="Only jobs with this status."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_JOBS, description="At most this many.")] = 100,
) -> Response:
    """The jobs executing the project's runs, newest submission first: as submitted, and
    where and how they ran."""
    return sent(services.jobs(ask.ledger, ask.who.project, status=status, limit=limit))


@router.get("/jobs/{run}", **answering(answers.JobAnswer, "invalid-node-id", "not-found"))
def job(run: RunPath, ask: Annotated[Asking, asking("read", "jobs.read")]) -> Response:
    """The job executing a run of the project (``run:<uuid>`` or ``<uuid>``), with its
    events in log order."""
    return sent(services.job(ask.ledger, ask.who.project, run=run))
