"""The Kubernetes executor: training jobs as ``batch/v1`` Jobs, on the official client.

It needs only the namespaced Role in ``executors/kubernetes/role.yaml`` (and, to read
the GPU product of nodes, the optional ClusterRole there). A refusal by the API
server (RBAC) is a ``PlatformRefused`` error naming the verb and the resource.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from executors.base import ExecutorKind, Made, Transition
from executors.kubernetes import observe
from executors.kubernetes.render import (
    GPU_PRODUCT_LABEL,
    SELECTOR,
    job_manifest,
    secret_manifest,
)
from executors.spec import JobSpec, RunContext, object_name
from registry.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


class PlatformRefused(ConfigError):
    """The platform (Kubernetes) refused a request: the message names what was asked
    (verb and resource) and why. Mostly a matter of configuration: the executor's
    identity lacks a rule of its Role."""


def connect(kubeconfig: str | None = None, context: str | None = None) -> ApiClient:
    """A client for the cluster of ``kubeconfig`` (``KUBECONFIG``, ``~/.kube/config``),
    or, with none and inside a pod, the cluster the pod runs in."""
    from kubernetes import config

    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except config.ConfigException:
        if kubeconfig is not None:
            raise
        from kubernetes.client import ApiClient, Configuration

        configuration = Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return ApiClient(configuration)


class KubernetesExecutor:
    """Jobs in one namespace of one cluster."""

    kind: ExecutorKind = "kubernetes"

    def __init__(self, api: ApiClient, namespace: str):
        from kubernetes import client

        self.api = api
        self.namespace = namespace
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self._products: dict[str, str | None] = {}
        self._nodes_readable = True
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        return f"{self.api.configuration.host}/namespaces/{self.namespace}"

    def call(self, verb: str, resource: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``; an API error becomes a clear one: NotFound for
        404, PlatformRefused (naming ``verb`` and ``resource``) for the rest."""
        from kubernetes.client.exceptions import ApiException

        try:
            return function(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"{resource} not found in namespace {self.namespace}") from None
            raise PlatformRefused(
                f"Kubernetes refused to {verb} {resource} in namespace {self.namespace} "
                f"(HTTP {exc.status}): {_reason(exc)}"
            ) from None

    # --- submission ----------------------------------------------------------------------

    def render(self, spec: JobSpec, context: RunContext) -> dict[str, Any]:
        return job_manifest(spec, context, self.namespace)

    def create(self, rendered: dict[str, Any], context: RunContext) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.create_namespaced_job(self.namespace, cast(Any, rendered))
        except ApiException as exc:
            if exc.status != 409:  # 409: made by an earlier try, under the same name
                self.call("create", "jobs.batch", _raise, exc)

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
                    self.call("create", "secrets", _raise, exc)
        self.call(
            "patch",
            f"jobs.batch/{name}",
            self.batch.patch_namespaced_job,
            name,
            self.namespace,
            {"spec": {"suspend": False}},
        )

    # --- what happened -------------------------------------------------------------------

    def plain(self, obj: Any) -> dict[str, Any]:
        """An API object as the JSON the server sent."""
        return dict(self.api.sanitize_for_serialization(obj))

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


def _raise(exc: Exception) -> None:
    raise exc


def _reason(exc: Any) -> str:
    """The API server's own message from an error's body (it names the verb, the
    resource and the user), else its HTTP reason."""
    import json

    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)
