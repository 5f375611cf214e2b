"""The Kubernetes executor on a real control plane with simulated GPU nodes.

Every call of the executor goes through the least-privilege identity of
``executors/kubernetes/role.yaml`` (``plane.executor_kubeconfig``), never as an
administrator; the tests set the cluster up as an administrator. Pods are run by
kwok: a pod's annotations say how it ends (``tests/support/kube.py``). What the
container's SDK would record is recorded by the test through ``Registry.job_run``,
as the code in the container would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit.erasure import signing_key
from audit.reports import build_model_dossier
from executors.dispatch import Dispatcher
from executors.kubernetes.client import PlatformRefused, connect
from executors.kubernetes.jobs import KubernetesExecutor
from executors.kubernetes.watch import Watcher
from executors.spec import JobSpec
from registry import Registry
from registry.store.raw import Raw
from tests.support.jobs import events_of, types_of, wait_for_event, watch_command
from tests.support.kube import KubePlane, kube_plane, pod_annotations

__all__ = ["kube_plane"]

#: A product no other test module gives its nodes: these tests schedule onto their own.
PRODUCT = "NVIDIA-L4-executor-tests"
LEDGER_URL = "https://ledger.example"


@pytest.fixture(scope="module")
def gpu_nodes(kube_plane: KubePlane) -> list[str]:
    return kube_plane.add_gpu_nodes(2, gpus_per_node=4, product=PRODUCT)


@pytest.fixture
def executor(kube_plane: KubePlane, gpu_nodes: list[str]) -> Iterator[KubernetesExecutor]:
    api = connect(str(kube_plane.executor_kubeconfig))
    executor = KubernetesExecutor(api, kube_plane.namespace)
    yield executor
    for made in executor.made():
        executor.remove(made.run)
    api.close()


@pytest.fixture
def dispatcher(reg: Registry, executor: KubernetesExecutor) -> Dispatcher:
    return Dispatcher(reg, executor, ledger_url=LEDGER_URL, api_key="mlk_test_key")


def gpu_job(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {
        "job": "train-resnet",
        "command": ("python", "train.py"),
        "image": "registry.example/train:1.4",
        "gpus": 2,
        "gpu_product": PRODUCT,
        "cpu": "1",
        "memory": "1Gi",
    }
    return JobSpec(**{**base, **fields})


def wait_for(
    reg: Registry, run: str, dispatcher: Dispatcher, timeout: float = 60
) -> dict[str, Any]:
    dispatcher.wait(run, timeout=timeout)
    job = reg.job(run)
    assert job["status"] in ("succeeded", "failed", "cancelled"), job
    return job


def test_a_gpu_job_trains_a_model_whose_record_says_where(
    reg: Registry, dispatcher: Dispatcher, executor: KubernetesExecutor, gpu_nodes: list[str]
) -> None:
    submitted = dispatcher.submit(gpu_job(annotations=pod_annotations(runtime="2s")))
    asked = events_of(reg, submitted.run)
    assert [e.type for e in asked] == ["run-started", "job-submitted"]
    assert asked[1].body["resources"]["gpus"] == 2
    assert asked[1].body["target"].endswith(f"/namespaces/{executor.namespace}")
    # The Job and its Secret exist, the key only in the Secret.
    job = executor.batch.read_namespaced_job(submitted.name, executor.namespace)
    assert job.spec.suspend is False
    rendered = json.dumps(executor.plain(job))
    assert "mlk_test_key" not in rendered

    # What the container's SDK records, into the run the executor started.
    with reg.job_run(run_id=submitted.run) as run:
        run.log_metrics({"accuracy": 0.91})
        model = run.register_model(
            "resnet", artifact_uri="s3://m/resnet.pt", artifact_digest="sha256:01"
        )

    record = wait_for(reg, submitted.run, dispatcher)
    assert record["status"] == "succeeded"
    assert record["node"] in gpu_nodes
    assert (record["gpus"], record["gpu_product"]) == (2, PRODUCT)
    types = types_of(reg, submitted.run)
    assert types[:2] == ["run-started", "job-submitted"]
    assert types[-2:] == ["job-succeeded", "run-completed"]
    assert types.count("job-scheduled") == 1 and types.count("job-started") == 1
    with reg.ledger.store.read() as conn:
        trained_by = Raw(conn).scalar("SELECT run FROM cat_models WHERE id = ?", (model.id,))
    assert trained_by == submitted.run
    # The model's dossier says where it was trained, as Kubernetes reported it.
    dossier = build_model_dossier(reg.ledger, reg.project, model.id, signing_key(reg.ledger))
    execution = dossier.data["execution"]
    assert (execution["node"], execution["gpus"], execution["gpu_product"]) == (
        record["node"],
        2,
        PRODUCT,
    )
    assert record["node"] in dossier.html and PRODUCT in dossier.html


def test_an_oom_killed_job_fails_with_its_reasons(reg: Registry, dispatcher: Dispatcher) -> None:
    spec = gpu_job(annotations=pod_annotations(exit_code=137, reason="OOMKilled"), retries=1)
    submitted = dispatcher.submit(spec)
    record = wait_for(reg, submitted.run, dispatcher)
    assert (record["status"], record["reason"]) == ("failed", "BackoffLimitExceeded")
    assert (record["exit_code"], record["attempt_reason"]) == (137, "OOMKilled")
    events = events_of(reg, submitted.run)
    failed = [e.body for e in events if e.type == "job-attempt-failed"]
    assert len(failed) == 2 and all(b["reason"] == "OOMKilled" for b in failed)
    assert events[-1].type == "run-failed"
    assert events[-1].body == {"error_type": "job.OOMKilled"}


def test_a_deadline_and_a_cancellation_are_recorded(
    reg: Registry, dispatcher: Dispatcher, executor: KubernetesExecutor
) -> None:
    held = pod_annotations(hold=True)
    late = dispatcher.submit(gpu_job(annotations=held, deadline_s=2))
    record = wait_for(reg, late.run, dispatcher)
    assert (record["status"], record["reason"]) == ("failed", "DeadlineExceeded")

    stopped = dispatcher.submit(gpu_job(annotations=held))
    wait_for_event(reg, dispatcher, stopped.run, "job-started")
    assert dispatcher.cancel(stopped.run, reason="superseded") is True
    events = events_of(reg, stopped.run)
    assert [e.type for e in events][-2:] == ["job-cancelled", "run-failed"]
    assert events[-2].body == {"reason": "superseded"}
    assert reg.job(stopped.run)["status"] == "cancelled"
    assert stopped.run not in {m.run for m in executor.made()}


def test_a_refusal_names_the_verb_and_the_resource(reg: Registry, kube_plane: KubePlane) -> None:
    api = connect(str(kube_plane.executor_kubeconfig))
    elsewhere = KubernetesExecutor(api, "default")  # the Role is granted in another namespace
    dispatcher = Dispatcher(reg, elsewhere, ledger_url=LEDGER_URL)
    before = reg.ledger.last_event()
    with pytest.raises(
        PlatformRefused, match=r"refused to create jobs\.batch in namespace default"
    ):
        dispatcher.submit(gpu_job())
    # Refused before anything was recorded.
    assert reg.ledger.last_event() == before


def test_logs_come_from_the_pod(
    reg: Registry, dispatcher: Dispatcher, executor: KubernetesExecutor
) -> None:
    submitted = dispatcher.submit(gpu_job())
    wait_for(reg, submitted.run, dispatcher)
    assert list(executor.logs(submitted.run))


def test_the_watcher_records_every_transition_once_across_a_kill(
    reg: Registry,
    store_url: str,
    kube_plane: KubePlane,
    dispatcher: Dispatcher,
    tmp_path: Path,
) -> None:
    """Jobs run while a watcher (``mlledger jobs watch``) is killed with SIGKILL and
    started again: every transition is recorded exactly once."""
    if not store_url.startswith("sqlite"):
        pytest.skip("one store is enough for the watcher's crash")
    watch, env = watch_command(
        store_url,
        reg.project,
        kube_plane.namespace,
        kube_plane.executor_kubeconfig,
        LEDGER_URL,
    )
    first = subprocess.Popen(watch, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = [
        dispatcher.submit(gpu_job(gpus=1, annotations=pod_annotations(runtime=f"{1 + i % 3}s"))).run
        for i in range(6)
    ]
    time.sleep(1.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.Popen(watch, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while any(reg.job(r)["status"] not in ("succeeded", "failed") for r in runs):
            assert time.monotonic() < deadline, [reg.job(r)["status"] for r in runs]
            time.sleep(0.3)
    finally:
        second.terminate()
        second.wait(timeout=30)
    for run in runs:
        types = types_of(reg, run)
        assert types == [
            "run-started",
            "job-submitted",
            "job-scheduled",
            "job-started",
            "job-succeeded",
            "run-completed",
        ], (run, types)


def test_many_gpu_jobs_never_hold_more_gpus_than_there_are(
    reg: Registry, dispatcher: Dispatcher, executor: KubernetesExecutor, gpu_nodes: list[str]
) -> None:
    """Twelve one-GPU jobs on eight GPUs: the scheduler holds the rest back, and every
    transition of every job is recorded once."""
    stop = threading.Event()
    watcher = Watcher(dispatcher, executor)
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    runs = [
        dispatcher.submit(gpu_job(gpus=1, annotations=pod_annotations(runtime="1s"))).run
        for _ in range(12)
    ]
    peak = 0
    deadline = time.monotonic() + 90
    try:
        while True:
            pods = executor.core.list_namespaced_pod(
                executor.namespace, label_selector="app.kubernetes.io/managed-by=mlledger"
            ).items
            running = sum(1 for p in pods if p.status.phase == "Running")
            peak = max(peak, running)
            if all(reg.job(r)["status"] in ("succeeded", "failed") for r in runs):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert peak <= 8
    for run in runs:
        types = types_of(reg, run)
        assert types.count("job-scheduled") == 1 and types[-1] == "run-completed", types
        assert reg.job(run)["node"] in gpu_nodes


def test_a_job_deleted_outside_mlledger_ends_its_run(
    reg: Registry,
    dispatcher: Dispatcher,
    executor: KubernetesExecutor,
    kube_plane: KubePlane,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubernetes import client

    from executors.kubernetes import watch

    monkeypatch.setattr(watch, "DELETION_GRACE", 0.5)
    stop = threading.Event()
    watcher = Watcher(dispatcher, executor)
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        submitted = dispatcher.submit(gpu_job(annotations=pod_annotations(hold=True)))
        deadline = time.monotonic() + 30
        while "job-started" not in types_of(reg, submitted.run):
            assert time.monotonic() < deadline, "the held job never started"
            time.sleep(0.2)
        admin = connect(str(kube_plane.admin_kubeconfig))
        client.BatchV1Api(admin).delete_namespaced_job(
            submitted.name, executor.namespace, propagation_policy="Background"
        )
        while reg.job(submitted.run)["status"] != "cancelled":
            assert time.monotonic() < deadline + 30, types_of(reg, submitted.run)
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=10)
    events = events_of(reg, submitted.run)
    assert [e.type for e in events][-2:] == ["job-cancelled", "run-failed"]
    assert events[-2].body == {"reason": "deleted outside mlledger"}
    assert events[-1].body == {"error_type": "job.Deleted"}


def test_recover_finishes_or_removes_an_interrupted_submission(
    reg: Registry, dispatcher: Dispatcher, executor: KubernetesExecutor
) -> None:
    """A dispatcher killed after making the suspended Job but before the ledger heard of
    it leaves a Job that recover() deletes; one killed after job-submitted but before
    releasing the Job leaves one that recover() releases, and it then runs."""
    orphan = "run:0b6f0c0e-0000-4000-8000-0000000000aa"
    context = dispatcher.context(orphan)
    executor.create(executor.render(gpu_job(), context), context)
    release = executor.release
    executor.release = lambda run, context: None  # type: ignore[method-assign]
    try:
        held = dispatcher.submit(gpu_job())
    finally:
        executor.release = release  # type: ignore[method-assign]
    job = executor.batch.read_namespaced_job(held.name, executor.namespace)
    assert job.spec.suspend is True
    assert dispatcher.recover() == {"removed": [orphan], "released": [held.run]}
    assert orphan not in {m.run for m in executor.made()}
    assert types_of(reg, orphan) == []
    assert wait_for(reg, held.run, dispatcher)["status"] == "succeeded"
