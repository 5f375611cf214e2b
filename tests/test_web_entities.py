"""The entity pages (``/node?id=``) and the API's read routes of the same nodes, on
SQLite and PostgreSQL: each page against the service's answer, the redirects of short
names, 404 for what a key may not read, junk ids, the access trail, the dossier."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import registry
from audit import checkpoints as cps
from lineage import entities as entity_queries
from registry import auth, services
from registry.ledger import Ledger
from registry.web import entities
from registry.web.app import create_app
from registry.web.entities import NO_NODE
from registry.web.pages import node_href
from tests.support.helpers import opened_ledger
from tests.support.worlds import Scenario, build_world

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class World:
    client: TestClient
    ledger: Ledger
    keys: dict[str, str]
    scenario: Scenario
    tuning: str
    other: dict[str, str]

    def sign_in(self, role: str) -> TestClient:
        form = self.client.get("/sign-in")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = self.client.post(
            "/sign-in",
            data={"key": self.keys[role], "csrf": token.group(1), "next": "/"},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        return self.client

    def trail(self, since: int) -> list[dict[str, Any]]:
        return auth.read_trail(self.ledger.store, since=since, limit=10_000)

    def seq(self) -> int:
        return len(auth.read_trail(self.ledger.store, since=0, limit=1_000_000))

    def key_id(self, role: str) -> str:
        found = auth.claimed_key_id(self.keys[role])
        assert found is not None
        return found

    def api(self, path: str, role: str = "viewer") -> httpx.Response:
        return self.client.get(
            f"/api/v1/projects/test{path}", headers={"Authorization": f"Bearer {self.keys[role]}"}
        )


def _build(db: str) -> tuple[Scenario, str, dict[str, str]]:
    with registry.connect(db, project="test", actor="tester") as reg:
        world = build_world(reg)
        raw = world.raw
        with reg.run("tuning", inputs=[raw]) as run:
            run.log_params({"lr": 0.1, "<b>depth</b>": "<script>alert(1)</script>"})
            for step in range(5):
                run.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5 + step / 10}, step=step)
            tuning = run.id
        reg.set_alias(world.m2, "production", moved_by="alice")
        reg.log_predictions(
            world.api,
            model=world.m2,
            records=["rec-2", "rec-3", "rec-4"],
            outputs=[1, 0, 1],
            at=[NOW - timedelta(days=1), NOW - timedelta(days=1), NOW - timedelta(days=3)],
        )
        reg.register_dataset(
            "marked",
            "1",
            uri="s3://b/<img src=x onerror=alert(1)>",
            digest="sha256:09",
            records=["m-1"],
            schema={"<svg onload=alert(1)>": "int"},
        )
        reg.erase("ann")
    with registry.connect(db, project="other", actor="tester") as reg:
        data = reg.register_dataset(
            "secret", "1", uri="s3://o/s", digest="sha256:0f", records=["o"]
        )
        with reg.run("secret-train", inputs=[data]) as run:
            model = run.register_model(
                "secret-model", artifact_uri="s3://o/m", artifact_digest="sha256:0e"
            )
            other_run = run.id
        deployment = reg.deploy("secret-api", endpoint="https://o", served={model: 100})
    other = {
        "dataset": str(data),
        "model": str(model),
        "run": other_run,
        "deployment": str(deployment),
    }
    return world, tuning, {k: getattr(v, "id", v) for k, v in other.items()}


def _world(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("MLLEDGER_CHECKPOINT_EVERY", "0")
    scenario, tuning, other = _build(db)
    keys = {}
    with registry.connect(db, project="test", actor="tester") as reg:
        for role in auth.ROLES:
            keys[role] = auth.create_key(
                reg.ledger.store, project="test", role=role, created_by="t"
            )[1]
        keys["other"] = auth.create_key(
            reg.ledger.store, project="other", role="admin", created_by="t"
        )[1]
    for ledger in opened_ledger(db):
        with TestClient(create_app(db), base_url="http://mlledger.test") as client:
            yield World(client, ledger, keys, scenario, tuning, other)


@pytest.fixture
def world(store_url: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from _world(store_url, monkeypatch)


@pytest.fixture
def site(tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from _world(f"sqlite:///{tmp_path}/ledger.db", monkeypatch)


def _id(node: Any) -> str:
    return str(getattr(node, "id", node))


def _hrefs(page: str, table: str) -> list[str]:
    """The node links in the table of id ``table``."""
    found = re.search(rf'<table id="{table}".*?</table>', page, re.DOTALL)
    assert found is not None, f"no table {table}"
    return [html.unescape(h) for h in re.findall(r'<a href="(/node\?id=[^"]+)"', found.group(0))]


def _page(world: World, node: str) -> str:
    answer = world.client.get(node_href(node), follow_redirects=False)
    assert answer.status_code == 200, answer.text
    assert " style=" not in answer.text and "<style" not in answer.text
    assert "<script" not in answer.text
    return answer.text


# --- the pages against the answers ----------------------------------------------------


def test_each_page_shows_the_ledgers_answer(world: World) -> None:
    world.sign_in("viewer")
    s, ledger = world.scenario, world.ledger
    run = services.run_details(ledger, "test", run=world.tuning)
    page = _page(world, world.tuning)
    assert "<h1>tuning</h1>" in page and run.status in page
    assert _hrefs(page, "inputs") == [node_href(n["id"]) for n in run.inputs.nodes]
    assert [n["id"] for n in run.inputs.nodes] == [_id(s.raw)]
    assert [p["value"] for p in run.series[1].points] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert page.count('<svg class="series"') == len(run.series) == 2
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<b>depth</b>" not in page
    for point in run.series[0].points:
        assert f'<td class="num">{point["value"]}</td>' in page

    data = services.dataset_details(ledger, "test", dataset=_id(s.clean))
    page = _page(world, _id(s.clean))
    assert data.digest in page and f'<dd id="records">{data.records}</dd>' in page
    assert _hrefs(page, "upstream") == [node_href(_id(s.raw))]
    assert _hrefs(page, "downstream") == [node_href(n["id"]) for n in data.downstream.nodes]
    assert [n["id"] for n in data.downstream.nodes] == [s.run2]

    model = services.model_details(ledger, "test", model=_id(s.m2))
    page = _page(world, _id(s.m2))
    assert _hrefs(page, "training") == [node_href(d["dataset"]) for d in model.training]
    assert {d["dataset"] for d in model.training} == {_id(s.raw), _id(s.clean), _id(s.extra)}
    assert [(a.alias, a.moved_by) for a in model.aliases] == [("production", "alice")]
    assert "alice" in page
    assert _hrefs(page, "deployments") == [node_href(_id(s.api))] * len(model.deployments)
    assert [f["status"] for f in model.flags] == ["retrain-required"]
    assert model.flags[0]["erasure"] in page and "retrain-required" in page
    days = [(d["day"], d["count"]) for d in model.predictions.daily]
    assert days == [
        ((NOW - timedelta(days=3)).date().isoformat(), 1),
        ((NOW - timedelta(days=1)).date().isoformat(), 2),
    ]
    assert page.count('<rect class="bar"') == 2
    assert model.predictions.total == 5  # two in the world, three here
    assert 'href="/node/dossier?id=model%3Atest%2Fclf%402"' in page

    deployment = services.deployment_details(ledger, "test", deployment=_id(s.api))
    page = _page(world, _id(s.api))
    assert _hrefs(page, "timeline") == [node_href(i.model) for i in deployment.intervals]
    assert len(deployment.intervals) == deployment.intervals_total == 4
    assert [i.model for i in deployment.served_now] == [_id(s.m2)]
    assert f'<dd id="total">{deployment.predictions.total}</dd>' in page
    assert deployment.predictions.total == 8
    assert {v["model"]: v["count"] for v in deployment.by_model} == {_id(s.m1): 3, _id(s.m2): 5}


def test_markup_in_the_ledger_is_shown_as_text(site: World) -> None:
    site.sign_in("viewer")
    page = _page(site, "dataset:test/marked@1")
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<svg onload" not in page and "&lt;svg onload=alert(1)&gt;" in page


# --- names, redirects, what may not be read ---------------------------------------------


def test_short_names_redirect_to_the_canonical_id(site: World) -> None:
    site.sign_in("viewer")
    s = site.scenario
    uuid = site.tuning.removeprefix("run:")
    cases = {
        "/node?model=clf@production": _id(s.m2),
        "/node?model=clf@latest": _id(s.m2),
        "/node?model=clf@1": _id(s.m1),
        "/node?model=model:test/clf@production": _id(s.m2),
        "/node?id=model%3Atest%2Fclf%40production": _id(s.m2),
        "/node?dataset=raw@latest": _id(s.raw),
        "/node?id=dataset%3Atest%2Fraw%40latest": _id(s.raw),
        f"/node?run={uuid}": site.tuning,
        f"/node?id={uuid}": None,  # a bare uuid is no node id
        "/node?deployment=api": _id(s.api),
        # OpenLineage's ids, as search lists its jobs: a deployment's job, a dataset's
        # newest version (a job whose runs are runs has a page of its own).
        "/node?id=job%3Atest%3Adeployment%2Fapi": _id(s.api),
        "/node?id=dataset%3Atest%3Araw": _id(s.raw),
    }
    for path, target in cases.items():
        answer = site.client.get(path, follow_redirects=False)
        if target is None:
            assert answer.status_code == 404, path
            continue
        assert answer.status_code == 303, (path, answer.text)
        assert answer.headers["location"] == node_href(target), path
        assert site.client.get(answer.headers["location"]).status_code == 200
    assert node_href(_id(s.m2)) == "/node?id=model%3Atest%2Fclf%402"


def test_a_jobs_page_lists_its_runs_as_the_marquez_api_answers(world: World) -> None:
    world.sign_in("viewer")
    s = world.scenario
    with registry.connect(world.ledger.store.url, project="test", actor="tester") as reg:
        with reg.run("train-b", inputs=[s.raw]) as again:
            again.log_params({"lr": 0.5})
        rerun = again.id
    before = world.seq()
    page = _page(world, "job:test:train-b")
    api = world.client.get(
        "/api/v1/namespaces/test/jobs/train-b/runs",
        headers={"Authorization": f"Bearer {world.keys['viewer']}"},
    ).json()
    assert [f"run:{r['id']}" for r in api["runs"]] == [rerun, s.run2]
    assert _hrefs(page, "runs") == [node_href(f"run:{r['id']}") for r in api["runs"]]
    assert "<h1>train-b</h1>" in page and 'id="runs-title">Runs <span class="count">(2)' in page
    datasets = _hrefs(page, "job-datasets")
    assert node_href("dataset:test:raw") in datasets  # its latest run's input
    for href in datasets:  # each one leads to a page
        assert world.client.get(href).status_code == 200, href
    first = world.trail(before)[0]
    assert (first["action"], first["resource"], first["outcome"]) == (
        "web.node",
        "/node?id=job:test:train-b",
        "allow",
    )

    run_page = _page(world, rerun)
    assert f'href="{html.escape(node_href("job:test:train-b"))}" id="job-link"' in run_page


def test_a_nested_runs_long_job_name_has_its_page(site: World) -> None:
    with registry.connect(site.ledger.store.url, project="test", actor="tester") as reg:
        with reg.run("p" * 300, inputs=[site.scenario.raw]) as parent:
            pass
        with reg.run("c" * 300, inputs=[site.scenario.raw], parent=parent) as child:
            pass
    site.sign_in("viewer")
    run_page = _page(site, child.id)
    link = re.search(r'href="([^"]+)" id="job-link"', run_page)
    assert link is not None
    # The run names its own job; Marquez's name of a child's job holds its parent's.
    moved = site.client.get(html.unescape(link.group(1)), follow_redirects=False)
    assert moved.status_code == 303
    assert moved.headers["location"] == node_href("job:test:" + "p" * 300 + "." + "c" * 300)
    job = site.client.get(moved.headers["location"])
    assert job.status_code == 200, job.text
    assert _hrefs(job.text, "runs") == [node_href(child.id)]
    assert "Explore its lineage" not in job.text  # past the explorer's 600 characters


def test_another_projects_or_an_unknown_job_has_no_page(site: World) -> None:
    site.sign_in("viewer")
    for node in ("job:other:secret-train", "job:test:never-ran", "job:test:"):
        answer = site.client.get(node_href(node), follow_redirects=False)
        assert answer.status_code == 404, node
        assert "There is no such node in this project" in answer.text
    other_run = site.client.get(node_href(site.other["run"]))
    assert 'id="job-link"' not in other_run.text


def test_nodes_a_key_may_not_read_answer_as_unknown_ones(site: World) -> None:
    site.sign_in("admin")
    refused = [node_href(node) for node in site.other.values()]
    refused += [f"/node?{kind}={node}" for kind, node in site.other.items()]
    refused += [
        node_href("dataset:test/nothing@1"),
        node_href("model:test/clf@99"),
        node_href("deployment:test/nowhere"),
        node_href("run:01900000-0000-7000-8000-000000000000"),
        "/node?model=secret-model@1",
        "/node?dataset=secret@latest",
        "/node?deployment=secret-api",
    ]
    bodies = set()
    for path in refused:
        answer = site.client.get(path, follow_redirects=False)
        assert answer.status_code == 404, path
        body = answer.text
        assert html.escape(NO_NODE) in body and "secret" not in body.replace(path, "")
        bodies.add(re.sub(r'name="csrf" value="[^"]+"', "", body))
    assert len(bodies) == 1  # the same page, whatever exists elsewhere
    site.sign_in("other")
    assert site.client.get(node_href(site.other["model"])).status_code == 200
    assert site.client.get(node_href(_id(site.scenario.m1))).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "id=",
        "id=x",
        "id=dataset%3A",
        "id=run%3Anot-a-uuid",
        "id=model%3Aa%2Fb",
        "id=record%3Atest%2Fabc",
        "id=subject%3Atest%2Fabc",
        "id=project%3Atest",
        "id=job%3Atest%2Fjob",
        "id=job%3Ans%3Anothing",
        "id=dataset%3Ans%3Anothing",
        "id=" + "a" * 10_000,
        "id=dataset%3Atest%2F" + "a" * 700 + "%401",
        "id=%E2%80%AEdataset%3Atest%2Fraw%401",
        "id=dataset%3Atest%2Fraw%401%0A",
        "id=%00",
        "model=",
        "model=%3Cscript%3E",
        "run=" + "9" * 40,
        "deployment=..%2F..",
        "",
        "id=a&id=b",
        "id=dataset%3Atest%2Fraw%401&model=clf%401",
    ],
)
def test_junk_is_refused_without_a_server_error(site: World, query: str) -> None:
    site.sign_in("viewer")
    answer = site.client.get(f"/node?{query}", follow_redirects=False)
    assert answer.status_code in (400, 404), answer.text
    # A control character in the URL is refused first (400), with the interface's page.
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"]
    dossier = site.client.get(f"/node/dossier?{query}", follow_redirects=False)
    assert dossier.status_code in (400, 404)


# --- the trail --------------------------------------------------------------------------


def test_every_view_is_in_the_trail_without_people(site: World) -> None:
    before = site.seq()
    anonymous = site.client.get(node_href(_id(site.scenario.m1)), follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/sign-in")
    assert site.seq() == before  # no cookie: nothing recorded
    site.sign_in("viewer")
    before = site.seq()
    site.client.get(node_href(_id(site.scenario.m1)))
    site.client.get("/node?model=clf@production", follow_redirects=False)
    site.client.get(node_href("record:test/rec-0-pseudonym"))
    site.client.get(node_href(site.other["dataset"]))
    entries = site.trail(before)
    assert [(e["action"], e["outcome"], e["status"]) for e in entries] == [
        ("web.node", "allow", 200)
    ] * 4
    assert {e["actor"] for e in entries} == {site.key_id("viewer")}
    assert entries[0]["resource"] == "/node?id=model:test/clf@1"
    assert "rec-0-pseudonym" not in entries[2]["resource"]


# --- links --------------------------------------------------------------------------------


def test_search_the_feed_and_the_pages_link_to_each_other(site: World) -> None:
    site.sign_in("auditor")
    found = site.client.get("/search?q=clf&type=model")
    hits = services.search(site.ledger, "test", "clf", kinds=("model",))
    links = [html.unescape(h) for h in re.findall(r'<a href="(/node\?id=[^"]+)"', found.text)]
    assert links == [node_href(h["newest"]) for h in hits.hits]
    home = site.client.get("/")
    feed = services.feed(site.ledger, "test", limit=20)
    shown = [html.unescape(h) for h in re.findall(r'<a href="(/node\?id=[^"]+)"', home.text)]
    assert shown == [
        node_href(e["entity"])
        for e in feed.events
        if e["entity"].split(":")[0] in ("dataset", "run", "model", "deployment")
    ]
    # From a model to its training run, to its inputs, and back to its output.
    model = _page(site, _id(site.scenario.m1))
    run = services.model_details(site.ledger, "test", model=_id(site.scenario.m1)).run
    assert run is not None and f'href="{html.escape(node_href(run))}"' in model
    page = _page(site, run)
    assert _hrefs(page, "outputs") == [node_href(_id(site.scenario.m1))]


# --- bounds -------------------------------------------------------------------------------


def test_lists_and_series_are_bounded_and_say_so(
    site: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entity_queries, "ENTITY_LIST_MAX", 1)
    monkeypatch.setattr(entity_queries, "METRIC_EVENTS_MAX", 4)
    monkeypatch.setattr(entity_queries, "POINTS_MAX", 3)
    run = services.run_details(site.ledger, "test", run=site.tuning)
    assert (run.metric_events, run.metric_events_read) == (5, 4)
    loss = next(s for s in run.series if s.key == "loss")
    assert loss.total == 4 and [p["step"] for p in loss.points] == [0, 2, 3]
    data = services.dataset_details(site.ledger, "test", dataset=_id(site.scenario.raw))
    assert data.downstream.total == 3 and len(data.downstream.nodes) == 1
    site.sign_in("viewer")
    page = _page(site, _id(site.scenario.raw))
    assert "The first 1 of 3, oldest first." in page
    page = _page(site, site.tuning)
    assert "from the first 4 of the run's 5 metric events" in page


# --- the dossier --------------------------------------------------------------------------


def test_the_dossier_downloads_for_any_reader(site: World) -> None:
    site.sign_in("viewer")
    before = site.seq()
    answer = site.client.get("/node/dossier?id=model%3Atest%2Fclf%401")
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == 'attachment; filename="dossier-clf-1.html"'
    assert "model:test/clf@1" in answer.text
    [entry] = site.trail(before)
    assert (entry["action"], entry["status"]) == ("web.dossier", 200)
    # Its proofs are against a checkpoint it signed (the only write it makes).
    with site.ledger.store.read() as conn:
        assert cps.latest_checkpoint(conn, "events") is not None
    for path in (
        "/node/dossier?id=" + site.other["model"],
        "/node/dossier?id=model%3Atest%2Fclf%40production",
        "/node/dossier?id=dataset%3Atest%2Fraw%401",
    ):
        assert site.client.get(path).status_code == 404, path


# --- the API's read routes ------------------------------------------------------------------


def test_the_api_routes_answer_as_the_services(world: World) -> None:
    s, ledger = world.scenario, world.ledger
    uuid = world.tuning.removeprefix("run:")
    routes = {
        f"/runs/{world.tuning}": services.run_details(ledger, "test", run=world.tuning),
        f"/runs/{uuid}": services.run_details(ledger, "test", run=world.tuning),
        "/datasets/clean/versions/1/details": services.dataset_details(
            ledger, "test", dataset=_id(s.clean)
        ),
        "/models/clf/versions/2": services.model_details(ledger, "test", model=_id(s.m2)),
        "/deployments/api": services.deployment_details(ledger, "test", deployment=_id(s.api)),
    }
    before = world.seq()
    for path, expected in routes.items():
        answer = world.api(path)
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected.model_dump(mode="json")
    actions = [e["action"] for e in world.trail(before)]
    assert actions == ["runs.read", "runs.read", "datasets.read", "models.read", "deployments.read"]
    assert world.api("/models/clf/versions/2").json()["predictions"]["days"] == 90


def test_the_api_routes_refuse_what_they_should(site: World) -> None:
    for path in ("/runs/" + site.tuning, "/deployments/api", "/models/clf/versions/1"):
        assert site.client.get(f"/api/v1/projects/test{path}").status_code == 401
        other = site.client.get(
            f"/api/v1/projects/test{path}",
            headers={"Authorization": f"Bearer {site.keys['other']}"},
        )
        assert other.status_code == 403
    # Another project's nodes are unknown here, however named.
    assert site.api("/runs/" + site.other["run"]).status_code == 404
    assert site.api("/deployments/secret-api").status_code == 404
    assert site.api("/models/secret-model/versions/1").status_code == 404
    assert site.api("/datasets/secret/versions/1/details").status_code == 404
    # An alias or "latest" in place of the version names the version it points at.
    assert site.api("/models/clf/versions/production").json()["model"] == _id(site.scenario.m2)
    assert site.api("/runs/not-a-run").status_code == 400
    assert site.api("/deployments/..bad").status_code == 400
    assert site.api("/models/clf/versions/" + "9" * 200).status_code in (400, 404)


@pytest.mark.parametrize(
    "values",
    [[1e17, 1e17], [-1e308, 1e308], [1.7976931348623157e308] * 2, [5e-324, 0.0]],
    ids=["flat-and-huge", "the-whole-range", "the-largest-float", "the-smallest"],
)
def test_charts_of_any_metric_values_the_api_takes(site: World, values: list[float]) -> None:
    with (
        registry.connect(site.ledger.store.url, project="test", actor="tester") as reg,
        reg.run("extremes") as run,
    ):
        for step, value in enumerate(values):
            run.log_metrics({"m": value}, step=step)
        extreme = run.id
    appended = [e for e in site.ledger.read(0) if e.entity == extreme]
    assert [e.body["metrics"][0]["value"] for e in appended if e.type == "run-metrics-logged"] == (
        values
    )
    site.sign_in("viewer")
    page = _page(site, extreme)
    assert "<svg" in page and "inf" not in page.replace("info", "")


@pytest.mark.parametrize(
    ("ms", "said"),
    [(None, "—"), (0, "0.0 s"), (412, "0.4 s"), (185_000, "3 min 5 s"), (8_640_000, "2 h 24 min")],
)
def test_durations_read_as_a_person_says_them(ms: int | None, said: str) -> None:
    assert entities.duration(ms) == said
