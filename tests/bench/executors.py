"""Benchmark of the Kubernetes executor (``make bench``) on the test control plane
(``tests/support/kube.py``: a real API server, controllers and scheduler, kwok's
simulated GPU nodes), through the executor's least-privilege identity, recording into
an embedded SQLite ledger.

Figures:

- ``submit``: ``Dispatcher.submit`` one job at a time (Job created suspended,
  ``run-started`` + ``job-submitted`` appended, Secret made, Job resumed): median and
  p99 milliseconds;
- ``record_lag``: how long after the watch of pods delivered a pod's ``Running``
  state to an independent observer the watcher had recorded its ``job-started``
  (the event's ``recorded_at``): median, p99 and worst;
- ``burst``: ``--jobs`` one-GPU jobs (each running ``--runtime``) submitted at once on
  ``--nodes`` nodes of 8 GPUs: seconds until every job's end is recorded, the most
  pods ever running at once against the GPUs there are, every job's transitions
  recorded exactly once, and the watcher's cost: ledger events per job and CPU
  seconds per 1,000 transitions (the watcher is ``mlledger jobs watch`` in a process
  of its own, its CPU read from the kernel from when it was listening, so its start-up
  is not counted).

Not a test: the figures depend on the machine (and on what else runs on it).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from executors.dispatch import Dispatcher
from executors.kubernetes.client import connect
from executors.kubernetes.jobs import KubernetesExecutor
from executors.kubernetes.watch import Watcher
from executors.spec import JobSpec
from registry.sdk import Registry
from registry.sdk import connect as connect_ledger
from registry.timeutil import to_timestamp
from tests.bench.harness import arguments, fresh, latency, load_average, machine, write_result
from tests.support.jobs import watch_command
from tests.support.kube import KubePlane, pod_annotations

PROJECT = "bench"
LEDGER_URL = "https://ledger.example"
PRODUCT = "NVIDIA-H100-80GB-HBM3"
ENDED = ("succeeded", "failed", "cancelled")
#: The transitions of a job that ran once and succeeded, in order.
ONCE = [
    "run-started",
    "job-submitted",
    "job-scheduled",
    "job-started",
    "job-succeeded",
    "run-completed",
]


def _spec(runtime: str, *, gpus: int = 1) -> JobSpec:
    return JobSpec(
        job="bench-train",
        command=("python", "train.py"),
        image="registry.example/train:1",
        gpus=gpus,
        gpu_product=PRODUCT,
        annotations=pod_annotations(runtime=runtime),
    )


def _events_by_run(reg: Registry) -> dict[str, list[Any]]:
    store = reg.ledger.store
    found: dict[str, list[Any]] = {}
    with store.read() as conn:
        for event in store.select_events(conn, 0):
            found.setdefault(event.entity, []).append(event)
    return found


def _wait_ended(reg: Registry, runs: list[str], timeout: float) -> float:
    began = time.monotonic()
    while True:
        jobs = reg.jobs(limit=1000)["jobs"]
        ended = {j["run"] for j in jobs if j["status"] in ENDED}
        if all(r in ended for r in runs):
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"{len(ended)} of {len(runs)} jobs ended in {timeout} s")
        time.sleep(0.2)


def bench_submit(reg: Registry, executor: KubernetesExecutor, n: int) -> dict[str, Any]:
    dispatcher = Dispatcher(reg, executor, ledger_url=LEDGER_URL, api_key="mlk_bench")
    samples = []
    runs = []
    for _ in range(n):
        began = time.perf_counter()
        runs.append(dispatcher.submit(_spec("200ms", gpus=0)).run)
        samples.append(time.perf_counter() - began)
    dispatcher.wait(runs[-1], timeout=60)
    for made in executor.made():
        executor.remove(made.run)
    return {"jobs": n, **latency(samples, worst=True)}


def bench_lag(reg: Registry, executor: KubernetesExecutor, n: int) -> dict[str, Any]:
    """Pod Running as a watch delivers it, against the recorded job-started."""
    from kubernetes import watch

    dispatcher = Dispatcher(reg, executor, ledger_url=LEDGER_URL)
    seen: dict[str, float] = {}
    stop = threading.Event()

    def observe() -> None:
        stream = watch.Watch()
        for change in stream.stream(
            executor.core.list_namespaced_pod,
            executor.namespace,
            label_selector="app.kubernetes.io/managed-by=mlledger",
            timeout_seconds=120,
        ):
            pod = change["object"]
            run = pod.metadata.labels.get("mlledger.io/run")
            if pod.status.phase == "Running" and run and f"run:{run}" not in seen:
                seen[f"run:{run}"] = time.time()
            if stop.is_set():
                stream.stop()

    observer = threading.Thread(target=observe, daemon=True)
    observer.start()
    watcher = Watcher(Dispatcher(reg, executor, ledger_url=LEDGER_URL), executor)
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(1)
    runs = []
    for _ in range(n):
        runs.append(dispatcher.submit(_spec("1s", gpus=1)).run)
        time.sleep(0.3)
    _wait_ended(reg, runs, 120)
    stop.set()
    thread.join(timeout=10)
    lags = []
    events = _events_by_run(reg)
    for run in runs:
        started = next(e for e in events[run] if e.type == "job-started")
        if run in seen:
            recorded = _epoch(started.recorded_at)
            lags.append(max(0.0, recorded - seen[run]))
    for made in executor.made():
        executor.remove(made.run)
    return {"jobs": n, "observed": len(lags), **latency(lags, worst=True)}


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a running process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(to_timestamp(stamp).replace("Z", "+00:00")).timestamp()


def bench_burst(
    plane: KubePlane,
    url: str,
    reg: Registry,
    executor: KubernetesExecutor,
    n: int,
    runtime: str,
    gpus: int,
) -> dict[str, Any]:
    watch, env = watch_command(
        url, PROJECT, executor.namespace, plane.executor_kubeconfig, LEDGER_URL
    )
    watcher = subprocess.Popen(watch, env=env, stdout=subprocess.DEVNULL)
    time.sleep(3)  # started and listening: its start-up is not its cost per transition
    before = _cpu_seconds(watcher.pid)
    dispatcher = Dispatcher(reg, executor, ledger_url=LEDGER_URL)
    began = time.monotonic()
    runs = [dispatcher.submit(_spec(runtime)).run for _ in range(n)]
    submitted = time.monotonic() - began
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            pods = executor.core.list_namespaced_pod(
                executor.namespace, label_selector="app.kubernetes.io/managed-by=mlledger"
            ).items
            peak = max(peak, sum(1 for p in pods if p.status.phase == "Running"))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _wait_ended(reg, runs, 300)
        recorded = time.monotonic() - began
        cpu = _cpu_seconds(watcher.pid) - before
    finally:
        stop.set()
        sampler.join(timeout=5)
        watcher.terminate()
        watcher.wait(timeout=60)
    events = _events_by_run(reg)
    kinds = Counter(e.type for r in runs for e in events.get(r, []))
    exactly_once = all([e.type for e in events.get(r, [])] == ONCE for r in runs)
    transitions = sum(kinds[t] for t in ("job-scheduled", "job-started", "job-succeeded"))
    for made in executor.made():
        executor.remove(made.run)
    return {
        "jobs": n,
        "gpus": gpus,
        "submit_seconds": round(submitted, 2),
        "all_recorded_seconds": round(recorded, 2),
        "peak_running": peak,
        "gpu_accounting_respected": peak <= gpus,
        "exactly_once": exactly_once,
        "events_per_job": round(sum(kinds.values()) / n, 2),
        "watcher_cpu_seconds": round(cpu, 2),
        "watcher_cpu_s_per_1000_transitions": round(cpu / max(1, transitions) * 1000, 2),
        "transitions": transitions,
    }


def main() -> None:
    parser = arguments(
        __doc__, ".mlledger/bench-executors.json", ".mlledger/bench-executors", scale=False
    )
    parser.add_argument("--submits", type=int, default=100)
    parser.add_argument("--lag-jobs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=4, help="GPU nodes of 8 GPUs (4: 32 GPUs)")
    parser.add_argument("--runtime", default="1s", help="how long each burst job runs")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    load_before = load_average()
    with KubePlane() as plane:
        plane.add_gpu_nodes(args.nodes, gpus_per_node=8, product=PRODUCT)
        api = connect(str(plane.executor_kubeconfig))
        executor = KubernetesExecutor(api, plane.namespace)
        results: dict[str, Any] = {"machine": machine()}
        url = fresh(work, "submit")
        with connect_ledger(url, project=PROJECT, actor="bench") as reg:
            results["submit"] = bench_submit(reg, executor, args.submits)
        url = fresh(work, "lag")
        with connect_ledger(url, project=PROJECT, actor="bench") as reg:
            results["record_lag"] = bench_lag(reg, executor, args.lag_jobs)
        url = fresh(work, "burst")
        with connect_ledger(url, project=PROJECT, actor="bench") as reg:
            results["burst"] = bench_burst(
                plane, url, reg, executor, args.jobs, args.runtime, args.nodes * 8
            )
    results["load_average"] = {"before": load_before, "after": load_average()}
    results["targets_met"] = {
        "submit_p99_ms<=100": results["submit"]["p99_ms"] <= 100,
        "record_lag_p99_ms<=1000": results["record_lag"].get("p99_ms", 1e9) <= 1000,
        "burst_within_30_s": results["burst"]["all_recorded_seconds"] <= 30,
        "burst_exactly_once": results["burst"]["exactly_once"],
        "burst_gpu_accounting": results["burst"]["gpu_accounting_respected"],
    }
    write_result(args.out, results)


if __name__ == "__main__":
    main()
