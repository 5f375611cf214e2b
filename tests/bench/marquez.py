"""Marquez's read API at scale (part of ``make bench``): the latency of each Marquez
route over HTTP on a ledger holding a realistic OpenLineage workload.

The ledger is filled in process (``lineage.openlineage.to_events`` then
``Ledger.append``, as ingestion does, without the HTTP round trips): at scale 1.0,
10,000 jobs in 20 namespaces, each run once (START then COMPLETE), in pipelines of
10 stages, each stage reading the table the stage before wrote (the first a source
table) and writing its own, with a schema facet (6 fields), a dataSource facet and,
on every other stage, a columnLineage facet: about 11,000 datasets and 20,000 events.
``--scale`` shrinks it.

Then ``mlledger serve`` (one worker per core unless ``--workers`` says otherwise)
answers ``--requests`` requests (default 100) per route, one at a time, each on a
new connection (so they reach every worker), asking about items drawn at random:
namespaces, jobs list (default paging), job, job runs, job versions, datasets list,
dataset, dataset versions, lineage (``depth=20``), column-lineage, search,
events/lineage, run, runlineage/upstream. Each route is asked ``--warm`` times
first (not counted); the first request the server answered after the load is
reported apart (``first_request_ms``), as is a read right after each of a few
appends (``after_append_ms``: the dataset route, once a START was posted).

Each route reports p50, p95 and p99 (nearest rank) and the errors. Target: p95 at
most 100 ms for every route at scale 1.0 on SQLite.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from lineage import openlineage as ol
from registry.assembly import open_ledger
from registry.serve import default_workers
from tests.bench.harness import (
    Stopwatch,
    arguments,
    fresh,
    machine,
    settle,
    store_option,
    use_postgres,
    write_result,
)
from tests.support.apiserver import ApiServer

PROJECT = "bench"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python"
RUN_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
SCHEMA_FACET = "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json"
SOURCE_FACET = "https://openlineage.io/spec/facets/1-0-1/DatasourceDatasetFacet.json"
COLUMNS_FACET = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json"
NAMESPACES = 20
STAGES = 10
FIELDS = ("id", "day", "customer", "amount", "currency", "updated_at")
TARGET_P95_MS = 100.0
BEGAN = datetime(2026, 1, 1, tzinfo=UTC)


class Workload:
    """The pipelines: ``jobs`` jobs in ``NAMESPACES`` namespaces, ``STAGES`` to a
    pipeline, each job run once."""

    def __init__(self, jobs: int, seed: int = 7):
        self.pipelines = max(NAMESPACES, jobs // STAGES)
        draw = random.Random(seed)
        self.runs = {
            (p, s): str(uuid.UUID(int=draw.getrandbits(128), version=4))
            for p in range(self.pipelines)
            for s in range(STAGES)
        }

    @staticmethod
    def job_namespace(p: int) -> str:
        return f"team_{p % NAMESPACES}"

    @staticmethod
    def data_namespace(p: int) -> str:
        return f"postgres://db{p % NAMESPACES}:5432"

    @staticmethod
    def job_name(p: int, s: int) -> str:
        return f"pipeline_{p}.stage_{s}"

    @staticmethod
    def table(p: int, s: int) -> str:
        """The table stage ``s`` of pipeline ``p`` writes (-1: the source it starts from)."""
        return f"raw.src_{p}" if s < 0 else f"out.p{p}_s{s}"

    def _dataset(self, p: int, s: int, *, output: bool) -> dict[str, Any]:
        namespace = self.data_namespace(p)
        facets: dict[str, Any] = {
            "schema": {
                "_producer": PRODUCER,
                "_schemaURL": SCHEMA_FACET,
                "fields": [{"name": f, "type": "VARCHAR"} for f in FIELDS],
            },
            "dataSource": {
                "_producer": PRODUCER,
                "_schemaURL": SOURCE_FACET,
                "name": namespace,
                "uri": namespace,
            },
        }
        if output and s % 2 == 1:
            source = {"namespace": namespace, "name": self.table(p, s - 1)}
            facets["columnLineage"] = {
                "_producer": PRODUCER,
                "_schemaURL": COLUMNS_FACET,
                "fields": {
                    name: {
                        "inputFields": [{**source, "field": name}],
                        "transformationDescription": "copied",
                        "transformationType": "IDENTITY",
                    }
                    for name in ("amount", "customer")
                },
            }
        return {"namespace": namespace, "name": self.table(p, s), "facets": facets}

    def event(self, p: int, s: int, event_type: str) -> dict[str, Any]:
        """The START or COMPLETE of the run of stage ``s`` of pipeline ``p``."""
        started = BEGAN + timedelta(minutes=p * STAGES + s)
        at = started if event_type == "START" else started + timedelta(minutes=5)
        return {
            "eventType": event_type,
            "eventTime": at.isoformat().replace("+00:00", "Z"),
            "producer": PRODUCER,
            "schemaURL": RUN_SCHEMA,
            "run": {"runId": self.runs[(p, s)]},
            "job": {"namespace": self.job_namespace(p), "name": self.job_name(p, s)},
            "inputs": [self._dataset(p, s - 1, output=False)],
            "outputs": [self._dataset(p, s, output=event_type == "COMPLETE")],
        }


def populate(db: str, workload: Workload, batch: int = 500) -> dict[str, Any]:
    """Append every run's START and COMPLETE, stage by stage (a stage's inputs are
    the tables the stage before wrote), ``batch`` runs' events to an append."""
    ledger = open_ledger(db)
    clock = Stopwatch()
    appended = 0
    try:
        head = ledger.head()
        for s in range(STAGES):
            for first in range(0, workload.pipelines, batch):
                chunk = range(first, min(first + batch, workload.pipelines))
                for event_type in ("START", "COMPLETE"):
                    with clock:
                        events = [
                            e
                            for p in chunk
                            for e in ol.to_events(
                                ledger, PROJECT, "bench", workload.event(p, s, event_type)
                            )
                        ]
                        ledger.append(events, first_wins=True)
                    appended += len(events)
        stored = ledger.read(head + 1)
        received = sum(e.type == "openlineage-run-event" for e in stored)
    finally:
        ledger.close()
    expected = 2 * STAGES * workload.pipelines
    if received != expected:
        raise RuntimeError(f"{received} OpenLineage events stored, {expected} sent")
    return {
        "jobs": STAGES * workload.pipelines,
        "runs": STAGES * workload.pipelines,
        "datasets": (STAGES + 1) * workload.pipelines,
        "namespaces": 2 * NAMESPACES,
        "openlineage_events": expected,
        "ledger_events": appended,
        "load_seconds": round(clock.seconds, 1),
    }


def _q(text: str) -> str:
    """A name as one percent-encoded path segment."""
    return httpx.URL("/" + text.replace("%", "%25").replace("/", "%2F")).raw_path.decode()[1:]


def routes(workload: Workload) -> dict[str, Any]:
    """Route -> a function of a random draw giving (path, query) of one request."""
    w = workload

    def pick(draw: random.Random) -> tuple[int, int]:
        return draw.randrange(w.pipelines), draw.randrange(STAGES)

    def job(draw: random.Random) -> str:
        p, s = pick(draw)
        return f"/namespaces/{w.job_namespace(p)}/jobs/{_q(w.job_name(p, s))}"

    def dataset(draw: random.Random) -> str:
        p, s = pick(draw)
        return f"/namespaces/{_q(w.data_namespace(p))}/datasets/{_q(w.table(p, s))}"

    def namespace(draw: random.Random) -> int:
        return draw.randrange(NAMESPACES)

    return {
        "namespaces": lambda d: ("/namespaces", {}),
        "jobs": lambda d: (f"/namespaces/{w.job_namespace(namespace(d))}/jobs", {}),
        "job": lambda d: (job(d), {}),
        "job_runs": lambda d: (job(d) + "/runs", {}),
        "job_versions": lambda d: (job(d) + "/versions", {}),
        "datasets": lambda d: (f"/namespaces/{_q(w.data_namespace(namespace(d)))}/datasets", {}),
        "dataset": lambda d: (dataset(d), {}),
        "dataset_versions": lambda d: (dataset(d) + "/versions", {}),
        "lineage": lambda d: (
            "/lineage",
            {"nodeId": "dataset:{}:{}".format(*_node(w, *pick(d))), "depth": 20},
        ),
        "column_lineage": lambda d: (
            "/column-lineage",
            {
                "nodeId": "dataset:{}:{}".format(
                    *_node(w, d.randrange(w.pipelines), 2 * d.randrange(STAGES // 2) + 1)
                ),
                "depth": 20,
            },
        ),
        "search": lambda d: ("/search", {"q": f"p{d.randrange(w.pipelines)}_s"}),
        "events_lineage": lambda d: ("/events/lineage", {}),
        "run": lambda d: (f"/jobs/runs/{w.runs[pick(d)]}", {}),
        "runlineage_upstream": lambda d: (
            "/runlineage/upstream",
            {"runId": w.runs[(d.randrange(w.pipelines), STAGES - 1)], "depth": 20},
        ),
    }


def _node(w: Workload, p: int, s: int) -> tuple[str, str]:
    return w.data_namespace(p), w.table(p, s)


def _percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p95 and p99 (nearest rank) of ``samples`` seconds, in milliseconds."""
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] * 1e3, 2)

    return {"p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "n": len(ordered)}


def _get(client: httpx.Client, path: str, query: dict[str, Any]) -> tuple[float, str | None]:
    """Seconds one GET took, and what went wrong (None: a 200)."""
    sent = time.perf_counter()
    answer = client.get(path, params=query)
    seconds = time.perf_counter() - sent
    return (
        seconds,
        None if answer.status_code == 200 else f"{answer.status_code} {answer.text[:200]}",
    )


def measure_routes(
    server: ApiServer, workload: Workload, requests: int, warm: int, seed: int = 11
) -> dict[str, Any]:
    token = server.key(PROJECT, "viewer")
    # A new connection per request: uvicorn's workers take connections in turn.
    limits = httpx.Limits(max_keepalive_connections=0)
    draw = random.Random(seed)
    results: dict[str, Any] = {}
    with httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
        limits=limits,
    ) as client:
        first, error = _get(client, "/namespaces", {})
        results["first_request_ms"] = round(first * 1e3, 1)
        if error:
            raise RuntimeError(f"/namespaces: {error}")
        for name, request in routes(workload).items():
            for _ in range(warm):
                _get(client, *request(draw))
            samples, errors = [], []
            for _ in range(requests):
                seconds, error = _get(client, *request(draw))
                samples.append(seconds)
                if error:
                    errors.append(error)
            results.setdefault("routes", {})[name] = {
                **_percentiles(samples),
                "errors": len(errors),
                "first_errors": errors[:3],
            }
    return results


def after_appends(server: ApiServer, workload: Workload, times: int = 5) -> dict[str, Any]:
    """A new run's START posted, then a dataset read: ``times`` times."""
    writer, reader = server.key(PROJECT, "writer"), server.key(PROJECT, "viewer")
    samples, errors = [], []
    with (
        httpx.Client(base_url=server.url + "/api/v1", timeout=300) as client,
    ):
        for i in range(times):
            p = i % workload.pipelines
            document = workload.event(p, 0, "START")
            document["run"] = {"runId": str(uuid.uuid4())}
            posted = client.post(
                "/lineage", json=document, headers={"Authorization": f"Bearer {writer}"}
            )
            if posted.status_code != 201:
                errors.append(f"POST {posted.status_code} {posted.text[:200]}")
            sent = time.perf_counter()
            path = (
                f"/namespaces/{_q(workload.data_namespace(p))}/datasets/{_q(workload.table(p, 0))}"
            )
            answer = client.get(path, headers={"Authorization": f"Bearer {reader}"})
            samples.append(time.perf_counter() - sent)
            if answer.status_code != 200:
                errors.append(f"GET {answer.status_code} {answer.text[:200]}")
    return {**_percentiles(samples), "errors": len(errors), "first_errors": errors[:3]}


def bench_marquez(
    work: Path, scale: float, *, requests: int, warm: int, workers: int | None
) -> dict[str, Any]:
    db = fresh(work, "marquez")
    workload = Workload(max(NAMESPACES * STAGES, int(10_000 * scale)))
    loaded = populate(db, workload)
    settle(db)
    server = ApiServer(work / "marquez", db=db, workers=workers)
    server.start()
    try:
        measured = measure_routes(server, workload, requests, warm)
        measured["after_append_ms"] = after_appends(server, workload)
    finally:
        server.stop()
    return {
        "workers": workers or default_workers(),
        "requests_per_route": requests,
        "workload": loaded,
        **measured,
    }


def targets(results: dict[str, Any]) -> dict[str, bool]:
    met = {
        f"{name}_p95_ms<={TARGET_P95_MS:g}": figure["p95_ms"] <= TARGET_P95_MS
        for name, figure in results["routes"].items()
    }
    met["zero_errors"] = all(f["errors"] == 0 for f in results["routes"].values())
    return met


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-marquez.json", ".mlledger/bench")
    parser.add_argument(
        "--requests", type=int, default=100, help="requests measured per route (default 100)"
    )
    parser.add_argument(
        "--warm", type=int, default=3, help="requests per route before measuring (default 3)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="server worker processes (default: one per core)"
    )
    store_option(parser)
    args = parser.parse_args()
    if args.store == "postgresql":
        use_postgres()
    results = {
        "machine": machine(sqlite=args.store == "sqlite"),
        "scale": args.scale,
        **bench_marquez(
            Path(args.work),
            args.scale,
            requests=args.requests,
            warm=args.warm,
            workers=args.workers,
        ),
    }
    results["targets_met"] = targets(results)
    write_result(args.out, results)


if __name__ == "__main__":
    main()
