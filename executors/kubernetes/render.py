"""The Kubernetes objects of a training job, as plain manifests (no client needed).

A job is a ``batch/v1`` Job named after its run (``mlledger-<run uuid>``), created
suspended, whose one container runs the spec's command in its image with the run's
context in its environment (``MLLEDGER_RUN_ID``, ``MLLEDGER_PROJECT``,
``MLLEDGER_ACTOR``, ``MLLEDGER_DB``: the ledger's URL, ``TRACEPARENT``) and the API key
read from a Secret of the same name, owned by the Job (so it goes with it). The pod
spec holds the key's Secret reference, never the key.

GPUs are ``nvidia.com/gpu`` requests and limits; a GPU product pins the pod to nodes
labelled ``nvidia.com/gpu.product=<product>``; a job asking for GPUs tolerates the
``nvidia.com/gpu`` taint GPU nodes usually carry, besides its own tolerations.
"""

from __future__ import annotations

import uuid
from typing import Any

from executors.spec import JobSpec, Placement, RunContext, object_name
from registry.errors import InvalidInput

MANAGED_BY = "app.kubernetes.io/managed-by"
RUN_LABEL = "mlledger.io/run"
PROJECT_ANNOTATION = "mlledger.io/project"
RUN_ANNOTATION = "mlledger.io/run-id"
#: The label every object the executor makes carries: what it lists and watches.
SELECTOR = f"{MANAGED_BY}=mlledger"
GPU = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
SECRET_KEY = "api-key"
CONTAINER = "job"


def labels(run: str) -> dict[str, str]:
    return {MANAGED_BY: "mlledger", RUN_LABEL: str(uuid.UUID(run.removeprefix("run:")))}


def job_manifest(spec: JobSpec, context: RunContext, namespace: str) -> dict[str, Any]:
    """The Job submitted for ``spec`` (suspended: released once its Secret exists)."""
    if spec.image is None:
        raise InvalidInput("a Kubernetes job needs an image (--image)", field="image")
    name = object_name(context.run)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    env += [{"name": k, "value": v} for k, v in context.environment(with_key=False).items()]
    if context.api_key:
        env.append(
            {
                "name": "MLLEDGER_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": name, "key": SECRET_KEY}},
            }
        )
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [
            {
                "name": CONTAINER,
                "image": spec.image,
                "command": list(spec.command),
                "env": env,
                "resources": resources(spec),
            }
        ],
    }
    place(pod, spec)
    job_spec: dict[str, Any] = {
        "suspend": True,
        "backoffLimit": spec.retries,
        "template": {"metadata": _template_metadata(spec, context), "spec": pod},
    }
    if spec.deadline_s is not None:
        job_spec["activeDeadlineSeconds"] = spec.deadline_s
    if spec.ttl_s is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_s
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(context.run),
            "annotations": {RUN_ANNOTATION: context.run, PROJECT_ANNOTATION: context.project},
        },
        "spec": job_spec,
    }


def _template_metadata(spec: JobSpec, context: RunContext) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": labels(context.run)}
    if spec.annotations:
        metadata["annotations"] = dict(spec.annotations)
    return metadata


def place(pod: dict[str, Any], spec: Placement) -> None:
    """Pin ``pod`` to nodes of the spec's GPU product, and let it tolerate the spec's
    taints (and, asking for GPUs, the ``nvidia.com/gpu`` taint of GPU nodes)."""
    if spec.gpu_product:
        pod["nodeSelector"] = {GPU_PRODUCT_LABEL: spec.gpu_product}
    tolerations = [t.model_dump(exclude_none=True) for t in spec.tolerations]
    if spec.gpus and not any(t.get("key") == GPU for t in tolerations):
        tolerations.append({"key": GPU, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod["tolerations"] = tolerations


def resources(spec: Placement) -> dict[str, dict[str, str]]:
    """A container's requests and limits: CPU requested, memory and GPUs requested and
    limited alike (extended resources must be)."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.cpu:
        requests["cpu"] = spec.cpu
    if spec.memory:
        requests["memory"] = limits["memory"] = spec.memory
    if spec.gpus:
        requests[GPU] = limits[GPU] = str(spec.gpus)
    resources: dict[str, dict[str, str]] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def secret_manifest(
    run: str, namespace: str, api_key: str, owner_uid: str | None
) -> dict[str, Any]:
    """The Secret holding the job's API key, owned by its Job (deleted with it)."""
    metadata: dict[str, Any] = {
        "name": object_name(run),
        "namespace": namespace,
        "labels": labels(run),
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": object_name(run), "uid": owner_uid}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": {SECRET_KEY: api_key},
    }
