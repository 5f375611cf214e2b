"""OpenLineage ingestion over HTTP (part of ``make bench``): RunEvents (a START and a
COMPLETE per run, each run reading one table and writing another) posted to
``/api/v1/lineage`` of ``mlledger serve`` (one worker per core unless ``--workers``
says otherwise), on SQLite or, with ``--store postgresql``, a throwaway durable
PostgreSQL server.

- ``sequential``: one client, one event at a time, as a single producer sends them;
- ``concurrent``: ``--clients`` clients (default 8), each sending whole runs one
  event at a time.

Each reports events per second, the latency of each request (median, p99), and the
CPU time the server's processes and the clients spent per event. The clients share
the machine's cores with the server. Targets: at least 1,000
events/s from 8 clients and 250 from one, p99 at most 50 ms, on SQLite.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path
from typing import Any

import aiohttp

from registry.serve import default_workers
from tests.bench.harness import (
    arguments,
    fresh,
    latency,
    machine,
    store_option,
    use_postgres,
    write_result,
)
from tests.bench.http_api import PROJECT, openlineage_events
from tests.support.apiserver import ApiServer


async def _send(
    url: str, token: str, shares: list[list[dict[str, Any]]]
) -> tuple[float, list[float], list[str]]:
    """Each share sent in order by a client of its own; (seconds, latencies, errors)."""
    samples: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=len(shares))
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"},
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=60),
    ) as session:

        async def client(documents: list[dict[str, Any]]) -> None:
            for document in documents:
                sent = time.perf_counter()
                async with session.post(f"{url}/api/v1/lineage", json=document) as answer:
                    body = await answer.read()
                    samples.append(time.perf_counter() - sent)
                    if answer.status != 201:
                        errors.append(f"{answer.status} {body[:200]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(client(share) for share in shares))
        return time.perf_counter() - started, samples, errors


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of process ``pid`` and of its children alive now
    (a server's workers), from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for each in (pid, *map(int, children)):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _measured(server: ApiServer, token: str, shares: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Send ``shares`` (one client each) and sum up, CPU time included."""
    assert server.process is not None
    before, mine = _cpu_seconds(server.process.pid), resource.getrusage(resource.RUSAGE_SELF)
    seconds, samples, errors = asyncio.run(_send(server.url, token, shares))
    after, now = _cpu_seconds(server.process.pid), resource.getrusage(resource.RUSAGE_SELF)
    figure = _figure(seconds, samples, errors, len(shares))
    events = max(1, len(samples))
    figure["server_cpu_ms_per_event"] = round(1000 * (after - before) / events, 2)
    clients = (now.ru_utime + now.ru_stime) - (mine.ru_utime + mine.ru_stime)
    figure["clients_cpu_ms_per_event"] = round(1000 * clients / events, 2)
    return figure


def _shares(documents: list[dict[str, Any]], clients: int) -> list[list[dict[str, Any]]]:
    """Whole runs (START then COMPLETE) dealt round-robin to ``clients``."""
    shares: list[list[dict[str, Any]]] = [[] for _ in range(clients)]
    for i in range(0, len(documents), 2):
        shares[(i // 2) % clients].extend(documents[i : i + 2])
    return shares


def _figure(
    seconds: float, samples: list[float], errors: list[str], clients: int
) -> dict[str, Any]:
    return {
        "clients": clients,
        "events": len(samples),
        "seconds": round(seconds, 2),
        "events_per_s": round(len(samples) / seconds, 1),
        **latency(samples, 2, worst=True),
        "errors": len(errors),
        "first_errors": errors[:5],
    }


def bench_ingest(
    work: Path, scale: float, *, clients: int = 8, workers: int | None = None
) -> dict[str, Any]:
    db = fresh(work, "ingest")
    server = ApiServer(work / "ingest", db=db, workers=workers)
    server.start()
    try:
        token = server.key(PROJECT, "writer")
        # Warm every worker (its first request loads what the later ones reuse).
        warm = openlineage_events(4 * (workers or default_workers()))
        asyncio.run(_send(server.url, token, _shares(warm, len(warm) // 2)))
        one = openlineage_events(max(10, int(1_000 * scale)))
        sequential = _measured(server, token, [one])
        many = openlineage_events(max(10 * clients, int(5_000 * scale)))
        concurrent = _measured(server, token, _shares(many, clients))
    finally:
        server.stop()
    return {
        "workers": workers or default_workers(),
        "sequential": sequential,
        "concurrent": concurrent,
    }


def targets(results: dict[str, Any]) -> dict[str, bool]:
    one, many = results["sequential"], results["concurrent"]
    return {
        "sequential_events_per_s>=250": one["events_per_s"] >= 250,
        "concurrent_events_per_s>=1000": many["events_per_s"] >= 1000,
        "p99_ms<=50": max(one["p99_ms"], many["p99_ms"]) <= 50,
        "zero_errors": one["errors"] == many["errors"] == 0,
    }


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-ingest.json", ".mlledger/bench")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--workers", type=int, default=None, help="server worker processes (default: one per core)"
    )
    store_option(parser)
    args = parser.parse_args()
    if args.store == "postgresql":
        use_postgres()
    results = {
        "machine": machine(sqlite=args.store == "sqlite"),
        **bench_ingest(Path(args.work), args.scale, clients=args.clients, workers=args.workers),
    }
    results["targets_met"] = targets(results)
    write_result(args.out, results)


if __name__ == "__main__":
    main()
