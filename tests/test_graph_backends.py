"""The lineage questions give the same answers on both graph backends: the embedded
networkx graph and the Neo4j projection (a real Neo4j server, tests/support/neo4jserver.py).

Every question is asked of the same worlds both ways: ``trained-on`` of every model
version, ``downstream`` of every dataset version, and ``lineage`` of every node in every
direction, at several depths, now and as of every moment a node appeared (and before
any), for an asker who may read every project and for one who may not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from lineage import neo4j as neo4j_module
from lineage import queries
from lineage.graph import canonical, graph_of
from lineage.neo4j import Neo4jGraph, attach
from lineage.openlineage.ingest import to_events
from lineage.openlineage.readmodel import marquez_graph
from registry import Registry, grants
from registry.canonical import canonical_json
from registry.errors import ConfigError, GraphUnavailable
from registry.ledger import Ledger
from registry.store.raw import Raw
from tests.support.helpers import connected
from tests.support.neo4jserver import Neo4jServer
from tests.support.worlds import build_world


def both(ledger: Ledger, graph: Neo4jGraph, ask: Callable[[], Any]) -> tuple[Any, Any]:
    """What ``ask`` answers on the embedded graph, then on Neo4j (an error counts as an
    answer: its class and message)."""
    answers = []
    for backend in (None, graph):
        attach(ledger, backend)
        try:
            answer = ask()
            answers.append(answer.model_dump() if hasattr(answer, "model_dump") else answer)
        except Exception as exc:  # compared, not swallowed: both must fail alike
            answers.append((type(exc).__name__, str(exc)))
    attach(ledger, None)
    return answers[0], answers[1]


@contextmanager
def answering_from(ledger: Ledger, graph: Neo4jGraph) -> Iterator[None]:
    """``ledger``'s lineage questions answered from ``graph`` inside the block only."""
    attach(ledger, graph)
    try:
        yield
    finally:
        attach(ledger, None)


def graph_nodes(ledger: Ledger) -> list[tuple[str, str, str, str]]:
    """Each node of the lineage projection: id, kind, project and creation time."""
    with ledger.store.read() as conn:
        return [
            (str(n), str(k), str(p), str(c))
            for n, k, p, c in Raw(conn).all(
                "SELECT id, kind, project, created_at FROM lineage_nodes ORDER BY id"
            )
        ]


def richer_world(reg: Registry, store_url: str) -> None:
    """The query tests' world, plus: a dataset of project ``beta`` (granted to ``test``)
    that a ``test`` run reads and a ``test`` dataset derives from, and an OpenLineage job
    that reads a native dataset version and writes a dataset of its own."""
    world = build_world(reg)
    ledger = reg.ledger
    for beta in connected(store_url, project="beta", actor="bob"):
        theirs = beta.register_dataset(
            "shared", "1", uri="s3://beta/shared", digest="sha256:beta", records=["r"]
        )
        grants.grant(ledger, "beta", "test", actor="bob-admin")
        granted = ledger.last_event()
        assert granted is not None and granted.type == "project-access-granted"
        reg.register_dataset(
            "mixed", uri="s3://test/mixed", digest="sha256:mixed", derived_from=[theirs]
        )
        with reg.run("cross") as run:
            run.use(theirs)
            run.use(world.clean)
    doc = {
        "eventType": "COMPLETE",
        "eventTime": "2024-05-01T10:00:00Z",
        "producer": "https://example.com/scheduler",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "0190f1a6-6a5e-7c3b-9d2e-4c1a2b3c4d5e"},
        "job": {"namespace": "sched", "name": "etl"},
        "inputs": [{"namespace": "s3://lake", "name": "in.csv"}],
        "outputs": [{"namespace": "s3://lake", "name": "out.csv"}],
    }
    appended = ledger.append(to_events(ledger, "test", "scheduler", doc))
    types = [e.type for e in ledger.read(appended[0], len(appended))]
    assert "openlineage-run-event" in types and "run-completed" in types


def test_every_question_answers_alike_on_both_backends(
    reg: Registry, neo4j_graph: Neo4jGraph, store_url: str
) -> None:
    graph = neo4j_graph
    richer_world(reg, store_url)
    ledger = reg.ledger
    assert graph.sync(ledger) == graph.status(ledger).head
    nodes = graph_nodes(ledger)
    assert {k for _, k, _, _ in nodes} >= {"dataset", "run", "model", "deployment"}
    assert {p for _, _, p, _ in nodes} == {"test", "beta"}
    times = sorted({c for _, _, _, c in nodes})
    # Now, before anything, and a moment in each stretch of the world's history.
    moments: list[str | None] = [
        None,
        "2000-01-01T00:00:00.000000Z",
        *times[:: max(1, len(times) // 4)],
    ]
    compared = 0
    for node, kind, _, _ in nodes:
        if kind == "model":
            memory, cypher = both(ledger, graph, lambda n=node: queries.trained_on(ledger, n))
            assert memory == cypher, node
            compared += 1
        if kind == "dataset":
            memory, cypher = both(ledger, graph, lambda n=node: queries.downstream(ledger, n))
            assert memory == cypher, node
            compared += 1
        for direction in ("upstream", "downstream", "both"):
            for depth in (0, 1, 3):
                for when in moments:
                    for visible in (None, frozenset({"test"}), frozenset({"beta"})):
                        memory, cypher = both(
                            ledger,
                            graph,
                            lambda n=node, d=direction, h=depth, w=when, v=visible: queries.lineage(
                                ledger, n, direction=d, depth=h, when=w, visible=v
                            ),
                        )
                        assert memory == cypher, (node, direction, depth, when, visible)
                        compared += 1
    assert compared > 500
    world_models = sorted(n for n, k, _, _ in nodes if k == "model")
    world_datasets = sorted(n for n, k, _, _ in nodes if k == "dataset")
    # An erased subject: the footprint says so, lineage of the erased record answers
    # with the erasure; the same on both.
    outcome = reg.erase("ann")
    assert outcome["status"] == "erased"
    erased = ledger.last_event()
    assert erased is not None and erased.type == "subject-erased"
    record = f"record:test/{ledger.pseudonymizer('test').records(['rec-0'])[0]}"
    memory, cypher = both(ledger, graph, lambda: queries.lineage(ledger, record))
    assert memory == cypher and isinstance(memory, dict) and memory["erased"], memory
    for ask in (
        lambda: queries.footprint(ledger, "test", "ann"),
        lambda: queries.trained_on(ledger, world_models[0]),
        lambda: queries.downstream(ledger, world_datasets[0]),
    ):
        memory, cypher = both(ledger, graph, ask)
        assert memory == cypher
    # The footprint's list of what each subject's data reached.
    for subject in ("ann", "bob", "cid", "zed", "nobody"):
        for visible in (None, frozenset({"test"})):
            memory, cypher = both(
                ledger,
                graph,
                lambda s=subject, v=visible: queries.footprint(ledger, "test", s, visible=v),
            )
            assert memory == cypher, (subject, visible)
    # The Marquez-shaped lineage, around every Marquez node the OpenLineage job reaches.
    start = "job:sched:etl"
    memory, cypher = both(ledger, graph, lambda: marquez_graph(ledger, "test", start, 20))
    assert memory == cypher and isinstance(memory, dict)
    marquez_ids = [n["id"] for n in memory["graph"]]
    assert start in marquez_ids and any(i.startswith("dataset:") for i in marquez_ids)
    for marquez_id in marquez_ids:
        for depth in (0, 1, 2):
            memory, cypher = both(
                ledger, graph, lambda i=marquez_id, d=depth: marquez_graph(ledger, "test", i, d)
            )
            assert memory == cypher, (marquez_id, depth)


def test_a_question_sees_the_writes_made_before_it(reg: Registry, neo4j_graph: Neo4jGraph) -> None:
    graph = neo4j_graph
    world = build_world(reg)
    attach(reg.ledger, graph)
    try:
        before = queries.downstream(reg.ledger, world.raw.id)
        later = reg.register_dataset(
            "later", uri="s3://d/later", digest="sha256:77", derived_from=[world.raw]
        )
        event = reg.ledger.last_event()
        assert event is not None and event.type == "dataset-version-registered"
        after = queries.downstream(reg.ledger, world.raw.id)
    finally:
        attach(reg.ledger, None)
    assert later.id not in {d["dataset"] for d in before.datasets}
    assert later.id in {d["dataset"] for d in after.datasets}
    assert graph.position() == graph.status(reg.ledger).head


def test_syncing_twice_writes_each_window_once(reg: Registry, neo4j_graph: Neo4jGraph) -> None:
    graph = neo4j_graph
    build_world(reg)
    first = graph.sync(reg.ledger)
    status = graph.status(reg.ledger)
    assert graph.sync(reg.ledger) == first
    assert graph.status(reg.ledger) == status and status.lag == 0
    with reg.ledger.store.read() as conn:
        raw = Raw(conn)
        assert status.nodes == raw.scalar("SELECT COUNT(*) FROM lineage_nodes")
        assert status.edges == raw.scalar("SELECT COUNT(*) FROM lineage_edges")


def test_an_unreachable_graph_is_said_not_answered_stale(reg: Registry) -> None:
    world = build_world(reg)
    down = Neo4jGraph("bolt://127.0.0.1:9", ("neo4j", "wrong"))
    attach(reg.ledger, down)
    try:
        with pytest.raises(GraphUnavailable, match="cannot be reached") as caught:
            queries.trained_on(reg.ledger, world.m1.id)
    finally:
        attach(reg.ledger, None)
        down.close()
    assert caught.value.status == 503


def test_a_request_the_server_refuses_is_said_not_a_server_error(
    reg: Registry, neo4j_graph: Neo4jGraph
) -> None:
    """What the server refuses (here a query it cannot run) is ``GraphUnavailable``
    with the server's reason, which an API answers 503, never a bare 500."""
    build_world(reg)
    reader = neo4j_graph.reader()
    try:
        with pytest.raises(GraphUnavailable, match=r"could not be used .*expected a Neo4j 5"):
            reader._rows("RETURN 1 / $zero AS n", zero=0)
    finally:
        reader.close()
    assert neo4j_graph.sync(reg.ledger) == neo4j_graph.status(reg.ledger).head


def test_a_drop_by_another_process_during_a_sync_is_caught_up_from(
    reg: Registry, neo4j_graph: Neo4jGraph, neo4j_server: Neo4jServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A sync spanning several windows, with the graph dropped by another process
    after the first: the sync goes on from where the graph then is, and completes."""
    build_world(reg)
    head = neo4j_graph.status(reg.ledger).head
    monkeypatch.setattr(neo4j_graph, "window", max(1, head // 4))
    other = Neo4jGraph(neo4j_server.url, (neo4j_server.user, neo4j_server.password))
    real = neo4j_module._window
    dropped: list[int] = []

    def window(conn: Any, since: int, upto: int) -> Any:
        if since >= 0 and not dropped:
            other.drop()
            dropped.append(since)
        return real(conn, since, upto)

    monkeypatch.setattr(neo4j_module, "_window", window)
    try:
        assert neo4j_graph.sync(reg.ledger, seconds=30) == head
    finally:
        other.close()
    assert dropped and neo4j_graph.status(reg.ledger).lag == 0
    assert canonical_json(neo4j_graph.canonical()) == canonical_json(
        canonical(graph_of(reg.ledger).current())
    )


def test_processes_syncing_at_once_write_each_window_once(
    reg: Registry, neo4j_server: Neo4jServer, neo4j_graph: Neo4jGraph
) -> None:
    """Four syncers (each with its own driver, as separate processes would have) start
    together with windows of 7 log positions: the tracking lock makes each window's
    writer the only one, so the graph has every edge once (a second writer of a window
    would CREATE its edges again)."""
    build_world(reg)
    event = reg.ledger.last_event()
    assert event is not None and event.type == "predictions-logged"
    auth = (neo4j_server.user, neo4j_server.password)
    syncers = [Neo4jGraph(neo4j_server.url, auth, window=7) for _ in range(4)]
    start = threading.Barrier(len(syncers))
    reached: list[int] = []
    failed: list[BaseException] = []

    def sync(graph: Neo4jGraph) -> None:
        try:
            start.wait()
            reached.append(graph.sync(reg.ledger))
        except BaseException as exc:  # reported below, in the test's thread
            failed.append(exc)

    threads = [threading.Thread(target=sync, args=(g,)) for g in syncers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for graph in syncers:
        graph.close()
    assert not failed, failed
    status = neo4j_graph.status(reg.ledger)
    assert reached == [status.head] * len(syncers) and status.lag == 0
    with reg.ledger.store.read() as conn:
        raw = Raw(conn)
        assert status.nodes == raw.scalar("SELECT COUNT(*) FROM lineage_nodes")
        assert status.edges == raw.scalar("SELECT COUNT(*) FROM lineage_edges")
    with reg.ledger.store.read() as conn:
        embedded = canonical(graph_of(reg.ledger).current(conn))
    assert canonical_json(neo4j_graph.canonical()) == canonical_json(embedded)


def test_a_drop_deletes_in_batches_and_refuses_questions_meanwhile(
    reg: Registry, neo4j_graph: Neo4jGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(reg)
    neo4j_graph.sync(reg.ledger)
    nodes = neo4j_graph.status(reg.ledger).nodes
    monkeypatch.setattr(neo4j_module, "DROP_BATCH", 3)
    batches: list[int] = []
    real_call = neo4j_graph._call

    def call(work: Any, *args: Any, write: bool = False) -> Any:
        result = real_call(work, *args, write=write)
        if getattr(work, "__name__", "") == "delete":
            batches.append(result)
            if len(batches) == 1:  # half-way: a question is refused, not answered
                with (
                    answering_from(reg.ledger, neo4j_graph),
                    pytest.raises(GraphUnavailable, match="being dropped for a rebuild"),
                ):
                    queries.trained_on(reg.ledger, world.m1.id)
        return result

    monkeypatch.setattr(neo4j_graph, "_call", call)
    neo4j_graph.drop()
    assert batches[-1] == 0 and sum(batches) == nodes and max(batches) == 3
    status = neo4j_graph.status(reg.ledger)
    assert (status.position, status.nodes, status.edges) == (-1, 0, 0)
    assert neo4j_graph.sync(reg.ledger) == status.head


def test_a_deep_walk_costs_a_few_queries_whatever_its_depth(
    reg: Registry, neo4j_graph: Neo4jGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain 30 derivations deep behind a model: each question on Neo4j fetches the
    walk's neighbourhood in one query (plus the position checks before and after, the
    root, and what the answer needs besides), not a query a hop; the answers are the
    embedded graph's."""
    chain = [reg.register_dataset("d0", uri="s3://chain/0", digest="sha256:c0")]
    for i in range(1, 30):
        chain.append(
            reg.register_dataset(
                f"d{i}", uri=f"s3://chain/{i}", digest=f"sha256:c{i}", derived_from=[chain[-1]]
            )
        )
    with reg.run("train") as run:
        run.use(chain[-1])
        model = run.register_model("deep", artifact_uri="s3://m/deep", artifact_digest="sha256:d")
    registered = reg.ledger.last_event()
    assert registered is not None and registered.type == "run-completed"
    asked: list[str] = []
    real_rows = neo4j_module.Neo4jReader._rows

    def rows(self: Any, query: str, **params: Any) -> list[Any]:
        asked.append(query)
        return real_rows(self, query, **params)

    monkeypatch.setattr(neo4j_module.Neo4jReader, "_rows", rows)
    questions: dict[str, Callable[[], Any]] = {
        "trained_on": lambda: queries.trained_on(reg.ledger, model.id),
        "downstream": lambda: queries.downstream(reg.ledger, chain[0].id),
        "lineage": lambda: queries.lineage(reg.ledger, model.id, direction="upstream", depth=20),
    }
    for name, ask in questions.items():
        asked.clear()
        embedded, on_neo4j = both(reg.ledger, neo4j_graph, ask)
        assert embedded == on_neo4j, name
        assert len(asked) <= 5, (name, len(asked))
    trained = queries.trained_on(reg.ledger, model.id)
    assert {d["dataset"]: d["depth"] for d in trained.datasets} == {
        d.id: 30 - i for i, d in enumerate(chain)
    }


def test_a_drop_during_a_question_refuses_its_answer(
    reg: Registry,
    neo4j_server: Neo4jServer,
    neo4j_graph: Neo4jGraph,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild's drop that begins after a question has checked the graph, and ends
    before it has walked it: the answer (from half a graph, or none) is refused."""
    world = build_world(reg)
    neo4j_graph.sync(reg.ledger)
    other = Neo4jGraph(neo4j_server.url, (neo4j_server.user, neo4j_server.password))
    real_prefetch = neo4j_module.Neo4jReader.prefetch

    def prefetch(self: Any, *args: Any, **kwargs: Any) -> None:
        other.drop()  # another process, between the question's first query and its walk
        real_prefetch(self, *args, **kwargs)

    monkeypatch.setattr(neo4j_module.Neo4jReader, "prefetch", prefetch)
    try:
        with answering_from(reg.ledger, neo4j_graph):
            for ask in (
                lambda: queries.trained_on(reg.ledger, world.m1.id),
                lambda: queries.lineage(reg.ledger, world.m1.id, direction="both", depth=4),
            ):
                neo4j_graph.sync(reg.ledger)
                with pytest.raises(GraphUnavailable, match="being dropped for a rebuild"):
                    ask()
    finally:
        other.close()


def test_two_drops_at_once_leave_the_graph_refused_until_the_later_is_done(
    reg: Registry, neo4j_graph: Neo4jGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drop that ends while another process's drop still deletes does not lift that
    one's mark (which let syncs write into a graph still being deleted, and edges be
    written twice): it says so, and the graph stays refused until the other is done."""
    world = build_world(reg)
    neo4j_graph.sync(reg.ledger)
    expected = neo4j_graph.status(reg.ledger)
    real_call = neo4j_graph._call

    def mark_of_another(tx: Any) -> None:
        tx.run(
            "MATCH (t:MlledgerTracking {name: 'lineage'}) "
            "SET t.position = -1, t.dropping = true, t.dropper = 'another'"
        ).consume()

    def call(work: Any, *args: Any, write: bool = False) -> Any:
        if getattr(work, "__name__", "") == "unmark":  # another drop began meanwhile
            real_call(mark_of_another, write=True)
        return real_call(work, *args, write=write)

    monkeypatch.setattr(neo4j_graph, "_call", call)
    with pytest.raises(GraphUnavailable, match="another process began dropping"):
        neo4j_graph.drop()
    monkeypatch.undo()
    with pytest.raises(GraphUnavailable, match="being dropped"):
        neo4j_graph.sync(reg.ledger)
    with (
        answering_from(reg.ledger, neo4j_graph),
        pytest.raises(GraphUnavailable, match="being dropped"),
    ):
        queries.trained_on(reg.ledger, world.m1.id)
    # The other drop ends: its mark goes, and the graph is synced again, each edge once.
    real_call(lambda tx: tx.run("MATCH (t:MlledgerTracking) DELETE t").consume(), write=True)
    neo4j_graph.sync(reg.ledger)
    assert neo4j_graph.status(reg.ledger) == expected


def test_a_graph_ahead_of_the_ledger_is_refused(
    reg: Registry, tmp_path: Any, neo4j_graph: Neo4jGraph
) -> None:
    """A graph holding positions this ledger does not have (another ledger's graph, or
    a ledger restored from an older copy) answers nothing: questions and syncs say so."""
    build_world(reg)
    neo4j_graph.sync(reg.ledger)
    for fresh in connected(f"sqlite:///{tmp_path}/other.db", project="test", actor="ann"):
        raw = fresh.register_dataset("raw", uri="s3://d/raw", digest="sha256:1")
        event = fresh.ledger.last_event()
        assert event is not None and event.type == "dataset-version-registered"
        with pytest.raises(GraphUnavailable, match="ahead of this ledger's lineage projection"):
            neo4j_graph.sync(fresh.ledger)
        with (
            answering_from(fresh.ledger, neo4j_graph),
            pytest.raises(GraphUnavailable, match="mlledger graph rebuild"),
        ):
            queries.lineage(fresh.ledger, raw.id, direction="downstream", depth=3)


def test_a_depth_beyond_any_graph_is_no_bound_on_neo4j(
    reg: Registry, neo4j_graph: Neo4jGraph
) -> None:
    world = build_world(reg)
    embedded, on_neo4j = both(
        reg.ledger,
        neo4j_graph,
        lambda: queries.lineage(reg.ledger, world.m1.id, direction="both", depth=10**19),
    )
    assert embedded == on_neo4j and len(embedded["nodes"]) > 1


def test_a_graph_url_whose_port_is_no_number_is_refused() -> None:
    with pytest.raises(ConfigError, match="port that is not a number"):
        Neo4jGraph("bolt://127.0.0.1:notaport", None)
    with pytest.raises(ConfigError, match="bolt\\+ssc"):
        Neo4jGraph("http://127.0.0.1:7474", None)
