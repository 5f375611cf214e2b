"""Projects are isolated: references are checked against the writing project, a link
across projects needs a grant, answers withhold (and count) what the asker cannot read,
and event ids are the idempotency keys of one project, compared by content.

Both stores. Every write a test makes is checked in the log: refused batches leave the
head where it was, accepted ones append the event the test expects.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry import grants
from registry.errors import Conflict, EventRejected, NotFound
from registry.events import NewEvent, make_event
from registry.ids import run_id
from registry.ledger import Ledger
from registry.sdk import DatasetVersion, Registry
from tests.support.helpers import connected


@pytest.fixture
def alpha(store_url: str, isolated_env: Path) -> Iterator[Registry]:
    """Project ``alpha``'s connection, as ``ann``."""
    yield from connected(store_url, project="alpha", actor="ann")


@pytest.fixture
def beta(store_url: str, isolated_env: Path) -> Iterator[Registry]:
    """Project ``beta``'s connection, as ``bob``."""
    yield from connected(store_url, project="beta", actor="bob")


def _dataset(reg: Registry, name: str, **kw: Any) -> DatasetVersion:
    return reg.register_dataset(
        name, "1", uri=f"s3://{reg.project}/{name}", digest=f"sha256:{name}", records=["r"], **kw
    )


def _beta_run(beta: Registry) -> str:
    with beta.run("prep") as run:
        pass
    return run.id


def _event(kind: str, project: str, entity: str, body: dict[str, Any], **kw: Any) -> NewEvent:
    return make_event(kind, project=project, entity=entity, actor="mallory", body=body, **kw)


def _refused(ledger: Ledger, event: NewEvent, field: str) -> EventRejected:
    head = ledger.head()
    with pytest.raises(EventRejected) as caught:
        ledger.append([event])
    assert caught.value.field == field
    assert ledger.head() == head, "a refused batch appended nothing"
    return caught.value


# --- references --------------------------------------------------------------------------


def test_a_run_of_another_project_is_unknown_to_every_run_event(
    ledger: Ledger, alpha: Registry, beta: Registry
) -> None:
    """alpha's writer cannot log params, inputs, metrics or an end on beta's run; beta
    still ends its own run afterwards."""
    mine = _dataset(alpha, "raw")
    with beta.run("prep", inputs=[]) as run:
        run.flush()
        for kind, body in (
            ("run-params-logged", {"params": {"lr": 1}}),
            ("run-inputs-used", {"inputs": [mine.id]}),
            ("run-metrics-logged", {"metrics": [{"key": "acc", "value": 0.1}]}),
            ("run-failed", {"error_type": "Sabotage"}),
            ("run-completed", {}),
        ):
            error = _refused(ledger, _event(kind, "alpha", run.id, body), "entity")
            assert "unknown run" in error.message and "alpha" in error.message
    ended = ledger.last_event()
    assert ended is not None and (ended.type, ended.entity, ended.project) == (
        "run-completed",
        run.id,
        "beta",
    )


def test_references_to_another_projects_run_are_refused(
    ledger: Ledger, alpha: Registry, beta: Registry
) -> None:
    theirs = _beta_run(beta)
    cases = [
        (
            "dataset-version-registered",
            "dataset:alpha/out@1",
            {"name": "out", "version": "1", "uri": "s3://x", "digest": "sha256:0",
             "produced_by": theirs},
            "body.produced_by",
        ),
        (
            "model-version-registered",
            "model:alpha/clf@1",
            {"name": "clf", "version": "1", "run": theirs, "artifact_uri": "s3://m",
             "artifact_digest": "sha256:aa"},
            "body.run",
        ),
        (
            "run-started",
            run_id(uuid.uuid4()),
            {"job": "child", "parent_run": theirs},
            "body.parent_run",
        ),
    ]  # fmt: skip
    for kind, entity, body, field in cases:
        _refused(ledger, _event(kind, "alpha", entity, body), field)
    # Starting a run under an id another project already uses is refused as taken.
    _refused(ledger, _event("run-started", "alpha", theirs, {"job": "x"}), "entity")


def test_another_projects_versions_need_a_grant_and_a_revocation_ends_it(
    ledger: Ledger, alpha: Registry, beta: Registry
) -> None:
    """Without a grant beta's dataset is no input or parent of alpha's; with beta's grant
    it is; after the revocation it is refused again (what was linked stays)."""
    theirs = _dataset(beta, "shared")
    with alpha.run("train") as run:
        run.flush()  # the run is started in the log (the SDK buffers run events)
        error = _refused(
            ledger, _event("run-inputs-used", "alpha", run.id, {"inputs": [theirs.id]}),
            "body.inputs.0",
        )  # fmt: skip
        assert "grants project 'alpha' no access" in error.message
        derived = {"name": "d", "version": "1", "uri": "s3://d", "digest": "sha256:d",
                   "derived_from": [theirs.id]}  # fmt: skip
        _refused(
            ledger,
            _event("dataset-version-registered", "alpha", "dataset:alpha/d@1", derived),
            "body.derived_from.0",
        )

        position = grants.grant(ledger, "beta", "alpha", actor="bob-admin", reason="shared data")
        granted = ledger.last_event()
        assert granted is not None and granted.position == position
        assert (granted.type, granted.project, granted.entity, granted.body) == (
            "project-access-granted",
            "beta",
            "project:beta",
            {"grantee": "alpha", "reason": "shared data"},
        )
        run.use(theirs)
        run.flush()
        used = ledger.last_event()
        assert used is not None and (used.type, used.body["inputs"]) == (
            "run-inputs-used",
            [theirs.id],
        )

        grants.revoke(ledger, "beta", "alpha", actor="bob-admin")
        revoked = ledger.last_event()
        assert revoked is not None and revoked.type == "project-access-revoked"
        _refused(
            ledger,
            _event("dataset-version-registered", "alpha", "dataset:alpha/d@1", derived),
            "body.derived_from.0",
        )
    with ledger.store.read() as conn:
        from registry.store.raw import Raw

        listed = grants.grants(Raw(conn), "alpha")
    assert [(g["project"], g["grantee"], g["revoked_position"]) for g in listed] == [
        ("beta", "alpha", revoked.position)
    ]


def test_a_grant_is_made_once_revoked_once_and_never_to_oneself(
    ledger: Ledger, alpha: Registry
) -> None:
    for body, field in (({"grantee": "alpha"}, "body.grantee"),):
        _refused(ledger, _event("project-access-granted", "alpha", "project:alpha", body), field)
    _refused(
        ledger,
        _event("project-access-revoked", "alpha", "project:alpha", {"grantee": "beta"}),
        "body.grantee",
    )
    grants.grant(ledger, "alpha", "beta", actor="admin")
    _refused(
        ledger,
        _event("project-access-granted", "alpha", "project:alpha", {"grantee": "beta"}),
        "body.grantee",
    )


def test_a_deployment_serves_only_its_own_projects_models(
    ledger: Ledger, alpha: Registry, beta: Registry
) -> None:
    theirs = beta.register_model("clf", "1", artifact_uri="s3://m", artifact_digest="sha256:b")
    body = {"endpoint": "https://x", "served": [{"model": theirs.id, "traffic": 100}]}
    error = _refused(
        ledger,
        _event("deployment-configured", "alpha", "deployment:alpha/api", body),
        "body.served.0.model",
    )
    assert "another project" in error.message


# --- answers -----------------------------------------------------------------------------


def test_answers_withhold_and_count_nodes_of_projects_the_asker_cannot_read(
    ledger: Ledger, alpha: Registry, beta: Registry
) -> None:
    """beta grants alpha its dataset; alpha trains on it. alpha sees beta's dataset while
    the grant stands; beta never sees alpha's run and model (withheld, counted)."""
    theirs = _dataset(beta, "shared")
    grants.grant(ledger, "beta", "alpha", actor="bob-admin")
    with alpha.run("train", inputs=[theirs]) as run:
        model = run.register_model("clf", artifact_uri="s3://m", artifact_digest="sha256:a")
    newest = ledger.last_event()
    assert newest is not None and (newest.type, newest.project) == ("run-completed", "alpha")

    seen = alpha.trained_on(model)
    assert [d["dataset"] for d in seen["datasets"]] == [theirs.id]
    assert "withheld" not in seen

    below = beta.downstream(theirs)
    assert below["runs"] == [] and below["models"] == []
    assert below["withheld"] == 2  # alpha's run and model
    around = beta.lineage(theirs.id, depth=5)
    assert [n["id"] for n in around["nodes"]] == [theirs.id]
    assert around["edges"] == [] and around["withheld"] == 1  # the walk stops at alpha's run
    with pytest.raises(NotFound):
        beta.trained_on(model.id)
    with pytest.raises(NotFound):
        beta.lineage(run.id)

    grants.revoke(ledger, "beta", "alpha", actor="bob-admin")
    hidden = alpha.trained_on(model)
    assert hidden["datasets"] == [] and hidden["withheld"] == 1
    with pytest.raises(NotFound):
        alpha.downstream(theirs.id)


# --- idempotency -------------------------------------------------------------------------


def _started(project: str, event_id: str, job: str = "train", run: str | None = None) -> NewEvent:
    return make_event(
        "run-started",
        project=project,
        entity=run or run_id(uuid.uuid4()),
        actor="ann",
        body={"job": job},
        event_id=event_id,
        occurred_at="2026-12-01T00:00:00Z",
    )


def test_the_same_event_id_with_the_same_content_is_a_retry(ledger: Ledger) -> None:
    event = _started("alpha", str(uuid.uuid4()))
    [first] = ledger.append([event])
    retried = event.model_copy(update={"trace_id": "0" * 32})  # another request's trace
    assert ledger.append([retried]) == [first]
    assert ledger.head() == first
    assert ledger.append([event, event]) == [first, first]


def test_the_same_event_id_with_other_content_is_a_conflict(ledger: Ledger) -> None:
    event_id = str(uuid.uuid4())
    event = _started("alpha", event_id)
    [first] = ledger.append([event])
    other = _started("alpha", event_id, job="other", run=event.entity)
    with pytest.raises(Conflict, match="other content"):
        ledger.append([other])
    assert ledger.head() == first
    # Within one batch too, and the batch's other event is not written either.
    fresh_id = str(uuid.uuid4())
    a, b = _started("alpha", fresh_id), _started("alpha", fresh_id, job="b")
    with pytest.raises(Conflict):
        ledger.append([a, b])
    assert ledger.head() == first
    newest = ledger.last_event()
    assert newest is not None and newest.body["job"] == "train"


def test_event_ids_are_scoped_by_project(ledger: Ledger) -> None:
    """beta sending alpha's event id gets an event of its own: no position of alpha's,
    no refusal that would reveal the id, and alpha's retry still finds its own."""
    event_id = str(uuid.uuid4())
    theirs = _started("alpha", event_id)
    [alpha_position] = ledger.append([theirs])
    mine = _started("beta", event_id, job="other")
    [beta_position] = ledger.append([mine])
    assert beta_position == alpha_position + 1
    stored = ledger.read(alpha_position)
    assert [(e.project, e.event_id, e.body["job"]) for e in stored] == [
        ("alpha", event_id, "train"),
        ("beta", event_id, "other"),
    ]
    assert ledger.append([theirs]) == [alpha_position]


def test_a_subject_data_retry_stores_one_vault_entry_per_project(
    ledger: Ledger, alpha: Registry, beta: Registry
) -> None:
    entry = alpha.store_subject_data("s-1", {"email": "a@example.org"})
    stored = ledger.last_event()
    assert stored is not None and (stored.type, stored.project) == ("subject-data-stored", "alpha")
    assert [e["attributes"] for e in alpha.subject_data("s-1")] == [{"email": "a@example.org"}]
    assert entry == stored.event_id
    assert beta.subject_data("s-1") == []


def test_an_erasure_flags_a_granted_projects_model_in_that_project(
    ledger: Ledger, alpha: Registry, beta: Registry
) -> None:
    """beta's data (granted) trained alpha's model: erasing beta's subject flags alpha's
    model under alpha, where alpha's readers and remediation find it."""
    theirs = beta.register_dataset(
        "people", "1", uri="s3://b/p", digest="sha256:p", records=["r-1"], subjects=["s-1"]
    )
    grants.grant(ledger, "beta", "alpha", actor="bob-admin")
    with alpha.run("train", inputs=[theirs]) as run:
        model = run.register_model("clf", artifact_uri="s3://m", artifact_digest="sha256:a")
    beta.erase("s-1")
    erased = [e for e in ledger.read(0) if e.type == "subject-erased"]
    assert len(erased) == 1 and erased[0].project == "beta"
    assert [flag["model"] for flag in erased[0].body["models"]] == [model.id]
    assert [(r["model"], r["status"]) for r in alpha.remediations()] == [
        (model.id, "retrain-required")
    ]
    assert beta.remediations() == []


def test_grants_from_the_command_line(
    store_url: str,
    ledger: Ledger,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from registry.cli import main

    monkeypatch.setenv("MLLEDGER_ACTOR", "bob-admin")
    assert (
        main(
            ["grants", "add", "alpha", "--project", "beta", "--reason", "pilot", "--db", store_url]
        )
        == 0
    )
    assert "beta granted alpha access" in capsys.readouterr().out
    granted = ledger.last_event()
    assert granted is not None
    assert (granted.type, granted.actor, granted.body) == (
        "project-access-granted",
        "bob-admin",
        {"grantee": "alpha", "reason": "pilot"},
    )
    assert main(["grants", "add", "alpha", "--project", "beta", "--db", store_url]) == 2
    assert "already has access" in capsys.readouterr().err
    assert ledger.last_event() == granted
    assert main(["grants", "list", "--project", "alpha", "--json", "--db", store_url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(g["project"], g["grantee"], g["revoked_position"]) for g in listed] == [
        ("beta", "alpha", None)
    ]
    assert main(["grants", "revoke", "alpha", "--project", "beta", "--db", store_url]) == 0
    revoked = ledger.last_event()
    assert revoked is not None and revoked.type == "project-access-revoked"
