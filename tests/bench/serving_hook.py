"""The prediction logger of model servers (part of ``make bench``): the cost of
``PredictionLogger.log()`` to the serving code, amortised per call, at a steady 10,000
predictions a second (with the default sender process, and with a sender thread for
comparison) and flat out (the sender running beside it, as in a server), and the
throughput from ``log()`` to the ledger compared with direct ``log_predictions``
batches of the same rows (with one time for a batch, and with a time per row, as the
logger sends them), on a fresh SQLite ledger each, over 1,000,000 predictions (the
start of the sealing process, once the sender falls behind, included). The targets: at
most 10 µs a call at 10,000/s, and the same throughput to the ledger as direct batches.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import registry
from registry.hooks.serving import BATCH_SIZE, PredictionLogger
from tests.bench.harness import arguments, fresh, latency, load_average, measure, write_result

RATE = 10_000
STEADY_SECONDS = 5.0
FLAT_OUT = 200_000
END_TO_END = 1_000_000


def _output(i: int) -> dict[str, Any]:
    return {"label": i % 2, "p": (i % 1000) / 1000}


def _setup(work: Path, name: str) -> tuple[Any, Any, Any]:
    reg = registry.connect(fresh(work, name), project="bench", actor="bench")
    model = reg.register_model("clf", artifact_uri="s3://m/1", artifact_digest="sha256:1")
    deployment = reg.deploy("api", endpoint="http://api", served={model: 100})
    return reg, deployment, model


def _logger(work: Path, name: str, **options: Any) -> tuple[Any, PredictionLogger]:
    reg, deployment, model = _setup(work, name)
    spool = work / name / "spool"
    shutil.rmtree(spool, ignore_errors=True)
    return reg, PredictionLogger(deployment, model=model, registry=reg, spool=spool, **options)


def bench_steady(work: Path, scale: float, sender: str = "process") -> dict[str, Any]:
    """``log()`` at a steady 10,000/s: 10 calls each millisecond, each group timed."""
    reg, logger = _logger(work, f"steady-{sender}", sender=sender)
    n = int(RATE * STEADY_SECONDS * scale)
    per_tick = 10
    inside = 0.0
    groups: list[float] = []
    began = time.perf_counter()
    for tick in range(n // per_tick):
        start = time.perf_counter()
        for i in range(tick * per_tick, (tick + 1) * per_tick):
            logger.log(f"s-{i}", _output(i))
        spent = time.perf_counter() - start
        inside += spent
        groups.append(spent / per_tick)
        ahead = began + (tick + 1) / (RATE / per_tick) - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    rate = n / (time.perf_counter() - began)
    assert logger.close(timeout=120)
    reg.close()
    return {
        ("steady" if sender == "process" else f"steady_{sender}_sender"): {
            "predictions": n,
            "achieved_per_s": round(rate),
            "log_us_per_call": round(inside / n * 1e6, 2),
            "per_call_of_each_group": latency(groups, 5),
        }
    }


def bench_flat_out(work: Path, scale: float) -> dict[str, Any]:
    """``log()`` as fast as one thread can call it: the sender falls behind and starts
    its sealing process, which takes the other core (and without one)."""
    figures: dict[str, Any] = {}
    for seal_ahead, name in ((True, "flat_out"), (False, "flat_out_without_a_sealing_process")):
        reg, logger = _logger(work, name, seal_ahead=seal_ahead)
        n = int(FLAT_OUT * scale)
        outputs = [_output(i) for i in range(1000)]
        began = time.perf_counter()
        for i in range(n):
            logger.log(f"f-{i}", outputs[i % 1000])
        seconds = time.perf_counter() - began
        assert logger.close(timeout=120)
        reg.close()
        figures[name] = {
            "predictions": n,
            "log_us_per_call": round(seconds / n * 1e6, 2),
            "calls_per_s": round(n / seconds),
        }
    return figures


def bench_end_to_end(work: Path, scale: float) -> dict[str, Any]:
    """Predictions a second from the first ``log()`` to the last row in the ledger,
    against direct ``log_predictions`` batches of the same size (a fresh ledger each)."""
    n = int(END_TO_END * scale)
    keys = [f"e-{i}" for i in range(n)]
    outputs = [_output(i) for i in range(n)]

    # Paid once, by neither figure: the lazy imports of the first batch (pyarrow).
    _direct_seconds(work, "warm-up", keys[:BATCH_SIZE], outputs[:BATCH_SIZE], None)
    direct = _direct_seconds(work, "direct", keys, outputs, None)
    # What the logger sends: each prediction with the time it was logged.
    now = time.time()
    times = [now + i / RATE for i in range(n)]
    direct_timed = _direct_seconds(work, "direct-timed", keys, outputs, times)

    reg, logger = _logger(work, "logged")
    began = time.perf_counter()
    for key, output in zip(keys, outputs, strict=True):
        logger.log(key, output)
    logged = time.perf_counter() - began
    assert logger.flush(timeout=300)
    through = time.perf_counter() - began
    stats = logger.stats()
    assert logger.close(timeout=60) and stats["sent"] == n
    reg.close()
    drain = _drain_seconds(work, keys, outputs)
    drain_alone = _drain_seconds(work, keys, outputs, seal_ahead=False)
    return {
        "end_to_end": {
            "predictions": n,
            "batch_size": BATCH_SIZE,
            "direct_batches_per_s": round(n / direct),
            "direct_batches_with_a_time_per_row_per_s": round(n / direct_timed),
            "logger_per_s": round(n / through),
            "logger_over_direct": round(direct / through, 3),
            "logging_seconds": round(logged, 3),
            "flush_wait_seconds": round(through - logged, 3),
            "drain_of_a_full_spool_per_s": round(n / drain),
            "drain_over_direct": round(direct / drain, 3),
            "drain_over_direct_with_a_time_per_row": round(direct_timed / drain, 3),
            "drain_without_a_sealing_process_per_s": round(n / drain_alone),
        }
    }


def _direct_seconds(
    work: Path, name: str, keys: list[str], outputs: list[Any], times: list[float] | None
) -> float:
    """Seconds direct ``log_predictions`` batches take (``times``: one per row)."""
    reg, deployment, model = _setup(work, name)
    began = time.perf_counter()
    for start in range(0, len(keys), BATCH_SIZE):
        part = slice(start, start + BATCH_SIZE)
        at = None if times is None else times[part]
        reg.log_predictions(
            deployment, model=model, records=keys[part], outputs=outputs[part], at=at
        )
    seconds = time.perf_counter() - began
    reg.close()
    return seconds


def _drain_seconds(
    work: Path, keys: list[str], outputs: list[Any], *, seal_ahead: bool = True
) -> float:
    """Seconds a new logger takes to send a spool another one filled while the ledger
    was unreachable (the sending alone, without the logging beside it). The one that
    fills it sends from a thread, which the ledger's outage is made in."""
    name = "drained" if seal_ahead else "drained-alone"
    reg, logger = _logger(work, name, sender="thread")

    def unreachable(*args: Any, **kwargs: Any) -> list[int]:
        raise ConnectionError("the ledger is unreachable (on purpose)")

    real = reg.log_predictions
    reg.log_predictions = unreachable
    for key, output in zip(keys, outputs, strict=True):
        logger.log(key, output)
    assert not logger.close(timeout=0.5)
    reg.log_predictions = real
    # Timed once the new logger's sender has started and adopted the lane.
    with PredictionLogger(
        "api", model="clf@1", registry=reg, spool=logger.spool, seal_ahead=seal_ahead
    ) as drainer:
        began = time.perf_counter()
        assert drainer.flush(timeout=300) and drainer.stats()["sent"] == len(keys)
        seconds = time.perf_counter() - began
    reg.close()
    return seconds


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-serving-hook.json", ".mlledger/bench-serving")
    args = parser.parse_args()
    results = measure(
        args,
        lambda work: bench_steady(work, args.scale),
        lambda work: bench_steady(work, args.scale, "thread"),
        lambda work: bench_flat_out(work, args.scale),
        lambda work: bench_end_to_end(work, args.scale),
    )
    results["load_average"] = load_average()
    results["targets_met"] = {
        "log_us_per_call_at_10000_per_s<=10": results["steady"]["log_us_per_call"] <= 10,
        "logger_throughput>=direct_batches": results["end_to_end"]["logger_over_direct"] >= 1,
        "drain_throughput>=direct_batches": results["end_to_end"]["drain_over_direct"] >= 1,
        "drain_throughput>=direct_batches_with_a_time_per_row": results["end_to_end"][
            "drain_over_direct_with_a_time_per_row"
        ]
        >= 1,
    }
    write_result(args.out, results)


if __name__ == "__main__":
    main()
