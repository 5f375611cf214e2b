"""The lineage graph in Neo4j against the embedded networkx graph (``make bench``).

Writes one JSON document (``--out``) and prints it, and progress lines to stderr. On a
fresh embedded SQLite ledger (WAL, synchronous=FULL) holding a lineage-heavy world
appended in batches of 5,000 events as it is made (the world keeps only the ids it
samples questions from, never the events): at scale 1.0 (55,075 events, 35,025 nodes,
about 72,000 edges), 100 families of 200 dataset versions and 100 runs each (20,000
versions, 10,000 runs, 5,000 model versions). In a family, each version after the
fourth is derived from one or two of the twenty before it (chains of derivations tens
of levels deep), every other one is written by a run that read up to four earlier
versions (and now and then a model version of the family), half of the runs register
a model version; families are grouped four to a cluster, later families deriving a few
versions from the one before (fan-in across families), and each cluster has a
deployment whose configuration changes three times (edges that close, for the
questions as of a past time). ``--nodes N`` picks the scale for about N nodes (350.25
a family of 200 versions): ``--nodes 1000000`` is scale 28.56, 2,856 families, about
1,570,000 events. A throwaway Neo4j 5.26 server (``tests.support.neo4jserver``) holds
the projection; by default with a 2 GB heap (``--neo4j-heap``), a 1 GB page cache
(``--neo4j-page-cache``) and both JIT compilers (``--c1-only``: as in the tests).
Figures:

- ``world``: its events, nodes and edges, and the seconds it took to append;
- ``sync``: a full ``Neo4jGraph.sync`` from an empty graph (seconds, log events a
  second), the graph's nodes and edges after it, then ``rebuild`` (``drop`` and a full
  ``sync`` again);
- ``incremental``: 100 batches of 10 new events (two runs each writing a derived
  version, two more derived versions) appended after the full sync, each followed by
  a timed ``sync`` that catches up (median and p99);
- ``questions``: ``--questions`` (default 200; 1,000 for the 1M-node run) sequential
  questions of each kind: ``trained_on`` (sampled model versions), ``downstream``
  (sampled dataset versions), ``deployment_upstream`` (``lineage`` upstream, depth 5,
  of the deployments, sampled with replacement: there are few), ``lineage`` (depth 3,
  both directions, of any node) and ``lineage_as_of`` (the same as of a past time),
  asked of the embedded graph and of Neo4j in turn (which goes first alternates from
  one sample to the next), with median, p95, p99 and max for each and the number of
  questions whose two answers differ (the target: 0); ``embedded_first_load_seconds``:
  the first question of the embedded graph, which loads it (in neither figure);
- ``memory``: the Neo4j server's resident memory after the sync and after the
  questions, this process's peak, and ``serving_process``: a fresh process (one for
  each graph, so their peaks do not mix) that opens the ledger and asks one question
  (a deployment's upstream lineage, depth 5) of the embedded graph (which loads the
  whole networkx graph into that process) or of Neo4j: its resident memory before and
  after the question, its peak, and the seconds of its first and second question;
  with the Neo4j server's resident memory then;
- ``crossover``: derived from those figures only: the embedded graph's bytes per node
  in a serving process and first-question seconds per million nodes, the node counts
  at which the embedded graph alone takes 1 GiB and 4 GiB a process, the number of
  serving processes at which their embedded graphs outweigh one Neo4j server (each
  process holds its own graph; a Neo4j client holds none), and the p99 of each
  question on either graph.

Targets: the same answers from both graphs (0 mismatches); a full sync of the scale-1.0
world (or a smaller one) within a minute, and of any world at 10,000 log events a second
or more; an incremental sync
within 50 ms at p99; on Neo4j, ``trained_on``, ``downstream`` and a deployment's
upstream lineage within 50 ms at p99 (meant at 1,000,000 nodes); a rebuild of a graph
of 1,000,000 nodes or more within 5 minutes (``null`` in ``targets_met`` for a smaller
graph: not measured).

Not a test: numbers depend on the machine. ``--scale`` shrinks the world for a quick
look (``--scale 0.1 --questions 50``: about a minute). The 1,000,000-node run::

    python -m tests.bench.graph --nodes 1000000 --questions 1000 \\
        --out .mlledger/bench-graph-1m.json 2> .mlledger/bench-graph-1m.log

It took about 9 minutes on 2 cores (making and appending 3, the full sync 1.5, the
rebuild 2, the questions 2, the serving processes 1); at its peak the Neo4j server
held 1.3 GB, this process 3.2 GB and the serving process with the embedded graph
3.0 GB, one after the other.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from lineage import queries
from lineage.graph import graph_of
from lineage.neo4j import Neo4jGraph, attach
from registry.errors import GraphUnavailable
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
SAMPLES = 200  # questions of each kind (--questions; 1,000 for the 1M-node run)
DEPTH = 3
UPSTREAM_DEPTH = 5  # a deployment's upstream lineage
PROGRESS_EVENTS = 100_000  # a progress line each time this many more are appended
TICK_SECONDS = 30.0  # a progress line this often during a sync
SERVING_TIMEOUT_S = 1800
MEMORY_BUDGETS_GIB = (1, 4)
#: The world's clock: one second an event from here (2025-01-01T00:00:00Z).
EPOCH = 1_735_689_600.0


class World:
    """Events of the lineage-heavy world, made in an order the ledger accepts (every
    node before the edges that name it), each with a time one second after the last."""

    def __init__(
        self, seed: int = 11, sink: Callable[[list[NewEvent]], None] | None = None
    ) -> None:
        self.rng = random.Random(seed)
        #: Events made and not yet given to ``sink`` (at most ``BATCH``).
        self.events: list[NewEvent] = []
        self.sink = sink
        self.made = 0
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
        self.made += 1
        if self.sink is not None and len(self.events) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Give the events made so far to ``sink`` (the world keeps only ids)."""
        if self.sink is not None and self.events:
            self.sink(self.events)
        self.events = []

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
        self.flush()

    def increment(self, i: int) -> list[NewEvent]:
        """Ten events: two runs each reading two versions and writing a derived one,
        and two versions derived from those."""
        self.flush()
        sink, self.sink = self.sink, None
        made = []
        for j in range(2):
            inputs = self.rng.sample(self.datasets, 2)
            run = self.run("increment", inputs)
            made.append(self.dataset(f"inc{i}-r{j}", [inputs[0]], run))
            self.completed(run)
        for j, parent in enumerate(made):
            self.dataset(f"inc{i}-d{j}", [parent])
        batch, self.events, self.sink = self.events, [], sink
        return batch


class Progress:
    """Progress lines on stderr (seconds since the benchmark began), so a long run can
    be watched; ``every`` prints ``what()`` each ``seconds`` while a phase runs."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    def say(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.began:7.1f}s] {message}", file=sys.stderr, flush=True)

    @contextmanager
    def every(self, seconds: float, what: Callable[[], str]) -> Iterator[None]:
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(seconds):
                self.say(what())

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def nodes_per_family() -> float:
    """Graph nodes a family adds: its dataset versions, runs and model versions, and a
    quarter of its cluster's deployment."""
    return VERSIONS + VERSIONS / 2 + VERSIONS / 4 + 1 / CLUSTER


def scale_for(nodes: int) -> float:
    """The ``--scale`` whose world has about ``nodes`` graph nodes (1,000,000: 28.56)."""
    return math.ceil(nodes / nodes_per_family()) / FAMILIES


class Appender:
    """Appends the world's batches to the ledger as they are made; only ``append`` is
    timed."""

    def __init__(self, ledger: Ledger, progress: Progress) -> None:
        self.ledger = ledger
        self.progress = progress
        self.clock = Stopwatch()
        self.events = 0
        self._said = 0

    def __call__(self, batch: list[NewEvent]) -> None:
        with self.clock:
            self.ledger.append(batch)
        self.events += len(batch)
        if self.events - self._said >= PROGRESS_EVENTS:
            self._said = self.events
            self.progress.say(
                f"appended {self.events:,} events ({self.events / self.clock.seconds:,.0f}/s)"
            )


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux counts kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _sync(graph: Neo4jGraph, ledger: Ledger) -> float:
    began = time.perf_counter()
    graph.sync(ledger)
    return time.perf_counter() - began


def _same(a: Any, b: Any) -> bool:
    return bool(a.model_dump(mode="json") == b.model_dump(mode="json"))


def _summary(samples: list[float]) -> dict[str, float]:
    """Median, p95 and p99 (nearest rank) of ``samples`` seconds, in milliseconds."""
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}

    def rank(q: float) -> float:
        return round(
            ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1e3, 3
        )

    return {
        "median_ms": round(statistics.median(ordered) * 1e3, 3),
        "p95_ms": rank(0.95),
        "p99_ms": rank(0.99),
        "max_ms": round(ordered[-1] * 1e3, 3),
        "n": len(ordered),
    }


def _compare(
    ledger: Ledger,
    graph: Neo4jGraph,
    ask: Callable[[str], Any],
    nodes: list[str],
    progress: Progress,
    name: str,
) -> dict[str, Any]:
    """``ask`` of each node, of the embedded graph and of Neo4j in turn (alternating
    which goes first): the latencies of each and the nodes whose answers differ."""
    embedded: list[float] = []
    neo4j: list[float] = []
    mismatches: list[str] = []
    sizes: list[int] = []
    progress.say(f"questions: {name}, {len(nodes)} nodes on both graphs")
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
    summary_embedded, summary_neo4j = _summary(embedded), _summary(neo4j)
    progress.say(
        f"questions: {name}: p99 embedded {summary_embedded['p99_ms']} ms, "
        f"neo4j {summary_neo4j['p99_ms']} ms, {len(mismatches)} mismatches"
    )
    return {
        "embedded": summary_embedded,
        "neo4j": summary_neo4j,
        "neo4j_over_embedded_median": round(
            summary_neo4j["median_ms"] / max(summary_embedded["median_ms"], 1e-6), 2
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


def bench(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress()
    url = fresh(work, "graph")
    reg = connect(url, project=PROJECT, actor="bench")
    ledger = reg.ledger
    appender = Appender(ledger, progress)
    world = World(sink=appender)
    progress.say(f"making and appending the world of scale {args.scale}")
    made = time.perf_counter()
    world.build(args.scale)
    made = time.perf_counter() - made
    progress.say(f"appended {appender.events:,} events in {appender.clock.seconds:.1f}s")
    results: dict[str, Any] = {
        "world": {
            "events": world.made,
            "dataset_versions": len(world.datasets),
            "runs": len(world.runs),
            "model_versions": len(world.models),
            "deployments": len(world.deployments),
            "make_seconds": round(made - appender.clock.seconds, 1),
            "append_seconds": round(appender.clock.seconds, 1),
            "batch_size": BATCH,
        }
    }
    server_options = {
        "heap": args.neo4j_heap,
        "page_cache": args.neo4j_page_cache,
        "jit": "C1 and C2" if args.full_jit else "C1 only",
    }
    with Neo4jServer(
        page_cache=args.neo4j_page_cache,
        full_jit=args.full_jit,
        extra_jvm_options=[f"-Xmx{args.neo4j_heap}"],
    ) as server:
        results["neo4j_server"] = server_options
        results["neo4j_start_seconds"] = round(server.startup_seconds or 0.0, 1)
        graph = Neo4jGraph(server.url, (server.user, server.password))
        try:
            results.update(_figures(ledger, graph, world, server, args.questions, progress))
            results["memory"]["neo4j_rss_bytes_after_questions"] = server.rss_bytes()
            # This process's embedded graph is let go first: the serving processes
            # then have the memory it held.
            graph_of(ledger).invalidate()
            progress.say("memory: a serving process with each graph")
            results["memory"]["serving_process"] = _serving_memory(
                url, world.deployments[0], server
            )
        finally:
            attach(ledger, None)
            graph.close()
    results["memory"]["process_peak_rss_bytes"] = _peak_rss()
    results["crossover"] = _crossover(results)
    reg.close()
    progress.say("done")
    return results


def _position(graph: Neo4jGraph, head: int) -> Callable[[], str]:
    def what() -> str:
        try:
            position = graph.position()
        except GraphUnavailable as exc:  # said, not hidden: the next line tries again
            return f"sync: position not readable now ({exc})"
        return f"sync: at log position {position:,} of {head:,}"

    return what


def _figures(
    ledger: Ledger,
    graph: Neo4jGraph,
    world: World,
    server: Neo4jServer,
    questions: int,
    progress: Progress,
) -> dict[str, Any]:
    events = ledger.head() + 1
    progress.say(f"sync: {events:,} log events into an empty graph")
    with progress.every(TICK_SECONDS, _position(graph, events - 1)):
        full = _sync(graph, ledger)
    status = graph.status(ledger)
    assert status.lag == 0, status
    progress.say(f"sync: {full:.1f}s, {events / full:,.0f} events/s, {status.nodes:,} nodes")
    rss = server.rss_bytes()
    clock = Stopwatch()
    progress.say("rebuild: drop and sync again")
    with progress.every(TICK_SECONDS, _position(graph, events - 1)), clock:
        graph.drop()
        graph.sync(ledger)
    rebuilt = graph.status(ledger)
    progress.say(f"rebuild: {clock.seconds:.1f}s")
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
    progress.say(f"incremental: {INCREMENTS} batches")
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
    figures["questions"] = _questions(ledger, graph, world, questions, progress)
    return figures


def _questions(
    ledger: Ledger, graph: Neo4jGraph, world: World, samples: int, progress: Progress
) -> dict[str, Any]:
    rng = random.Random(5)
    models = rng.sample(world.models, min(samples, len(world.models)))
    datasets = rng.sample(world.datasets, min(samples, len(world.datasets)))
    # Few deployments: sampled with replacement.
    deployments = rng.choices(world.deployments, k=samples)
    everything = world.datasets + world.runs + world.models + world.deployments
    nodes = rng.sample(everything, min(samples, len(everything)))
    past = rng.sample(everything, min(samples, len(everything)))
    del everything
    created = {n: _created(ledger, n) for n in past}
    end = world.clock
    when = {n: created[n] + rng.random() * (end - created[n]) for n in past}
    # Paid once, by neither figure: the embedded graph's first load.
    progress.say("questions: loading the embedded graph")
    attach(ledger, None)
    loaded = time.perf_counter()
    queries.lineage(ledger, nodes[0], depth=DEPTH)
    loaded = time.perf_counter() - loaded

    def compare(name: str, ask: Callable[[str], Any], sampled: list[str]) -> dict[str, Any]:
        return _compare(ledger, graph, ask, sampled, progress, name)

    return {
        "samples": samples,
        "depth": DEPTH,
        "upstream_depth": UPSTREAM_DEPTH,
        "embedded_first_load_seconds": round(loaded, 2),
        "trained_on": compare("trained_on", lambda m: queries.trained_on(ledger, m), models),
        "downstream": compare("downstream", lambda d: queries.downstream(ledger, d), datasets),
        "deployment_upstream": compare(
            "deployment_upstream",
            lambda n: queries.lineage(ledger, n, direction="upstream", depth=UPSTREAM_DEPTH),
            deployments,
        ),
        "lineage": compare(
            "lineage",
            lambda n: queries.lineage(ledger, n, direction="both", depth=DEPTH),
            nodes,
        ),
        "lineage_as_of": compare(
            "lineage_as_of",
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


#: A serving process: opens the ledger, asks one question (the upstream lineage of a
#: deployment) of the embedded graph or of Neo4j, and prints its memory and times.
_SERVING = """
import json, re, sys, time
from pathlib import Path

def rss(field="VmRSS"):
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\\s+(\\d+) kB", status, re.M)[1]) * 1024

url, node, backend, depth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from lineage import queries
from lineage.neo4j import Neo4jGraph, attach
from registry.sdk import connect
reg = connect(url, project="bench", actor="bench")
ledger = reg.ledger
graph = None
if backend == "neo4j":
    graph = Neo4jGraph(sys.argv[5], (sys.argv[6], sys.stdin.readline().strip()))
attach(ledger, graph)
before = rss()
began = time.perf_counter()
first = queries.lineage(ledger, node, direction="upstream", depth=depth)
first_s = time.perf_counter() - began
began = time.perf_counter()
queries.lineage(ledger, node, direction="upstream", depth=depth)
second_s = time.perf_counter() - began
print(json.dumps({
    "rss_bytes_before_question": before,
    "rss_bytes_after_question": rss(),
    "peak_rss_bytes": rss("VmHWM"),
    "first_question_seconds": round(first_s, 3),
    "second_question_seconds": round(second_s, 4),
    "answer_nodes": len(first.nodes),
}))
"""


def _serving_memory(url: str, node: str, server: Neo4jServer) -> dict[str, Any]:
    """The memory of a fresh process that asks one question, with each graph; and the
    Neo4j server's own (each process is fresh, so their peaks do not mix)."""
    repo = Path(__file__).resolve().parents[2]
    measured: dict[str, Any] = {"question": f"lineage upstream depth {UPSTREAM_DEPTH}"}
    for backend in ("embedded", "neo4j"):
        argv = [sys.executable, "-c", _SERVING, url, node, backend, str(UPSTREAM_DEPTH)]
        if backend == "neo4j":
            argv += [server.url, server.user]
        done = subprocess.run(
            argv,
            cwd=repo,
            input=server.password + "\n",
            capture_output=True,
            text=True,
            timeout=SERVING_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"the {backend} serving process exited {done.returncode}:\n{done.stderr}"
            )
        measured[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    measured["neo4j_server_rss_bytes"] = server.rss_bytes()
    return measured


def _crossover(results: dict[str, Any]) -> dict[str, Any]:
    """Derived from the measured figures: what the embedded graph costs each serving
    process per node, and so at what size (or how many processes) it costs more than
    a budget or than one Neo4j server."""
    nodes = results["sync"]["nodes"]
    serving = results["memory"]["serving_process"]
    embedded, neo4j = serving["embedded"], serving["neo4j"]
    graph_bytes = embedded["rss_bytes_after_question"] - embedded["rss_bytes_before_question"]
    per_node = graph_bytes / nodes
    load_per_node = embedded["first_question_seconds"] / nodes
    server = serving["neo4j_server_rss_bytes"]
    client = neo4j["rss_bytes_after_question"]
    derived: dict[str, Any] = {
        "nodes": nodes,
        "embedded_graph_bytes_per_process": graph_bytes,
        "embedded_graph_bytes_per_node": round(per_node, 1),
        "embedded_first_question_seconds_per_million_nodes": round(load_per_node * 1e6, 2),
        "embedded_process_rss_bytes": embedded["rss_bytes_after_question"],
        "neo4j_client_process_rss_bytes": client,
        "neo4j_server_rss_bytes": server,
        "nodes_at_which_the_embedded_graph_takes": {
            f"{budget}GiB_a_process": round(budget * 2**30 / per_node) if per_node > 0 else None
            for budget in MEMORY_BUDGETS_GIB
        },
        # Each serving process holds its own embedded graph; Neo4j is one server for all.
        "serving_processes_at_which_embedded_graphs_outweigh_the_neo4j_server": (
            round(server / (embedded["rss_bytes_after_question"] - client), 2)
            if embedded["rss_bytes_after_question"] > client
            else None
        ),
        "p99_ms_embedded_vs_neo4j": {
            name: [question["embedded"]["p99_ms"], question["neo4j"]["p99_ms"]]
            for name, question in results["questions"].items()
            if isinstance(question, dict)
        },
    }
    return derived


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-graph.json", ".mlledger/bench-graph")
    parser.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="pick the scale for about this many graph nodes (1000000: scale 28.56)",
    )
    parser.add_argument(
        "--questions",
        type=int,
        default=SAMPLES,
        help=f"sequential questions of each kind on each graph (default {SAMPLES})",
    )
    parser.add_argument("--neo4j-heap", default="2g", help="the Neo4j server's -Xmx")
    parser.add_argument(
        "--neo4j-page-cache", default="1g", help="the Neo4j server's page cache (bytes, 512m, 2g)"
    )
    parser.add_argument(
        "--c1-only",
        dest="full_jit",
        action="store_false",
        help="run the Neo4j server with the C1 compiler only, as the tests do",
    )
    args = parser.parse_args()
    if args.nodes is not None:
        args.scale = scale_for(args.nodes)
    results = measure(args, lambda work: bench(work, args))
    results["load_average"] = load_average()
    mismatches = sum(q["mismatches"] for q in results["questions"].values() if isinstance(q, dict))
    questions = results["questions"]
    sync = results["sync"]
    big = sync["nodes"] >= 1_000_000
    results["targets_met"] = {
        "same_answers_from_both_graphs": mismatches == 0,
        # Said of the scale-1.0 world (55,075 events) or a smaller one; a bigger one is
        # held to the rate below and, at 1,000,000 nodes, to the rebuild's 5 minutes.
        "full_sync_seconds<=60": sync["seconds"] <= 60 if sync["log_events"] <= 55_075 else None,
        "full_sync_events_per_s>=10000": sync["events_per_s"] >= 10_000,
        "incremental_sync_p99_ms<=50": results["incremental"]["sync"]["p99_ms"] <= 50,
        # Only said of a graph of 1,000,000 nodes or more (null below: not measured).
        "rebuild_of_1M_nodes_seconds<=300": sync["rebuild_seconds"] <= 300 if big else None,
        "neo4j_trained_on_p99_ms<=50": questions["trained_on"]["neo4j"]["p99_ms"] <= 50,
        "neo4j_downstream_p99_ms<=50": questions["downstream"]["neo4j"]["p99_ms"] <= 50,
        "neo4j_deployment_upstream_p99_ms<=50": (
            questions["deployment_upstream"]["neo4j"]["p99_ms"] <= 50
        ),
    }
    write_result(args.out, results)


if __name__ == "__main__":
    main()
