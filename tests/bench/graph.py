"""The lineage graph in Neo4j against the embedded networkx graph (``make bench``).

Writes one JSON document (``--out``) and prints it. On a fresh embedded SQLite ledger
(WAL, synchronous=FULL) holding a lineage-heavy world appended in batches of 5,000
events: at scale 1.0, 100 families of 200 dataset versions and 100 runs each (20,000
versions, 10,000 runs, 5,000 model versions). In a family, each version after the
fourth is derived from one or two of the twenty before it (chains of derivations tens
of levels deep), every other one is written by a run that read up to four earlier
versions (and now and then a model version of the family), half of the runs register
a model version; families are grouped four to a cluster, later families deriving a few
versions from the one before (fan-in across families), and each cluster has a
deployment whose configuration changes three times (edges that close, for the
questions as of a past time). A throwaway Neo4j 5.26 server
(``tests.support.neo4jserver``) holds the projection. Figures:

- ``world``: its events, nodes and edges, and the seconds it took to append;
- ``sync``: a full ``Neo4jGraph.sync`` from an empty graph (seconds, log events a
  second), the graph's nodes and edges after it, then ``rebuild`` (``drop`` and a full
  ``sync`` again);
- ``incremental``: 100 batches of 10 new events (two runs each writing a derived
  version, two more derived versions) appended after the full sync, each followed by
  a timed ``sync`` that catches up (median and p99);
- ``questions``: for 200 sampled nodes each, ``trained_on`` (model versions),
  ``downstream`` (dataset versions), ``lineage`` (depth 3, both directions) and
  ``lineage`` as of a past time, asked of the embedded graph and of Neo4j in turn
  (which goes first alternates from one sample to the next), with median and p99 for
  each and the number of sampled questions whose two answers differ (the target: 0);
- ``memory``: the Neo4j server's resident memory after the sync, and this process's
  peak resident memory.

Targets: the same answers from both graphs (0 mismatches); a full sync of the scale-1.0
world within a minute; an incremental sync within 50 ms at p99.

Not a test: numbers depend on the machine. ``--scale`` shrinks the world for a quick
look.
"""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from lineage import queries
from lineage.neo4j import Neo4jGraph, attach
from registry.events import NewEvent, make_event
from registry.ids import dataset_id, deployment_id, model_id, new_id
from registry.ledger import Ledger
from registry.sdk import connect
from registry.store.raw import Raw
from tests.bench.harness import (
    Stopwatch,
    arguments,
    fresh,
    latency,
    load_average,
    measure,
    write_result,
)
from tests.support.neo4jserver import Neo4jServer

PROJECT = "bench"
FAMILIES = 100
VERSIONS = 200  # dataset versions a family; every other one written by a run
CLUSTER = 4  # families a cluster: cross-family derivations and one deployment
BATCH = 5_000
INCREMENTS = 100
SAMPLES = 200
DEPTH = 3
#: The world's clock: one second an event from here (2025-01-01T00:00:00Z).
EPOCH = 1_735_689_600.0


class World:
    """Events of the lineage-heavy world, made in an order the ledger accepts (every
    node before the edges that name it), each with a time one second after the last."""

    def __init__(self, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.events: list[NewEvent] = []
        self.clock = EPOCH
        self.datasets: list[str] = []
        self.models: list[str] = []
        self.runs: list[str] = []
        self.deployments: list[str] = []
        self.count = 0

    def _add(self, type_: str, entity: str, body: dict[str, Any]) -> None:
        self.clock += 1.0
        self.events.append(
            make_event(
                type_,
                project=PROJECT,
                entity=entity,
                actor="bench",
                body=body,
                occurred_at=self.clock,
            )
        )

    def dataset(self, name: str, parents: list[str], run: str | None = None) -> str:
        self.count += 1
        node = dataset_id(PROJECT, name, "1")
        self._add(
            "dataset-version-registered",
            node,
            {
                "name": name,
                "version": "1",
                "digest": f"sha256:{self.count:064x}",
                "uri": f"s3://bench/{name}",
                "derived_from": parents,
                "produced_by": run,
            },
        )
        self.datasets.append(node)
        return node

    def run(self, job: str, inputs: list[str]) -> str:
        run = f"run:{new_id()}"
        self._add("run-started", run, {"job": job})
        self._add("run-inputs-used", run, {"inputs": inputs})
        self.runs.append(run)
        return run

    def model(self, name: str, run: str) -> str:
        self.count += 1
        node = model_id(PROJECT, name, "1")
        self._add(
            "model-version-registered",
            node,
            {
                "name": name,
                "version": "1",
                "run": run,
                "artifact_uri": f"s3://bench/models/{name}",
                "artifact_digest": f"sha256:{self.count:064x}",
            },
        )
        self.models.append(node)
        return node

    def completed(self, run: str) -> None:
        self._add("run-completed", run, {})

    def deploy(self, name: str, models: list[str]) -> None:
        node = deployment_id(PROJECT, name)
        share = 100 / len(models)
        served = [{"model": m, "traffic": share} for m in models[:-1]]
        served.append({"model": models[-1], "traffic": 100 - share * (len(models) - 1)})
        self._add("deployment-configured", node, {"endpoint": f"https://{name}", "served": served})
        if node not in self.deployments:
            self.deployments.append(node)

    def family(self, f: int, before: list[str]) -> tuple[list[str], list[str]]:
        """One family's versions and models; ``before``: the previous family's versions
        in the cluster (a few versions here derive from them too)."""
        rng = self.rng
        mine: list[str] = []
        models: list[str] = []
        for i in range(VERSIONS):
            name = f"f{f}-d{i}"
            window = mine[-20:]
            parents = rng.sample(window, min(len(window), rng.choice((1, 1, 2)))) if i >= 4 else []
            if before and rng.random() < 0.03:
                parents.append(rng.choice(before))
            if i % 2 == 0:
                mine.append(self.dataset(name, parents))
                continue
            inputs = rng.sample(mine, min(len(mine), rng.randint(2, 4)))
            if models and rng.random() < 0.1:
                inputs.append(rng.choice(models))
            run = self.run(f"f{f}-step", inputs)
            mine.append(self.dataset(name, parents, run))
            if (i // 2) % 2 == 0:
                models.append(self.model(f"f{f}-m{i}", run))
            self.completed(run)
        return mine, models

    def build(self, scale: float) -> None:
        families = max(CLUSTER, round(FAMILIES * scale))
        before: list[str] = []
        cluster_models: list[str] = []
        for f in range(families):
            if f % CLUSTER == 0:
                before, cluster_models = [], []
            before, models = self.family(f, before)
            cluster_models += models
            if f % CLUSTER == CLUSTER - 1 or f == families - 1:
                name = f"api-{f // CLUSTER}"
                for _ in range(3):
                    self.deploy(name, self.rng.sample(cluster_models, 2))

    def increment(self, i: int) -> list[NewEvent]:
        """Ten events: two runs each reading two versions and writing a derived one,
        and two versions derived from those."""
        self.events = []
        made = []
        for j in range(2):
            inputs = self.rng.sample(self.datasets, 2)
            run = self.run("increment", inputs)
            made.append(self.dataset(f"inc{i}-r{j}", [inputs[0]], run))
            self.completed(run)
        for j, parent in enumerate(made):
            self.dataset(f"inc{i}-d{j}", [parent])
        return self.events


def _append(ledger: Ledger, events: list[NewEvent]) -> float:
    began = time.perf_counter()
    for start in range(0, len(events), BATCH):
        ledger.append(events[start : start + BATCH])
    return time.perf_counter() - began


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux counts kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _sync(graph: Neo4jGraph, ledger: Ledger) -> float:
    began = time.perf_counter()
    graph.sync(ledger)
    return time.perf_counter() - began


def _same(a: Any, b: Any) -> bool:
    return bool(a.model_dump(mode="json") == b.model_dump(mode="json"))


def _compare(
    ledger: Ledger, graph: Neo4jGraph, ask: Callable[[str], Any], nodes: list[str]
) -> dict[str, Any]:
    """``ask`` of each node, of the embedded graph and of Neo4j in turn (alternating
    which goes first): the latencies of each and the nodes whose answers differ."""
    embedded: list[float] = []
    neo4j: list[float] = []
    mismatches: list[str] = []
    sizes: list[int] = []
    for i, node in enumerate(nodes):
        answers: dict[str, Any] = {}
        for backend in ("embedded", "neo4j") if i % 2 == 0 else ("neo4j", "embedded"):
            attach(ledger, graph if backend == "neo4j" else None)
            began = time.perf_counter()
            answers[backend] = ask(node)
            (neo4j if backend == "neo4j" else embedded).append(time.perf_counter() - began)
        attach(ledger, None)
        if not _same(answers["embedded"], answers["neo4j"]):
            mismatches.append(node)
        sizes.append(_size(answers["embedded"].model_dump(mode="json")))
    ordered = sorted(sizes)
    return {
        "embedded": latency(embedded, 3),
        "neo4j": latency(neo4j, 3),
        "neo4j_over_embedded_median": round(
            latency(neo4j)["median_ms"] / max(latency(embedded)["median_ms"], 1e-6), 2
        ),
        "answer_nodes": {
            "median": ordered[len(ordered) // 2] if ordered else 0,
            "max": ordered[-1] if ordered else 0,
        },
        "mismatches": len(mismatches),
        "mismatched": mismatches[:5],
    }


def _size(answer: dict[str, Any]) -> int:
    """Nodes an answer names: its lists' lengths, added up."""
    return sum(len(v) for v in answer.values() if isinstance(v, list))


def bench(work: Path, scale: float) -> dict[str, Any]:
    reg = connect(fresh(work, "graph"), project=PROJECT, actor="bench")
    ledger = reg.ledger
    world = World()
    made = time.perf_counter()
    world.build(scale)
    made = time.perf_counter() - made
    appended = _append(ledger, world.events)
    results: dict[str, Any] = {
        "world": {
            "events": len(world.events),
            "dataset_versions": len(world.datasets),
            "runs": len(world.runs),
            "model_versions": len(world.models),
            "deployments": len(world.deployments),
            "make_seconds": round(made, 1),
            "append_seconds": round(appended, 1),
            "batch_size": BATCH,
        }
    }
    with Neo4jServer() as server:
        results["neo4j_start_seconds"] = round(server.startup_seconds or 0.0, 1)
        graph = Neo4jGraph(server.url, (server.user, server.password))
        try:
            results.update(_figures(ledger, graph, world, server))
            results["memory"]["neo4j_rss_bytes_after_questions"] = server.rss_bytes()
        finally:
            attach(ledger, None)
            graph.close()
    results["memory"]["process_peak_rss_bytes"] = _peak_rss()
    reg.close()
    return results


def _figures(
    ledger: Ledger, graph: Neo4jGraph, world: World, server: Neo4jServer
) -> dict[str, Any]:
    events = ledger.head() + 1
    full = _sync(graph, ledger)
    status = graph.status(ledger)
    assert status.lag == 0, status
    rss = server.rss_bytes()
    clock = Stopwatch()
    with clock:
        graph.drop()
        graph.sync(ledger)
    rebuilt = graph.status(ledger)
    figures: dict[str, Any] = {
        "sync": {
            "log_events": events,
            "nodes": status.nodes,
            "edges": status.edges,
            "seconds": round(full, 2),
            "events_per_s": round(events / full),
            "rebuild_seconds": round(clock.seconds, 2),
            "rebuild_events_per_s": round(events / clock.seconds),
            "rebuild_same_size": (rebuilt.nodes, rebuilt.edges) == (status.nodes, status.edges),
        },
        "memory": {"neo4j_rss_bytes_after_sync": rss},
    }
    catch_up: list[float] = []
    added = 0
    for i in range(INCREMENTS):
        batch = world.increment(i)
        added += len(batch)
        ledger.append(batch)
        catch_up.append(_sync(graph, ledger))
    assert graph.status(ledger).lag == 0
    figures["incremental"] = {
        "batches": INCREMENTS,
        "events_per_batch": added // INCREMENTS,
        "sync": latency(catch_up, 3, worst=True),
    }
    figures["questions"] = _questions(ledger, graph, world)
    return figures


def _questions(ledger: Ledger, graph: Neo4jGraph, world: World) -> dict[str, Any]:
    rng = random.Random(5)
    models = rng.sample(world.models, min(SAMPLES, len(world.models)))
    datasets = rng.sample(world.datasets, min(SAMPLES, len(world.datasets)))
    everything = world.datasets + world.runs + world.models + world.deployments
    nodes = rng.sample(everything, min(SAMPLES, len(everything)))
    past = rng.sample(everything, min(SAMPLES, len(everything)))
    created = {n: _created(ledger, n) for n in past}
    end = world.clock
    when = {n: created[n] + rng.random() * (end - created[n]) for n in past}
    # Paid once, by neither figure: the embedded graph's first load.
    attach(ledger, None)
    queries.lineage(ledger, nodes[0], depth=DEPTH)
    return {
        "samples": SAMPLES,
        "depth": DEPTH,
        "trained_on": _compare(ledger, graph, lambda m: queries.trained_on(ledger, m), models),
        "downstream": _compare(ledger, graph, lambda d: queries.downstream(ledger, d), datasets),
        "lineage": _compare(
            ledger,
            graph,
            lambda n: queries.lineage(ledger, n, direction="both", depth=DEPTH),
            nodes,
        ),
        "lineage_as_of": _compare(
            ledger,
            graph,
            lambda n: queries.lineage(ledger, n, direction="both", depth=DEPTH, when=when[n]),
            past,
        ),
    }


def _created(ledger: Ledger, node: str) -> float:
    """Unix seconds of ``node``'s creation in the lineage graph."""
    with ledger.store.read() as conn:
        value = Raw(conn).scalar("SELECT created_at FROM lineage_nodes WHERE id = ?", (node,))
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-graph.json", ".mlledger/bench-graph")
    args = parser.parse_args()
    results = measure(args, lambda work: bench(work, args.scale))
    results["load_average"] = load_average()
    mismatches = sum(q["mismatches"] for q in results["questions"].values() if isinstance(q, dict))
    results["targets_met"] = {
        "same_answers_from_both_graphs": mismatches == 0,
        "full_sync_seconds<=60": results["sync"]["seconds"] <= 60,
        "incremental_sync_p99_ms<=50": results["incremental"]["sync"]["p99_ms"] <= 50,
    }
    write_result(args.out, results)


if __name__ == "__main__":
    main()
