"""The questions about the jobs that execute runs, answered from ``run_executions``
(``lineage.executions``) and the log: a project's jobs, and one run's job with its
events. A run's job is its project's alone: another project's run is not found."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lineage.answers import JobAnswer, JobEvent, JobExecution, JobsAnswer
from lineage.executions import COLUMNS, JOB_TYPES, STATUSES
from registry.canonical import loads
from registry.errors import InvalidInput, NotFound
from registry.store.raw import Raw, placeholders
from registry.tracing import traced

if TYPE_CHECKING:
    from registry.ledger import Ledger

#: The most jobs one answer lists.
MAX_JOBS = 1000
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM run_executions"


def execution(row: Sequence[Any]) -> JobExecution:
    """A ``run_executions`` row in its JSON form."""
    r = dict(zip(COLUMNS, row, strict=True))
    return JobExecution(
        run=r["run"],
        project=r["project"],
        executor=r["executor"],
        target=r["target"],
        name=r["name"],
        image=r["image"],
        command=loads(r["command"]),
        resources=loads(r["resources"]),
        retries=int(r["retries"]),
        deadline_s=None if r["deadline_s"] is None else int(r["deadline_s"]),
        spec_digest=r["spec_digest"],
        status=r["status"],
        attempts=int(r["attempts"]),
        attempt=r["attempt"],
        node=r["node"],
        gpus=None if r["gpus"] is None else int(r["gpus"]),
        gpu_product=r["gpu_product"],
        reason=r["reason"],
        exit_code=None if r["exit_code"] is None else int(r["exit_code"]),
        attempt_reason=r["attempt_reason"],
        submitted_at=r["submitted_at"],
        scheduled_at=r["scheduled_at"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        submitted_position=int(r["submitted_pos"]),
        position=int(r["position"]),
    )


def run_execution(raw: Raw, project: str, run: str) -> JobExecution | None:
    """The job of run ``run`` (a run id) in ``project``, or None when it has none there."""
    row = raw.one(f"{_SELECT} WHERE run = ? AND project = ?", (run, project))
    return None if row is None else execution(row)


@traced("query.jobs", "project")
def jobs(
    ledger: Ledger, project: str, *, status: str | None = None, limit: int = 100
) -> JobsAnswer:
    """The project's jobs, newest submission first; with ``status``, only those in it;
    at most ``limit`` (1 to ``MAX_JOBS``)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(
            f"job status {status!r}: expected one of {', '.join(STATUSES)}", field="status"
        )
    if not 1 <= limit <= MAX_JOBS:
        raise InvalidInput(f"limit {limit}: expected 1 to {MAX_JOBS}", field="limit")
    where, params = "project = ?", [project]
    if status is not None:
        where, params = "project = ? AND status = ?", [project, status]
    with ledger.store.read() as conn:
        rows = Raw(conn).all(
            f"{_SELECT} WHERE {where} ORDER BY submitted_pos DESC LIMIT {int(limit)}", params
        )
    return JobsAnswer.built(jobs=[execution(row) for row in rows])


@traced("query.job", "project", "run")
def job(ledger: Ledger, project: str, run: str) -> JobAnswer:
    """The job of run ``run`` (a run id) in ``project``, with its events in log order;
    NotFound when the run has no job in that project."""
    with ledger.store.read() as conn:
        raw = Raw(conn)
        found = run_execution(raw, project, run)
        if found is None:
            raise NotFound(
                f"no job of run {run} in project {project!r}: the run is not the "
                "project's, or no job was submitted for it"
            )
        events = [
            JobEvent(
                position=int(position),
                type=type_,
                actor=actor,
                occurred_at=occurred_at,
                body=loads(body),
            )
            for position, type_, actor, occurred_at, body in raw.all(
                "SELECT position, type, actor, occurred_at, body FROM events WHERE entity = ? "
                f"AND project = ? AND type IN ({placeholders(len(JOB_TYPES))}) "
                "ORDER BY position",
                (run, project, *JOB_TYPES),
            )
        ]
    return JobAnswer.built(**found, events=events)
