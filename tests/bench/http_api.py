"""HTTP benchmarks (part of ``make bench``): ``mlledger serve`` (uvicorn, one worker
per core unless ``--workers`` says otherwise) on SQLite, or with ``--store postgresql``
on a throwaway durable PostgreSQL server, driven from this process over loopback.

- ``http_queries``: lineage and ``scored`` requests, half each, open loop at a
  fixed rate (default 200/s for 60 s); latency is measured from each request's
  scheduled send time, so a stalled server cannot hide its backlog;
- ``http_sustained`` (with ``--rates``): the same open loop at each rate in turn
  (``--rate-seconds`` each), and the highest rate answered with no error and a p99
  of at most 50 ms;
- ``http_openlineage``: RunEvents (START and COMPLETE with inputs and outputs)
  posted to ``/api/v1/lineage`` by several concurrent clients;
- ``http_predictions``: ``log_predictions`` through the SDK in HTTP mode, in
  batches of 20,000.

The client shares the machine's cores with the server.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from registry.sdk import connect
from registry.serve import default_workers
from tests.bench.harness import (
    arguments,
    fresh,
    latency,
    machine,
    settle,
    store_option,
    use_postgres,
    write_result,
)
from tests.support.apiserver import ApiServer

PROJECT = "bench"


def populate(db: str, records: int, predictions: int) -> dict[str, Any]:
    """A ledger to ask about: a chain of datasets, runs, models, a deployment and
    ``predictions`` predictions over ``records`` records."""
    keys = [f"rec-{i}" for i in range(records)]
    nodes: list[str] = []
    with connect(db, project=PROJECT, actor="bench") as reg:
        parent = reg.register_dataset(
            "raw", "1", uri="s3://raw", digest="sha256:00", records=keys,
            subjects=[f"s-{i % (records // 2)}" for i in range(records)],
        )  # fmt: skip
        nodes.append(parent.id)
        models = []
        for i in range(50):
            derived = reg.register_dataset(
                f"clean-{i}", "1", uri=f"s3://c/{i}", digest=f"sha256:{i:04x}",
                records=keys[: records // 2], derived_from=[parent],
            )  # fmt: skip
            with reg.run(f"train-{i}", inputs=[derived]) as run:
                models.append(
                    run.register_model(
                        "clf", artifact_uri=f"s3://m/{i}", artifact_digest="sha256:m"
                    )
                )
            nodes += [derived.id, run.id, models[-1].id]
        api = reg.deploy("api", endpoint="https://api", served={models[-1]: 100})
        rng = random.Random(1)
        for start in range(0, predictions, 20_000):
            n = min(20_000, predictions - start)
            reg.log_predictions(
                api, model=models[-1], records=[rng.choice(keys) for _ in range(n)],
                outputs=[rng.random() for _ in range(n)],
            )  # fmt: skip
    return {"keys": keys, "nodes": nodes}


#: Seconds of requests at the measured rate before the measured ones, not counted:
#: each worker's first answers build what later ones reuse (routes, connections).
WARM_UP_S = 2.0


def _client(token: str, connections: int) -> aiohttp.ClientSession:
    """The load generator's HTTP client. aiohttp, not httpx: at a few hundred requests
    a second httpx's connection pool, walking every connection per request, took a
    whole core of the machine the server shares and its queue was measured as the
    server's latency."""
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"},
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def _open_loop(
    server: ApiServer,
    token: str,
    world: dict[str, Any],
    rate: float,
    seconds: float,
    warm_up: float = WARM_UP_S,
) -> dict[str, Any]:
    rng = random.Random(2)
    latencies: dict[str, list[float]] = {"lineage": [], "scored": []}
    errors: list[str] = []
    base = f"{server.url}/api/v1/projects/{PROJECT}/questions"
    async with _client(token, 64) as client:

        async def one(kind: str, scheduled: float, counted: bool) -> None:
            try:
                if kind == "scored":
                    sent = client.post(f"{base}/scored", json={"record": rng.choice(world["keys"])})
                else:
                    node = rng.choice(world["nodes"])
                    sent = client.get(f"{base}/lineage", params={"node": node, "depth": 3})
                async with sent as r:
                    body = await r.read()
                    if r.status != 200:
                        errors.append(f"{kind}: {r.status} {body[:200]!r}")
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(f"{kind}: {type(exc).__name__} {exc}")
                return
            if counted:
                latencies[kind].append(time.perf_counter() - scheduled)

        async def paced(total: int, counted: bool) -> float:
            tasks = []
            start = time.perf_counter()
            for i in range(total):
                scheduled = start + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                kind = "scored" if i % 2 else "lineage"
                tasks.append(asyncio.create_task(one(kind, scheduled, counted)))
            await asyncio.gather(*tasks)
            return time.perf_counter() - start

        await paced(int(rate * warm_up), counted=False)
        warm_up_errors, errors[:] = errors[:], []
        total = int(rate * seconds)
        elapsed = await paced(total, counted=True)
    return {
        "rate_per_s": rate,
        "seconds": round(elapsed, 2),
        "warm_up_seconds": warm_up,
        "warm_up_errors": len(warm_up_errors),
        "achieved_per_s": round(total / elapsed, 1),
        "errors": len(errors),
        "first_errors": errors[:5],
        "lineage": latency(latencies["lineage"], 3, worst=True),
        "scored": latency(latencies["scored"], 3, worst=True),
        "all": latency(latencies["lineage"] + latencies["scored"], 3, worst=True),
    }


def openlineage_events(runs: int) -> list[dict[str, Any]]:
    """START and COMPLETE for ``runs`` runs, each reading one table and writing another."""
    events = []
    for i in range(runs):
        run = {"runId": str(uuid.uuid4())}
        job = {"namespace": "airflow", "name": f"dag.task_{i % 100}"}
        common = {
            "run": run,
            "job": job,
            "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "inputs": [{"namespace": "postgres://db:5432", "name": f"public.src_{i % 50}"}],
            "outputs": [{"namespace": "postgres://db:5432", "name": f"public.dst_{i}"}],
        }
        events.append({**common, "eventType": "START", "eventTime": "2026-11-01T10:00:00Z"})
        events.append({**common, "eventType": "COMPLETE", "eventTime": "2026-11-01T10:05:00Z"})
    return events


async def _post_all(
    server: ApiServer, token: str, documents: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    errors: list[str] = []
    async with _client(token, concurrency) as client:

        async def worker(ordered: list[dict[str, Any]]) -> None:
            for document in ordered:
                async with client.post(f"{server.url}/api/v1/lineage", json=document) as r:
                    if r.status != 201:
                        errors.append(f"{r.status} {(await r.text())[:200]}")

        # A run's START goes before its COMPLETE: each worker takes whole runs.
        pairs = [documents[i : i + 2] for i in range(0, len(documents), 2)]
        shares: list[list[dict[str, Any]]] = [[] for _ in range(concurrency)]
        for i, pair in enumerate(pairs):
            shares[i % concurrency].extend(pair)
        start = time.perf_counter()
        await asyncio.gather(*(worker(share) for share in shares))
        elapsed = time.perf_counter() - start
    return {
        "events": len(documents),
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "events_per_s": round(len(documents) / elapsed, 1),
        "errors": len(errors),
        "first_errors": errors[:5],
    }


#: The p99 (seconds) under which an open-loop rate counts as sustained.
SUSTAINED_P99_S = 0.050


def bench_http(
    work: Path,
    scale: float,
    rate: float = 200,
    seconds: float = 60,
    *,
    workers: int | None = None,
    rates: list[float] | None = None,
    rate_seconds: float = 20,
) -> dict[str, Any]:
    db = fresh(work, "http")
    path = work / "http"
    world = populate(db, records=int(100_000 * scale), predictions=int(1_000_000 * scale))
    settle(db)
    server = ApiServer(path, db=db, workers=workers)
    server.start()
    results: dict[str, Any] = {"workers": workers or default_workers()}
    try:
        viewer = server.key(PROJECT, "viewer")
        writer = server.key(PROJECT, "writer")
        results["http_queries"] = asyncio.run(
            _open_loop(server, viewer, world, rate, seconds * max(scale, 0.1))
        )
        if rates:
            steps = [asyncio.run(_open_loop(server, viewer, world, r, rate_seconds)) for r in rates]
            held = [
                step["rate_per_s"]
                for step in steps
                if step["errors"] == step["warm_up_errors"] == 0
                and step["all"]["p99_ms"] <= SUSTAINED_P99_S * 1000
            ]
            results["http_sustained"] = {
                "p99_ms_at_most": SUSTAINED_P99_S * 1000,
                "highest_rate_per_s": max(held, default=None),
                "steps": steps,
            }
        documents = openlineage_events(int(2_500 * scale) or 10)
        results["http_openlineage"] = asyncio.run(_post_all(server, writer, documents, 8))
        rng = random.Random(3)
        n = int(500_000 * scale) or 20_000
        keys = [rng.choice(world["keys"]) for _ in range(n)]
        outputs = [rng.random() for _ in range(n)]
        with connect(server.url, project=PROJECT, actor="bench", api_key=writer) as reg:
            started = time.perf_counter()
            for begin in range(0, n, 20_000):
                reg.log_predictions(
                    "api",
                    model=world["nodes"][-1],
                    records=keys[begin : begin + 20_000],
                    outputs=outputs[begin : begin + 20_000],
                )
            elapsed = time.perf_counter() - started
        results["http_predictions"] = {
            "predictions": n,
            "batch": 20_000,
            "seconds": round(elapsed, 2),
            "predictions_per_s": round(n / elapsed),
        }
    finally:
        server.stop()
    return results


def targets(results: dict[str, Any]) -> dict[str, bool]:
    q = results["http_queries"]
    return {
        "http_lineage_p99_ms<=20": q["lineage"]["p99_ms"] <= 20,
        "http_scored_p99_ms<=20": q["scored"]["p99_ms"] <= 20,
        "http_queries_zero_errors": q["errors"] == 0,
        "http_openlineage_events_per_s>=1000": results["http_openlineage"]["events_per_s"] >= 1000,
        "http_predictions_per_s>=50000": results["http_predictions"]["predictions_per_s"] >= 50_000,
    }


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-http.json", ".mlledger/bench")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--workers", type=int, default=None, help="server worker processes (default: one per core)"
    )
    parser.add_argument(
        "--rates", default="", help="comma-separated open-loop rates to find the highest sustained"
    )
    parser.add_argument("--rate-seconds", type=float, default=20, help="seconds at each of --rates")
    store_option(parser)
    args = parser.parse_args()
    if args.store == "postgresql":
        use_postgres()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    results = {
        "machine": machine(sqlite=args.store == "sqlite"),
        **bench_http(
            Path(args.work),
            args.scale,
            args.rate,
            args.seconds,
            workers=args.workers,
            rates=rates,
            rate_seconds=args.rate_seconds,
        ),
    }
    results["targets_met"] = targets(results)
    write_result(args.out, results)


if __name__ == "__main__":
    main()
