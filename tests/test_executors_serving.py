"""Serving through Kubernetes on a real control plane with simulated nodes.

The executor works through the least-privilege identity of
``executors/kubernetes/role.yaml`` (``plane.executor_kubeconfig``); changes made by
others (an out-of-band ``kubectl scale``, a deletion) are made as an administrator,
through the official client with the field manager kubectl would use. kwok makes a
Deployment's pods Running and Ready at once. What the ledger records comes from what
Kubernetes reports: the split of ready replicas across model versions.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from executors.kubernetes.client import connect
from executors.kubernetes.serving import ServingExecutor, ServingWatcher, split
from executors.kubernetes.serving_render import (
    ServingSpec,
    deployment_manifest,
    deployment_name,
    endpoint,
    service_manifest,
    service_name,
)
from registry import Registry
from registry.errors import NotFound
from registry.events import StoredEvent
from registry.ids import deployment_id
from tests.support.jobs import events_of
from tests.support.kube import KubePlane, kube_plane

__all__ = ["kube_plane"]

PRODUCT = "NVIDIA-H100-80GB-HBM3"
IMAGE = "registry.example/serve:2.1"


def current(reg: Registry, dep: str) -> dict[str, float]:
    """The split the ledger holds now for ``dep``."""
    try:
        history = reg.history(dep)
    except NotFound:
        return {}
    return {i["model"]: i["traffic"] for i in history["intervals"] if i["to"] is None}


def two_models(reg: Registry) -> tuple[str, str]:
    with reg.run("train-ranker") as run:
        v1 = run.register_model("ranker", artifact_uri="s3://m/r1.pt", artifact_digest="sha256:01")
    with reg.run("train-ranker") as run:
        v2 = run.register_model("ranker", artifact_uri="s3://m/r2.pt", artifact_digest="sha256:02")
    return v1.id, v2.id


def wait_until(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.1)


# --- the manifests, without a cluster ----------------------------------------------------------


def test_rendered_manifests_are_valid_kubernetes_objects() -> None:
    import kubernetes_validate

    dep = deployment_id("test", "Ranker_Prod.v2")
    model = "model:test/ranker@1"
    spec = ServingSpec.make(
        image=IMAGE,
        port=9000,
        cpu="1",
        memory="2Gi",
        gpus=1,
        gpu_product=PRODUCT,
        env={"WORKERS": "2"},
    )
    made = deployment_manifest(dep, model, 3, spec, "ml")
    service = service_manifest(dep, 9000, "ml")
    for obj in (made, service):
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
    for name in (made["metadata"]["name"], service["metadata"]["name"]):
        assert len(name) <= 63 and name.startswith("mlledger-ranker-prod-v2-")
    # The Service selects the pods of every model version of the deployment.
    pod_labels = made["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert made["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert made["metadata"]["annotations"]["mlledger.io/model-id"] == model
    assert made["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": PRODUCT}
    # Names are derived, the same every time, distinct per model version; long names fit.
    assert deployment_name(dep, model) == made["metadata"]["name"]
    assert deployment_name(dep, "model:test/ranker@2") != made["metadata"]["name"]
    long = deployment_id("test", "x" * 128)
    assert len(deployment_name(long, model)) <= 63 and len(service_name(long)) <= 63
    assert endpoint(dep, "ml", 9000) == (f"http://{service_name(dep)}.ml.svc.cluster.local:9000")


def test_the_split_is_the_share_of_ready_replicas() -> None:
    def obj(model: str, ready: int) -> dict[str, Any]:
        return {
            "metadata": {"annotations": {"mlledger.io/model-id": model}},
            "status": {"readyReplicas": ready},
        }

    assert split([obj("a", 4), obj("b", 1)]) == {"a": 80.0, "b": 20.0}
    assert split([obj("a", 0), obj("b", 5)]) == {"b": 100.0}
    assert split([obj("a", 0)]) == {}
    thirds = split([obj("a", 1), obj("b", 1), obj("c", 1)])
    assert abs(sum(thirds.values()) - 100) < 1e-9 and sorted(thirds.values()) == [
        33.33,
        33.33,
        33.34,
    ]


# --- on the control plane ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu_nodes(kube_plane: KubePlane) -> Iterator[list[str]]:
    names = kube_plane.add_gpu_nodes(2, gpus_per_node=8, product=PRODUCT, prefix="serve")
    yield names
    # The plane is shared by the session: other modules count GPU nodes of their own.
    kube_plane.delete_nodes(names)


@pytest.fixture
def executor(
    reg: Registry, kube_plane: KubePlane, gpu_nodes: list[str]
) -> Iterator[ServingExecutor]:
    api = connect(str(kube_plane.executor_kubeconfig))
    executor = ServingExecutor(api, kube_plane.namespace, reg.project)
    yield executor
    for obj in executor.objects():
        dep = obj["metadata"]["annotations"]["mlledger.io/deployment-id"]
        executor.retire(dep)
    api.close()


@pytest.fixture
def admin(kube_plane: KubePlane) -> Iterator[Any]:
    from kubernetes import client

    api = connect(str(kube_plane.admin_kubeconfig))
    yield client.AppsV1Api(api)
    api.close()


@pytest.fixture
def watching(reg: Registry, executor: ServingExecutor) -> Iterator[ServingWatcher]:
    watcher = ServingWatcher(reg, executor)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    yield watcher
    stop.set()
    thread.join(timeout=10)


def settled(executor: ServingExecutor, name: str, want: dict[str, int]) -> dict[str, float]:
    """Wait until Kubernetes reports ``want`` ready replicas per model; return the split."""

    def ready() -> dict[str, float] | None:
        report = executor.report(name)
        got = {m["model"]: m["ready"] for m in report["models"] if m["ready"]}
        return report["split"] if got == {m: r for m, r in want.items() if r} else None

    return wait_until(ready, what=f"{want} ready")


def test_a_canary_rollout_is_recorded_as_kubernetes_reported_it(
    reg: Registry, executor: ServingExecutor, watching: ServingWatcher
) -> None:
    v1, v2 = two_models(reg)
    dep = deployment_id(reg.project, "ranker")
    spec = ServingSpec.make(image=IMAGE, port=8080, gpus=1, gpu_product=PRODUCT, cpu="1")
    url = endpoint(dep, executor.namespace, 8080)
    steps = [
        ("deploy", {v1: 4}),
        ("shift", {v1: 4, v2: 1}),
        ("shift", {v1: 0, v2: 5}),
    ]
    reported = []
    for action, replicas in steps:
        if action == "deploy":
            executor.deploy("ranker", replicas, spec)
        else:
            executor.shift("ranker", replicas)
        seen = settled(executor, "ranker", replicas)
        reported.append(seen)
        # The ledger holds what Kubernetes reports, once the watcher saw it.
        wait_until(lambda seen=seen: current(reg, dep) == seen, what=f"ledger {seen}")
        last = events_of(reg, dep)[-1]
        assert last.type == "deployment-configured" and last.actor == "tester"
        assert last.body["endpoint"] == url
        assert {s["model"]: s["traffic"] for s in last.body["served"]} == seen
    assert reported == [{v1: 100.0}, {v1: 80.0, v2: 20.0}, {v2: 100.0}]
    history = reg.history(dep)
    assert history["status"] == "active" and history["endpoint"] == url
    # Every recorded split was one Kubernetes reported at some point, and the steps
    # appear in order; no split is recorded twice in a row.
    configured = [
        {s["model"]: s["traffic"] for s in e.body["served"]}
        for e in events_of(reg, dep)
        if e.type == "deployment-configured"
    ]
    assert all(a != b for a, b in itertools.pairwise(configured))
    positions = [configured.index(s) for s in reported]
    assert positions == sorted(positions)
    assert not [e for e in events_of(reg, dep) if e.type == "deployment-drifted"]

    # Retiring deletes the objects; the ledger records the retirement, not a drift.
    assert executor.retire("ranker") is True
    wait_until(lambda: reg.history(dep)["status"] == "retired", what="retired")
    last = events_of(reg, dep)[-1]
    assert last.type == "deployment-retired" and last.body == {"reason": "retired"}
    assert executor.objects(dep) == [] and executor.service(dep) is None
    assert not [e for e in events_of(reg, dep) if e.type == "deployment-drifted"]


def drifts(reg: Registry, deployment: str, change: str) -> list[StoredEvent]:
    """The deployment's ``deployment-drifted`` events of one kind of ``change``."""
    return [
        e
        for e in events_of(reg, deployment)
        if e.type == "deployment-drifted" and e.body["change"] == change
    ]


def test_an_out_of_band_scale_is_recorded_as_drift_and_not_undone(
    reg: Registry, executor: ServingExecutor, watching: ServingWatcher, admin: Any
) -> None:
    v1, v2 = two_models(reg)
    dep = deployment_id(reg.project, "scorer")
    executor.deploy("scorer", {v1: 2, v2: 2}, ServingSpec.make(image=IMAGE))
    wait_until(lambda: current(reg, dep) == {v1: 50.0, v2: 50.0}, what="50/50")

    name = deployment_name(dep, v2)
    admin.patch_namespaced_deployment_scale(
        name,
        executor.namespace,
        {"spec": {"replicas": 6}},
        field_manager="kubectl-scale",
        _content_type="application/merge-patch+json",
    )
    wait_until(lambda: current(reg, dep) == {v1: 25.0, v2: 75.0}, what="25/75")
    events = events_of(reg, dep)
    drifted = [e for e in events if e.type == "deployment-drifted"]
    assert len(drifted) == 1, [e.body for e in drifted]
    assert drifted[0].actor == "kubernetes:kubectl-scale"
    assert drifted[0].body == {
        "change": "scaled",
        "object": name,
        "model": v2,
        "manager": "kubectl-scale",
        "before": 2,
        "after": 6,
    }
    assert events[-1].type == "deployment-configured"
    assert events.index(drifted[0]) < len(events) - 1
    # Recorded, not fought: Kubernetes keeps the replicas someone else set.
    time.sleep(1)
    obj = admin.read_namespaced_deployment(name, executor.namespace)
    assert obj.spec.replicas == 6
    assert len([e for e in events_of(reg, dep) if e.type == "deployment-drifted"]) == 1

    # An image changed with kubectl edit is drift too.
    admin.patch_namespaced_deployment(
        name,
        executor.namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "server", "image": "x:9"}]}}}},
        field_manager="kubectl-edit",
        _content_type="application/strategic-merge-patch+json",
    )
    found = wait_until(lambda: drifts(reg, dep, "image-changed"), what="image drift")
    assert found[0].body["manager"] == "kubectl-edit"
    assert (found[0].body["before"], found[0].body["after"]) == (IMAGE, "x:9")
    assert found[0].actor == "kubernetes:kubectl-edit"
    changes = [e.body["change"] for e in events_of(reg, dep) if e.type == "deployment-drifted"]
    assert changes == ["scaled", "image-changed"]

    # Another field of the spec, set by another manager: spec-changed, with its manager.
    admin.patch_namespaced_deployment(
        name,
        executor.namespace,
        {"spec": {"minReadySeconds": 3}},
        field_manager="kubectl-patch",
        _content_type="application/merge-patch+json",
    )
    found = wait_until(lambda: drifts(reg, dep, "spec-changed"), what="spec drift")
    assert len(found) == 1 and found[0].body["manager"] == "kubectl-patch"
    assert found[0].actor == "kubernetes:kubectl-patch"
    assert (found[0].body["before"], found[0].body["after"]) == (None, "spec.minReadySeconds")
    # A scale by the executor afterwards is no drift, and records the new split.
    executor.scale("scorer", v2, 2)
    wait_until(lambda: current(reg, dep) == {v1: 50.0, v2: 50.0}, what="50/50 again")
    time.sleep(1)
    changes = [e.body["change"] for e in events_of(reg, dep) if e.type == "deployment-drifted"]
    assert changes == ["scaled", "image-changed", "spec-changed"]


def test_an_out_of_band_delete_is_recorded_as_drift(
    reg: Registry, executor: ServingExecutor, watching: ServingWatcher, admin: Any
) -> None:
    v1, v2 = two_models(reg)
    dep = deployment_id(reg.project, "delete-me")
    executor.deploy("delete-me", {v1: 3, v2: 1}, image=IMAGE, port=8081, memory="1Gi")
    wait_until(lambda: current(reg, dep) == {v1: 75.0, v2: 25.0}, what="75/25")
    name = deployment_name(dep, v2)
    admin.delete_namespaced_deployment(name, executor.namespace)
    wait_until(lambda: current(reg, dep) == {v1: 100.0}, what="v1 alone")
    events = events_of(reg, dep)
    drifted = [e for e in events if e.type == "deployment-drifted"]
    assert [e.body for e in drifted] == [
        {
            "change": "deleted",
            "object": name,
            "model": v2,
            "manager": None,
            "before": None,
            "after": None,
        }
    ]
    assert events[-1].type == "deployment-configured"
    assert reg.history(dep)["status"] == "active"

    # Deleting the last one out of band: drift, then the deployment is retired.
    admin.delete_namespaced_deployment(deployment_name(dep, v1), executor.namespace)
    wait_until(lambda: reg.history(dep)["status"] == "retired", what="retired")
    tail = events_of(reg, dep)[-2:]
    assert [e.type for e in tail] == ["deployment-drifted", "deployment-retired"]
    assert tail[0].body["model"] == v1
    assert tail[1].body == {"reason": "deleted outside the ledger"}


def test_a_killed_watcher_loses_and_duplicates_nothing(
    reg: Registry, store_url: str, kube_plane: KubePlane, executor: ServingExecutor
) -> None:
    """A rollout runs while ``mlledger serve-model watch`` is killed with SIGKILL and
    started again: the ledger holds each split Kubernetes settled on, in order, once."""
    if not store_url.startswith("sqlite"):
        pytest.skip("one store is enough for the watcher's crash")
    v1, v2 = two_models(reg)
    dep = deployment_id(reg.project, "crashy")
    watch = [
        sys.executable,
        "-m",
        "registry.cli",
        "serve-model",
        "watch",
        "--db",
        store_url,
        "--project",
        reg.project,
        "--namespace",
        kube_plane.namespace,
        "--kubeconfig",
        str(kube_plane.executor_kubeconfig),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(watch, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    first = start()
    executor.deploy("crashy", {v1: 4}, ServingSpec.make(image=IMAGE))
    settled(executor, "crashy", {v1: 4})
    wait_until(lambda: current(reg, dep) == {v1: 100.0}, what="v1 recorded", timeout=90)
    executor.shift("crashy", {v1: 4, v2: 1})
    settled(executor, "crashy", {v1: 4, v2: 1})
    wait_until(lambda: current(reg, dep) == {v1: 80.0, v2: 20.0}, what="80/20")
    first.send_signal(signal.SIGKILL)
    first.wait()
    # While no watcher runs, the rollout goes on.
    executor.shift("crashy", {v1: 2, v2: 2})
    settled(executor, "crashy", {v1: 2, v2: 2})
    second = start()
    try:
        wait_until(lambda: current(reg, dep) == {v1: 50.0, v2: 50.0}, what="50/50", timeout=90)
        executor.shift("crashy", {v1: 0, v2: 4})
        settled(executor, "crashy", {v1: 0, v2: 4})
        wait_until(lambda: current(reg, dep) == {v2: 100.0}, what="v2 alone")
    finally:
        second.terminate()
        second.wait(timeout=30)
    # A third watcher, started over a settled state, records nothing.
    before = len(events_of(reg, dep))
    third = start()
    time.sleep(3)
    third.terminate()
    third.wait(timeout=30)
    events = events_of(reg, dep)
    assert len(events) == before
    configured = [
        {s["model"]: s["traffic"] for s in e.body["served"]}
        for e in events
        if e.type == "deployment-configured"
    ]
    assert [e.type for e in events] == ["deployment-configured"] * len(events)
    assert len({e.event_id for e in events}) == len(events)
    assert all(a != b for a, b in itertools.pairwise(configured))
    # Up to the kill and across it, exactly the splits Kubernetes settled on (the one
    # reached while no watcher ran, recorded once the second one listed); then the last
    # step (with whatever the scale-down passed through), ending with v2 alone.
    assert configured[:3] == [{v1: 100.0}, {v1: 80.0, v2: 20.0}, {v1: 50.0, v2: 50.0}]
    assert configured[-1] == {v2: 100.0}
    assert all(abs(sum(c.values()) - 100) < 1e-6 for c in configured)


def test_drift_of_an_unknown_deployment_is_refused(reg: Registry) -> None:
    from registry import writes
    from registry.errors import EventRejected

    v1, _ = two_models(reg)
    body = {"change": "scaled", "object": "mlledger-x-0123456789", "model": v1,
            "manager": "kubectl-scale", "before": 1, "after": 3}  # fmt: skip
    dep = deployment_id(reg.project, "nowhere")
    with pytest.raises(EventRejected, match="unknown deployment"):
        reg.backend.append(reg.project, [writes.event(reg, "deployment-drifted", dep, body)])
    reg.deploy("somewhere", endpoint="http://x", served={v1: 100.0})
    there = deployment_id(reg.project, "somewhere")
    reg.backend.append(reg.project, [writes.event(reg, "deployment-drifted", there, body)])
    last = events_of(reg, there)[-1]
    assert (last.type, last.body) == ("deployment-drifted", body)


def test_the_command_line_deploys_shifts_reports_and_retires(
    reg: Registry,
    store_url: str,
    kube_plane: KubePlane,
    executor: ServingExecutor,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from registry.cli import main

    if not store_url.startswith("sqlite"):
        pytest.skip("one store is enough for the command line")
    v1, v2 = two_models(reg)
    dep = deployment_id(reg.project, "cli")
    config = str(kube_plane.executor_kubeconfig)
    common = ["--db", store_url, "--project", reg.project, "--namespace",
              kube_plane.namespace, "--kubeconfig", config]  # fmt: skip

    def run(*args: str) -> Any:
        capsys.readouterr()
        assert main(["serve-model", *args, *common, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    shown = run("deploy", "cli", "--model", f"{v1}=3", "--image", IMAGE, "--port", "9000")
    assert shown["split"] == {v1: 100.0}
    assert current(reg, dep) == {v1: 100.0}
    last = events_of(reg, dep)[-1]
    assert last.body["endpoint"] == endpoint(dep, kube_plane.namespace, 9000)
    shown = run("shift", "cli", "--model", f"{v1}=3", "--model", "ranker@2=1")
    assert shown["split"] == {v1: 75.0, v2: 25.0}
    assert current(reg, dep) == {v1: 75.0, v2: 25.0}
    shown = run("scale", "cli", v2, "3")
    assert current(reg, dep) == {v1: 50.0, v2: 50.0}
    status = run("status", "cli")
    assert status["kubernetes"]["split"] == {v1: 50.0, v2: 50.0}
    assert status["ledger"]["status"] == "active"
    assert run("retire", "cli")["deleted"] is True
    assert reg.history(dep)["status"] == "retired"
    assert events_of(reg, dep)[-1].type == "deployment-retired"
