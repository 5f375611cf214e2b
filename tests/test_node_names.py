"""OpenLineage node ids and ``@latest`` wherever a question takes a node: the SDK in
process, the CLI, and the HTTP API (on SQLite and PostgreSQL).

``dataset:<namespace>:<name>`` names that dataset's newest version in the asking
project, ``job:<namespace>:<name>`` the job's newest run, as Marquez names them;
``NAME@latest`` the newest version of a dataset or model, unless a version is called
``latest``. Another project's nodes stay unknown, whichever way they are named.

The other verbs that take a model version, a run or a model take them too: the
``job`` question (``job:<namespace>:<name>``: that job's newest run), ``aliases``
(``dataset:<namespace>:model/<name>``), ``set_alias``, the model dossier
(``report model``) and the models an erasure retains; an id that cannot name what a
verb takes is refused, saying what was given and what was expected.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lineage import openlineage as ol
from registry import writes
from registry.cli import main
from registry.errors import FieldError, InvalidNodeId, NotFound
from registry.ids import run_id
from registry.ledger import Ledger
from registry.sdk import Registry, connect
from tests.support.apiserver import ApiServer

P = "names"
OTHER = "secrets"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def _copy(run: str, event_type: str, at: str) -> dict[str, Any]:
    """Job ``etl``/``copy`` reading a table and writing a file."""
    return {
        "eventType": event_type,
        "eventTime": at,
        "producer": PRODUCER,
        "schemaURL": SCHEMA,
        "run": {"runId": run},
        "job": {"namespace": "etl", "name": "copy"},
        "inputs": [{"namespace": "postgres://db:5432", "name": "shop.orders"}],
        "outputs": [{"namespace": "s3://lake", "name": "orders/daily"}],
    }


def _populate(reg: Registry) -> dict[str, Any]:
    """Two versions of a dataset and of a model, two runs of an OpenLineage job."""
    first = reg.register_dataset("orders", "1", uri="s3://d/1", digest="sha256:" + "1" * 64)
    second = reg.register_dataset("orders", "2", uri="s3://d/2", digest="sha256:" + "2" * 64)
    models = []
    for version, data in (("1", first), ("2", second)):
        with reg.run("train", inputs=[data]) as run:
            models.append(
                run.register_model(
                    "clf",
                    version=version,
                    artifact_uri=f"s3://m/{version}",
                    artifact_digest="sha256:" + "a" * 64,
                )
            )
    reg.deploy("api", endpoint="http://127.0.0.1/score", served={models[-1]: 100})
    runs = [str(uuid.uuid4()), str(uuid.uuid4())]
    ledger = reg.ledger
    head = ledger.head()
    for run, day in zip(runs, ("01", "02"), strict=True):
        for event_type in ("START", "COMPLETE"):
            doc = _copy(run, event_type, f"2026-11-{day}T10:00:00Z")
            ledger.append(ol.to_events(ledger, P, "writer", doc), first_wins=True)
    appended = ledger.read(head + 1)
    assert [e.entity for e in appended if e.type == "run-started"] == [f"run:{r}" for r in runs]
    return {"datasets": [first, second], "models": models, "runs": runs}


SUBMITTED = {
    "executor": "local",
    "target": "localhost",
    "name": "score-1",
    "image": None,
    "command": ["python", "-m", "score"],
    "resources": {"cpu": None, "memory": None, "gpus": 0, "gpu_product": None},
    "retries": 0,
    "deadline_s": None,
    "spec_digest": "sha256:" + "7" * 64,
}


def _more(reg: Registry, ledger: Ledger) -> dict[str, Any]:
    """Two data subjects' records in a dataset version that trained both versions of
    model ``risk``, and a run of job ``score`` with its job submitted; written through
    ``reg`` (perhaps over HTTP: the server seals the records), read back from ``ledger``."""
    head = ledger.head()
    people = reg.register_dataset(
        "people",
        "1",
        uri="s3://p/1",
        digest="sha256:" + "6" * 64,
        records=["r1", "r2"],
        subjects=["ann", "bob"],
    )
    risks, fits = [], []
    for version in ("1", "2"):
        with reg.run("fit", inputs=[people]) as run:
            fits.append(run.id)
            risks.append(
                run.register_model(
                    "risk",
                    version=version,
                    artifact_uri=f"s3://r/{version}",
                    artifact_digest="sha256:" + "b" * 64,
                )
            )
    scoring = run_id(uuid.uuid4())
    started = writes.event(reg, "run-started", scoring, {"job": "score"})
    submitted = writes.event(
        writes.Author(reg.project, "executor"), "job-submitted", scoring, SUBMITTED
    )
    reg.backend.append(reg.project, [started, submitted])
    fitted = [
        (type_, entity)
        for run, model in zip(fits, risks, strict=True)
        for type_, entity in (
            ("run-started", run),
            ("run-inputs-used", run),
            ("model-version-registered", model.id),
            ("run-completed", run),
        )
    ]
    assert [(e.type, e.entity) for e in ledger.read(head + 1)] == [
        ("dataset-version-registered", people.id),
        ("dataset-records-added", people.id),
        *fitted,
        ("run-started", scoring),
        ("job-submitted", scoring),
    ]
    return {"people": people, "risks": risks, "scoring": scoring}


@pytest.fixture
def world(tmp_path: Path, isolated_env: Path) -> Iterator[tuple[Registry, dict[str, Any]]]:
    with connect(f"sqlite:///{tmp_path}/ledger.db", project=P, actor="tester") as reg:
        yield reg, _populate(reg)


def test_latest_names_the_newest_version(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, made = world
    newest = made["datasets"][-1].id
    assert reg.downstream("orders@latest") == reg.downstream("orders@2")
    assert reg.lineage(f"dataset:{P}/orders@latest")["root"] == newest
    assert reg.trained_on("clf@latest") == reg.trained_on("clf@2")
    with pytest.raises(NotFound, match="no dataset 'missing'"):
        reg.downstream("missing@latest")


def test_a_version_called_latest_is_itself(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, _ = world
    head = reg.ledger.head()
    called = reg.register_dataset("orders", "latest", uri="s3://d/x", digest="sha256:" + "3" * 64)
    newer = reg.register_dataset("orders", "3", uri="s3://d/3", digest="sha256:" + "4" * 64)
    assert [(e.type, e.entity) for e in reg.ledger.read(head + 1)] == [
        ("dataset-version-registered", called.id),
        ("dataset-version-registered", newer.id),
    ]
    assert reg.lineage(f"dataset:{P}/orders@latest")["root"] == called.id != newer.id


def test_an_alias_called_latest_is_itself(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, made = world
    oldest = made["models"][0]
    head = reg.ledger.head()
    reg.set_alias(oldest, "latest")
    [moved] = reg.ledger.read(head + 1)
    assert (moved.type, moved.entity, moved.body["alias"]) == (
        "model-alias-moved",
        oldest.id,
        "latest",
    )
    assert reg.trained_on("clf@latest")["model"] == oldest.id


def test_openlineage_ids_name_datasets_and_jobs(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, made = world
    written = reg.lineage("dataset:s3://lake:orders/daily", depth=1)
    assert written["root"].startswith(f"dataset:{P}/orders_daily-")
    newest_run = f"run:{made['runs'][-1]}"
    assert written["root"].endswith(f"@run-{made['runs'][-1].replace('-', '')}")
    job = reg.lineage("job:etl:copy", depth=1)
    assert job["root"] == newest_run
    assert written["root"] in {n["id"] for n in job["nodes"]}
    # The project's own datasets and models, in the project's namespace.
    assert reg.lineage(f"dataset:{P}:orders")["root"] == made["datasets"][-1].id
    assert reg.trained_on(f"dataset:{P}:model/clf") == reg.trained_on("clf@2")
    assert reg.history(f"job:{P}:deployment/api") == reg.history("api")
    with pytest.raises(NotFound, match="no job 'job:etl:nothing'"):
        reg.lineage("job:etl:nothing")


def test_another_projects_nodes_stay_unknown(
    tmp_path: Path, world: tuple[Registry, dict[str, Any]]
) -> None:
    reg, _ = world
    with connect(reg.ledger.store.url, project=OTHER, actor="tester") as other:
        hidden = other.register_dataset("vault", "1", uri="s3://v", digest="sha256:" + "5" * 64)
        # Its OpenLineage name and @latest both miss, as a name that does not exist.
        for name in ("dataset:s3://lake:orders/daily", "job:etl:copy", f"dataset:{P}:orders"):
            with pytest.raises(NotFound):
                other.lineage(name)
    for name in (f"dataset:{OTHER}/vault@latest", f"dataset:{OTHER}:vault", hidden.id):
        with pytest.raises(NotFound):
            reg.lineage(name)
    # A name in a project it cannot read answers as a name that does not exist.
    said = []
    for name in ("vault", "nothing"):
        with pytest.raises(NotFound) as refused:
            reg.lineage(f"dataset:{OTHER}/{name}@latest")
        said.append(str(refused.value).replace(name, "NAME"))
    assert said[0] == said[1]


def test_the_cli_takes_them(
    world: tuple[Registry, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    reg, made = world
    db = reg.ledger.store.url
    status = main(["lineage", "job:etl:copy", "--db", db, "--project", P, "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert status == 0 and answer["root"] == f"run:{made['runs'][-1]}"
    status = main(["downstream", "orders@latest", "--db", db, "--project", P, "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert status == 0 and answer["dataset"] == made["datasets"][-1].id


@pytest.fixture(scope="module")
def server(store_server: ApiServer) -> ApiServer:
    return store_server


def test_the_http_api_takes_them(server: ApiServer) -> None:
    with connect(server.db, project=P, actor="tester") as reg:
        made = _populate(reg)
    with server.client(server.key(P, "viewer")) as http:
        for params, root in (
            ({"node": "job:etl:copy"}, f"run:{made['runs'][-1]}"),
            ({"node": f"dataset:{P}/orders@latest"}, made["datasets"][-1].id),
        ):
            answer = http.get(f"/projects/{P}/questions/lineage", params=params)
            assert answer.status_code == 200, answer.text
            assert answer.json()["root"] == root
        trained = http.get(f"/projects/{P}/questions/trained-on", params={"model": "clf@latest"})
        assert trained.status_code == 200 and trained.json()["model"] == made["models"][-1].id
        missing = http.get(f"/projects/{P}/questions/lineage", params={"node": "job:etl:none"})
        assert missing.status_code == 404
    _every_route_takes_them(server, made)


def _every_route_takes_them(server: ApiServer, made: dict[str, Any]) -> None:
    """The dossier, ``aliases``, the erasure's retained models and the SDK's ``job``
    over HTTP, after ``_populate``."""
    writer = server.key(P, "writer")
    with (
        connect(server.db, project=P, actor="tester") as local,
        connect(server.url, project=P, api_key=writer) as remote,
    ):
        more = _more(remote, local.ledger)
        head = local.ledger.head()
    newest = made["models"][-1].id
    with server.client(server.key(P, "viewer")) as http:
        dossier = http.get(f"/projects/{P}/reports/models/clf@latest", params={"format": "json"})
        assert dossier.status_code == 200, dossier.text
        assert dossier.json()["data"]["model"]["id"] == newest
        named = http.get(
            f"/projects/{P}/questions/aliases", params={"name": f"dataset:{P}:model/clf"}
        )
        assert named.status_code == 200 and named.json()["model"] == "clf"
        refused = http.get(f"/projects/{P}/questions/trained-on", params={"model": "job:etl:copy"})
        assert refused.status_code == 400, refused.text
        problem = refused.json()
        assert problem["type"].endswith(":invalid-node-id")
        assert "is an OpenLineage job id" in problem["detail"]
        assert "expected a model version" in problem["detail"]
    with server.client(server.key(OTHER, "admin")) as outsider:
        # Another project names this one's model as its own, and does not find it.
        for path, params in (
            (f"/projects/{OTHER}/reports/models/clf@latest", {"format": "json"}),
            (f"/projects/{OTHER}/questions/aliases", {"name": f"dataset:{P}:model/clf"}),
            (f"/projects/{OTHER}/questions/trained-on", {"model": f"dataset:{P}:model/clf"}),
        ):
            hidden = outsider.get(path, params=params)
            assert hidden.status_code == 404, hidden.text
    with connect(server.url, project=P, api_key=server.key(P, "viewer")) as remote:
        assert remote.job(f"job:{P}:score")["run"] == more["scoring"]
        with pytest.raises(NotFound):
            remote.job("job:etl:nothing")
        with pytest.raises(NotFound, match=r"it names the deployment .*expected a run"):
            remote.job(f"job:{P}:deployment/api")
    rule = {"justification": "legal hold", "approver": "dpo"}
    with server.client(server.key(P, "dpo")) as dpo:
        wrong = dpo.post(
            f"/projects/{P}/erasures",
            json={"subject": "ann", "retain": [{"model": "job:etl:copy", **rule}]},
        )
        assert wrong.status_code == 422 and "OpenLineage job id" in wrong.text, wrong.text
        many = dpo.post(
            f"/projects/{P}/erasures",
            json={"subject": "ann", "dry_run": True, "retain": [{"model": "*", **rule}] * 1001},
        )
        assert many.status_code == 422 and "retain" in many.text, many.text
        done = dpo.post(
            f"/projects/{P}/erasures",
            json={"subject": "ann", "retain": [{"model": "risk@latest", **rule}], "purge": False},
        )
        assert done.status_code == 200, done.text
    older, newer = (m.id for m in more["risks"])
    with connect(server.db, project=P, actor="tester") as reg:
        appended = reg.ledger.read(head + 1)
    assert [e.type for e in appended] == ["subject-erasure-requested", "subject-erased"]
    flags = {m["model"]: m["status"] for m in appended[-1].body["models"]}
    assert flags == {older: "retrain-required", newer: "retained-with-justification"}
    assert done.json()["models"] == appended[-1].body["models"]


# --- every other verb ------------------------------------------------------------------------


def test_the_job_question_takes_a_job(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, _ = world
    more = _more(reg, reg.ledger)
    job = reg.job(f"job:{P}:score")
    assert (job["run"], job["name"]) == (more["scoring"], "score-1")
    assert reg.job(f"job:{P}:score") == reg.job(more["scoring"])
    # The OpenLineage job's newest run exists, but no job executes it.
    with pytest.raises(NotFound, match="no job of run"):
        reg.job("job:etl:copy")
    with pytest.raises(NotFound, match="no run 'job:etl:nothing'"):
        reg.job("job:etl:nothing")
    with pytest.raises(
        NotFound, match=r"it names the deployment deployment:names/api; expected a run"
    ):
        reg.job(f"job:{P}:deployment/api")
    with pytest.raises(InvalidNodeId, match=r"is an OpenLineage dataset id.*expected a run"):
        reg.job("dataset:s3://lake:orders/daily")


def test_a_kind_of_id_that_cannot_name_the_node_is_refused(
    world: tuple[Registry, dict[str, Any]],
) -> None:
    reg, made = world
    head = reg.ledger.head()
    # A kind of OpenLineage id that never names what is asked for: refused as typed.
    for ask, given, said in (
        (reg.trained_on, "job:etl:copy", "'job:etl:copy' is an OpenLineage job id, naming a "
         "job's newest run .*: expected a model version"),
        (reg.downstream, "job:etl:copy", "is an OpenLineage job id.*expected a dataset version"),
        (reg.history, "dataset:s3://lake:orders/daily",
         "is an OpenLineage dataset id.*expected a deployment"),
    ):  # fmt: skip
        with pytest.raises(InvalidNodeId, match=said):
            ask(given)
    # One that names a node of another kind of the project: that node is not what was
    # asked for, and the error says what it is.
    for ask, given, said in (
        (reg.downstream, f"dataset:{P}:model/clf",
         f"no dataset version .* it names the model version {made['models'][-1].id}; "
         "expected a dataset version"),
        (reg.trained_on, f"dataset:{P}:orders",
         "it names the dataset version .*; expected a model version"),
        (reg.history, "job:etl:copy", "no deployment 'job:etl:copy' in project 'names': it "
         "names the run .*; expected a deployment"),
        (reg.aliases, "job:etl:copy", "no model named 'job:etl:copy' .* expected a model's name"),
        (reg.aliases, "model:names/clf@1", "no model named .* expected a model's name"),
    ):  # fmt: skip
        with pytest.raises(NotFound, match=said):
            ask(given)
    assert reg.ledger.head() == head


def test_aliases_and_set_alias_take_them(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, made = world
    newest = made["models"][-1]
    head = reg.ledger.head()
    reg.set_alias(f"dataset:{P}:model/clf", "production")
    reg.set_alias("clf@latest", "staging")
    assert [(e.type, e.entity, e.body["alias"]) for e in reg.ledger.read(head + 1)] == [
        ("model-alias-moved", newest.id, "production"),
        ("model-alias-moved", newest.id, "staging"),
    ]
    answer = reg.aliases(f"dataset:{P}:model/clf")
    assert answer == reg.aliases("clf")
    assert answer["current"] == {"production": newest.id, "staging": newest.id}
    with pytest.raises(NotFound, match="no model 'dataset:names:model/none'"):
        reg.aliases(f"dataset:{P}:model/none")


def _report(reg: Registry, model: str, out: Path) -> tuple[int, str]:
    db = reg.ledger.store.url
    return main(["report", "model", model, "--out", str(out), "--db", db, "--project", P, "--json"])


def test_the_dossier_takes_them(
    tmp_path: Path, world: tuple[Registry, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    reg, made = world
    newest = made["models"][-1].id
    head = reg.ledger.head()
    for number, model in enumerate(("clf@latest", f"dataset:{P}:model/clf", "clf@2")):
        assert _report(reg, model, tmp_path / str(number)) == 0
        written = json.loads(capsys.readouterr().out)
        assert written["model"] == newest
        dossier = json.loads((tmp_path / str(number) / "dossier.json").read_text())
        assert dossier["model"]["id"] == newest
    assert _report(reg, "job:etl:copy", tmp_path / "job") == 2
    said = capsys.readouterr().err
    assert "'job:etl:copy' is an OpenLineage job id" in said and "expected a model version" in said
    with connect(reg.ledger.store.url, project=OTHER, actor="tester") as other:
        hidden = other.register_dataset("vault", "1", uri="s3://v", digest="sha256:" + "5" * 64)
        with other.run("fit", inputs=[hidden]) as run:
            secret = run.register_model(
                "secret", version="1", artifact_uri="s3://s", artifact_digest="sha256:" + "c" * 64
            )
    # Another project's model stays unknown, by its id as by a name of this project.
    for number, model in enumerate((secret.id, f"dataset:{OTHER}:model/secret", "secret@latest")):
        assert _report(reg, model, tmp_path / f"hidden-{number}") == 2
        assert "error: no " in capsys.readouterr().err
    # Reports write files and sign checkpoints; they append no event.
    assert [e.type for e in reg.ledger.read(head + 1)] == [
        "dataset-version-registered",
        "run-started",
        "run-inputs-used",
        "model-version-registered",
        "run-completed",
    ]


def test_an_erasure_retains_models_so_named(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, _ = world
    more = _more(reg, reg.ledger)
    older, newer = (m.id for m in more["risks"])
    rule = {"justification": "legal hold", "approver": "dpo"}
    with pytest.raises(InvalidNodeId, match=r"OpenLineage job id.*expected a model version"):
        reg.erase("ann", retain=[{"model": "job:etl:copy", **rule}], dry_run=True)
    for bad in ({**rule}, {"model": None, **rule}, {"model": 7, **rule}):
        with pytest.raises(FieldError, match=r"retain rule #1 names no model") as info:
            reg.erase("ann", retain=[{"model": "*", **rule}, bad], dry_run=True)
        assert info.value.field == "retain.1.model"
    planned = reg.erase("ann", retain=[{"model": "risk@latest", **rule}], dry_run=True)
    assert planned["status"] == "planned"
    head = reg.ledger.head()
    done = reg.erase("ann", retain=[{"model": f"dataset:{P}:model/risk", **rule}], purge=False)
    appended = reg.ledger.read(head + 1)
    assert [e.type for e in appended] == ["subject-erasure-requested", "subject-erased"]
    flags = {m["model"]: m["status"] for m in appended[-1].body["models"]}
    assert flags == {older: "retrain-required", newer: "retained-with-justification"}
    assert done["models"] == appended[-1].body["models"]


def test_the_cli_verbs_take_them(
    world: tuple[Registry, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    reg, _ = world
    more = _more(reg, reg.ledger)
    db = reg.ledger.store.url
    options = ["--db", db, "--project", P, "--json"]
    assert main(["aliases", f"dataset:{P}:model/clf", *options]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "clf"
    assert main(["jobs", "status", f"job:{P}:score", *options]) == 0
    assert json.loads(capsys.readouterr().out)["run"] == more["scoring"]
    assert main(["trained-on", "job:etl:copy", *options]) == 2
    said = capsys.readouterr().err
    assert said.startswith("mlledger trained-on: error: 'job:etl:copy' is an OpenLineage job id")
    assert "expected a model version" in said
    head = reg.ledger.head()
    retained = ["--retain", "risk@latest", "--justification", "contract", "--approver", "cfo"]
    assert main(["erase", "bob", *retained, "--no-purge", *options]) == 0
    done = json.loads(capsys.readouterr().out)
    appended = reg.ledger.read(head + 1)
    assert [e.type for e in appended] == ["subject-erasure-requested", "subject-erased"]
    newer = more["risks"][-1].id
    assert {m["model"]: m["status"] for m in done["models"]}[newer] == "retained-with-justification"
    assert done["models"] == appended[-1].body["models"]
