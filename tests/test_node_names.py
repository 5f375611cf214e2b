"""OpenLineage node ids and ``@latest`` wherever a question takes a node: the SDK in
process, the CLI, and the HTTP API (on SQLite and PostgreSQL).

``dataset:<namespace>:<name>`` names that dataset's newest version in the asking
project, ``job:<namespace>:<name>`` the job's newest run, as Marquez names them;
``NAME@latest`` the newest version of a dataset or model, unless a version is called
``latest``. Another project's nodes stay unknown, whichever way they are named.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lineage import openlineage as ol
from registry.cli import main
from registry.errors import NotFound
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
