"""Benchmark of ``scored`` at size: logging throughput, then lookup latency by record.

Logs ``--predictions`` predictions through the SDK (10,000 per call, as in
``tests/bench/run.py``; only the SDK call is timed), then times 1,000 ``scored``
lookups of keys drawn from the logged ones (and 1,000 of keys never logged, which a
lookup by record must still prove absent from every partition of the prediction
index). ``--keep`` leaves the ledger in ``--work`` for a later run with ``--reuse``
(lookups only: for timing one database under two versions of the code).

Not a test: numbers depend on the machine; the load averages are reported with them.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path
from typing import Any

from registry.sdk import connect
from tests.bench import harness

PER_CALL = 10_000


def bench_scored(
    work: Path, predictions: int, records: int, samples: int, reuse: bool
) -> dict[str, Any]:
    keys = [f"customer-{i:08d}" for i in range(records)]
    rng = random.Random(1)
    out: dict[str, Any] = {"load_average_before": harness.load_average()}
    if reuse:
        os.environ["MLLEDGER_KEY_FILE"] = str(work / "scored" / "master.key")
        url = (work / "scored" / "url").read_text()
    else:
        url = harness.fresh(work, "scored")
        (work / "scored" / "url").write_text(url)
    reg = connect(url, project="bench", actor="bench")
    if not reuse:
        with reg.run("train") as run:
            model = run.register_model(
                "scorer",
                artifact_digest="sha256:" + "ab" * 32,
                artifact_uri="file:///models/scorer",
            )
        deployment = reg.deploy("scoring", endpoint="http://127.0.0.1/score", served={model: 100})
        clock = harness.Stopwatch()
        cpu = 0.0  # this process's CPU time: the store is in it (SQLite), the load is not
        calls = max(1, predictions // PER_CALL)
        for call in range(calls):
            batch = [keys[rng.randrange(records)] for _ in range(PER_CALL)]
            outputs = [round(rng.random(), 4) for _ in range(PER_CALL)]
            traces = [f"{call:08x}{i:024x}" for i in range(PER_CALL)]
            began = time.process_time()
            with clock:
                reg.log_predictions(
                    deployment, model=model, records=batch, outputs=outputs, trace_ids=traces
                )
            cpu += time.process_time() - began
        out["predictions"] = {
            "predictions": calls * PER_CALL,
            "per_call": PER_CALL,
            "seconds": round(clock.seconds, 3),
            "predictions_per_s": round(calls * PER_CALL / clock.seconds),
            "cpu_seconds": round(cpu, 3),
            "predictions_per_cpu_s": round(calls * PER_CALL / cpu),
            "load_average": harness.load_average(),
        }

    def lookup(key: str) -> None:
        with contextlib.suppress(LookupError):  # a key never drawn: still a full lookup
            reg.scored(key)

    for key in keys[:20]:  # warm the connection pool and any caches
        lookup(key)
    logged = [keys[rng.randrange(records)] for _ in range(samples)]
    out["scored"] = {
        **harness.latency(harness.time_each(lookup, logged)),
        "load_average": harness.load_average(),
    }
    absent = [f"absent-{i}" for i in range(samples)]
    out["scored_absent"] = {
        **harness.latency(harness.time_each(lookup, absent)),
        "load_average": harness.load_average(),
    }
    out["database_bytes"] = harness.db_bytes(work / "scored")
    reg.close()
    return out


def main() -> None:
    parser = harness.arguments(__doc__, ".mlledger/bench-scored.json", ".mlledger/bench-scored")
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=200_000, help="distinct record keys")
    parser.add_argument("--samples", type=int, default=1000, help="lookups timed, each kind")
    parser.add_argument("--reuse", action="store_true", help="time lookups on the kept ledger")
    harness.store_option(parser)
    args = parser.parse_args()
    if args.store == "postgresql":
        if args.reuse:
            parser.error("--reuse needs a store that outlives the run: SQLite only")
        harness.use_postgres()
    began = time.perf_counter()
    results = harness.measure(
        args,
        lambda work: bench_scored(
            work, int(args.predictions * args.scale), args.records, args.samples, args.reuse
        ),
        timed=False,
    )
    results["bench_seconds"] = round(time.perf_counter() - began, 1)
    harness.write_result(args.out, results)


if __name__ == "__main__":
    main()
