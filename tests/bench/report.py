"""Benchmark of the model dossier (``make bench``): a model with 10,000 upstream nodes.

Writes one JSON document (``--out``) and prints it. On the embedded SQLite
default (WAL, synchronous=FULL): 100 source datasets with 99 versions each (9,900
shard versions), 100 curated dataset versions each derived from one source's 99
shards, one training run reading the 100 curated versions, and the model it
registers, deployed, with 10,000 predictions and two stage moves: 10,002 nodes
upstream of the model. Timed: ``build_model_dossier`` and ``ModelDossier.write``
(the first round signs the checkpoint its proofs need; later rounds reuse it),
median and best of ``--rounds``.

Not a test: numbers depend on the machine. ``--scale`` shrinks the lineage for a
quick look.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from audit.erasure import signing_key
from audit.reports import build_model_dossier
from registry.sdk import connect
from tests.bench.harness import arguments, fresh, machine, write_result

PROJECT = "bench"


def build(url: str, sources: int, shards: int) -> dict[str, Any]:
    began = time.perf_counter()
    reg = connect(url, project=PROJECT, actor="bench")
    curated = []
    for s in range(sources):
        versions = [
            reg.register_dataset(
                f"source-{s}",
                str(v),
                uri=f"s3://bench/source-{s}/{v}",
                digest=f"sha256:{s:032x}{v:032x}",
                records=[f"r-{s}-{v}"],
            )
            for v in range(shards)
        ]
        curated.append(
            reg.register_dataset(
                f"curated-{s}",
                "1",
                uri=f"s3://bench/curated-{s}",
                digest=f"sha256:{s:064x}",
                records=[f"r-{s}-{v}" for v in range(shards)],
                derived_from=versions,
            )
        )
    with reg.run("train", inputs=curated, params={"lr": 0.01}) as run:
        model = run.register_model("big", artifact_uri="s3://m/big", artifact_digest="sha256:ff")
    reg.set_alias(model, "staging", moved_by="ci")
    reg.set_alias(model, "production", moved_by="approver")
    reg.deploy("api", endpoint="https://api", served={model: 100})
    reg.log_predictions(
        "api",
        model=model,
        records=[f"r-{i % sources}-0" for i in range(10_000)],
        outputs=[0.5] * 10_000,
    )
    reg.flush()
    events = reg.ledger.head() + 1
    reg.close()
    return {
        "upstream_nodes": sources * shards + sources + 1,
        "events": events,
        "build_seconds": round(time.perf_counter() - began, 1),
    }


def bench(url: str, work: Path, rounds: int) -> dict[str, Any]:
    reg = connect(url, project=PROJECT)
    key = signing_key(reg.ledger)
    timings, builds = [], []
    dossier = None
    for i in range(rounds):
        out = work / f"dossier-{i}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        dossier = build_model_dossier(reg.ledger, PROJECT, "big@production", key)
        built = time.perf_counter() - started
        dossier.write(out)
        timings.append(time.perf_counter() - started)
        builds.append(built)
    reg.close()
    assert dossier is not None
    return {
        "rounds": rounds,
        "seconds_median": round(statistics.median(timings), 2),
        "seconds_best": round(min(timings), 2),
        "seconds_first": round(timings[0], 2),
        "build_seconds_median": round(statistics.median(builds), 2),
        "datasets_listed": len(dossier.data["training"]["datasets"]),
        "nodes": dossier.data["training"]["nodes"],
        "proof_bundles": len(dossier.evidence),
        "html_mb": round(len(dossier.html.encode()) / 1e6, 2),
        "lineage_svg_kb": round(len(dossier.lineage_svg.encode()) / 1e3, 1),
        "target_seconds": 5,
    }


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-report.json", ".mlledger/bench-report")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    url = fresh(work, "ledger")
    sources = max(2, int(100 * args.scale))
    result = {
        "ledger": build(url, sources, 99),
        "dossier": bench(url, work, args.rounds),
        "machine": machine(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
