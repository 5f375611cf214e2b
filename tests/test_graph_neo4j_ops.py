"""Operating the Neo4j graph: ``mlledger graph status|sync|rebuild|follow`` on a real
Neo4j server, and ``mlledger serve`` with ``MLLEDGER_GRAPH``: questions over HTTP
answered from Neo4j, and a 503 problem, never a stale answer, while it is out of reach.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import registry
from lineage.graph import canonical, graph_of
from lineage.neo4j import Neo4jGraph
from registry import Registry
from registry.canonical import canonical_json
from registry.cli import main
from tests.support.apiserver import ApiServer
from tests.support.neo4jserver import Neo4jServer
from tests.support.throwaway import free_port
from tests.support.worlds import build_world

RAW_LINEAGE = {"node": "dataset:test/raw@1", "depth": 1}


@pytest.fixture
def graph_env(neo4j_server: Neo4jServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``MLLEDGER_GRAPH`` and its credentials, set for the test."""
    env = {
        "MLLEDGER_GRAPH": neo4j_server.url,
        "MLLEDGER_GRAPH_USER": neo4j_server.user,
        "MLLEDGER_GRAPH_PASSWORD": neo4j_server.password,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def graph_cli(
    store_url: str, capsys: pytest.CaptureFixture[str], graph_env: dict[str, str]
) -> Callable[..., Any]:
    """``mlledger graph ACTION --db URL --json`` in-process: its exit status and JSON."""

    def run(action: str, *args: str) -> tuple[int, Any]:
        status = main(["graph", action, "--db", store_url, "--json", *args])
        out = capsys.readouterr().out
        return status, json.loads(out)

    return run


def test_status_sync_and_rebuild(
    reg: Registry, neo4j_graph: Neo4jGraph, graph_cli: Callable[..., Any]
) -> None:
    build_world(reg)
    head = neo4j_graph.status(reg.ledger).head
    status, before = graph_cli("status")
    assert status == 0 and before == {
        "position": -1, "head": head, "lag": head + 1, "nodes": 0, "edges": 0,
    }  # fmt: skip
    status, synced = graph_cli("sync")
    assert status == 0 and (synced["from"], synced["position"]) == (-1, head)
    status, after = graph_cli("status")
    with reg.ledger.store.read() as conn:
        embedded = graph_of(reg.ledger).current(conn)
        digest = canonical_json(canonical(embedded))
    assert status == 0 and after["lag"] == 0
    assert (after["nodes"], after["edges"]) == (
        embedded.number_of_nodes(),
        embedded.number_of_edges(),
    )
    status, rebuilt = graph_cli("rebuild")
    assert status == 0 and rebuilt["same"] is True and rebuilt["position"] == head
    assert rebuilt["digest"] == rebuilt["embedded_digest"]
    assert canonical_json(neo4j_graph.canonical()) == digest
    # A write after it: the lag says so, a sync catches up.
    reg.register_dataset("more", uri="s3://d/more", digest="sha256:99")
    event = reg.ledger.last_event()
    assert event is not None and event.type == "dataset-version-registered"
    status, lagging = graph_cli("status")
    assert lagging["lag"] == event.position - head and lagging["nodes"] == after["nodes"]
    status, synced = graph_cli("sync")
    assert synced["position"] == event.position


def test_a_graph_that_differs_is_said_by_rebuild(
    reg: Registry, neo4j_graph: Neo4jGraph, graph_cli: Callable[..., Any]
) -> None:
    """The digest compares the whole graph: a node Neo4j holds beyond the log shows."""
    build_world(reg)
    neo4j_graph.sync(reg.ledger)
    assert graph_cli("rebuild")[1]["same"] is True

    def extra(tx: Any) -> None:
        tx.run("CREATE (:LineageNode {id: 'dataset:test/stray@1'})").consume()

    neo4j_graph._call(extra, write=True)
    assert canonical_json(neo4j_graph.canonical()) != canonical_json(
        canonical(graph_of(reg.ledger).current())
    )
    status, rebuilt = graph_cli("rebuild")  # dropped and replayed: the stray is gone
    assert status == 0 and rebuilt["same"] is True


def test_without_a_graph_the_commands_say_what_is_missing(
    store_url: str, reg: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", "status", "--db", store_url]) == 2
    assert "expected --graph bolt://HOST:PORT or MLLEDGER_GRAPH" in capsys.readouterr().err
    assert main(["graph", "sync", "--db", store_url, "--graph", "http://x"]) == 2
    assert "is not a Neo4j URL: expected bolt://HOST:PORT" in capsys.readouterr().err
    assert main(["graph", "status", "--db", store_url, "--graph", "bolt://h:port"]) == 2
    assert "has a port that is not a number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["graph", "follow", "--db", store_url, "--graph", "bolt://h:1", "--interval", "0"])
    assert refused.value.code == 2
    assert "expected more than 0" in capsys.readouterr().err


def test_a_graph_out_of_reach_exits_1_with_the_reason(
    store_url: str, reg: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = f"bolt://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["graph", "status", "--db", store_url, "--graph", closed]) == 1
    err = capsys.readouterr().err
    assert "mlledger graph: unavailable: the lineage graph at" in err
    assert "cannot be reached" in err and "Traceback" not in err


def test_follow_keeps_the_graph_up_to_date_until_stopped(
    reg: Registry, store_url: str, neo4j_graph: Neo4jGraph, graph_env: dict[str, str]
) -> None:
    build_world(reg)
    env = {**os.environ, **graph_env}
    follower = subprocess.Popen(
        [sys.executable, "-m", "registry.cli", "graph", "follow", "--db", store_url,
         "--interval", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        head = neo4j_graph.status(reg.ledger).head
        _until(lambda: neo4j_graph.position() == head)
        reg.register_dataset("later", uri="s3://d/later", digest="sha256:98")
        event = reg.ledger.last_event()
        assert event is not None and event.type == "dataset-version-registered"
        _until(lambda: neo4j_graph.position() == event.position)
        assert event.entity in [node[0] for node in neo4j_graph.canonical()["nodes"]]
    finally:
        follower.send_signal(signal.SIGTERM)
        _out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err


def _until(done: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def test_the_server_answers_from_neo4j_and_refuses_while_it_is_away(
    tmp_path: Path, neo4j_server: Neo4jServer, neo4j_graph: Neo4jGraph
) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    graph_env = {
        "MLLEDGER_GRAPH": neo4j_server.url,
        "MLLEDGER_GRAPH_USER": neo4j_server.user,
        "MLLEDGER_GRAPH_PASSWORD": neo4j_server.password,
    }
    server = ApiServer(tmp_path / "up", db=db, env=graph_env)
    for up in server.serving():
        with up.client(up.key("test", "admin")) as http:
            made = http.post(
                "/projects/test/datasets",
                json={"name": "raw", "version": "1", "uri": "s3://d/raw", "digest": "sha256:1"},
            )
            assert made.status_code in (200, 201), made.text
            asked = http.get("/projects/test/questions/lineage", params=RAW_LINEAGE)
            assert asked.status_code == 200, asked.text
            assert [n["id"] for n in asked.json()["nodes"]] == ["dataset:test/raw@1"]
        assert neo4j_graph.position() >= 0  # the question caught the graph up first
    away = ApiServer(
        tmp_path / "away",
        db=db,
        env={**graph_env, "MLLEDGER_GRAPH": "bolt://127.0.0.1:9", "MLLEDGER_GRAPH_WAIT": "1"},
    )
    for up in away.serving():
        with up.client(up.key("test", "admin")) as http:
            asked = http.get("/projects/test/questions/lineage", params=RAW_LINEAGE)
            # Appends never wait for the graph.
            made = http.post(
                "/projects/test/datasets",
                json={"name": "raw", "version": "2", "uri": "s3://d/raw2", "digest": "sha256:2"},
            )
            assert made.status_code == 201, made.text
    with registry.connect(db, project="test") as reg:
        written = reg.ledger.last_event()
        assert written is not None and written.entity == "dataset:test/raw@2"
    assert asked.status_code == 503
    problem = asked.json()
    assert problem["type"].endswith(":unavailable") and "cannot be reached" in problem["detail"]


def test_a_projector_killed_mid_window_loses_and_duplicates_nothing(
    reg: Registry, store_url: str, neo4j_graph: Neo4jGraph, graph_env: dict[str, str]
) -> None:
    """``mlledger graph sync`` killed with SIGKILL at moments spread over its work, again
    and again: each window it wrote is whole, none twice; the graph a last sync completes
    is the embedded graph, digest for digest, and its counts are the projection's."""
    world = build_world(reg)
    # A log long enough for many windows: datasets derived in a chain, runs reading them.
    parent = world.raw
    for i in range(150):
        parent = reg.register_dataset(
            f"chain-{i}", uri=f"s3://d/chain-{i}", digest=f"sha256:c{i}", derived_from=[parent]
        )
        with reg.run("step", inputs=[parent]):
            pass
    last = reg.ledger.last_event()
    assert last is not None and last.type == "run-completed"
    head = neo4j_graph.status(reg.ledger).head
    env = {**os.environ, **graph_env, "MLLEDGER_GRAPH_WINDOW": "15"}
    midway: list[int] = []  # positions the graph was left at by a kill
    for _attempt in range(6):
        before = neo4j_graph.position()
        syncer = subprocess.Popen(
            [sys.executable, "-m", "registry.cli", "graph", "sync", "--db", store_url],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        # Killed as soon as it has written a window: in the middle of its next one.
        deadline = time.monotonic() + 60
        while syncer.poll() is None and neo4j_graph.position() == before:
            assert time.monotonic() < deadline, "the sync wrote nothing in 60 s"
            time.sleep(0.01)
        killed = syncer.poll() is None
        if killed:
            syncer.kill()
        syncer.wait(30)
        position = neo4j_graph.position()
        if killed and -1 < position < head:
            midway.append(position)
            if len(midway) == 2:
                break
        elif position >= head:  # it finished first: start again from nothing
            neo4j_graph.drop()
    assert len(midway) == 2, f"fewer than two kills landed mid-way (positions {midway})"
    assert neo4j_graph.sync(reg.ledger) == head
    with reg.ledger.store.read() as conn:
        embedded = graph_of(reg.ledger).current(conn)
    assert canonical_json(neo4j_graph.canonical()) == canonical_json(canonical(embedded))
    status = neo4j_graph.status(reg.ledger)
    assert (status.nodes, status.edges) == (embedded.number_of_nodes(), embedded.number_of_edges())
