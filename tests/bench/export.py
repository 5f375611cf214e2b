"""Benchmark of the Parquet export (``make bench``): rows per second and peak memory.

Writes one JSON document (``--out``) and prints it. On the embedded SQLite
default (WAL, synchronous=FULL), a ledger of 1,000,000 run events (batches of
5,000 through ``Ledger.append``) and 1,000,000 predictions (100 batches of 10,000
through the SDK) is exported to Parquet by ``mlledger export --format parquet``
in a child process, so its peak resident memory (``ru_maxrss`` of the child) is
the export's own (a checkpoint is signed before, as a running registry has one).
Figures: rows and seconds per table, overall rows per second,
peak memory, and the files' sizes; ``rows_per_s`` counts the whole command
(Python's start and imports included), ``export_rows_per_s`` the export itself.
A second run checks the manifest with ``mlledger export verify``.

Not a test: numbers depend on the machine. ``--scale`` shrinks the ledger for a
quick look.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from audit.checkpoints import write_checkpoint
from audit.erasure import signing_key
from registry.sdk import connect
from tests.bench.harness import append_run_events, arguments, fresh, machine, write_result

PROJECT = "bench"


def build(url: str, events: int, predictions: int) -> dict[str, Any]:
    reg = connect(url, project=PROJECT, actor="bench")
    began = time.perf_counter()
    built = append_run_events(reg, events)
    data = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:01", records=["r-0"])
    with reg.run("train", inputs=[data]) as run:
        model = run.register_model("m", artifact_uri="s3://m", artifact_digest="sha256:02")
    reg.deploy("api", endpoint="https://api", served={model: 100})
    batch = 10_000
    for start in range(0, predictions, batch):
        n = min(batch, predictions - start)
        reg.log_predictions(
            "api",
            model=model,
            records=[f"r-{(start + i) % 200_000}" for i in range(n)],
            outputs=[0.5] * n,
        )
    reg.flush()
    head = reg.ledger.head() + 1
    # The first checkpoint recomputes every leaf; sign it here, as a running registry
    # would have, so the export's figure is the export's own.
    signed = time.perf_counter()
    write_checkpoint(reg.ledger.store, signing_key(reg.ledger))
    signed = time.perf_counter() - signed
    reg.close()
    return {
        "events": head,
        "run_events": built["events"],
        "predictions": predictions,
        "build_seconds": round(time.perf_counter() - began, 1),
        "first_checkpoint_seconds": round(signed, 1),
    }


def export(url: str, out: Path) -> dict[str, Any]:
    env = {**os.environ, "MLLEDGER_DB": url}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry.cli",
            "export",
            "--format",
            "parquet",
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(done.stdout)
    rows = result["rows"]
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        # The export itself (checkpoint, files, manifest), without the command's start.
        "export_seconds": result["seconds"],
        "export_rows_per_s": round(rows / result["seconds"]),
        "peak_rss_mb": round(max(peak_kib, before) / 1024, 1),
        "files": {
            f["path"]: {"rows": f.get("rows"), "mb": round(f["size"] / 1e6, 1)}
            for f in result["files"]
        },
        "checkpoint_size": result["checkpoint"]["tree_size"],
    }


def verify(url: str, out: Path) -> dict[str, Any]:
    env = {**os.environ, "MLLEDGER_DB": url}
    key = out.parent / "log.pub"
    subprocess.run(
        [sys.executable, "-m", "registry.cli", "audit", "public-key", "--out", str(key)],
        capture_output=True,
        env=env,
        check=True,
    )
    started = time.perf_counter()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "registry.cli", "export", "verify", str(out)),
            *("--public-key", str(key), "--json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return {
        "ok": json.loads(done.stdout)["ok"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-export.json", ".mlledger/bench-export")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    url = fresh(work, "ledger")
    sizes = build(url, int(1_000_000 * args.scale), int(1_000_000 * args.scale))
    out = work / "export"
    result = {
        "ledger": sizes,
        "parquet": export(url, out),
        "verify": verify(url, out),
        "targets": {"rows_per_s": 200_000, "peak_rss_mb": 500},
        "machine": machine(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
