"""``mlledger serve`` without ``--workers``: one worker process per core, sharing the
database and the limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.assembly import open_ledger
from registry.serve import default_workers
from tests.support.apiserver import ApiServer

P = "workers"
PER_MINUTE = 4


#: Imported by every Python process of the server (``sitecustomize``): each writes its
#: switch interval to a file named by its pid, again and again while it runs.
REPORTER = """
import os, sys, threading, time
def _report():
    for _ in range(600):
        with open(os.path.join({folder!r}, str(os.getpid())), "w") as f:
            f.write(repr(sys.getswitchinterval()))
        time.sleep(0.1)
threading.Thread(target=_report, daemon=True).start()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    directory = tmp_path_factory.mktemp("workers")
    site, reports = directory / "site", directory / "switch"
    site.mkdir()
    reports.mkdir()
    (site / "sitecustomize.py").write_text(REPORTER.format(folder=str(reports)))
    root = Path(__file__).resolve().parents[1]
    env = {
        "MLLEDGER_AUTH_FAILURES_PER_MINUTE": str(PER_MINUTE),
        "MLLEDGER_CHECKPOINT_EVERY": "0",
        "PYTHONPATH": f"{site}:{root}",
    }
    yield from ApiServer(directory, env=env, workers=None).serving()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _workers(server: ApiServer) -> list[int]:
    """The uvicorn worker processes under the server's supervisor: the children started
    by multiprocessing's ``spawn_main`` (not its resource tracker or other helpers).
    ``ApiServer`` returned once each had logged its start."""
    assert server.process is not None
    workers = []
    for child in _children(server.process.pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:  # a helper process that ended meanwhile
            continue
        if b"spawn_main" in command:
            workers.append(child)
    return workers


def test_serve_starts_one_worker_per_core_by_default(server: ApiServer) -> None:
    if default_workers() == 1:
        pytest.skip("one core here: uvicorn serves in its own process, with no workers")
    admin = server.key(P, "admin")
    with server.client(admin) as http:
        for i in range(40):
            answer = http.post(
                f"/projects/{P}/datasets",
                json={"name": "rows", "version": str(i), "uri": f"file:///rows/{i}",
                      "digest": "sha256:" + f"{i:064x}"},
            )  # fmt: skip
            assert answer.status_code == 201, answer.text
    workers = _workers(server)
    assert len(workers) == default_workers()
    # Each worker serves with the short switch interval (set where the app starts).
    reports = server.directory / "switch"
    deadline = time.monotonic() + 30  # each process rewrites its report every 0.1 s
    seen: dict[int, float] = {}
    while time.monotonic() < deadline:
        seen = {w: float((reports / str(w)).read_text() or "nan") for w in workers}
        if set(seen.values()) == {0.0005}:
            break
        time.sleep(0.2)
    assert set(seen.values()) == {0.0005}, seen
    ledger = open_ledger(server.db)
    try:
        events = ledger.read()
        assert [e.body["version"] for e in events] == [str(i) for i in range(40)]
        assert {e.type for e in events} == {"dataset-version-registered"}
        assert [e.position for e in events] == list(range(40))
    finally:
        ledger.close()


def test_workers_share_the_failed_authentication_bound(server: ApiServer) -> None:
    """Each worker records its share of ``MLLEDGER_AUTH_FAILURES_PER_MINUTE`` (rounded
    down): the server as a whole records no more than the setting, however requests
    spread."""
    since = len(server.trail())
    statuses = []
    with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as anonymous:
        for _ in range(40):
            statuses.append(anonymous.get(f"/projects/{P}/models/clf/top-version").status_code)
    assert set(statuses) <= {401, 429} and statuses.count(429) >= 40 - PER_MINUTE
    denied = [e for e in server.trail(since) if e["outcome"] == "deny"]
    assert 1 <= len(denied) <= PER_MINUTE
