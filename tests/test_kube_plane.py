"""The Kubernetes control plane of the test-suite (tests/support/kube.py), through the
official client and the executor's own least-privilege identity: what the executor's
tests rely on, checked once against the real API server, controllers and scheduler."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.kube import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    POD_LOG_LINES,
    KubePlane,
    kube_plane,
    pod_annotations,
)

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

__all__ = ["kube_plane"]  # the session fixture, imported for the tests below

GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def plane(kube_plane: KubePlane) -> KubePlane:
    return kube_plane


@pytest.fixture(scope="module")
def executor(plane: KubePlane) -> Iterator[Any]:
    """An API client with the executor's kubeconfig (RBAC of executors/kubernetes)."""
    api = k8s_config.new_client_from_config(config_file=str(plane.executor_kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="module")
def batch(executor: Any) -> Any:
    return k8s.BatchV1Api(executor)


@pytest.fixture(scope="module")
def core(executor: Any) -> Any:
    return k8s.CoreV1Api(executor)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def job_manifest(
    name: str,
    *,
    gpus: int = 0,
    product: str | None = None,
    annotations: dict[str, str] | None = None,
    deadline: int | None = None,
    tolerate_gpu: bool | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "train",
        "image": "registry.invalid/mlledger/train:1",
        "command": ["python", "-m", "train"],
    }
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if gpus:
        container["resources"] = {"limits": {GPU_RESOURCE: str(gpus)}}
    if tolerate_gpu if tolerate_gpu is not None else bool(gpus):
        spec["tolerations"] = [GPU_TOLERATION]
    if product:
        spec["nodeSelector"] = {GPU_PRODUCT_LABEL: product}
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 600,
        "template": {
            "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
            "spec": spec,
        },
    }
    if deadline is not None:
        job_spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": job_spec,
    }


def job_condition(batch: Any, ns: str, name: str) -> Any:
    """The Job's finishing condition (Complete or Failed, status True), or None."""
    job = batch.read_namespaced_job(name, ns)
    for cond in job.status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond
    return None


def job_pods(core: Any, ns: str, name: str) -> list[Any]:
    return core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items


def test_executor_creates_a_job_that_completes(plane: KubePlane, batch: Any, core: Any) -> None:
    ns, name = plane.namespace, unique("job")
    started = time.monotonic()
    batch.create_namespaced_job(ns, job_manifest(name))
    cond = wait_for("the job to finish", lambda: job_condition(batch, ns, name))
    assert cond.type == "Complete", cond
    assert time.monotonic() - started < 20
    [pod] = job_pods(core, ns, name)
    assert pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert pod.spec.node_name  # it was scheduled onto a (plain) node


def test_gpu_job_lands_on_a_gpu_node_of_its_product(
    plane: KubePlane, batch: Any, core: Any
) -> None:
    ns = plane.namespace
    product = "NVIDIA-H100-80GB-HBM3"
    nodes = plane.add_gpu_nodes(1, 8, product)
    name = unique("gpu")
    batch.create_namespaced_job(
        ns, job_manifest(name, gpus=1, product=product, annotations=pod_annotations(hold=True))
    )
    pod = wait_for(
        "the GPU pod to run",
        lambda: next((p for p in job_pods(core, ns, name) if p.status.phase == "Running"), None),
    )
    assert pod.spec.node_name in nodes
    # The executor identity may read the node (ClusterRole mlledger-node-reader).
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels[GPU_PRODUCT_LABEL] == product
    assert node.status.allocatable[GPU_RESOURCE] == "8"
    assert any(t.key == GPU_RESOURCE and t.effect == "NoSchedule" for t in node.spec.taints)
    plane.release_pod(pod.metadata.name)
    assert wait_for("the job to finish", lambda: job_condition(batch, ns, name)).type == "Complete"


def test_gpu_job_without_the_toleration_stays_pending(
    plane: KubePlane, batch: Any, core: Any
) -> None:
    ns, name = plane.namespace, unique("untolerated")
    plane.add_gpu_nodes(1, 2, "NVIDIA-L4")
    batch.create_namespaced_job(ns, job_manifest(name, gpus=1, tolerate_gpu=False))

    def unschedulable() -> bool:
        pods = job_pods(core, ns, name)
        return bool(pods) and any(
            c.type == "PodScheduled" and c.reason == "Unschedulable"
            for c in pods[0].status.conditions or []
        )

    wait_for("the scheduler to give up on the pod", unschedulable)
    [pod] = job_pods(core, ns, name)
    assert pod.status.phase == "Pending" and not pod.spec.node_name
    batch.delete_namespaced_job(name, ns, propagation_policy="Background")


def test_gpu_capacity_bounds_how_many_jobs_run_at_once(
    plane: KubePlane, batch: Any, core: Any
) -> None:
    ns = plane.namespace
    product = "MLLEDGER-TEST-A100-SXM4-40GB"  # only these two nodes have it
    nodes = set(plane.add_gpu_nodes(2, 4, product))
    wave = unique("wave")
    names = [f"{wave}-{i}" for i in range(12)]
    for name in names:
        manifest = job_manifest(
            name, gpus=1, product=product, annotations=pod_annotations(runtime="2s")
        )
        manifest["metadata"]["labels"]["wave"] = wave
        manifest["spec"]["template"]["metadata"]["labels"]["wave"] = wave
        batch.create_namespaced_job(ns, manifest)
    most, per_node_most = 0, 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(ns, label_selector=f"wave={wave}").items
        running = [p for p in pods if p.status.phase == "Running"]
        assert all(p.spec.node_name in nodes for p in running)
        most = max(most, len(running))
        for node in nodes:
            per_node_most = max(per_node_most, sum(p.spec.node_name == node for p in running))
        jobs = batch.list_namespaced_job(ns, label_selector=f"wave={wave}").items
        if sum(bool(j.status.succeeded or j.status.failed) for j in jobs) == len(names):
            break
        time.sleep(0.02)
    conditions = [job_condition(batch, ns, n) for n in names]
    assert all(c is not None and c.type == "Complete" for c in conditions), conditions
    assert most == 8, f"at most {most} pods ran at once; 8 GPUs should run 8"
    assert per_node_most == 4


def test_annotations_fail_a_pod_with_an_exit_code_and_reason(
    plane: KubePlane, batch: Any, core: Any
) -> None:
    ns, name = plane.namespace, unique("oom")
    annotations = pod_annotations(exit_code=137, reason="OOMKilled")
    batch.create_namespaced_job(ns, job_manifest(name, annotations=annotations))
    cond = wait_for("the job to fail", lambda: job_condition(batch, ns, name))
    assert cond.type == "Failed" and cond.reason == "BackoffLimitExceeded"
    [pod] = job_pods(core, ns, name)
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (137, "OOMKilled")


def test_fail_pod_ends_a_held_pod(plane: KubePlane, batch: Any, core: Any) -> None:
    ns, name = plane.namespace, unique("failed")
    batch.create_namespaced_job(ns, job_manifest(name, annotations=pod_annotations(hold=True)))
    pod = wait_for(
        "the pod to run",
        lambda: next((p for p in job_pods(core, ns, name) if p.status.phase == "Running"), None),
    )
    plane.fail_pod(pod.metadata.name, exit_code=3, reason="Error", message="loss is NaN")
    cond = wait_for("the job to fail", lambda: job_condition(batch, ns, name))
    assert cond.type == "Failed"
    terminated = core.read_namespaced_pod(pod.metadata.name, ns).status.container_statuses[0]
    assert terminated.state.terminated.exit_code == 3
    assert terminated.state.terminated.message == "loss is NaN"


def test_a_held_pod_runs_until_the_job_deadline(plane: KubePlane, batch: Any, core: Any) -> None:
    ns, name = plane.namespace, unique("deadline")
    batch.create_namespaced_job(
        ns, job_manifest(name, annotations=pod_annotations(hold=True), deadline=2)
    )
    pod = wait_for(
        "the pod to run",
        lambda: next((p for p in job_pods(core, ns, name) if p.status.phase == "Running"), None),
    )
    # Past the 500 ms an unheld pod runs, and short of the deadline: the Job's startTime
    # has whole seconds, so the 2 s deadline may come 1 s after the creation already.
    time.sleep(0.7)
    assert core.read_namespaced_pod(pod.metadata.name, ns).status.phase == "Running"
    assert job_condition(batch, ns, name) is None
    cond = wait_for("the deadline", lambda: job_condition(batch, ns, name), timeout=30)
    assert (cond.type, cond.reason) == ("Failed", "DeadlineExceeded")


def test_pod_logs_are_served(plane: KubePlane, batch: Any, core: Any) -> None:
    ns, name = plane.namespace, unique("logs")
    batch.create_namespaced_job(ns, job_manifest(name))
    wait_for("the job to finish", lambda: job_condition(batch, ns, name))
    [pod] = job_pods(core, ns, name)
    text = core.read_namespaced_pod_log(pod.metadata.name, ns, container="train")
    assert text.splitlines() == list(POD_LOG_LINES)
    tail = core.read_namespaced_pod_log(pod.metadata.name, ns, container="train", tail_lines=1)
    assert tail.splitlines() == [POD_LOG_LINES[-1]]


def test_a_pod_can_have_a_log_of_its_own(plane: KubePlane, batch: Any, core: Any) -> None:
    ns, name = plane.namespace, unique("traceback")
    batch.create_namespaced_job(ns, job_manifest(name, annotations=pod_annotations(hold=True)))
    pod = wait_for(
        "the pod to run",
        lambda: next((p for p in job_pods(core, ns, name) if p.status.phase == "Running"), None),
    )
    lines = [f"pod {pod.metadata.name}", "Traceback (most recent call last):", "MemoryError"]
    plane.set_pod_logs(pod.metadata.name, lines)
    assert core.read_namespaced_pod_log(pod.metadata.name, ns).splitlines() == lines
    plane.fail_pod(pod.metadata.name, exit_code=1)
    assert wait_for("the job to fail", lambda: job_condition(batch, ns, name)).type == "Failed"
    assert core.read_namespaced_pod_log(pod.metadata.name, ns).splitlines() == lines


def test_deployment_becomes_ready_and_scales(plane: KubePlane) -> None:
    # As the admin: executors/kubernetes/role.yaml grants no Deployments (yet).
    admin = k8s_config.new_client_from_config(config_file=str(plane.admin_kubeconfig))
    apps = k8s.AppsV1Api(admin)
    ns, name = plane.namespace, unique("serve")
    apps.create_namespaced_deployment(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {"name": "serve", "image": "registry.invalid/mlledger/serve:1"}
                        ]
                    },
                },
            },
        },
    )

    def ready(count: int) -> Callable[[], bool]:
        def check() -> bool:
            status = apps.read_namespaced_deployment_status(name, ns).status
            return (status.ready_replicas or 0) == count and (status.replicas or 0) == count

        return check

    wait_for("2 ready replicas", ready(2))
    apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": 3}})
    wait_for("3 ready replicas", ready(3))
    assert apps.read_namespaced_deployment_scale(name, ns).spec.replicas == 3
    apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": 1}})
    wait_for("1 ready replica", ready(1))
    apps.delete_namespaced_deployment(name, ns)
    admin.close()


def forbidden(error: Any) -> str:
    """The message of a 403 answer (the verb, resource and namespace refused)."""
    assert error.status == 403, error
    body = json.loads(error.body)
    assert body["reason"] == "Forbidden"
    return str(body["message"])


def test_executor_is_refused_what_its_role_does_not_grant(plane: KubePlane, core: Any) -> None:
    rbac = k8s.RbacAuthorizationV1Api(core.api_client)
    with pytest.raises(ApiException) as secrets:
        core.list_namespaced_secret("kube-system")
    message = forbidden(secrets.value)
    assert 'User "mlledger-executor" cannot list resource "secrets"' in message
    assert 'in the namespace "kube-system"' in message

    with pytest.raises(ApiException) as cluster_role:
        rbac.create_cluster_role(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": unique("escalate")},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
            }
        )
    message = forbidden(cluster_role.value)
    assert 'cannot create resource "clusterroles" in API group "rbac.authorization.k8s.io"' in (
        message
    )

    with pytest.raises(ApiException) as node_delete:
        core.delete_node(core.list_node().items[0].metadata.name)  # listing is allowed
    assert 'cannot delete resource "nodes"' in forbidden(node_delete.value)
