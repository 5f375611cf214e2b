"""The local executor: jobs as supervised processes, recorded in the ledger.

Each test submits a real job (a Python process) through the dispatcher on both
stores, waits for what the supervisor records, and checks the run's events in the
log: what was asked (``job-submitted``), what happened (scheduled, started, ended
with an exit code and reason), and that the SDK inside the job recorded into the
same run.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import registry
from executors.dispatch import Dispatcher, spec_digest
from executors.local import LocalExecutor
from executors.spec import JobSpec, object_name
from registry import Registry
from registry.cli import main
from registry.errors import InvalidInput
from tests.support.apiserver import ApiServer
from tests.support.jobs import events_of, types_of, wait_for_event

SCRIPT = textwrap.dedent(
    """
    import registry
    reg = registry.connect()
    with reg.job_run() as run:
        run.log_params({"lr": 0.1})
        run.log_metrics({"accuracy": 0.93})
        run.register_model("local-model", artifact_uri="file:///m.pkl", artifact_digest="sha256:ab")
    print("trained")
    """
)


@pytest.fixture
def dispatcher(reg: Registry, store_url: str, tmp_path: Path) -> Iterator[Dispatcher]:
    executor = LocalExecutor(tmp_path / "jobs")
    yield Dispatcher(reg, executor, ledger_url=store_url)
    for made in executor.made():
        executor.remove(made.run)


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def until_ended(dispatcher: Dispatcher, run: str, timeout: float = 60) -> dict[str, Any]:
    dispatcher.wait(run, timeout=timeout)
    job = dispatcher.registry.job(run)
    assert job["status"] in ("succeeded", "failed", "cancelled"), job
    return job


def test_a_job_trains_into_its_run_and_records_where_it_ran(
    reg: Registry, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    spec = JobSpec(job="train", command=python(SCRIPT), params={"epochs": 3}, workdir=str(tmp_path))
    submitted = dispatcher.submit(spec)
    # What was asked is in the log at once: the run and its job-submitted.
    asked = events_of(reg, submitted.run)
    assert [e.type for e in asked][:2] == ["run-started", "job-submitted"]
    body = asked[1].body
    assert body["executor"] == "local" and body["name"] == object_name(submitted.run)
    assert body["spec_digest"] == submitted.spec_digest
    rendered = json.loads((tmp_path / "jobs" / submitted.name / "spec.json").read_text())
    assert spec_digest(rendered) == submitted.spec_digest
    assert asked[0].body["tags"]["mlledger.executor"] == "local"

    job = until_ended(dispatcher, submitted.run)
    assert job["status"] == "succeeded" and job["exit_code"] == 0
    assert job["node"] and job["attempts"] == 1
    types = types_of(reg, submitted.run)
    assert types[:4] == ["run-started", "job-submitted", "job-scheduled", "job-started"]
    assert types[-2:] == ["job-succeeded", "run-completed"]
    # The SDK inside the job recorded into the same run, between start and end.
    for recorded in ("run-params-logged", "run-metrics-logged", "model-version-registered"):
        assert recorded in types
    assert types.count("run-started") == 1
    store = reg.ledger.store
    with store.read() as conn:
        row = conn.exec_driver_sql("SELECT run FROM cat_models WHERE name = 'local-model'").one()
    assert row[0] == submitted.run
    logs = list(dispatcher.executor.logs(submitted.run))
    assert "trained" in logs


def test_recording_again_appends_nothing(reg: Registry, dispatcher: Dispatcher) -> None:
    submitted = dispatcher.submit(JobSpec(job="noop", command=python("pass")))
    until_ended(dispatcher, submitted.run)
    before = reg.ledger.last_event()
    assert before is not None
    # A new dispatcher (a restarted watcher) reports every transition again.
    again = Dispatcher(reg, dispatcher.executor, ledger_url="unused")
    again.record(dispatcher.executor.observe(submitted.run))
    after = reg.ledger.last_event()
    assert after is not None and after.position == before.position


def test_a_failing_job_is_retried_then_fails_with_its_exit_code(
    reg: Registry, dispatcher: Dispatcher
) -> None:
    spec = JobSpec(job="flaky", command=python("import sys; sys.exit(3)"), retries=1)
    submitted = dispatcher.submit(spec)
    job = until_ended(dispatcher, submitted.run)
    assert job["status"] == "failed"
    assert (job["reason"], job["exit_code"], job["attempt_reason"]) == (
        "BackoffLimitExceeded",
        3,
        "Error",
    )
    assert job["attempts"] == 2
    events = events_of(reg, submitted.run)
    types = [e.type for e in events]
    assert types.count("job-attempt-failed") == 2
    assert types[-2:] == ["job-failed", "run-failed"]
    assert events[-1].body == {"error_type": "job.Error"}


def test_a_deadline_stops_the_job(reg: Registry, dispatcher: Dispatcher) -> None:
    spec = JobSpec(job="slow", command=python("import time; time.sleep(60)"), deadline_s=1)
    started = time.monotonic()
    submitted = dispatcher.submit(spec)
    job = until_ended(dispatcher, submitted.run)
    assert time.monotonic() - started < 30
    assert (job["status"], job["reason"]) == ("failed", "DeadlineExceeded")
    assert types_of(reg, submitted.run)[-2:] == ["job-failed", "run-failed"]


def test_cancel_stops_the_job_and_records_it(reg: Registry, dispatcher: Dispatcher) -> None:
    submitted = dispatcher.submit(
        JobSpec(job="long", command=python("import time; time.sleep(60)"))
    )
    wait_for_event(reg, dispatcher, submitted.run, "job-started")
    assert dispatcher.cancel(submitted.run, reason="not needed") is True
    events = events_of(reg, submitted.run)
    assert [e.type for e in events][-2:] == ["job-cancelled", "run-failed"]
    assert events[-2].body == {"reason": "not needed"}
    assert events[-1].body == {"error_type": "mlledger.JobCancelled"}
    assert reg.job(submitted.run)["status"] == "cancelled"
    time.sleep(1)
    # Nothing after the end: the supervisor stopped without recording a failure.
    dispatcher.sync(submitted.run)
    assert [e.type for e in events_of(reg, submitted.run)] == [e.type for e in events]
    assert dispatcher.cancel(submitted.run) is False


def test_a_gpu_request_is_refused_locally_and_nothing_is_written(
    reg: Registry, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    before = reg.ledger.last_event()
    with pytest.raises(InvalidInput, match="reserves no GPUs"):
        dispatcher.submit(JobSpec(job="gpu", command=("true",), gpus=1))
    assert reg.ledger.last_event() == before
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())


def test_recover_removes_what_never_reached_the_ledger_and_releases_the_rest(
    reg: Registry, dispatcher: Dispatcher
) -> None:
    executor = dispatcher.executor
    # A crash after the objects were made, before the ledger heard of them.
    orphan = "run:0b6f0c0e-0000-4000-8000-000000000001"
    context = dispatcher.context(orphan)
    executor.create(executor.render(JobSpec(job="lost", command=python("pass")), context), context)
    # A crash after job-submitted was appended, before the job was released.
    held = JobSpec(job="held", command=python("pass"))
    release = executor.release
    executor.release = lambda run, context: None  # type: ignore[method-assign]
    submitted = dispatcher.submit(held)
    executor.release = release  # type: ignore[method-assign]
    assert "job-scheduled" not in types_of(reg, submitted.run)

    done = dispatcher.recover()
    assert done == {"removed": [orphan], "released": [submitted.run]}
    assert not executor.folder(orphan).exists()
    assert until_ended(dispatcher, submitted.run)["status"] == "succeeded"
    assert types_of(reg, orphan) == []


def test_the_jobs_command_submits_waits_and_shows_the_job(
    reg: Registry, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--db", store_url, "--project", reg.project, "--jobs-dir", str(tmp_path / "jobs")]
    code = "print('hello from the job')"
    status = main(
        ["jobs", "submit", *common, "--wait", "--json", "hello", "--", sys.executable, "-c", code]
    )
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["job"]["status"] == "succeeded"
    run = out["run"]
    assert types_of(reg, run)[-2:] == ["job-succeeded", "run-completed"]
    assert main(["jobs", "status", *common, run]) == 0
    text = capsys.readouterr().out
    assert "succeeded" in text and "job-succeeded" in text
    assert main(["jobs", "logs", *common, run]) == 0
    assert "hello from the job" in capsys.readouterr().out
    assert main(["jobs", "list", *common, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [j["run"] for j in listed["jobs"]] == [run]


def test_the_jobs_command_refuses_bad_input_in_one_line(
    store_url: str, reg: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--db", store_url, "--project", reg.project]
    assert main(["jobs", "submit", *common, "nothing-to-run"]) == 2
    assert "no command to run" in capsys.readouterr().err
    assert main(["jobs", "submit", *common, "--memory", "lots", "j", "--", "true"]) == 2
    assert "memory" in capsys.readouterr().err
    assert main(["jobs", "status", *common, "not-a-run"]) == 2
    assert "expected a run id" in capsys.readouterr().err


def test_a_job_reaches_a_server_ledger_over_http(api_server: ApiServer, tmp_path: Path) -> None:
    """The submitter and the job both talk to ``mlledger serve``: the job gets the
    server's URL and the submitter's API key, and records into the same run."""
    key = api_server.key("jobs-http", "admin")
    with registry.connect(api_server.url, project="jobs-http", actor="ana", api_key=key) as reg:
        dispatcher = Dispatcher(
            reg, LocalExecutor(tmp_path / "jobs"), ledger_url=api_server.url, api_key=key
        )
        spec = JobSpec(job="train", command=python(SCRIPT), workdir=str(tmp_path))
        submitted = dispatcher.submit(spec)
        job = until_ended(dispatcher, submitted.run)
        assert job["status"] == "succeeded"
        events = reg.job(submitted.run)["events"]
        assert [e["type"] for e in events] == [
            "job-submitted",
            "job-scheduled",
            "job-started",
            "job-succeeded",
        ]
        # The job's SDK, over HTTP with the key it was given, trained into the run.
        assert reg.trained_on("model:jobs-http/local-model@1")["runs"][0]["run"] == submitted.run
    # The key never reached the job's folder.
    folder = tmp_path / "jobs" / submitted.name
    assert all(key not in p.read_text(errors="replace") for p in folder.iterdir() if p.is_file())
