"""The jobs that execute runs, on SQLite and PostgreSQL: the ledger's checks of the
``job-*`` events, the executions projection (``run_executions``) after each step and
after a rebuild, the ``jobs`` and ``job`` questions in process, over HTTP and through
the SDK, and the model dossier saying where its model was trained."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

import registry
from audit.reports import build_model_dossier
from lineage import jobqueries
from lineage.answers import JobAnswer, JobsAnswer
from registry import writes
from registry.assembly import open_ledger
from registry.errors import EventRejected, InvalidInput, NotFound
from registry.events import NewEvent, StoredEvent
from registry.ids import run_id
from registry.ledger import Ledger
from registry.sdk import Registry
from registry.settings import normalise_url
from registry.store.raw import Raw
from registry.writes import Author
from tests.support.apiserver import ApiServer
from tests.support.helpers import signing_key

PROJECT, OTHER = "test", "other"
EXECUTOR = Author(PROJECT, "executor")
SUBMITTED = {
    "executor": "kubernetes",
    "target": "https://k8s.example:6443/ml-jobs",
    "name": "train-0190",
    "image": "registry.example/train:1.4",
    "command": ["python", "-m", "train", "--epochs", "3"],
    "resources": {"cpu": "4", "memory": "16Gi", "gpus": 2, "gpu_product": "NVIDIA-H100-80GB-HBM3"},
    "retries": 2,
    "deadline_s": 3600,
    "spec_digest": "sha256:" + "5" * 64,
}
SCHEDULED = {"attempt": "train-0190-a", "node": "gpu-node-7", "gpus": 2,
             "gpu_product": "NVIDIA-H100-80GB-HBM3"}  # fmt: skip


def _event(type_: str, run: str, body: dict[str, Any], *, by: Author = EXECUTOR) -> NewEvent:
    return writes.event(by, type_, run, body)


def _appended(ledger: Ledger, events: list[NewEvent]) -> list[StoredEvent]:
    """Append ``events`` as one batch; check that each is in the log as sent, at the
    positions the append returned; return them as stored."""
    head = ledger.head()
    positions = ledger.append(events)
    assert positions == list(range(head + 1, head + 1 + len(events)))
    stored = ledger.read(positions[0], len(events))
    assert [(s.event_id, s.type, s.entity, s.actor, s.project) for s in stored] == [
        (e.event_id, e.type, e.entity, e.actor, e.project) for e in events
    ]
    assert [s.body for s in stored] == [e.body for e in events]
    assert ledger.head() == positions[-1]
    return stored


def _append(ledger: Ledger, type_: str, run: str, body: dict[str, Any]) -> StoredEvent:
    return _appended(ledger, [_event(type_, run, body)])[0]


def _start_run(ledger: Ledger, project: str = PROJECT) -> str:
    run = run_id(uuid.uuid4())
    started = _appended(ledger, [_event("run-started", run, {"job": "train"},
                                        by=Author(project, "tester"))])[0]  # fmt: skip
    assert (started.type, started.entity, started.project) == ("run-started", run, project)
    return run


def _row(ledger: Ledger, run: str, project: str = PROJECT) -> dict[str, Any] | None:
    with ledger.store.read() as conn:
        found = jobqueries.run_execution(Raw(conn), project, run)
    return None if found is None else dict(found)


def _rows(ledger: Ledger) -> list[tuple[Any, ...]]:
    with ledger.store.read() as conn:
        return [tuple(r) for r in Raw(conn).all("SELECT * FROM run_executions ORDER BY run")]


def _refused(ledger: Ledger, events: list[NewEvent], match: str) -> EventRejected:
    """``events`` are refused with a message matching ``match``, and leave no trace:
    the log's head, the projections and the job rows are as they were."""
    head, digest, rows = ledger.head(), ledger.projection_digest(), _rows(ledger)
    with pytest.raises(EventRejected, match=match) as refused:
        ledger.append(events)
    assert "nothing in the batch was written" in str(refused.value)
    assert ledger.head() == head
    assert ledger.projection_digest() == digest
    assert _rows(ledger) == rows
    return refused.value


# --- the lifecycle, step by step ----------------------------------------------------------


def _submitted_row(run: str, submitted: StoredEvent) -> dict[str, Any]:
    """The projection's row of ``run`` once ``SUBMITTED`` was appended as ``submitted``."""
    return {
        "run": run,
        "project": PROJECT,
        "executor": "kubernetes",
        "target": SUBMITTED["target"],
        "name": "train-0190",
        "image": SUBMITTED["image"],
        "command": SUBMITTED["command"],
        "resources": SUBMITTED["resources"],
        "retries": 2,
        "deadline_s": 3600,
        "spec_digest": SUBMITTED["spec_digest"],
        "status": "submitted",
        "attempts": 0,
        "attempt": None,
        "node": None,
        "gpus": None,
        "gpu_product": None,
        "reason": None,
        "exit_code": None,
        "attempt_reason": None,
        "submitted_at": submitted.occurred_at,
        "scheduled_at": None,
        "started_at": None,
        "ended_at": None,
        "submitted_position": submitted.position,
        "position": submitted.position,
    }


def test_a_job_lifecycle_with_a_retry_is_projected_step_by_step(ledger: Ledger) -> None:
    run = _start_run(ledger)
    assert _row(ledger, run) is None

    submitted = _append(ledger, "job-submitted", run, SUBMITTED)
    row = _row(ledger, run)
    assert row == _submitted_row(run, submitted)

    scheduled = _append(ledger, "job-scheduled", run, SCHEDULED)
    row = {**row, "status": "scheduled", "attempts": 1, "attempt": "train-0190-a",
           "node": "gpu-node-7", "gpus": 2, "gpu_product": "NVIDIA-H100-80GB-HBM3",
           "scheduled_at": scheduled.occurred_at, "position": scheduled.position}  # fmt: skip
    assert _row(ledger, run) == row

    started = _append(ledger, "job-started", run, {"attempt": "train-0190-a"})
    row = {**row, "status": "running", "started_at": started.occurred_at,
           "position": started.position}  # fmt: skip
    assert _row(ledger, run) == row

    failed = _append(
        ledger,
        "job-attempt-failed",
        run,
        {"attempt": "train-0190-a", "exit_code": 137, "reason": "OOMKilled"},
    )
    row = {**row, "status": "retrying", "exit_code": 137, "attempt_reason": "OOMKilled",
           "position": failed.position}  # fmt: skip
    assert _row(ledger, run) == row

    again = _append(ledger, "job-scheduled", run, {**SCHEDULED, "attempt": "train-0190-b",
                                                    "node": "gpu-node-9"})  # fmt: skip
    row = {**row, "status": "scheduled", "attempts": 2, "attempt": "train-0190-b",
           "node": "gpu-node-9", "exit_code": None, "attempt_reason": None,
           "scheduled_at": again.occurred_at, "position": again.position}  # fmt: skip
    assert _row(ledger, run) == row

    restarted = _append(ledger, "job-started", run, {"attempt": "train-0190-b"})
    row = {**row, "status": "running", "started_at": restarted.occurred_at,
           "position": restarted.position}  # fmt: skip
    assert _row(ledger, run) == row

    done = _append(ledger, "job-succeeded", run, {"attempt": "train-0190-b"})
    row = {**row, "status": "succeeded", "exit_code": 0, "ended_at": done.occurred_at,
           "position": done.position}  # fmt: skip
    assert _row(ledger, run) == row

    answer = jobqueries.job(ledger, PROJECT, run)
    assert isinstance(answer, JobAnswer)
    sent = answer.model_dump(mode="json")
    assert JobAnswer.model_validate(sent).model_dump(mode="json") == sent
    assert {k: v for k, v in sent.items() if k != "events"} == row
    assert [(e["position"], e["type"]) for e in sent["events"]] == [
        (submitted.position, "job-submitted"),
        (scheduled.position, "job-scheduled"),
        (started.position, "job-started"),
        (failed.position, "job-attempt-failed"),
        (again.position, "job-scheduled"),
        (restarted.position, "job-started"),
        (done.position, "job-succeeded"),
    ]
    assert sent["events"][0]["body"] == submitted.body
    assert sent["events"][0]["occurred_at"] == submitted.occurred_at
    assert sent["events"][0]["actor"] == "executor"

    # An exact retry of the end (same event id) is the same event: nothing new.
    retried = ledger.read(done.position, 1)[0]
    head = ledger.head()
    assert ledger.append([NewEvent(**_new_of(retried))]) == [done.position]
    assert ledger.head() == head


def _new_of(stored: StoredEvent) -> dict[str, Any]:
    """The fields a writer sent for ``stored``: re-sending them is a retry."""
    return {
        "event_id": stored.event_id,
        "type": stored.type,
        "project": stored.project,
        "entity": stored.entity,
        "actor": stored.actor,
        "schema_version": stored.schema_version,
        "occurred_at": stored.occurred_at,
        "body": stored.body,
    }


@pytest.mark.parametrize(
    ("type_", "body", "expected"),
    [
        (
            "job-failed",
            {"reason": "BackoffLimitExceeded", "exit_code": 1, "attempt_reason": "Error"},
            {"status": "failed", "reason": "BackoffLimitExceeded", "exit_code": 1,
             "attempt_reason": "Error"},
        ),
        (
            "job-cancelled",
            {"reason": "asked by ana"},
            {"status": "cancelled", "reason": "asked by ana", "exit_code": None,
             "attempt_reason": None},
        ),
    ],
)  # fmt: skip
def test_a_job_that_failed_or_was_cancelled_says_why(
    ledger: Ledger, type_: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    run = _start_run(ledger)
    _append(ledger, "job-submitted", run, SUBMITTED)
    _append(ledger, "job-scheduled", run, SCHEDULED)
    ended = _append(ledger, type_, run, body)
    row = _row(ledger, run)
    assert row is not None
    assert {k: row[k] for k in expected} == expected
    assert (row["ended_at"], row["position"]) == (ended.occurred_at, ended.position)
    assert (row["node"], row["attempts"]) == ("gpu-node-7", 1)


def test_the_platform_may_report_after_the_run_ended(ledger: Ledger) -> None:
    run = _start_run(ledger)
    _append(ledger, "job-submitted", run, SUBMITTED)
    ended = _appended(ledger, [_event("run-completed", run, {}, by=Author(PROJECT, "tester"))])
    assert ended[0].type == "run-completed"
    _append(ledger, "job-scheduled", run, SCHEDULED)
    _append(ledger, "job-started", run, {"attempt": "train-0190-a"})
    last = _append(ledger, "job-succeeded", run, {"attempt": "train-0190-a", "exit_code": 0})
    row = _row(ledger, run)
    assert row is not None and (row["status"], row["position"]) == ("succeeded", last.position)


def test_a_batch_may_start_a_run_and_submit_its_job(ledger: Ledger) -> None:
    run = run_id(uuid.uuid4())
    stored = _appended(
        ledger,
        [
            _event("run-started", run, {"job": "train"}),
            _event("job-submitted", run, SUBMITTED),
            _event("job-scheduled", run, SCHEDULED),
        ],
    )
    row = _row(ledger, run)
    assert row is not None
    assert (row["status"], row["attempts"], row["submitted_position"], row["position"]) == (
        "scheduled",
        1,
        stored[1].position,
        stored[2].position,
    )


# --- refusals ------------------------------------------------------------------------------


def test_a_job_event_on_an_unknown_run_is_refused(ledger: Ledger) -> None:
    run = run_id(uuid.uuid4())
    refused = _refused(
        ledger,
        [_event("job-submitted", run, SUBMITTED)],
        f"unknown run {run} in project 'test'; expected a run this project started",
    )
    assert (refused.index, refused.field) == (0, "entity")


def test_a_job_event_on_another_projects_run_is_refused(ledger: Ledger) -> None:
    theirs = _start_run(ledger, OTHER)
    _refused(
        ledger,
        [_event("job-submitted", theirs, SUBMITTED)],
        f"unknown run {theirs} in project 'test'",
    )
    # Their own job, submitted by them, is theirs alone.
    other = Author(OTHER, "executor")
    _appended(ledger, [_event("job-submitted", theirs, SUBMITTED, by=other)])
    _refused(
        ledger,
        [_event("job-scheduled", theirs, SCHEDULED)],
        f"unknown run {theirs} in project 'test'",
    )
    assert _row(ledger, theirs, PROJECT) is None
    with pytest.raises(NotFound, match=f"no job of run {theirs} in project 'test'"):
        jobqueries.job(ledger, PROJECT, theirs)
    assert jobqueries.jobs(ledger, PROJECT)["jobs"] == []
    assert [j["run"] for j in jobqueries.jobs(ledger, OTHER)["jobs"]] == [theirs]


@pytest.mark.parametrize(
    "type_",
    ["job-scheduled", "job-started", "job-attempt-failed", "job-succeeded", "job-failed",
     "job-cancelled"],
)  # fmt: skip
def test_a_job_event_before_the_submission_is_refused(ledger: Ledger, type_: str) -> None:
    run = _start_run(ledger)
    bodies = {
        "job-scheduled": SCHEDULED,
        "job-started": {"attempt": "a"},
        "job-attempt-failed": {"attempt": "a"},
        "job-succeeded": {},
        "job-failed": {"reason": "DeadlineExceeded"},
        "job-cancelled": {},
    }
    _refused(
        ledger,
        [_event(type_, run, bodies[type_])],
        f"no job of run {run} was submitted in project 'test'; expected a job-submitted "
        f"event for the run before {type_}",
    )
    # Nor does a submission later in the same batch count.
    _refused(
        ledger,
        [_event(type_, run, bodies[type_]), _event("job-submitted", run, SUBMITTED)],
        "expected a job-submitted event",
    )


def test_a_second_submission_is_refused(ledger: Ledger) -> None:
    run = _start_run(ledger)
    _append(ledger, "job-submitted", run, SUBMITTED)
    _refused(
        ledger,
        [_event("job-submitted", run, {**SUBMITTED, "name": "train-0191"})],
        f"the job of run {run} in project 'test' was already submitted \\(now submitted\\); "
        "expected one job-submitted event per run",
    )
    # In one batch too, and the valid event before it is not written either.
    fresh = _start_run(ledger)
    refused = _refused(
        ledger,
        [
            _event("job-submitted", fresh, SUBMITTED),
            _event("job-scheduled", fresh, SCHEDULED),
            _event("job-submitted", fresh, SUBMITTED),
        ],
        "already submitted",
    )
    assert refused.index == 2
    assert _row(ledger, fresh) is None


def test_a_submission_for_an_ended_run_is_refused(ledger: Ledger) -> None:
    run = _start_run(ledger)
    _appended(ledger, [_event("run-failed", run, {"error_type": "ValueError"},
                              by=Author(PROJECT, "tester"))])  # fmt: skip
    _refused(
        ledger,
        [_event("job-submitted", run, SUBMITTED)],
        f"run {run} in project 'test' has already ended \\(failed\\); expected a running run",
    )


@pytest.mark.parametrize("end", ["job-succeeded", "job-failed", "job-cancelled"])
def test_nothing_follows_the_end_of_a_job(ledger: Ledger, end: str) -> None:
    run = _start_run(ledger)
    _append(ledger, "job-submitted", run, SUBMITTED)
    bodies = {"job-succeeded": {}, "job-failed": {"reason": "Evicted"}, "job-cancelled": {}}
    ended = _append(ledger, end, run, bodies[end])
    status = end.removeprefix("job-")
    for late in (
        _event("job-scheduled", run, SCHEDULED),
        _event("job-started", run, {"attempt": "a"}),
        _event(end, run, bodies[end]),  # the same end again, as a new event
        _event("job-cancelled", run, {}),
    ):
        _refused(
            ledger,
            [late],
            f"the job of run {run} in project 'test' has already ended \\({status}\\); "
            "expected no job event after its end",
        )
    # The same event re-sent (its own event id) is a retry: its position, nothing new.
    assert ledger.append([NewEvent(**_new_of(ended))]) == [ended.position]
    assert ledger.head() == ended.position


# --- rebuild -------------------------------------------------------------------------------


def test_a_rebuild_reproduces_the_jobs(ledger: Ledger) -> None:
    first, second, third = (_start_run(ledger) for _ in range(3))
    for run in (first, second, third):
        _append(ledger, "job-submitted", run, SUBMITTED)
    _append(ledger, "job-scheduled", first, SCHEDULED)
    _append(ledger, "job-attempt-failed", first, {"attempt": "x", "exit_code": 1})
    _append(ledger, "job-scheduled", first, SCHEDULED)
    _append(ledger, "job-succeeded", first, {})
    _append(ledger, "job-cancelled", second, {"reason": "superseded"})
    rows, digest = _rows(ledger), ledger.projection_digest()
    assert len(rows) == 3
    result = ledger.rebuild()
    assert result["digest"] == digest
    assert _rows(ledger) == rows
    with ledger.store.read() as conn:
        tracked = Raw(conn).scalar(
            "SELECT position FROM projection_tracking WHERE name = 'executions'"
        )
    assert tracked == ledger.head()


# --- questions -----------------------------------------------------------------------------


def test_the_jobs_question_lists_newest_first_and_filters(ledger: Ledger) -> None:
    runs = [_start_run(ledger) for _ in range(3)]
    for run in runs:
        _append(ledger, "job-submitted", run, SUBMITTED)
    _append(ledger, "job-scheduled", runs[1], SCHEDULED)
    answer = jobqueries.jobs(ledger, PROJECT)
    assert isinstance(answer, JobsAnswer)
    sent = answer.model_dump(mode="json")
    assert JobsAnswer.model_validate(sent).model_dump(mode="json") == sent
    assert [j["run"] for j in sent["jobs"]] == runs[::-1]
    scheduled = jobqueries.jobs(ledger, PROJECT, status="scheduled")["jobs"]
    assert [j["run"] for j in scheduled] == [runs[1]]
    assert [j["run"] for j in jobqueries.jobs(ledger, PROJECT, limit=2)["jobs"]] == runs[:0:-1]
    with pytest.raises(InvalidInput, match="job status 'done': expected one of submitted"):
        jobqueries.jobs(ledger, PROJECT, status="done")
    with pytest.raises(InvalidInput, match="limit 0: expected 1 to 1000"):
        jobqueries.jobs(ledger, PROJECT, limit=0)


def test_the_sdk_asks_about_jobs(reg: Registry) -> None:
    with reg.run("train") as run:
        reg.flush()
        ledger = reg.ledger
        _append(ledger, "job-submitted", run.id, SUBMITTED)
        _append(ledger, "job-scheduled", run.id, SCHEDULED)
        assert [j["run"] for j in reg.jobs()["jobs"]] == [run.id]
        assert reg.jobs(status="succeeded") == {"jobs": []}
        for given in (run, run.id, run.id.removeprefix("run:")):
            job = reg.job(given)
            assert (job["run"], job["node"], job["status"]) == (run.id, "gpu-node-7", "scheduled")
            assert [e["type"] for e in job["events"]] == ["job-submitted", "job-scheduled"]
    with pytest.raises(NotFound, match="no job of run"):
        reg.job(run_id(uuid.uuid4()))
    with pytest.raises(InvalidInput, match="expected a run id"):
        reg.job("not-a-run")


# --- the model dossier ----------------------------------------------------------------------


def test_the_dossier_says_where_the_model_was_trained(reg: Registry) -> None:
    with reg.run("train") as run:
        reg.flush()
        ledger = reg.ledger
        submitted = _append(ledger, "job-submitted", run.id, SUBMITTED)
        _append(ledger, "job-scheduled", run.id, SCHEDULED)
        _append(ledger, "job-started", run.id, {"attempt": "train-0190-a"})
        model = run.register_model(
            "clf", "1", artifact_uri="s3://m/clf", artifact_digest="sha256:" + "c" * 64
        )
    reg.flush()
    succeeded = _append(ledger, "job-succeeded", run.id, {"attempt": "train-0190-a"})
    dossier = build_model_dossier(ledger, PROJECT, model.id, signing_key(reg))
    execution = dossier.data["execution"]
    assert execution is not None
    assert {k: execution[k] for k in ("run", "executor", "target", "node", "gpus",
                                      "gpu_product", "image", "status", "exit_code",
                                      "spec_digest")} == {
        "run": run.id, "executor": "kubernetes", "target": SUBMITTED["target"],
        "node": "gpu-node-7", "gpus": 2, "gpu_product": "NVIDIA-H100-80GB-HBM3",
        "image": SUBMITTED["image"], "status": "succeeded", "exit_code": 0,
        "spec_digest": SUBMITTED["spec_digest"],
    }  # fmt: skip
    key_events = {e["position"]: e["type"] for e in dossier.data["key_events"]}
    assert key_events[submitted.position] == "job-submitted"
    assert key_events[succeeded.position] == "job-succeeded"
    for page in (dossier.html, dossier.markdown):
        assert "Where it was trained" in page
        for shown in ("gpu-node-7", "NVIDIA-H100-80GB-HBM3", SUBMITTED["spec_digest"],
                      SUBMITTED["image"], SUBMITTED["target"], "succeeded"):  # fmt: skip
            assert shown in page, shown
    assert "2 \N{MULTIPLICATION SIGN} NVIDIA-H100-80GB-HBM3" in dossier.html


def test_a_dossier_without_a_job_says_nothing_of_one(reg: Registry) -> None:
    with reg.run("train") as run:
        model = run.register_model(
            "clf", "1", artifact_uri="s3://m/clf", artifact_digest="sha256:" + "c" * 64
        )
    dossier = build_model_dossier(reg.ledger, PROJECT, model.id, signing_key(reg))
    assert dossier.data["execution"] is None
    assert "Where it was trained" not in dossier.html + dossier.markdown


# --- over HTTP -----------------------------------------------------------------------------


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _wire(type_: str, run: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": type_, "entity": run, "body": body}


def test_the_jobs_routes(store_server: ApiServer) -> None:
    alpha, beta = f"alpha-{uuid.uuid4().hex[:6]}", f"beta-{uuid.uuid4().hex[:6]}"
    writer = store_server.key(alpha, "writer")
    viewer = store_server.key(alpha, "viewer")
    outsider = store_server.key(beta, "admin")
    with store_server.client(writer) as w:
        run = _ok(w.post(f"/projects/{alpha}/runs", json={"job": "train"}), 201)["id"]
        batch = [_wire("job-submitted", run, SUBMITTED), _wire("job-scheduled", run, SCHEDULED)]
        positions = _ok(w.post(f"/projects/{alpha}/events", json={"events": batch}))["positions"]
        assert len(positions) == 2
        refused = w.post(
            f"/projects/{alpha}/events", json={"events": [_wire("job-submitted", run, SUBMITTED)]}
        )
        assert refused.status_code == 422, refused.text
        assert "already submitted" in refused.json()["detail"]
    with store_server.client(viewer) as v:
        listed = _ok(v.get(f"/projects/{alpha}/jobs"))
        assert [(j["run"], j["status"], j["node"]) for j in listed["jobs"]] == [
            (run, "scheduled", "gpu-node-7")
        ]
        assert listed["jobs"][0]["submitted_position"] == positions[0]
        assert _ok(v.get(f"/projects/{alpha}/jobs", params={"status": "failed"})) == {"jobs": []}
        assert _ok(v.get(f"/projects/{alpha}/jobs", params={"limit": 1}))["jobs"] == listed["jobs"]
        assert v.get(f"/projects/{alpha}/jobs", params={"status": "done"}).status_code == 422
        assert v.get(f"/projects/{alpha}/jobs", params={"limit": 0}).status_code == 422
        for given in (run, run.removeprefix("run:")):
            job = _ok(v.get(f"/projects/{alpha}/jobs/{given}"))
            assert {k: v_ for k, v_ in job.items() if k != "events"} == listed["jobs"][0]
            assert [(e["position"], e["type"]) for e in job["events"]] == [
                (positions[0], "job-submitted"),
                (positions[1], "job-scheduled"),
            ]
        missing = v.get(f"/projects/{alpha}/jobs/{uuid.uuid4()}")
        assert missing.status_code == 404 and "no job of run" in missing.json()["detail"]
        assert v.get(f"/projects/{alpha}/jobs/not-a-run").status_code == 400
    with store_server.client(outsider) as o:
        # Another project's key: its own project has no such job, and alpha's is closed.
        hidden = o.get(f"/projects/{beta}/jobs/{run}")
        assert hidden.status_code == 404, hidden.text
        assert hidden.json()["detail"].startswith(f"no job of run {run} in project '{beta}'")
        assert _ok(o.get(f"/projects/{beta}/jobs")) == {"jobs": []}
        assert o.get(f"/projects/{alpha}/jobs/{run}").status_code == 403
        assert o.get(f"/projects/{alpha}/jobs").status_code == 403
    with registry.connect(store_server.url, project=alpha, api_key=viewer) as remote:
        assert remote.jobs()["jobs"] == listed["jobs"]
        assert remote.job(run)["events"][1]["body"]["node"] == "gpu-node-7"
        with pytest.raises(NotFound):
            remote.job(run_id(uuid.uuid4()))


# --- migration ---------------------------------------------------------------------------------


def _back_to_0005(url: str) -> None:
    """Make the database at ``url`` what revision 0005 left: no executions table, no
    tracking of it (its events were appended before it existed), no index of the
    lineage nodes' positions (revision 0007), no prediction filters (0008), no web
    sessions (0009) and no predictions per day (0010)."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE web_sessions"))
            conn.execute(text("DROP TABLE prediction_days"))
            conn.execute(text("DROP TABLE prediction_filters"))
            conn.execute(text("DROP TABLE prediction_filter_state"))
            conn.execute(text("DROP INDEX ix_lineage_nodes_position"))
            conn.execute(text("DROP TABLE run_executions"))
            conn.execute(text("DELETE FROM projection_tracking WHERE name = 'executions'"))
            conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    finally:
        engine.dispose()


def _tracked(url: str) -> int | None:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT position FROM projection_tracking WHERE name = 'executions'")
            ).scalar()
    finally:
        engine.dispose()


def test_job_events_from_before_0006_are_projected_after_it(store_url: str) -> None:
    """A log at 0005 holding job events gets, at 0006, a projection that replays them
    with the next append; one without job events starts at the head."""
    ledger = open_ledger(store_url)
    try:
        run = _start_run(ledger)
        _appended(ledger, [_event("job-submitted", run, SUBMITTED),
                           _event("job-scheduled", run, SCHEDULED)])  # fmt: skip
        expected, head = _row(ledger, run), ledger.head()
    finally:
        ledger.close()
    _back_to_0005(store_url)
    ledger = open_ledger(store_url)  # migrates to 0006
    try:
        assert _tracked(store_url) is None  # to be replayed from the start
        started = _append(ledger, "job-started", run, {"attempt": "train-0190-a"})
        assert started.position == head + 1
        assert _row(ledger, run) == {**(expected or {}), "status": "running",
                                     "started_at": started.occurred_at,
                                     "position": started.position}  # fmt: skip
        assert _tracked(store_url) == started.position
        digest = ledger.projection_digest()
        assert ledger.rebuild()["digest"] == digest
    finally:
        ledger.close()


def test_a_log_without_job_events_starts_its_executions_at_the_head(store_url: str) -> None:
    ledger = open_ledger(store_url)
    try:
        _start_run(ledger)
        head = ledger.head()
    finally:
        ledger.close()
    _back_to_0005(store_url)
    open_ledger(store_url).close()  # migrates to 0006
    assert _tracked(store_url) == head
