"""How long an append waits while a checkpoint is computed, on the embedded SQLite
default or (``--store postgresql``) a throwaway durable PostgreSQL server.

Per round, a fresh log of ``--events`` run events (default 200,000) with no
checkpoint; its first checkpoint (``write_checkpoint``, which recomputes every
leaf) started in a thread, and ``--delay`` seconds later one append of one event,
timed. Reported: the append's wall-clock time while the
checkpoint runs, the same append's median with no checkpoint running, the
checkpoint's own time and whether the append finished before it, with the load
average.

Not a test: numbers depend on the machine. Runs against whatever ``audit`` and
``registry`` are on ``PYTHONPATH``, so the same script times another revision.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

from audit.checkpoints import write_checkpoint
from audit.note import SigningKey
from registry.assembly import open_ledger
from registry.sdk import connect
from tests.bench.harness import (
    append_run_events,
    arguments,
    fresh,
    load_average,
    run_events,
    store_option,
    use_postgres,
    write_result,
)

IDLE_APPENDS = 20


def one_round(work: Path, events: int, delay: float) -> dict[str, Any]:
    """One fresh log, its first checkpoint, and an append timed while it runs."""
    url = fresh(work, "round")
    with connect(url, project="bench", actor="bench") as reg:
        append_run_events(reg, events)
    ledger = open_ledger(url)
    try:
        idle = []
        for _ in range(IDLE_APPENDS):
            started = time.perf_counter()
            ledger.append(run_events("bench", 1)[:1])
            idle.append(time.perf_counter() - started)
        key = SigningKey.generate("bench.example/log")
        finished: dict[str, float] = {}

        def checkpoint() -> None:
            write_checkpoint(ledger.store, key)
            finished["at"] = time.perf_counter()

        thread = threading.Thread(target=checkpoint)
        began = time.perf_counter()
        thread.start()
        time.sleep(delay)
        started = time.perf_counter()
        ledger.append(run_events("bench", 1)[:1])
        appended = time.perf_counter()
        thread.join()
        return {
            "append_during_checkpoint_s": round(appended - started, 4),
            "append_idle_median_s": round(statistics.median(idle), 4),
            "checkpoint_s": round(finished["at"] - began, 3),
            "append_finished_first": appended < finished["at"],
        }
    finally:
        ledger.close()


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-checkpoint-wait.json", ".mlledger/bench-ckpt")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before the append")
    store_option(parser)
    args = parser.parse_args()
    if args.store == "postgresql":
        use_postgres()
    work = Path(args.work)
    events = int(args.events * args.scale)
    rounds = [one_round(work, events, args.delay) for _ in range(args.rounds)]
    result = {
        "store": args.store,
        "events": events,
        "rounds": rounds,
        # The worst of the rounds: what the summary table shows.
        "append_during_checkpoint_worst_s": max(r["append_during_checkpoint_s"] for r in rounds),
        "append_idle_median_s": statistics.median(r["append_idle_median_s"] for r in rounds),
        "checkpoint_worst_s": max(r["checkpoint_s"] for r in rounds),
    }
    write_result(args.out, {**result, "load_average": load_average()})


if __name__ == "__main__":
    main()
