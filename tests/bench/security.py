"""What an attacker can cost ``mlledger serve`` (part of ``make bench``), on SQLite:

- ``anonymous_trail``: durable bytes the access trail gains per anonymous request,
  from one client address and from many (127.0.0.0/8 addresses), each request with
  an 8 KB URL: logical bytes of the trail rows and tree nodes added, per request
  and per minute of flood;
- ``anonymous_bodies``: the server's resident memory while ten clients at once each
  send a 100 MB body without a key (baseline, peak, growth);
- ``viewer_during_write``: a viewer's latency (sequential reads) while a writer
  keeps posting 10 MB datasets, against the same reads with no writer.

The clients share the machine's two cores with the server.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from audit.trail import fold_trail
from registry.store import open_store
from registry.store.raw import Raw
from tests.bench.harness import arguments, latency, load_average, write_result
from tests.support.apiserver import ApiServer

PROJECT = "bench"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _trail_bytes(db: str) -> tuple[int, int]:
    """Rows and logical bytes (every column's length) of the trail and its tree."""
    store = open_store(db)
    try:
        fold_trail(store)
        with store.read() as conn:
            raw = Raw(conn)
            rows, size = raw.one(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(at) + LENGTH(actor) + "
                "COALESCE(LENGTH(project), 0) + LENGTH(action) + LENGTH(resource) + "
                "LENGTH(source) + LENGTH(outcome) + 8 + LENGTH(reason) + "
                "COALESCE(LENGTH(trace_id), 0) + LENGTH(leaf_hash) + 8), 0) FROM access_trail"
            )
            nodes = raw.scalar("SELECT COUNT(*) FROM trail_merkle_nodes")
        return int(rows), int(size) + int(nodes) * (32 + 10)
    finally:
        store.dispose()


def anonymous_trail(work: Path, requests: int, addresses: int) -> dict[str, Any]:
    server = ApiServer(work / "trail").start()
    try:
        rows0, bytes0 = _trail_bytes(server.db)
        url = f"/api/v1/projects/{PROJECT}/datasets/{'x' * 8192}/versions/1"
        statuses: dict[int, int] = {}
        began = time.perf_counter()
        per = requests // addresses
        for a in range(addresses):
            transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + a}")
            with httpx.Client(base_url=server.url, transport=transport, timeout=30) as http:
                for _ in range(per):
                    code = http.get(url).status_code
                    statuses[code] = statuses.get(code, 0) + 1
        seconds = time.perf_counter() - began
        rows1, bytes1 = _trail_bytes(server.db)
    finally:
        server.stop()
    sent = per * addresses
    return {
        "requests": sent,
        "addresses": addresses,
        "url_bytes": len(url),
        "seconds": round(seconds, 2),
        "statuses": statuses,
        "trail_rows_added": rows1 - rows0,
        "trail_bytes_added": bytes1 - bytes0,
        "trail_bytes_per_request": round((bytes1 - bytes0) / sent, 1),
        "trail_bytes_per_recorded_row": round((bytes1 - bytes0) / max(1, rows1 - rows0), 1),
    }


def _send_body(port: int, size: int, answers: list[bytes]) -> None:
    head = (
        f"POST /api/v1/projects/{PROJECT}/datasets HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    chunk = b"[" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except OSError:
            pass  # answered and closed without reading the rest
        answers.append(sock.recv(64)[:12])


def anonymous_bodies(work: Path, clients: int, megabytes: int) -> dict[str, Any]:
    server = ApiServer(work / "bodies").start()
    assert server.process is not None
    pid = server.process.pid
    try:
        baseline = _rss_kib(pid)
        peak = baseline
        answers: list[bytes] = []
        threads = [
            threading.Thread(target=_send_body, args=(server.port, megabytes << 20, answers))
            for _ in range(clients)
        ]
        began = time.perf_counter()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, _rss_kib(pid))
            time.sleep(0.01)
        seconds = time.perf_counter() - began
    finally:
        server.stop()
    return {
        "clients": clients,
        "body_mb": megabytes,
        "answers": sorted({a.decode(errors="replace") for a in answers}),
        "seconds": round(seconds, 2),
        "rss_baseline_mb": round(baseline / 1024, 1),
        "rss_peak_mb": round(peak / 1024, 1),
        "rss_growth_mb": round((peak - baseline) / 1024, 1),
    }


def _latencies(http: httpx.Client, path: str, seconds: float) -> list[float]:
    samples = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        began = time.perf_counter()
        assert http.get(path).status_code == 200
        samples.append(time.perf_counter() - began)
    return samples


def viewer_during_write(work: Path, seconds: float, megabytes: int) -> dict[str, Any]:
    server = ApiServer(work / "write").start()
    viewer, writer = server.key(PROJECT, "viewer"), server.key(PROJECT, "writer")
    path = f"/projects/{PROJECT}/models/clf/top-version"
    count = (megabytes << 20) // 17  # '"r-0000000123",' is about 17 bytes
    try:
        with server.client(viewer) as http:
            idle = _latencies(http, path, seconds)
        done = threading.Event()
        writes: list[float] = []

        def write() -> None:
            with server.client(writer) as w:
                n = 0
                while not done.is_set():
                    body = {"name": f"big-{n}", "version": "1", "uri": "s3://b",
                            "digest": f"sha256:{n:04x}",
                            "records": [f"r-{n:03d}-{i:09d}" for i in range(count)]}  # fmt: skip
                    began = time.perf_counter()
                    got = w.post(f"/projects/{PROJECT}/datasets", json=body)
                    assert got.status_code == 201, got.text[:300]
                    writes.append(time.perf_counter() - began)
                    n += 1

        thread = threading.Thread(target=write)
        thread.start()
        time.sleep(1.0)  # the first write is under way
        with server.client(viewer) as http:
            busy = _latencies(http, path, seconds)
        done.set()
        thread.join()
    finally:
        server.stop()
    return {
        "write_mb": megabytes,
        "records_per_write": count,
        "writes": len(writes),
        "write_seconds_median": round(statistics.median(writes), 2) if writes else None,
        "idle": latency(idle, 2, worst=True),
        "during_writes": latency(busy, 2, worst=True),
    }


def main() -> None:
    parser = arguments(
        __doc__, ".mlledger/bench-security.json", ".mlledger/bench-security", scale=False
    )
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = {
        "machine": {"cpus": os.cpu_count(), "loadavg": load_average()},
        "anonymous_trail_one_address": anonymous_trail(work / "a", args.requests, 1),
        "anonymous_trail_20_addresses": anonymous_trail(work / "b", args.requests, 20),
        "anonymous_bodies": anonymous_bodies(work, 10, 100),
        "viewer_during_write": viewer_during_write(work, args.seconds, 10),
    }
    results["machine"]["loadavg_after"] = load_average()
    write_result(args.out, results)


if __name__ == "__main__":
    main()
