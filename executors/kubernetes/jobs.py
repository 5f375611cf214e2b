"""The Kubernetes executor: training jobs as ``batch/v1`` Jobs, on the official client.

It needs only the namespaced Role in ``executors/kubernetes/role.yaml`` (and, to read
the GPU product of nodes, the optional ClusterRole there). A refusal by the API
server (RBAC) is a ``PlatformRefused`` error naming the verb and the resource
(``executors.kubernetes.client``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from executors.base import ExecutorKind, Made, Transition
from executors.kubernetes import observe
from executors.kubernetes.client import Namespaced
from executors.kubernetes.render import (
    GPU_PRODUCT_LABEL,
    SELECTOR,
    job_manifest,
    secret_manifest,
)
from executors.spec import JobSpec, RunContext, object_name
from registry.errors import NotFound

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


class KubernetesExecutor(Namespaced):
    """Jobs in one namespace of one cluster."""

    kind: ExecutorKind = "kubernetes"

    def __init__(self, api: ApiClient, namespace: str):
        from kubernetes import client

        super().__init__(api, namespace)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self._products: dict[str, str | None] = {}
        self._nodes_readable = True
        self._lock = threading.Lock()

    # --- submission ----------------------------------------------------------------------

    def render(self, spec: JobSpec, context: RunContext) -> dict[str, Any]:
        return job_manifest(spec, context, self.namespace)

    def create(self, rendered: dict[str, Any], context: RunContext) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.create_namespaced_job(self.namespace, cast(Any, rendered))
        except ApiException as exc:
            if exc.status != 409:  # 409: made by an earlier try, under the same name
                raise self.refusal("create", "jobs.batch", exc) from None

    def release(self, run: str, context: RunContext) -> None:
        from kubernetes.client.exceptions import ApiException

        name = object_name(run)
        job = self.call(
            "get", f"jobs.batch/{name}", self.batch.read_namespaced_job, name, self.namespace
        )
        if context.api_key:
            secret = secret_manifest(run, self.namespace, context.api_key, job.metadata.uid)
            try:
                self.core.create_namespaced_secret(self.namespace, cast(Any, secret))
            except ApiException as exc:
                if exc.status != 409:
                    raise self.refusal("create", "secrets", exc) from None
        self.call(
            "patch",
            f"jobs.batch/{name}",
            self.batch.patch_namespaced_job,
            name,
            self.namespace,
            {"spec": {"suspend": False}},
        )

    # --- what happened -------------------------------------------------------------------

    def pods_of(self, run: str) -> list[dict[str, Any]]:
        found = self.call(
            "list",
            "pods",
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=f"{SELECTOR},mlledger.io/run={run.removeprefix('run:')}",
        )
        return [self.plain(p) for p in found.items]

    def observe(self, run: str) -> list[Transition]:
        name = object_name(run)
        try:
            job = self.plain(
                self.call(
                    "get",
                    f"jobs.batch/{name}",
                    self.batch.read_namespaced_job,
                    name,
                    self.namespace,
                )
            )
        except NotFound:
            job = None
        return observe.transitions(job, self.pods_of(run), self.product_of)

    def product_of(self, node: str) -> str | None:
        """The GPU product label of ``node`` (cached); None when nodes cannot be read
        (the optional ClusterRole is not granted) or it has none."""
        from kubernetes.client.exceptions import ApiException

        with self._lock:
            if node in self._products:
                return self._products[node]
            if not self._nodes_readable:
                return None
        try:
            found = self.core.read_node(node)
            product = ((found.metadata and found.metadata.labels) or {}).get(GPU_PRODUCT_LABEL)
        except ApiException as exc:
            if exc.status == 403:
                with self._lock:
                    self._nodes_readable = False
                return None
            product = None
        with self._lock:
            self._products[node] = product
        return product

    def cancel(self, run: str) -> bool:
        name = object_name(run)
        try:
            self.call(
                "delete",
                f"jobs.batch/{name}",
                self.batch.delete_namespaced_job,
                name,
                self.namespace,
                propagation_policy="Background",
            )
        except NotFound:
            return False
        return True

    def logs(self, run: str, *, follow: bool = False) -> Iterator[str]:
        pods = sorted(self.pods_of(run), key=lambda p: p["metadata"].get("creationTimestamp") or "")
        if not pods:
            raise NotFound(f"no pod of the job of {run} in namespace {self.namespace}")
        name = pods[-1]["metadata"]["name"]
        if follow:
            stream = self.call(
                "get",
                f"pods/{name}/log",
                self.core.read_namespaced_pod_log,
                name,
                self.namespace,
                follow=True,
                _preload_content=False,
            )
            for line in stream.stream():
                yield from line.decode("utf-8", "replace").splitlines()
            return
        text = self.call(
            "get", f"pods/{name}/log", self.core.read_namespaced_pod_log, name, self.namespace
        )
        yield from str(text).splitlines()

    def made(self) -> list[Made]:
        found = self.call(
            "list",
            "jobs.batch",
            self.batch.list_namespaced_job,
            self.namespace,
            label_selector=SELECTOR,
        )
        made = []
        for item in found.items:
            job = self.plain(item)
            run = observe.run_of_object(job)
            if run is None:
                continue
            spec, status = job.get("spec") or {}, job.get("status") or {}
            finished = any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            made.append(Made(run, released=not spec.get("suspend", False), finished=finished))
        return made

    def remove(self, run: str) -> None:
        self.cancel(run)
