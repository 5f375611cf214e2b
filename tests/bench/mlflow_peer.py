"""Peer benchmark: the same lineage workload recorded and queried with MLflow.

Run it from MLflow's own virtualenv (MLflow is not a dependency of this project)::

    python3 -m venv .venv-mlflow
    .venv-mlflow/bin/pip install "mlflow==3.17.*" scikit-learn
    .venv-mlflow/bin/python tests/bench/mlflow_peer.py --runs 200 \\
        --out /tmp/mlflow_peer.json --workdir /tmp/mlflow_peer

Only MLflow, scikit-learn, numpy and the standard library are used.

Setup (not timed)
-----------------
* Tracking store ``sqlite:///DIR/mlflow.db`` (the model registry uses the same
  URI), artifact root ``DIR/artifacts``, no server process. ``DIR/mlflow.db`` and
  ``DIR/artifacts`` are deleted first, so every invocation starts empty.
* One experiment, ``bench``.
* K = 20 fixed datasets, ``bench-ds-00`` .. ``bench-ds-19``: float64 features of
  shape 200 x 10 and 0/1 labels of shape 200, drawn from ``numpy.random.default_rng(i)``.
* One LogisticRegression (``max_iter=200``) fitted on each dataset, so K
  already-fitted tiny models.

Recording: one run (timed from ``start_run`` to the registered model version)
-----------------------------------------------------------------------------
Run ``j`` uses dataset ``j mod K`` (round robin, so with N = 200 each dataset
trains 10 model versions, plus the warm-up runs below).

1. ``mlflow.start_run(experiment_id=...)``.
2. ``mlflow.data.from_numpy(features, targets=labels, source=<path>, name=<name>)``;
   MLflow computes the content digest of the arrays.
3. ``mlflow.log_input(dataset, context="training")``.
4. ``mlflow.log_params`` with 5 params (``C``, ``max_iter``, ``solver``,
   ``dataset``, ``run_index``).
5. ``mlflow.log_metrics`` with 3 metrics (``accuracy``, ``loss``, ``f1``).
6. ``mlflow.sklearn.log_model(model, name="model",
   registered_model_name="bench-model", pip_requirements=[...])``: MLflow 3
   creates a LoggedModel, writes the model artifact (MLmodel, pickled model,
   environment files) under the artifact root and registers a new version of
   ``bench-model``. The model is serialized with skops (MLflow 3's default
   outside Databricks, passed explicitly). ``pip_requirements`` is given
   explicitly (mlflow, scikit-learn, skops pins) so MLflow does not start a
   Python subprocess per run to infer requirements; that inference is packaging
   work, not registry work, and would dominate the timing. MLflow records the
   artifact's size (``model_size_bytes``) and a model id, but computes no content
   digest of the model artifact.
7. The run ends (the ``with`` block closes).

Three warm-up runs (same workload, same round robin, registered under the same
name) are recorded first and not counted in the rate; they stay in the store
and are counted in the expected query answers. ``record_runs_per_s`` is
``N / sum(per-run seconds)``.

Queries (timed after recording; the targets are drawn with ``random.Random(0)``)
------------------------------------------------------------------------------
1. Model version -> training datasets. Given (name, version):
   ``client.get_model_version(name, version).run_id`` then
   ``client.get_run(run_id).inputs.dataset_inputs``, returning (name, digest)
   pairs of the inputs tagged ``mlflow.data.context = training``. In MLflow 3 a
   registered version also carries a ``model_id`` (a LoggedModel), but a
   LoggedModel records no training datasets of its own (its dataset links come
   only from evaluation metrics logged with ``dataset=``), so the documented
   training-data lineage goes through the source run.
2. Dataset -> model versions. Given a dataset digest:
   ``client.search_runs([experiment_id], filter_string="dataset.digest = '<d>'")``
   (one SQL query over the dataset inputs) and then a single
   ``client.search_model_versions("run_id IN ('r1', 'r2', ...)")``
   instead of one registry call per run. Both calls page until exhausted.

Each query is repeated ``--queries`` times (default 200) on random targets,
after 5 untimed calls. Every answer is checked: query 1 must return exactly the
dataset that trained the version; query 2 must return exactly the versions
whose runs used the dataset (the count equals the number of runs on it).
Latencies are reported in ms as median and p99 (nearest rank).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import platform
import random
import shutil
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_NAME = "bench-model"
EXPERIMENT_NAME = "bench"
N_DATASETS = 20
ROWS, COLS = 200, 10
WARMUP_RUNS = 3
QUERY_WARMUP = 5


def _quiet() -> None:
    """Silence telemetry, git probing and MLflow's informational logging."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    rank = max(1, math.ceil(0.99 * len(ordered)))
    return ordered[rank - 1]


def _summary(samples_s: list[float]) -> dict[str, Any]:
    ms = [s * 1000.0 for s in samples_s]
    return {
        "median": round(statistics.median(ms), 3),
        "p99": round(_p99(ms), 3),
        "n": len(ms),
    }


def _make_data(n: int) -> list[dict[str, Any]]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    data = []
    for i in range(n):
        rng = np.random.default_rng(i)
        x = rng.normal(size=(ROWS, COLS))
        w = rng.normal(size=COLS)
        y = (x @ w + rng.normal(scale=0.5, size=ROWS) > 0).astype(np.int64)
        model = LogisticRegression(max_iter=200).fit(x, y)
        data.append({"name": f"bench-ds-{i:02d}", "x": x, "y": y, "model": model})
    return data


def _record_one(
    mlflow: Any, exp_id: str, item: dict[str, Any], index: int, source: str, pip_reqs: list[str]
) -> tuple[float, str, str, str]:
    """Record one run; return (seconds, run_id, model version, dataset digest)."""
    t0 = time.perf_counter()
    with mlflow.start_run(experiment_id=exp_id) as run:
        dataset = mlflow.data.from_numpy(
            item["x"], targets=item["y"], source=source, name=item["name"]
        )
        mlflow.log_input(dataset, context="training")
        mlflow.log_params(
            {
                "C": 1.0,
                "max_iter": 200,
                "solver": "lbfgs",
                "dataset": item["name"],
                "run_index": index,
            }
        )
        mlflow.log_metrics(
            {
                "accuracy": 0.5 + (index % 50) / 100.0,
                "loss": 1.0 / (index + 1),
                "f1": 0.4 + (index % 40) / 100.0,
            }
        )
        info = mlflow.sklearn.log_model(
            item["model"],
            name="model",
            registered_model_name=MODEL_NAME,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            pip_requirements=pip_reqs,
        )
    elapsed = time.perf_counter() - t0
    version = str(info.registered_model_version)
    return elapsed, run.info.run_id, version, dataset.digest


def _search_runs_all(client: Any, exp_id: str, filter_string: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [exp_id], filter_string=filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _search_versions_all(client: Any, filter_string: str) -> list[Any]:
    versions: list[Any] = []
    token = None
    while True:
        page = client.search_model_versions(filter_string, max_results=1000, page_token=token)
        versions.extend(page)
        token = page.token
        if not token:
            return versions


def query_model_to_datasets(client: Any, name: str, version: str) -> list[tuple[str, str]]:
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    out = []
    for di in run.inputs.dataset_inputs:
        tags = {t.key: t.value for t in di.tags}
        if tags.get("mlflow.data.context") == "training":
            out.append((di.dataset.name, di.dataset.digest))
    return out


def query_dataset_to_models(client: Any, exp_id: str, digest: str) -> list[tuple[str, str]]:
    runs = _search_runs_all(client, exp_id, f"dataset.digest = '{digest}'")
    if not runs:
        return []
    ids = ", ".join(f"'{r.info.run_id}'" for r in runs)
    versions = _search_versions_all(client, f"run_id IN ({ids})")
    return [(mv.name, str(mv.version)) for mv in versions]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs (default 200)")
    parser.add_argument("--out", required=True, help="JSON result path")
    parser.add_argument("--workdir", required=True, help="directory for mlflow.db/artifacts")
    parser.add_argument("--queries", type=int, default=200, help="repetitions per query")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def _open_tracking(workdir: Path) -> tuple[Any, Any, str]:
    """An empty tracking store and registry in ``workdir`` (deleted first), and one
    experiment: MLflow's module, a client and the experiment's id."""
    _quiet()
    import mlflow
    import mlflow.data
    import mlflow.sklearn
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "mlflow.db"
    artifacts = workdir / "artifacts"
    db.unlink(missing_ok=True)
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir()
    uri = f"sqlite:///{db}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT_NAME, artifact_location=artifacts.as_uri())
    return mlflow, client, exp_id


@dataclass
class Recorded:
    """What the recording wrote: each version's training dataset (name, digest), each
    dataset digest's versions, and the seconds of each timed run."""

    version_to_digest: dict[str, tuple[str, str]] = field(default_factory=dict)
    digest_to_versions: dict[str, set[str]] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)


def _record_all(mlflow: Any, exp_id: str, workdir: Path, runs: int) -> Recorded:
    """The warm-up runs, then ``runs`` timed ones, round robin over the datasets."""
    data = _make_data(N_DATASETS)
    # The same list MLflow would fall back to for a skops-serialized sklearn model.
    pip_reqs = [
        f"mlflow=={mlflow.__version__}",
        *mlflow.sklearn.get_default_pip_requirements(include_skops=True),
    ]
    sources = {d["name"]: str(workdir / "data" / f"{d['name']}.npy") for d in data}
    recorded = Recorded()
    total = WARMUP_RUNS + runs
    # The registry prints two progress lines per registration straight to
    # stderr; discard them (outside the per-run timing).
    with contextlib.redirect_stderr(io.StringIO()) as sink:
        for j in range(total):
            item = data[j % N_DATASETS]
            secs, _run_id, version, digest = _record_one(
                mlflow, exp_id, item, j, sources[item["name"]], pip_reqs
            )
            recorded.version_to_digest[version] = (item["name"], digest)
            recorded.digest_to_versions.setdefault(digest, set()).add(version)
            if j >= WARMUP_RUNS:
                recorded.durations.append(secs)
            sink.seek(0)
            sink.truncate()
    if len(recorded.digest_to_versions) != min(N_DATASETS, total):
        raise AssertionError("dataset digests are not distinct")
    return recorded


def _time_queries(
    client: Any, exp_id: str, recorded: Recorded, repeats: int, seed: int
) -> tuple[list[float], list[float]]:
    """Seconds of each query (model -> datasets, dataset -> models) on random targets,
    after untimed warm-up calls; every answer is checked."""
    rng = random.Random(seed)
    versions = sorted(recorded.version_to_digest, key=int)
    digests = sorted(recorded.digest_to_versions)

    def run_q1(timed: list[float] | None) -> None:
        v = rng.choice(versions)
        t0 = time.perf_counter()
        got = query_model_to_datasets(client, MODEL_NAME, v)
        dt = time.perf_counter() - t0
        assert got == [recorded.version_to_digest[v]], (v, got, recorded.version_to_digest[v])
        if timed is not None:
            timed.append(dt)

    def run_q2(timed: list[float] | None) -> None:
        d = rng.choice(digests)
        t0 = time.perf_counter()
        got = query_dataset_to_models(client, exp_id, d)
        dt = time.perf_counter() - t0
        expected = recorded.digest_to_versions[d]
        assert len(got) == len(expected), (d, len(got), len(expected))
        assert {(MODEL_NAME, v) for v in expected} == set(got), d
        if timed is not None:
            timed.append(dt)

    q1: list[float] = []
    q2: list[float] = []
    for _ in range(QUERY_WARMUP):
        run_q1(None)
        run_q2(None)
    for _ in range(repeats):
        run_q1(q1)
    for _ in range(repeats):
        run_q2(q2)
    return q1, q2


def _result(
    mlflow: Any, runs: int, recorded: Recorded, q1: list[float], q2: list[float]
) -> dict[str, Any]:
    import sklearn

    record_total = sum(recorded.durations)
    return {
        "peer": "mlflow",
        "mlflow_version": mlflow.__version__,
        "runs": runs,
        "warmup_runs": WARMUP_RUNS,
        "datasets": N_DATASETS,
        "record_runs_per_s": round(runs / record_total, 3),
        "record_seconds_total": round(record_total, 3),
        "record_run_ms": _summary(recorded.durations),
        "query_model_to_datasets_ms": _summary(q1),
        "query_dataset_to_models_ms": _summary(q2),
        "query_model_to_datasets_path": (
            "get_model_version -> run_id -> get_run().inputs.dataset_inputs"
        ),
        "query_dataset_to_models_path": (
            "search_runs(dataset.digest = d) -> search_model_versions(run_id IN (...))"
        ),
        "backend": "sqlite (local, no server), local file artifact root",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sklearn": sklearn.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    workdir = Path(args.workdir).resolve()
    mlflow, client, exp_id = _open_tracking(workdir)
    recorded = _record_all(mlflow, exp_id, workdir, args.runs)
    q1, q2 = _time_queries(client, exp_id, recorded, args.queries, args.seed)
    text = json.dumps(_result(mlflow, args.runs, recorded, q1, q2), indent=2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
