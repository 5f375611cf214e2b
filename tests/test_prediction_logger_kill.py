"""The prediction logger survives kills: of the registry server while a serving process
logs 100,000 predictions through it, and of the serving process itself (SIGKILL) after
it acknowledged N predictions. Every acknowledged prediction is in the ledger, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO

import pytest

import registry
from registry.hooks.serving import PredictionLogger
from registry.ledger import Ledger
from registry.payloads import decode_predictions
from tests.support.apiserver import ApiServer
from tests.support.helpers import opened_ledger

ROOT = Path(__file__).resolve().parents[1]


def serving_child(
    url: str, spool: Path, deployment: str, model: str, count: int, rate: int, env: dict[str, str]
) -> subprocess.Popen[str]:
    """A serving process logging ``r-0`` ... through a ``PredictionLogger``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.servingchild", url, str(spool), deployment,
         model, str(count), str(rate)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip


def acked_until(stdout: IO[str], at_least: int) -> int:
    """Read ``acked N`` lines until N reaches ``at_least``; the last N."""
    acked = 0
    for line in stdout:
        if line.startswith("acked "):
            acked = int(line.split()[1])
            if acked >= at_least:
                return acked
    raise AssertionError(f"the serving process ended after acknowledging {acked}")


def rows_per_record(ledger: Ledger, project: str, n: int) -> Counter[int]:
    """How many prediction rows of ``r-0`` ... ``r-(n-1)`` the ledger holds, by index
    (-1 for rows of any other record)."""
    pseudonym = ledger.pseudonymizer(project).record
    index = {pseudonym(f"r-{i}"): i for i in range(n)}
    found: Counter[int] = Counter()
    for event in ledger.tail():
        if event.type == "predictions-logged" and event.project == project:
            column = decode_predictions(event.payload or b"").column("record").to_pylist()
            found.update(index.get(p, -1) for p in column)
    return found


def test_every_prediction_is_in_the_ledger_once_though_the_server_was_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 100_000
    server = ApiServer(tmp_path / "server").start()
    try:
        with registry.connect(server.url, project="shop", actor="setup",
                              api_key=server.key("shop", "admin")) as reg:
            model = reg.register_model("clf", artifact_uri="s3://m/1", artifact_digest="sha256:1")
            deployment = reg.deploy("api", endpoint="http://api", served={model: 100})
        env = {"MLLEDGER_PROJECT": "shop", "MLLEDGER_API_KEY": server.key("shop", "writer")}
        child = serving_child(server.url, tmp_path / "spool", deployment.id, model.id, n, 25_000,
                              env)
        assert child.stdout is not None
        acked_until(child.stdout, 30_000)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)  # mid-stream
        server.process.wait()
        acked_until(child.stdout, 60_000)  # logging goes on while the server is down
        time.sleep(1)
        server.start()
        out, err = child.communicate(timeout=150)
        assert child.returncode == 0, err
        flushed = json.loads(out.split("flushed ", 1)[1])
        assert flushed["done"] is True and flushed["logged"] == n and flushed["sent"] == n
        assert flushed["retries"] >= 1 and flushed["pending"] == 0
        assert "r-" not in err  # warnings name no record
    finally:
        server.stop()
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(server.key_file))
    for ledger in opened_ledger(server.db):
        found = rows_per_record(ledger, "shop", n)
        assert len(found) == n and set(found.values()) == {1} and -1 not in found


def test_every_acknowledged_prediction_survives_a_kill_of_the_serving_process(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    spool = tmp_path / "spool"
    with registry.connect(db, project="shop", actor="setup") as reg:
        model = reg.register_model("clf", artifact_uri="s3://m/1", artifact_digest="sha256:1")
        deployment = reg.deploy("api", endpoint="http://api", served={model: 100})
    env = {"MLLEDGER_PROJECT": "shop"}
    child = serving_child(db, spool, deployment.id, model.id, 0, 20_000, env)
    assert child.stdout is not None
    acked = acked_until(child.stdout, 30_000)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    with registry.connect(db, project="shop", actor="restarted") as reg:
        with PredictionLogger(deployment, model=model, registry=reg, spool=spool) as logger:
            assert logger.flush(timeout=60)
            assert logger.stats()["adopted"] == 1 and logger.stats()["logged"] == 0
        found = rows_per_record(reg.ledger, "shop", acked + 10_000)
    # Every acknowledged one once; those logged after the last report, once each too.
    assert all(found[i] == 1 for i in range(acked)), acked
    assert set(found.values()) == {1} and -1 not in found
    assert sorted(found) == list(range(len(found)))
    assert [p.name for p in spool.iterdir()] == []
