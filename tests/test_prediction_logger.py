"""The prediction logger of model servers: journaled before ``log()`` returns, sent in
batches under ids derived from their place in the journal, never lost, bounded."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

import registry
from registry import ConfigError, FieldError, Registry
from registry.events import StoredEvent
from registry.hooks.serving import MAX_LINE_BYTES, PredictionLogger, PredictionMiddleware, SpoolFull
from registry.hooks.spool import Batch, json_lines
from registry.ledger import Ledger
from registry.payloads import decode_predictions

ROOT = Path(__file__).resolve().parents[1]


# --- helpers ----------------------------------------------------------------------------


def predictions(ledger: Ledger, since: int = 0) -> list[StoredEvent]:
    return [e for e in ledger.tail(since) if e.type == "predictions-logged"]


def counted(ledger: Ledger, project: str, keys: list[str], since: int = 0) -> Counter[str]:
    """How many prediction rows the ledger holds for each of ``keys`` (by pseudonym)."""
    pseudonym = ledger.pseudonymizer(project).record
    by_pseudonym = {pseudonym(k): k for k in keys}
    found: Counter[str] = Counter()
    for event in predictions(ledger, since):
        for p in decode_predictions(event.payload or b"").column("record").to_pylist():
            found[by_pseudonym.get(p, "(other)")] += 1
    return found


class Switch:
    """A registry whose ``log_predictions`` fails like a ledger that cannot be reached
    while ``down``; ``sends`` counts the calls that got through."""

    def __init__(self, reg: Registry, down: bool = False):
        self.reg = reg
        self.down = down
        self.sends = 0
        self.failures = 0
        real = reg.log_predictions

        def log_predictions(*args: Any, **kwargs: Any) -> list[int]:
            if self.down:
                self.failures += 1
                raise httpx.ConnectError("[Errno 111] Connection refused")
            positions = real(*args, **kwargs)
            self.sends += 1
            return positions

        reg.log_predictions = log_predictions  # type: ignore[method-assign]


@pytest.fixture
def served(reg: Registry) -> tuple[Registry, Any, Any]:
    model = reg.register_model("clf", artifact_uri="s3://m/1", artifact_digest="sha256:1")
    deployment = reg.deploy("api", endpoint="http://api", served={model: 100})
    return reg, deployment, model


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def make_logger(served: tuple[Registry, Any, Any], spool: Path) -> Iterator[Any]:
    made: list[PredictionLogger] = []

    def make(**options: Any) -> PredictionLogger:
        reg, deployment, model = served
        # A thread sender: these tests make the ledger fail through ``reg`` (``Switch``),
        # which a sender process does not share; the process sender is tested below.
        settings = {
            "model": model,
            "registry": reg,
            "spool": spool,
            "flush_interval": 0.05,
            "sender": "thread",
        }
        logger = PredictionLogger(deployment, **{**settings, **options})
        made.append(logger)
        return logger

    yield make
    for logger in made:
        logger.close(timeout=5)


def lanes(spool: Path) -> list[Path]:
    return sorted(p for p in spool.iterdir() if p.name.startswith("lane-"))


# --- logging and sending ------------------------------------------------------------------


def test_logged_predictions_reach_the_ledger_in_one_batch(
    served: tuple[Registry, Any, Any], make_logger: Any, spool: Path
) -> None:
    reg, deployment, model = served
    head = reg.ledger.head()
    logger = make_logger(flush_interval=30)
    [lane] = lanes(spool)
    logger.log("app-1", {"label": "yes", "p": 0.91}, trace_id="t-1")
    logger.log(2, 0.25, at="2026-05-01T10:00:00Z")
    logger.log("app-3", [1, 2], model=model.id)
    assert logger.stats()["pending"] == 3 and logger.stats()["spool_bytes"] > 0
    assert reg.ledger.head() == head  # journaled, not yet sent
    assert logger.flush(timeout=10)
    [event] = predictions(reg.ledger, head + 1)
    assert event.entity == deployment.id and event.body["count"] == 3
    lane_id = uuid.UUID(lane.name.removeprefix("lane-"))
    assert event.event_id == str(uuid.uuid5(uuid.uuid5(lane_id, "1:0"), "0"))
    rows = decode_predictions(event.payload or b"").to_pydict()
    assert rows["trace_id"] == ["t-1", None, None]
    assert rows["at"][1] == "2026-05-01T10:00:00.000000Z"
    assert reg.scored("app-1")["predictions"][0]["output"] == {"label": "yes", "p": 0.91}
    assert reg.scored(2)["predictions"][0]["model"] == model.id
    assert logger.stats() == {
        "logged": 3,
        "sent": 3,
        "rejected": 0,
        "retries": 0,
        "adopted": 0,
        "pending": 0,
        "spool_bytes": 0,
    }
    assert logger.close() is True
    assert lanes(spool) == []  # all sent: the lane is gone
    assert reg.ledger.head() == event.position


def test_batches_follow_batch_size_and_segments_are_removed(
    served: tuple[Registry, Any, Any], make_logger: Any, spool: Path
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    logger = make_logger(batch_size=40, segment_bytes=1000, flush_interval=30)
    [lane] = lanes(spool)
    keys = [f"k-{i}" for i in range(100)]
    for key in keys:
        logger.log(key, 1)
    assert len(list(lane.glob("seg-*.jsonl"))) > 3
    assert logger.flush(timeout=10)
    counts = [e.body["count"] for e in predictions(reg.ledger, head + 1)]
    assert sum(counts) == 100 and max(counts) <= 40  # a batch ends at its segment's end too
    assert all(len(e.body["models"]) == 1 for e in predictions(reg.ledger, head + 1))
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))
    assert [p.name for p in lane.glob("seg-*.jsonl")] == [max(p.name for p in lane.glob("seg-*"))]


def test_fsync_mode_logs_the_same(
    served: tuple[Registry, Any, Any], make_logger: Any, spool: Path
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    logger = make_logger(fsync=True, segment_bytes=200)
    threads = [
        threading.Thread(target=lambda n=n: [logger.log(f"f-{n}-{i}", i) for i in range(20)])
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logger.close(timeout=10)
    keys = [f"f-{n}-{i}" for n in range(4) for i in range(20)]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))


def test_spool_files_are_private(make_logger: Any, spool: Path, tmp_path: Path) -> None:
    logger = make_logger(flush_interval=30)
    logger.log("app-1", 1)
    [lane] = lanes(spool)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert stat.S_IMODE(lane.stat().st_mode) == 0o700
    for entry in lane.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600, entry.name
    assert "app-1" in (lane / "seg-000000001.jsonl").read_text()  # the data itself
    assert all("app-1" not in p.name for p in spool.rglob("*"))
    assert logger.close(timeout=10)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ConfigError, match=r"has mode 0755: group or others.*expected 0700"):
        make_logger(spool=shared)


def test_bad_input_is_refused_at_the_call(
    make_logger: Any, served: tuple[Registry, Any, Any]
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    logger = make_logger()
    with pytest.raises(FieldError, match="record key is empty"):
        logger.log("", 1)
    with pytest.raises(FieldError, match="record key is a bool"):
        logger.log(True, 1)
    with pytest.raises(FieldError, match="nan or infinity, which JSON cannot hold"):
        logger.log("app-1", {"p": math.nan})
    with pytest.raises(FieldError, match=r"not JSON \(a object is not a JSON value\)|not JSON"):
        logger.log("app-1", object())
    with pytest.raises(FieldError, match="a lone surrogate"):
        logger.log("app-1", "\ud800")
    with pytest.raises(FieldError, match=f"expected at most {MAX_LINE_BYTES}"):
        logger.log("app-1", "x" * MAX_LINE_BYTES)
    with pytest.raises(FieldError, match="is not a time: expected ISO 8601"):
        logger.log("app-1", 1, at="yesterday")
    with pytest.raises(FieldError, match="expected 'block' or 'fail'"):
        make_logger(on_full="drop")
    with pytest.raises(FieldError, match="batch_size is 0; expected an int >= 1"):
        make_logger(batch_size=0)
    with pytest.raises(FieldError, match="registry is a int; expected a Registry"):
        make_logger(registry=3)
    no_model = make_logger(model=None)
    with pytest.raises(FieldError, match="no model version; give model= here"):
        no_model.log("app-1", 1)
    assert logger.stats()["logged"] == 0 and logger.flush(timeout=5)
    assert reg.ledger.head() == head


def test_numpy_like_outputs_are_plain_json(
    make_logger: Any, served: tuple[Registry, Any, Any]
) -> None:
    import numpy as np

    reg, _, _ = served
    head = reg.ledger.head()
    logger = make_logger()
    logger.log("np-1", np.float32(0.5))
    logger.log("np-2", np.array([1, 2]))
    assert logger.flush(timeout=10)
    [event] = predictions(reg.ledger, head + 1)
    assert decode_predictions(event.payload or b"").column("output").to_pylist() == ["0.5", "[1,2]"]


def test_close_flushes_and_later_logs_are_refused(
    make_logger: Any, served: tuple[Registry, Any, Any]
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    with make_logger(flush_interval=30) as logger:
        logger.log("c-1", 1)
        logger.log("c-2", 2)
    assert counted(reg.ledger, "test", ["c-1", "c-2"], head + 1) == Counter({"c-1": 1, "c-2": 1})
    with pytest.raises(ConfigError, match="the logger is closed"):
        logger.log("c-3", 3)
    assert logger.close() is True and len(predictions(reg.ledger, head + 1)) == 1


def test_the_package_exports_it_lazily() -> None:
    assert registry.PredictionLogger is PredictionLogger
    assert registry.PredictionMiddleware is PredictionMiddleware
    code = "import sys, registry; print('registry.hooks.serving' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "False"


# --- outages, a full spool, refused batches -------------------------------------------------


def test_an_unreachable_ledger_loses_nothing_and_is_warned_about_once(
    served: tuple[Registry, Any, Any], make_logger: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    switch = Switch(reg, down=True)
    logger = make_logger()
    with caplog.at_level(logging.INFO, logger="mlledger.serving"):
        for i in range(10):
            logger.log(f"secret-key-{i}", i)
        assert logger.flush(timeout=0.6) is False
        assert switch.failures >= 2 and logger.stats()["pending"] == 10
        assert reg.ledger.head() == head
        switch.down = False
        assert logger.flush(timeout=10)
    keys = [f"secret-key-{i}" for i in range(10)]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))
    stats = logger.stats()
    assert stats["retries"] == switch.failures and stats["sent"] == 10 and stats["pending"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ConnectError" in warnings[0].getMessage()
    assert "stay in the spool" in warnings[0].getMessage()
    assert "secret-key" not in caplog.text


def test_a_send_retried_after_it_went_through_writes_once(
    served: tuple[Registry, Any, Any], make_logger: Any
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    real = reg.log_predictions
    calls: list[str] = []

    def lost_answer(*args: Any, **kwargs: Any) -> list[int]:
        calls.append(kwargs["batch_id"])
        positions = real(*args, **kwargs)
        if len(calls) == 1:  # the ledger took it; the answer never came back
            raise httpx.ReadTimeout("timed out")
        return positions

    reg.log_predictions = lost_answer  # type: ignore[method-assign]
    logger = make_logger()
    for i in range(5):
        logger.log(f"once-{i}", i)
    assert logger.flush(timeout=10)
    assert len(calls) == 2 and calls[0] == calls[1]
    [event] = predictions(reg.ledger, head + 1)
    keys = [f"once-{i}" for i in range(5)]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))
    assert logger.stats()["retries"] == 1 and logger.stats()["sent"] == 5
    assert reg.ledger.head() == event.position


def test_a_crash_between_send_and_its_record_is_resent_under_the_same_id(
    served: tuple[Registry, Any, Any], spool: Path, store_url: str
) -> None:
    reg, deployment, model = served
    head = reg.ledger.head()
    db = store_url  # the child process writes to the test's ledger, on either store
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.servingchild",
            db,
            str(spool),
            deployment.id,
            model.id,
            "50",
            "0",
            "kill-after-send",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MLLEDGER_PROJECT": "test"},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    [sent] = predictions(reg.ledger, head + 1)
    assert sent.body["count"] == 50
    [lane] = lanes(spool)
    state = json.loads((lane / "state.json").read_text())
    assert state["offset"] == 0 and state["sending"]["end"] > 0  # sent, not recorded as sent
    with PredictionLogger(deployment, model=model, registry=reg, spool=spool) as logger:
        assert logger.flush(timeout=10)
        assert logger.stats()["adopted"] == 1 and logger.stats()["sent"] == 50
    keys = [f"r-{i}" for i in range(50)]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))
    assert reg.ledger.head() == sent.position and lanes(spool) == []


def test_a_full_spool_fails_at_once_with_fail(
    served: tuple[Registry, Any, Any], make_logger: Any
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    switch = Switch(reg, down=True)
    logger = make_logger(max_spool_bytes=MAX_LINE_BYTES, on_full="fail")
    big = "x" * 200_000
    for i in range(5):
        logger.log(f"full-{i}", big)
    with pytest.raises(
        SpoolFull,
        match=r"holds \d+ bytes of predictions not yet in the ledger.*"
        r"on_full='fail'",
    ):
        logger.log("full-5", big)
    assert logger.stats()["logged"] == 5
    switch.down = False
    assert logger.flush(timeout=10)
    logger.log("full-5", big)  # room again
    assert logger.flush(timeout=10)
    keys = [f"full-{i}" for i in range(6)]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))


def test_a_full_spool_blocks_until_there_is_room_with_block(
    served: tuple[Registry, Any, Any], make_logger: Any
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    switch = Switch(reg, down=True)
    logger = make_logger(max_spool_bytes=MAX_LINE_BYTES, block_timeout=0.3)
    big = "x" * 200_000
    for i in range(5):
        logger.log(f"block-{i}", big)
    began = time.monotonic()
    with pytest.raises(SpoolFull, match=r"waited 0.3s for room \(block_timeout\)"):
        logger.log("block-5", big)
    assert time.monotonic() - began >= 0.3
    logger.block_timeout = None
    returned = threading.Event()
    blocked = threading.Thread(target=lambda: (logger.log("block-5", big), returned.set()))
    blocked.start()
    assert not returned.wait(0.3)  # waiting for room
    switch.down = False
    assert returned.wait(10)
    blocked.join()
    assert logger.flush(timeout=10)
    keys = [f"block-{i}" for i in range(6)]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))


def test_a_refused_batch_is_kept_aside_and_the_stream_goes_on(
    served: tuple[Registry, Any, Any],
    make_logger: Any,
    spool: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg, _, _ = served
    other = reg.register_model("clf", artifact_uri="s3://m/2", artifact_digest="sha256:2")
    head = reg.ledger.head()
    logger = make_logger(flush_interval=30)
    [lane] = lanes(spool)
    with caplog.at_level(logging.WARNING, logger="mlledger.serving"):
        logger.log("good-1", 1)
        assert logger.flush(timeout=10)
        logger.log("refused-1", 2, model=other)  # a version the deployment never served
        assert logger.flush(timeout=10)
        logger.log("good-2", 3)
        assert logger.flush(timeout=10)
    assert [e.body["count"] for e in predictions(reg.ledger, head + 1)] == [1, 1]
    assert counted(reg.ledger, "test", ["good-1", "good-2", "refused-1"], head + 1) == Counter(
        {"good-1": 1, "good-2": 1}
    )
    assert logger.stats()["rejected"] == 1 and logger.stats()["sent"] == 2
    [kept] = (lane / "rejected").glob("*.jsonl")
    assert json.loads(kept.read_text())[:3] == ["refused-1", 2, other.id]
    assert "never served" in kept.with_suffix(".error").read_text()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "refused a batch of 1 predictions" in warning and str(kept) in warning
    assert "refused-1" not in caplog.text
    assert logger.close(timeout=5)
    assert lane.exists() and not list(lane.glob("seg-*"))  # kept for its rejected batch


def test_journal_lines_parse_as_the_standard_parser_reads_them() -> None:
    """The journal is parsed by orjson; what orjson refuses (an integer beyond 64 bits,
    NaN, a lone surrogate: lines no ``log()`` writes, but a journal may hold) is parsed
    by the standard library, and comes out the same."""
    rows = [
        ["k-1", {"label": 1, "p": 0.25, "s": "é\u2028"}, "model:p/m@1", 1796504311.4565852, None],
        [7, [1.5e-07, -0.0, True, None], "model:p/m@1", 1.0, "0af7651916cd43dd8448eb211c80319c"],
    ]
    data = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    assert json_lines(data) == rows
    for odd in (2**70, -(2**65)):
        line = f'["k",{odd},"model:p/m@1",1.0,null]\n'.encode()
        assert json_lines(data + line) == [*rows, ["k", odd, "model:p/m@1", 1.0, None]]
    [[_, nan, *_]] = json_lines(b'["k",NaN,"m",1.0,null]\n')
    assert math.isnan(nan)
    assert json_lines(b'["k","\\ud800","m",1.0,null]\n') == [["k", "\ud800", "m", 1.0, None]]
    with pytest.raises(ValueError):
        json_lines(b'["k",1,"m",1.0\n')


def test_a_batch_is_read_in_pieces_of_its_size_whatever_the_lines_length(
    served: tuple[Registry, Any, Any], make_logger: Any, spool: Path
) -> None:
    """Reads grow when the lines grow longer than the last batch's, and a batch is
    never longer than ``batch_size`` lines."""
    reg, _, _ = served
    head = reg.ledger.head()
    logger = make_logger(batch_size=50, flush_interval=30)
    short = [f"s-{i}" for i in range(120)]
    long = [f"l-{i}" for i in range(120)]
    for key in short:
        logger.log(key, 1)
    assert logger.flush(timeout=10)
    for key in long:
        logger.log(key, {"text": "x" * 3000})
    assert logger.flush(timeout=10)
    counts = [e.body["count"] for e in predictions(reg.ledger, head + 1)]
    assert sum(counts) == 240 and max(counts) == 50
    assert counted(reg.ledger, "test", short + long, head + 1) == Counter(
        dict.fromkeys(short + long, 1)
    )
    assert logger.close(timeout=5)


def test_an_unknown_deployment_is_refused_not_retried_forever(
    served: tuple[Registry, Any, Any], spool: Path
) -> None:
    reg, _, model = served
    head = reg.ledger.head()
    with PredictionLogger(
        "ghost", model=model, registry=reg, spool=spool, flush_interval=0.05
    ) as logger:
        logger.log("g-1", 1)
        assert logger.flush(timeout=10)
        assert logger.stats()["rejected"] == 1 and logger.stats()["retries"] == 0
    assert reg.ledger.head() == head


# --- lanes ---------------------------------------------------------------------------------


def test_a_lane_left_behind_is_adopted_and_drained(
    served: tuple[Registry, Any, Any], make_logger: Any, spool: Path
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    switch = Switch(reg, down=True)
    first = make_logger()
    for i in range(7):
        first.log(f"left-{i}", i)
    assert first.close(timeout=0.3) is False  # the ledger is down: the lane stays
    [left] = lanes(spool)
    assert reg.ledger.head() == head
    switch.down = False
    second = make_logger()
    assert len(lanes(spool)) == 2
    assert second.stats()["adopted"] == 1
    assert second.flush(timeout=10)
    keys = [f"left-{i}" for i in range(7)]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))
    assert second.stats()["sent"] == 7 and second.stats()["logged"] == 0
    assert not left.exists()


def test_two_live_loggers_keep_their_own_lanes(
    served: tuple[Registry, Any, Any], make_logger: Any, spool: Path
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    one, two = make_logger(), make_logger()
    assert len(lanes(spool)) == 2 and one.stats()["adopted"] == two.stats()["adopted"] == 0
    one.log("one-1", 1)
    two.log("two-1", 2)
    assert one.flush(timeout=10) and two.flush(timeout=10)
    assert counted(reg.ledger, "test", ["one-1", "two-1"], head + 1) == Counter(
        {"one-1": 1, "two-1": 1}
    )


# --- the decorator ---------------------------------------------------------------------------


def test_the_decorator_logs_sync_async_and_batch_calls(
    served: tuple[Registry, Any, Any], make_logger: Any
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    logger = make_logger()

    @logger.predicts(record="applicant", output=lambda r: r["score"])
    def score(features: dict[str, float], applicant: str = "anon") -> dict[str, float]:
        return {"score": features["x"] * 2}

    @logger.predicts(record=lambda args, kwargs: args[0]["id"])
    async def score_async(request: dict[str, Any]) -> float:
        await asyncio.sleep(0)
        return 0.75

    @logger.predicts(record="ids", batch=True)
    def score_batch(ids: list[str]) -> list[int]:
        return [len(i) for i in ids]

    assert score({"x": 0.25}, applicant="dec-1") == {"score": 0.5}
    assert score.__name__ == "score"
    assert asyncio.run(score_async({"id": "dec-2"})) == 0.75
    assert score_batch(["dec-3", "dec-44"]) == [5, 6]
    assert logger.stats()["logged"] == 4
    assert logger.flush(timeout=10)
    assert reg.scored("dec-1")["predictions"][0]["output"] == 0.5
    assert reg.scored("dec-2")["predictions"][0]["output"] == 0.75
    assert reg.scored("dec-44")["predictions"][0]["output"] == 6
    keys = ["dec-1", "dec-2", "dec-3", "dec-44"]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))

    with pytest.raises(FieldError, match="has no argument 'missing'; expected one of ids"):
        logger.predicts(record="missing")(score_batch.__wrapped__)

    @logger.predicts(record="ids", batch=True)
    def short(ids: list[str]) -> list[int]:
        return [1]

    with pytest.raises(FieldError, match="2 records but 1 outputs"):
        short(["a", "b"])


# --- the middleware --------------------------------------------------------------------------


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        body = await request.json()
        if isinstance(body, list):
            return [{"score": len(b["id"]) / 10} for b in body]
        return {"score": len(body.get("id", "")) / 10, "model": "clf"}

    @app.post("/predict/stream")
    async def stream(request: Request) -> StreamingResponse:
        body = await request.json()

        async def parts() -> Any:
            yield b'{"score":'
            yield json.dumps(len(body["id"]) / 10).encode()
            yield b"}"

        return StreamingResponse(parts(), media_type="application/json")

    @app.post("/form")
    async def form(request: Request) -> PlainTextResponse:
        return PlainTextResponse((await request.body()).decode().upper())

    @app.post("/admin/reload")
    async def reload() -> dict[str, bool]:
        return {"ok": True}

    return app


def _answers(app: Any) -> list[tuple[int, bytes]]:
    async def ask() -> list[tuple[int, bytes]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = [
                await client.post("/predict", json={"id": "mw-1", "features": [1]}),
                await client.post("/predict", json=[{"id": "mw-22"}, {"id": "mw-333"}]),
                await client.post("/predict/stream", json={"id": "mw-4444"}),
                await client.post(
                    "/form",
                    content=b"id=mw-5",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ),
                await client.post("/admin/reload", json={"id": "mw-6"}),
                await client.post("/predict", json={"id": "x" * 3000}),
                await client.post("/predict", json={"no-id": 1}),
            ]
        return [(a.status_code, a.content) for a in answers[:5]] + [
            (a.status_code, b"") for a in answers[5:]
        ]

    return asyncio.run(ask())


def test_the_middleware_logs_json_predictions_and_changes_no_response(
    served: tuple[Registry, Any, Any], make_logger: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reg, _, _ = served
    head = reg.ledger.head()
    logger = make_logger()
    plain = _answers(_app())
    app = logger.middleware(
        _app(), record="id", output="score", paths=["/predict"], max_body_bytes=2000
    )
    with caplog.at_level(logging.WARNING, logger="mlledger.serving"):
        assert _answers(app) == plain
    assert plain[1] == (200, b'[{"score":0.5},{"score":0.6}]') and plain[2][1] == b'{"score":0.7}'
    assert plain[3] == (200, b"ID=MW-5")
    assert logger.flush(timeout=10)
    keys = ["mw-1", "mw-22", "mw-333", "mw-4444", "mw-5", "mw-6"]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(
        {"mw-1": 1, "mw-22": 1, "mw-333": 1, "mw-4444": 1}
    )
    assert reg.scored("mw-333")["predictions"][0]["output"] == 0.6
    assert reg.scored("mw-4444")["predictions"][0]["output"] == 0.7
    assert logger.stats()["logged"] == 4
    warnings = [r.getMessage() for r in caplog.records]
    assert any("request body over 2000 bytes" in w and "unlogged" in w for w in warnings)
    assert any("lacks the field 'id' (record)" in w for w in warnings)
    assert "mw-" not in caplog.text
    with pytest.raises(FieldError, match="expected a dotted path into the JSON body"):
        PredictionMiddleware(_app(), logger=logger, record="", output="score")


# --- the sender process --------------------------------------------------------------------


def test_a_sender_process_sends_the_journal_off_the_serving_process(
    served: tuple[Registry, Any, Any], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """By default the journal is sent by a process of its own: what it does reaches
    the logger (counts, flush), its warnings are logged here, and closing stops it and
    removes the drained lane."""
    reg, deployment, model = served
    head = reg.ledger.head()
    keys = [f"p-{i}" for i in range(2_500)]
    with caplog.at_level(logging.WARNING, logger="mlledger.serving"):
        with PredictionLogger(
            deployment,
            model=model,
            registry=reg,
            spool=spool,
            batch_size=1_000,
            flush_interval=0.05,
        ) as logger:
            assert logger.sender_mode == "process"
            sender = logger._process
            assert sender is not None and sender.pid != os.getpid()
            for i, key in enumerate(keys):
                logger.log(key, i)
            assert logger.flush(timeout=30)
            assert logger.stats()["sent"] == 2_500 and logger.stats()["pending"] == 0
            logger.log("p-ghost", 1, model="model:test/clf@9")  # no such model version
            assert logger.flush(timeout=30)
            assert logger.stats()["rejected"] == 1
        assert sender.returncode == 0 and lanes(spool) != []  # kept: it holds a refusal
    events = predictions(reg.ledger, head + 1)
    assert sum(e.body["count"] for e in events) == 2_500 and len(events) == 3
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))
    [refused] = [r.getMessage() for r in caplog.records if "refused a batch" in r.getMessage()]
    assert "p-ghost" not in refused  # no record key in a warning


def test_a_sender_process_that_dies_is_started_again(
    served: tuple[Registry, Any, Any], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, deployment, model = served
    head = reg.ledger.head()
    with PredictionLogger(
        deployment, model=model, registry=reg, spool=spool, flush_interval=0.05
    ) as logger:
        first = logger._process
        assert first is not None
        first.send_signal(signal.SIGKILL)
        first.wait()
        for i in range(100):
            logger.log(f"d-{i}", i)  # journaled: acknowledged while no sender runs
        with caplog.at_level(logging.WARNING, logger="mlledger.serving"):
            assert logger.flush(timeout=30)
        assert logger._process is not first and logger._process is not None
        assert any("ended unexpectedly" in r.getMessage() for r in caplog.records)
    keys = [f"d-{i}" for i in range(100)]
    assert counted(reg.ledger, "test", keys, head + 1) == Counter(dict.fromkeys(keys, 1))


# --- the sealing process ---------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
            except OSError:
                continue  # ended while listed
            if int(stat_line.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def fall_behind(logger: PredictionLogger, caplog: pytest.LogCaptureFixture) -> int:
    """Make a logger's sender fall behind (a full batch waiting), which starts its
    sealing process; wait until it is in use. Its process id."""
    assert logger._process is not None
    for i in range(logger.batch_size):
        logger.log(f"first-{i}", i)
    assert logger.flush(timeout=30)
    deadline = time.monotonic() + 30
    while "the sender fell behind" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "a sealing process now seals each next batch" in caplog.text
    [sealer] = children(logger._process.pid)
    assert "--seal" in Path(f"/proc/{sealer}/cmdline").read_bytes().decode()
    return sealer


def test_the_next_batch_is_sealed_in_a_second_process_while_the_last_is_appended(
    served: tuple[Registry, Any, Any], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sender process on a local ledger that falls behind starts a sealing process:
    batches read ahead (across the journal's segments) arrive each once, in journal
    order, under the ids of their place; sent segments are removed; closing ends both
    processes. One that keeps up starts none."""
    reg, deployment, model = served
    with PredictionLogger(
        deployment, model=model, registry=reg, spool=spool, batch_size=250, flush_interval=0.05
    ) as calm:
        assert calm._process is not None
        for i in range(100):
            calm.log(f"calm-{i}", i)
        assert calm.flush(timeout=30)
        assert children(calm._process.pid) == []
    keys = [f"a-{i}" for i in range(3_000)]
    with (
        caplog.at_level(logging.INFO, logger="mlledger.serving"),
        PredictionLogger(
            deployment,
            model=model,
            registry=reg,
            spool=spool,
            batch_size=250,
            segment_bytes=20_000,
            flush_interval=0.05,
        ) as logger,
    ):
        sender = logger._process
        assert sender is not None
        sealer = fall_behind(logger, caplog)
        since = reg.ledger.head()
        [lane] = lanes(spool)
        for i, key in enumerate(keys):
            logger.log(key, {"label": i % 2, "p": i / 3_000})
        assert logger.flush(timeout=60)
        assert logger.stats()["sent"] == 3_250
        assert [p.name for p in lane.glob("seg-*.jsonl")] == [
            max(p.name for p in lane.glob("seg-*"))
        ]
    events = predictions(reg.ledger, since + 1)
    assert counted(reg.ledger, "test", keys, since + 1) == Counter(dict.fromkeys(keys, 1))
    assert max(e.body["count"] for e in events) <= 250
    assert len({e.event_id for e in events}) == len(events)
    pseudonym = reg.ledger.pseudonymizer("test").record
    order = {pseudonym(k): i for i, k in enumerate(keys)}
    sent = [
        order[p]
        for e in events
        for p in decode_predictions(e.payload or b"").column("record").to_pylist()
    ]
    assert sent == sorted(sent)  # in journal order
    assert reg.scored("a-7")["predictions"][0]["output"] == {"label": 1, "p": 7 / 3_000}
    assert sender.returncode == 0 and not Path(f"/proc/{sealer}").exists()


def test_a_sealing_process_that_dies_is_done_without(
    served: tuple[Registry, Any, Any], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, deployment, model = served
    keys = [f"w-{i}" for i in range(600)]
    with (
        caplog.at_level(logging.INFO, logger="mlledger.serving"),
        PredictionLogger(
            deployment, model=model, registry=reg, spool=spool, batch_size=100, flush_interval=0.05
        ) as logger,
    ):
        assert logger._process is not None
        os.kill(fall_behind(logger, caplog), signal.SIGKILL)
        since = reg.ledger.head()
        for key in keys:
            logger.log(key, 1)
        assert logger.flush(timeout=30)
        assert logger.stats()["sent"] == 700 and logger.stats()["retries"] == 0
        assert children(logger._process.pid) == []
    assert counted(reg.ledger, "test", keys, since + 1) == Counter(dict.fromkeys(keys, 1))
    [warning] = [
        r.getMessage() for r in caplog.records if "sealing process failed" in r.getMessage()
    ]
    assert "the sender seals its batches itself from now on" in warning


def test_journal_lines_the_sealing_process_cannot_read_are_kept_aside(
    served: tuple[Registry, Any, Any], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged line (written into the journal by something else than ``log()``) makes
    its batch refused by the sealing process: kept under ``rejected/``, the rest sent."""
    reg, deployment, model = served
    head = reg.ledger.head()
    with (
        caplog.at_level(logging.WARNING, logger="mlledger.serving"),
        PredictionLogger(
            deployment, model=model, registry=reg, spool=spool, flush_interval=0.05
        ) as logger,
    ):
        [lane] = lanes(spool)
        logger.log("fine-1", 1)
        assert logger.flush(timeout=30)
        [segment] = lane.glob("seg-*.jsonl")
        with segment.open("ab") as journal:
            journal.write(b'{"not": "a prediction"}\n')
        deadline = time.monotonic() + 30
        while logger.stats()["rejected"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        logger.log("fine-2", 2)
        # flush() counts the refused line among the logged ones: wait for the row.
        while logger.stats()["sent"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert logger.stats()["rejected"] == 1 and logger.stats()["sent"] == 2
    assert counted(reg.ledger, "test", ["fine-1", "fine-2"], head + 1) == Counter(
        {"fine-1": 1, "fine-2": 1}
    )
    [kept] = (lane / "rejected").glob("*.jsonl")
    assert kept.read_bytes() == b'{"not": "a prediction"}\n'
    assert "do not parse" in kept.with_suffix(".error").read_text()
    assert any("refused a batch of 1 predictions" in r.getMessage() for r in caplog.records)


def test_reading_ahead_moves_nothing_and_crosses_only_finished_segments(tmp_path: Path) -> None:
    from registry.hooks.spool import Lane, private_directory, segment_name

    lane = Lane.create(private_directory(tmp_path / "spool"), "p", "deployment:p/api", sync=False)
    try:
        (lane.path / segment_name(1)).write_bytes(b"[1]\n[2]\n[3]\n[4")  # a cut last line
        assert lane.peek(1, 0, 2, 1 << 20) == Batch(1, 0, 8, b"[1]\n[2]\n")
        assert lane.peek(1, 8, 5, 1 << 20) == Batch(1, 8, 12, b"[3]\n")
        assert lane.peek(1, 12, 5, 1 << 20) is None  # the newest segment: more may come
        (lane.path / segment_name(2)).write_bytes(b"[5]\n")
        assert lane.peek(1, 12, 5, 1 << 20) == Batch(2, 0, 4, b"[5]\n")  # the cut line skipped
        assert (lane.segment, lane.offset, lane.sending) == (1, 0, None)
        assert sorted(p.name for p in lane.path.glob("seg-*")) == [
            segment_name(1),
            segment_name(2),
        ]
        lane.forget_before(2)
        assert [p.name for p in lane.path.glob("seg-*")] == [segment_name(2)]
    finally:
        lane.release(remove=False)


def test_a_sealing_process_that_stops_answering_is_given_up(
    served: tuple[Registry, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.hooks import sender

    reg, deployment, model = served
    target, api_key = reg.backend.opened_with()
    sealing = sender.SealingProcess(
        {"target": target, "api_key": api_key, "project": "test", "actor": "t"}  # type: ignore[typeddict-item]
    )
    try:
        deadline = time.monotonic() + 30
        while not sealing.ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        line = json.dumps(["s-1", 1, model.id, 1796500000.0, None]).encode() + b"\n"
        sealing.submit(deployment.id, str(uuid.uuid4()), line)
        kind, events = sealing.outcome()
        assert kind == "sealed" and events[0].body["count"] == 1
        monkeypatch.setattr(sender, "SEAL_SECONDS", 0.5)
        os.kill(sealing.process.pid, signal.SIGSTOP)
        sealing.submit(deployment.id, str(uuid.uuid4()), line)
        with pytest.raises(sender.SealerLost, match=r"sealed no batch within 0\.5s"):
            sealing.outcome()
        assert sealing.process.wait(timeout=10) == -signal.SIGKILL
    finally:
        sealing.close()


def test_a_sealing_process_ends_with_its_sender_however_it_ends(
    served: tuple[Registry, Any, Any], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, deployment, model = served
    with (
        caplog.at_level(logging.INFO, logger="mlledger.serving"),
        PredictionLogger(
            deployment, model=model, registry=reg, spool=spool, batch_size=100, flush_interval=0.05
        ) as logger,
    ):
        assert logger._process is not None
        sealer = fall_behind(logger, caplog)
        logger._process.send_signal(signal.SIGKILL)
        logger._process.wait()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{sealer}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not Path(f"/proc/{sealer}").exists()  # reaped by init once killed
        assert logger.flush(timeout=30)  # a new sender


def test_falling_behind_is_a_full_batch_waiting_across_segments(tmp_path: Path) -> None:
    from registry.hooks.sender import _behind
    from registry.hooks.spool import Lane, private_directory, segment_name

    lane = Lane.create(private_directory(tmp_path / "spool"), "p", "deployment:p/api", sync=False)
    try:
        (lane.path / segment_name(1)).write_bytes(b"[1]\n" * 3)
        (lane.path / segment_name(2)).write_bytes(b"[2]\n" * 2)
        batch = lane.read(10, 1 << 20)
        assert batch is not None and batch.data == b"[1]\n" * 3  # a segment's end
        assert _behind(lane, batch, 3) and _behind(lane, batch, 5)
        assert not _behind(lane, batch, 6)
    finally:
        lane.release(remove=False)
