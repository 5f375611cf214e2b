"""Benchmarks of erasure (``make bench``): what forgetting a data subject costs.

Writes one JSON document (``--out``) and prints it. On the embedded SQLite
default (WAL, synchronous=FULL), a ledger of:

- 50,000 data subjects with 4 records each (200,000 records), 5,000 of them
  with a vault entry;
- 1,000 dataset versions of 1,000 records each (overlapping windows, so a record
  is in about five versions): 1,000,000 memberships;
- 100 training runs reading 10 versions each, their 100 model versions, 10
  deployments serving them;
- 1,000,000 predictions in batches of 10,000, five per record.

Figures:

- ``single``: plan plus execute (both transactions, with every redaction) for
  single subjects, each erased on its own; the purge is excluded and timed
  separately (``purge``), as is the dry run (``plan``);
- ``batch``: 1,000 subjects through ``erase_many`` (each its own pair of
  transactions), then one purge: subjects per second without and with it.

Not a test: numbers depend on the machine. ``--scale`` shrinks the ledger for a
quick look.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

from audit import erasure
from audit.erasure.purge import purge
from audit.verify import verify
from registry.sdk import connect
from tests.bench.harness import arguments, db_bytes, fresh, measure, write_result

PROJECT = "bench"


def build(url: str, scale: float) -> dict[str, Any]:
    """The ledger described above; returns its sizes and the subjects with vault entries."""
    began = time.perf_counter()
    subjects = int(50_000 * scale)
    records = subjects * 4
    versions = max(10, int(1_000 * scale))
    per_version = 1_000
    step = max(1, records // versions)
    keys = [f"rec-{i}" for i in range(records)]
    owner = [f"subject-{i // 4}" for i in range(records)]
    reg = connect(url, project=PROJECT, actor="bench")
    datasets = []
    for v in range(versions):
        window = [(v * step + j) % records for j in range(per_version)]
        datasets.append(
            reg.register_dataset(
                f"ds-{v}",
                "1",
                uri=f"s3://bench/ds-{v}",
                digest=f"sha256:{v:064x}",
                records=[keys[i] for i in window],
                subjects=[owner[i] for i in window],
            )
        )
    rng = random.Random(7)
    models = []
    for r in range(max(1, versions // 10)):
        with reg.run("train", inputs=rng.sample(datasets, 10)) as run:
            models.append(
                run.register_model(
                    f"m-{r}", "1", artifact_uri=f"s3://m/{r}", artifact_digest=f"sha256:{r:064x}"
                )
            )
    deployments = []
    for d in range(10):
        served = models[d::10] or models[:1]
        share = 100 / len(served)
        deployments.append(
            reg.deploy(
                f"api-{d}",
                endpoint=f"https://api-{d}",
                served={m: share for m in served[:-1]}
                | {served[-1]: 100 - share * (len(served) - 1)},
            )
        )
    predictions = int(1_000_000 * scale)
    batch = 10_000
    for start in range(0, predictions, batch):
        d = (start // batch) % len(deployments)
        model = models[d::10][0] if models[d::10] else models[0]
        rows = [(start + i) % records for i in range(batch)]
        reg.log_predictions(
            deployments[d], model=model, records=[keys[i] for i in rows], outputs=[0.5] * batch
        )
    vaulted = [f"subject-{i}" for i in range(0, subjects, 10)]
    for subject in vaulted:
        reg.store_subject_data(subject, {"email": f"{subject}@example.com"})
    reg.close()
    return {
        "subjects": subjects,
        "records": records,
        "dataset_versions": versions,
        "memberships": versions * per_version,
        "model_versions": len(models),
        "deployments": len(deployments),
        "predictions": predictions,
        "vault_entries": len(vaulted),
        "build_seconds": round(time.perf_counter() - began, 1),
        "vaulted": vaulted,
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 4),
        "max_s": round(ordered[-1], 4),
        "n": len(ordered),
    }


def bench(work: Path, scale: float, singles: int, batch: int) -> dict[str, Any]:
    url = fresh(work, "erasure")
    world = build(url, scale)
    vaulted = world.pop("vaulted")
    out: dict[str, Any] = {"ledger": world, "database_bytes": db_bytes(work / "erasure")}
    reg = connect(url, project=PROJECT, actor="dpo")
    ledger = reg.ledger
    rng = random.Random(11)
    chosen = rng.sample(vaulted, singles + batch)
    plans, singles_s, redactions, predictions = [], [], [], []
    for subject in chosen[:singles]:
        began = time.perf_counter()
        plan = erasure.erase(ledger, PROJECT, subject, actor="dpo", dry_run=True)
        plans.append(time.perf_counter() - began)
        began = time.perf_counter()
        done = erasure.erase(ledger, PROJECT, subject, actor="dpo")
        singles_s.append(time.perf_counter() - began)
        assert done.status == "erased", done
        redactions.append(done.redactions)
        predictions.append(plan.plan["predictions"]["count"] if plan.plan else 0)
    out["plan"] = _stats(plans)
    out["single"] = {
        **_stats(singles_s),
        "redactions_per_subject": statistics.median(redactions),
        "predictions_per_subject": statistics.median(predictions),
    }
    began = time.perf_counter()
    report = purge(ledger.store)
    out["purge"] = {
        "seconds": round(time.perf_counter() - began, 2),
        "method": report.method,
        "database_bytes_after": db_bytes(work / "erasure"),
    }
    began = time.perf_counter()
    outcomes = erasure.erase_many(ledger, PROJECT, chosen[singles:], actor="dpo")
    seconds = time.perf_counter() - began
    assert all(o.status == "erased" for o in outcomes)
    began = time.perf_counter()
    purge(ledger.store)
    purged = time.perf_counter() - began
    out["batch"] = {
        "subjects": len(outcomes),
        "seconds": round(seconds, 2),
        "subjects_per_s": round(len(outcomes) / seconds, 1),
        "purge_seconds": round(purged, 2),
        "subjects_per_s_with_purge": round(len(outcomes) / (seconds + purged), 1),
    }
    began = time.perf_counter()
    out["verify_after"] = {
        "ok": verify(ledger.store).ok,
        "seconds": round(time.perf_counter() - began, 1),
    }
    reg.close()
    return out


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-erasure.json", ".mlledger/bench-erasure")
    parser.add_argument("--singles", type=int, default=20, help="subjects erased one by one")
    parser.add_argument("--batch", type=int, default=1_000, help="subjects erased in one batch")
    args = parser.parse_args()
    results = measure(args, lambda work: bench(work, args.scale, args.singles, args.batch))
    results["targets_met"] = {
        "plan_plus_execute_one_subject_s<=1": results["single"]["max_s"] <= 1.0,
    }
    write_result(args.out, results)


if __name__ == "__main__":
    main()
