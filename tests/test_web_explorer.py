"""The lineage explorer over HTTP (in process): its JSON against the API's answer,
the layout and its groups, expand, a past graph, other projects, the trail, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

import registry
from lineage.answers import ErasureNote, LineageAnswer
from registry import grants, services
from registry.web import explorer, layout
from tests.test_web import Site, _site


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(f"sqlite:///{tmp_path}/ledger.db", tmp_path, monkeypatch)


@pytest.fixture
def store_site(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(store_url, tmp_path, monkeypatch)


def _api(site: Site, role: str, **query: Any) -> dict[str, Any]:
    answer = site.client.get(
        "/api/v1/projects/test/questions/lineage",
        params={k: v for k, v in query.items() if v is not None},
        headers={"Authorization": f"Bearer {site.keys[role]}"},
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _graph(site: Site, **query: Any) -> dict[str, Any]:
    answer = site.client.get("/lineage/graph", params={k: v for k, v in query.items() if v})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


@pytest.mark.parametrize("direction", ["both", "upstream", "downstream"])
def test_the_graph_is_the_apis_answer(store_site: Site, direction: str) -> None:
    site = store_site
    site.sign_in("viewer")
    for node, depth in (
        ("dataset:test/raw@1", 3),
        ("model:test/clf@2", 2),
        ("deployment:test/api", 4),
    ):
        api = _api(site, "viewer", node=node, direction=direction, depth=depth)
        got = _graph(site, node=node, direction=direction, depth=depth)
        assert got["answer"] == api
        assert got["cut"] is None
        ids = {n["id"] for n in api["nodes"]}
        assert set(got["layout"]["positions"]) == ids
        assert got["layout"]["columns"][api["root"]] == 0
        # A node's column is its signed distance: upstream left, downstream right.
        sign = {"upstream": -1, "downstream": 1}.get(direction)
        columns = got["layout"]["columns"]
        if sign is not None:
            assert all(columns[n["id"]] == sign * n["distance"] for n in api["nodes"])
        else:
            assert all(abs(columns[n["id"]]) <= n["distance"] for n in api["nodes"])


def test_columns_put_upstream_left_and_downstream_right(site: Site) -> None:
    site.sign_in("viewer")
    got = _graph(site, node="model:test/clf@2", direction="both", depth=2)
    columns = got["layout"]["columns"]
    edges = got["answer"]["edges"]
    into = {e["src"] for e in edges if e["dst"] == "model:test/clf@2"}
    out = {e["dst"] for e in edges if e["src"] == "model:test/clf@2"}
    assert into and out
    assert all(columns[n] == -1 for n in into)
    assert all(columns[n] == 1 for n in out)
    positions = got["layout"]["positions"]
    assert all(positions[n][0] < 0 for n in into) and all(positions[n][0] > 0 for n in out)


def test_the_page_lists_the_answers_nodes_and_links_them(site: Site) -> None:
    site.sign_in("viewer")
    node = "dataset:test/raw@1"
    answer = site.client.get("/lineage", params={"node": node, "depth": "3"})
    assert answer.status_code == 200
    api = _api(site, "viewer", node=node, depth=3)
    for n in api["nodes"]:
        assert f'href="/node?{urlencode({"id": n["id"]})}"' in answer.text
        assert f'data-node="{n["id"]}"' in answer.text
    assert f"{len(api['nodes'])} nodes, {len(api['edges'])} edges" in answer.text
    assert (
        'id="graph-data"' in answer.text
        and "/static/vendor/cytoscape/cytoscape.min.js" in answer.text
    )
    assert "As of now" in answer.text


def test_the_page_without_a_node_shows_the_form(site: Site) -> None:
    site.sign_in("viewer")
    answer = site.client.get("/lineage")
    assert answer.status_code == 200
    assert 'id="explore-form"' in answer.text and 'id="graph"' not in answer.text


def test_as_of_shows_the_graph_as_it_stood(store_site: Site) -> None:
    site = store_site
    site.sign_in("viewer")
    node = "model:test/clf@1"
    now = _graph(site, node=node, direction="downstream", depth=1)
    api_now = _api(site, "viewer", node=node, direction="downstream", depth=1)
    deployed = min(e["valid_from"] for e in api_now["edges"])
    # Before the deployment existed, and after it: the form's local time is UTC.
    before_text = _minus_a_second(deployed)
    past = _graph(site, node=node, direction="downstream", depth=1, as_of=before_text)
    api_past = _api(
        site, "viewer", node=node, direction="downstream", depth=1, as_of=before_text + "Z"
    )
    assert past["answer"] == api_past
    assert len(past["answer"]["nodes"]) < len(now["answer"]["nodes"])
    page = site.client.get("/lineage", params={"node": node, "as_of": before_text})
    assert page.status_code == 200
    assert f'datetime="{api_past["as_of"]}"' in page.text
    assert "the graph as it stood then" in page.text


def _minus_a_second(stamp: str) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) - timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def test_expand_answers_a_nodes_neighbours(site: Site) -> None:
    site.sign_in("viewer")
    node = "dataset:test/clean@1"
    answer = site.client.get("/lineage/expand", params={"node": node, "depth": "9"})
    assert answer.status_code == 200
    api = _api(site, "viewer", node=node, direction="both", depth=1)
    assert answer.json() == {"answer": api, "cut": None}


def test_another_projects_nodes_are_never_shown(store_site: Site) -> None:
    site = store_site
    site.sign_in("admin")
    secret = "dataset:other/secret-other-data@1"
    for path in ("/lineage/graph", "/lineage/expand"):
        answer = site.client.get(path, params={"node": secret})
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        assert "secret-other-data" not in str(answer.json().get("answer", ""))
    page = site.client.get("/lineage", params={"node": secret})
    assert page.status_code == 404
    assert 'id="graph-data"' not in page.text
    # Nor among the neighbours of the asking project's own nodes.
    for node in ("dataset:test/raw@1", "deployment:test/api"):
        got = _graph(site, node=node, depth=10)
        assert all(
            n["id"].split(":", 1)[1].startswith("test/") or n["kind"] == "run"
            for n in got["answer"]["nodes"]
        )
        assert "other/" not in str(got)


def test_a_granted_projects_versions_appear_as_the_api_shows_them(site: Site) -> None:
    grants.grant(site.ledger, "other", "test", actor="tester", reason="shared data")
    url = str(site.ledger.store.url)
    with (
        registry.connect(url, project="test", actor="tester") as reg,
        reg.run("uses-other", inputs=["dataset:other/secret-other-data@1"]) as run,
    ):
        run.register_model("cross", artifact_uri="s3://m/x", artifact_digest="sha256:b1")
    site.sign_in("viewer")
    node = "model:test/cross@1"
    got = _graph(site, node=node, direction="upstream", depth=2)
    assert got["answer"] == _api(site, "viewer", node=node, direction="upstream", depth=2)
    assert "dataset:other/secret-other-data@1" in got["layout"]["positions"]


def test_each_call_is_in_the_trail(site: Site) -> None:
    site.sign_in("viewer")
    before = site.seq()
    node = "dataset:test/raw@1"
    site.client.get("/lineage", params={"node": node})
    site.client.get("/lineage/graph", params={"node": node})
    site.client.get("/lineage/expand", params={"node": node})
    site.client.get("/lineage/graph", params={"node": "dataset:other/secret-other-data@1"})
    entries = site.trail(before)
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("web.lineage", "allow"),
        ("web.lineage_graph", "allow"),
        ("web.lineage_expand", "allow"),
        ("web.lineage_graph", "allow"),
    ]
    assert all(e["actor"] == site.key_id("viewer") for e in entries)
    assert entries[0]["resource"].startswith("/lineage?node=")


def test_without_a_session_the_explorer_sends_to_sign_in(site: Site) -> None:
    before = site.seq()
    answer = site.client.get("/lineage/graph?node=x", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/sign-in?next=")
    assert site.seq() == before


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"node": "dataset:test/raw@1", "depth": "11"}, 400, "from 0 to 10"),
        ({"node": "dataset:test/raw@1", "depth": "-1"}, 400, "from 0 to 10"),
        ({"node": "dataset:test/raw@1", "depth": "9" * 400}, 400, "is not a depth"),
        ({"node": "dataset:test/raw@1", "direction": "sideways"}, 400, "upstream, downstream"),
        ({"node": "dataset:test/raw@1", "as_of": "yesterday"}, 400, "is not a time"),
        ({"node": "dataset:test/raw@1", "as_of": "99999-01-01T00:00"}, 400, "is not a time"),
        ({"node": "dataset:test/raw@1", "as_of": "1900-01-01T00:00"}, 404, "did not exist yet"),
        ({"node": "x" * 601}, 400, "longer than 600"),
        ({"node": "no such thing"}, 400, ""),
        ({"node": "dataset:test/nope@9"}, 404, "no node"),
        ({"node": "record:test/abc"}, 404, ""),
        ({"node": "<script>alert(1)</script>"}, 400, ""),
    ],
)
def test_bad_input_is_refused_saying_why(
    site: Site, query: dict[str, str], status: int, message: str
) -> None:
    site.sign_in("viewer")
    page = site.client.get("/lineage", params=query)
    assert page.status_code == status, page.text
    assert "<script>alert(1)</script>" not in page.text
    if message:
        assert message in page.text
    got = site.client.get("/lineage/graph", params=query)
    assert got.status_code == status, got.text
    assert got.headers["content-type"] == "application/problem+json"
    assert got.json()["status"] == status and message in got.json()["detail"]


def test_control_characters_are_refused_before_any_page(site: Site) -> None:
    # The server's gate refuses them in any query string, before the page is asked.
    site.sign_in("viewer")
    for path in ("/lineage/graph", "/lineage/expand"):  # the JSON calls: a problem
        got = site.client.get(path, params={"node": "dataset:test/raw\x00@1"})
        assert got.status_code == 400
        assert "control character" in got.json()["detail"]
    page = site.client.get("/lineage", params={"node": "dataset:test/raw\x00@1"})
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "control character" in page.text and page.headers["content-security-policy"]
    with pytest.raises(explorer.BadQuery, match="control characters"):
        explorer.parse({"node": "dataset:test/raw\x7f@1"})
    with pytest.raises(explorer.BadQuery, match="is not a time"):
        explorer.as_of_time("2026-01-01T00:00\x7f")


def test_the_graph_endpoint_needs_a_node(site: Site) -> None:
    site.sign_in("viewer")
    got = site.client.get("/lineage/graph")
    assert got.status_code == 400 and "no node was given" in got.json()["detail"]


def test_node_names_are_escaped_in_the_page(site: Site) -> None:
    evil = "<img src=x onerror=alert(1)>"
    url = str(site.ledger.store.url)
    with (
        registry.connect(url, project="test", actor="tester") as reg,
        reg.run(evil, inputs=["dataset:test/raw@1"]),
    ):
        pass
    site.sign_in("viewer")
    page = site.client.get("/lineage", params={"node": "dataset:test/raw@1", "depth": "1"})
    assert page.status_code == 200
    assert evil not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    # In the JSON data block too: no markup that could end the block.
    block = page.text.split('id="graph-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and "\\u003cimg" in block


def test_search_results_link_to_the_explorer(site: Site) -> None:
    site.sign_in("viewer")
    page = site.client.get("/search", params={"q": "raw"})
    assert page.status_code == 200
    assert f'href="/lineage?node={quote("dataset:test/raw@1", safe="")}"' in page.text


# --- the layout --------------------------------------------------------------------------


def test_crowded_columns_are_grouped_by_kind() -> None:
    kinds = {"root": "run"} | {f"d{i}": "dataset" for i in range(45)} | {"m": "model"}
    edges = [(f"d{i}", "root") for i in range(45)] + [("root", "m")]
    placed = layout.layout("root", kinds, edges)
    assert [(g.id, g.label, len(g.members)) for g in placed.groups] == [
        ("group:-1:dataset", "45 dataset versions", 45)
    ]
    assert placed.positions["m"][0] == layout.COLUMN_GAP
    at_limit = layout.layout(
        "root",
        {k: v for k, v in kinds.items() if k not in {"d40", "d41", "d42", "d43", "d44"}},
        edges,
    )
    assert at_limit.groups == []


def test_layout_orders_a_column_by_its_neighbours() -> None:
    # a0 feeds r1, a1 feeds r0: the runs' column follows the datasets' order.
    kinds = {"m": "model", "r0": "run", "r1": "run", "a0": "dataset", "a1": "dataset"}
    edges = [("r0", "m"), ("r1", "m"), ("a0", "r1"), ("a1", "r0")]
    placed = layout.layout("m", kinds, edges)
    y = {n: placed.positions[n][1] for n in kinds}
    assert (y["r0"] < y["r1"]) == (y["a1"] < y["a0"])
    assert placed.columns == {"m": 0, "r0": -1, "r1": -1, "a0": -2, "a1": -2}
    assert layout.layout("m", kinds, edges).positions == placed.positions


def test_a_graph_over_the_cap_keeps_the_nearest_and_says_so(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(explorer, "MAX_NODES", 3)
    site.sign_in("viewer")
    got = _graph(site, node="dataset:test/raw@1", depth=5)
    api = _api(site, "viewer", node="dataset:test/raw@1", depth=5)
    assert got["cut"] == {"total": len(api["nodes"]), "shown": 3}
    assert got["answer"]["nodes"] == api["nodes"][:3]
    kept = {n["id"] for n in api["nodes"][:3]}
    assert got["answer"]["edges"] == [e for e in api["edges"] if {e["src"], e["dst"]} <= kept]


JUNK = [
    "dataset:",
    "job:",
    "job::",
    "dataset:a:b:c",
    "run:not-a-uuid",
    "run:",
    "model:test/clf@",
    "model:test/clf@latest",
    "deployment:test/",
    "subject:test/x",
    "%",
    "é" * 300,
    "\u202e\ufeff",
    ":",
    "dataset:test/raw@1 ",
    "🙂:🙂/🙂@🙂",
]


@pytest.mark.parametrize("node", JUNK)
def test_no_input_gets_a_server_error(site: Site, node: str) -> None:
    site.sign_in("viewer")
    for extra in ({}, {"depth": "1.5"}, {"as_of": "2026-13-45T99:99"}, {"as_of": "0001-01-01"}):
        query = {"node": node, **extra}
        for path in ("/lineage", "/lineage/graph", "/lineage/expand"):
            answer = site.client.get(path, params=query)
            assert answer.status_code in (200, 400, 404), (path, query, answer.text)


# --- kept drawings ---------------------------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[explorer.Question]:
    """The questions the explorer asks the API from now on."""
    asked: list[explorer.Question] = []
    answer_of = explorer.answer_of

    def counted(request: Any, viewer: Any, question: explorer.Question) -> Any:
        asked.append(question)
        return answer_of(request, viewer, question)

    monkeypatch.setattr(explorer, "answer_of", counted)
    return asked


def test_a_drawing_is_sent_again_until_the_ledger_moves(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _counting(monkeypatch)
    site.sign_in("viewer")
    before = site.seq()
    node = "dataset:test/raw@1"
    first = site.client.get("/lineage/graph", params={"node": node, "depth": "1"})
    page = site.client.get("/lineage", params={"node": node, "depth": "1"})
    again = site.client.get("/lineage/graph", params={"node": node, "depth": "1"})
    assert first.status_code == page.status_code == again.status_code == 200
    assert again.content == first.content and len(asked) == 1
    block = page.text.split('id="graph-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block) == first.json()
    # Another question, and the same one of the neighbours, are each asked.
    site.client.get("/lineage/graph", params={"node": node, "depth": "2"})
    site.client.get("/lineage/expand", params={"node": node})
    site.client.get("/lineage/expand", params={"node": node})
    assert len(asked) == 3
    # Any append moves the head: the question is asked again, and answers what is new.
    url = str(site.ledger.store.url)
    with (
        registry.connect(url, project="test", actor="tester") as reg,
        reg.run("late-reader", inputs=[node]),
    ):
        pass
    moved = _graph(site, node=node, depth=1)
    assert len(asked) == 4
    assert moved["answer"] == _api(site, "viewer", node=node, depth=1)
    assert any(n["label"] == "late-reader" for n in moved["answer"]["nodes"])
    # Each call is in the trail, kept drawing or not.
    calls = [e["action"] for e in site.trail(before) if e["action"].startswith("web.")]
    shown, listed, expanded = "web.lineage_graph", "web.lineage", "web.lineage_expand"
    assert calls == [shown, listed, shown, shown, expanded, expanded, shown]


def test_a_kept_drawing_is_never_sent_to_another_project(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _counting(monkeypatch)
    secret, own = "dataset:other/secret-other-data@1", "dataset:test/raw@1"
    site.sign_in("other")
    assert _graph(site, node=secret)["answer"]["root"] == secret
    site.sign_in("viewer")
    for path in ("/lineage/graph", "/lineage/expand"):
        answer = site.client.get(path, params={"node": secret})
        assert answer.status_code == 404 and "answer" not in answer.json()
    page = site.client.get("/lineage", params={"node": secret})
    assert page.status_code == 404 and 'id="graph-data"' not in page.text
    mine = _graph(site, node=own)
    site.sign_in("other")
    assert site.client.get("/lineage/graph", params={"node": own}).status_code == 404
    # The same question of two projects is two questions.
    assert [q.node for q in asked].count(own) == 2
    assert mine["answer"]["root"] == own


def test_a_revoked_grant_hides_the_granted_nodes_again(site: Site) -> None:
    grants.grant(site.ledger, "other", "test", actor="tester", reason="shared data")
    url = str(site.ledger.store.url)
    with (
        registry.connect(url, project="test", actor="tester") as reg,
        reg.run("uses-other", inputs=["dataset:other/secret-other-data@1"]) as run,
    ):
        run.register_model("cross", artifact_uri="s3://m/x", artifact_digest="sha256:b1")
    site.sign_in("viewer")
    node, secret = "model:test/cross@1", "dataset:other/secret-other-data@1"
    shown = _graph(site, node=node, direction="upstream", depth=2)
    assert secret in shown["layout"]["positions"]
    grants.revoke(site.ledger, "other", "test", actor="tester", reason="no longer")
    hidden = _graph(site, node=node, direction="upstream", depth=2)
    assert hidden["answer"] == _api(site, "viewer", node=node, direction="upstream", depth=2)
    assert secret not in str(hidden) and hidden["answer"]["withheld"] == 1


def test_kept_drawings_are_the_latest_used() -> None:
    drawings = explorer.Drawings(kept=2)
    drawn = [explorer.Drawn(_answer(f"dataset:p/d@{i}"), None, {}) for i in range(3)]
    drawings.put(("graph", "p", 0), drawn[0])
    drawings.put(("graph", "p", 1), drawn[1])
    assert drawings.get(("graph", "p", 0)) is drawn[0]
    drawings.put(("graph", "p", 2), drawn[2])
    assert drawings.get(("graph", "p", 1)) is None
    assert drawings.get(("graph", "p", 0)) is drawn[0]
    assert drawings.get(("graph", "p", 2)) is drawn[2]
    assert drawings.get(("graph", "q", 2)) is None
    drawings.clear()
    assert drawings.get(("graph", "p", 2)) is None


def test_a_rebuild_forgets_the_kept_drawings(site: Site) -> None:
    site.sign_in("viewer")
    _graph(site, node="dataset:test/raw@1")
    ledger = site.client.app.state.ledger  # type: ignore[attr-defined]
    assert explorer.drawings_of(ledger)._found
    ledger.rebuild(digest=False)
    assert not explorer.drawings_of(ledger)._found


# --- serialisation ------------------------------------------------------------------------


def _answer(root: str, **values: Any) -> LineageAnswer:
    fields: dict[str, Any] = {
        "root": root,
        "direction": "both",
        "depth": 1,
        "as_of": None,
        "nodes": [],
        "edges": [],
    }
    return LineageAnswer.built(**(fields | values))


def test_the_answers_json_is_the_apis(site: Site) -> None:
    grants.grant(site.ledger, "other", "test", actor="tester", reason="shared data")
    for question in (
        {"node": "dataset:test/raw@1", "depth": 3},
        {"node": "deployment:test/api", "direction": "upstream", "depth": 4},
        {"node": "model:test/clf@1", "as_of": "2099-01-01T00:00:00Z"},
    ):
        answer = services.lineage(site.ledger, "test", **question)
        assert explorer.answer_json(answer) == answer.model_dump_json().encode("utf-8")
    erased = ErasureNote.built(
        erasure="e-1", position=7, requested_position=5, erased_at="2026-01-01T00:00:00Z"
    )
    node = {"id": "dataset:p/é@1", "kind": "dataset", "label": "é@1", "created_at": "t"}
    edge = {"src": "a", "dst": "b", "kind": "input", "valid_from": "t", "valid_to": None}
    for answer in (
        _answer("dataset:p/d@1"),
        _answer("dataset:p/d@1", withheld=3, as_of="2026-01-01T00:00:00.000000Z"),
        _answer("record:p/r", erased=erased),
        _answer("dataset:p/é@1", nodes=[node | {"distance": 0}], edges=[edge], withheld=None),
    ):
        assert explorer.answer_json(answer) == answer.model_dump_json().encode("utf-8")


def test_the_data_block_escapes_what_could_end_it() -> None:
    text = "</script><!-- & ' \u2028 \u2029 é 🙂"
    data = json.dumps({"label": text}, ensure_ascii=False).encode("utf-8")
    safe = explorer.html_safe(data)
    assert safe.isascii() or not any(c in safe.decode() for c in "<>&'\u2028\u2029")
    assert json.loads(safe) == {"label": text}
    assert explorer.html_safe(b'{"a":1}') == b'{"a":1}'


def test_the_listed_links_are_the_questions_query_strings() -> None:
    question = explorer.Question("dataset:p/a b&c@1", "upstream", 3, "2026-01-01T00:00:00Z")
    nodes = [{"id": i} for i in ("dataset:p/é?=&+@1", "run:x", "model:p/m@2")]
    for asked in (question, explorer.Question("dataset:p/d@1", "both", 0, None)):
        assert explorer._listed(asked, nodes) == [
            (
                n,
                "/node?" + urlencode({"id": n["id"]}),
                "/lineage?" + urlencode(asked.query(node=n["id"])),
            )
            for n in nodes
        ]


def test_an_unexpected_error_in_a_json_call_answers_a_problem(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    site.sign_in("viewer")

    def broken(*args: Any, **options: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(explorer, "answer_of", broken)
    client = TestClient(
        site.client.app, base_url="http://mlledger.test", raise_server_exceptions=False
    )
    client.cookies = site.client.cookies
    query = {"node": "dataset:test/raw@1", "as_of": "2030-01-01T00:00:00Z"}
    for path in ("/lineage/graph", "/lineage/expand"):
        got = client.get(path, params=query)
        assert got.status_code == 500, path
        assert got.headers["content-type"] == "application/problem+json"
        assert "a bug" not in got.text
    page = client.get("/lineage", params=query)
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
