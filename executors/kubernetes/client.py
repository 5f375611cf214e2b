"""The cluster as every Kubernetes executor reaches it: ``connect`` (a kubeconfig, or
the pod's own service account), and ``Namespaced``, the base of an executor working in
one namespace, whose calls turn the API server's errors into clear ones: ``NotFound``
for 404, ``PlatformRefused`` naming the verb and the resource for the rest (an RBAC
refusal's message names the user too)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from registry.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

#: Seconds a watch request lasts before it is renewed from its last resource version.
WATCH_SECONDS = 30


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


class Namespaced:
    """A client of one namespace of one cluster."""

    def __init__(self, api: ApiClient, namespace: str):
        self.api = api
        self.namespace = namespace

    @property
    def target(self) -> str:
        """The server and namespace, as events record where things ran."""
        return f"{self.api.configuration.host}/namespaces/{self.namespace}"

    def call(self, verb: str, resource: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``; an API error becomes a clear one: NotFound for
        404, PlatformRefused (naming ``verb`` and ``resource``) for the rest."""
        from kubernetes.client.exceptions import ApiException

        try:
            return function(*args, **kwargs)
        except ApiException as exc:
            raise self.refusal(verb, resource, exc) from None

    def refusal(self, verb: str, resource: str, exc: Any) -> Exception:
        """The error to raise for the API error ``exc`` to ``verb`` ``resource``."""
        if exc.status == 404:
            return NotFound(f"{resource} not found in namespace {self.namespace}")
        return PlatformRefused(
            f"Kubernetes refused to {verb} {resource} in namespace {self.namespace} "
            f"(HTTP {exc.status}): {reason(exc)}"
        )

    def plain(self, obj: Any) -> dict[str, Any]:
        """An API object as the JSON the server sent."""
        return dict(self.api.sanitize_for_serialization(obj))


def reason(exc: Any) -> str:
    """The API server's own message from an error's body (it names the verb, the
    resource and the user), else its HTTP reason."""
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def follow(
    ns: Namespaced,
    lister: Callable[..., Any],
    selector: str,
    version: str,
    stop: threading.Event,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The changes (``ADDED``, ``MODIFIED``, ``DELETED``, and the object as JSON) of what
    ``lister`` lists in the namespace with the label ``selector``, from ``version`` on,
    each watch renewed from the last version seen, until ``stop``. It ends when the
    watch expires (HTTP 410) or breaks: the caller then lists again."""
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    what = getattr(lister, "__name__", "objects").removeprefix("list_namespaced_")
    while not stop.is_set():
        stream = watch.Watch()
        try:
            for change in stream.stream(
                lister,
                ns.namespace,
                label_selector=selector,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
            ):
                if stop.is_set():
                    stream.stop()
                    return
                obj = change["object"]
                plain = obj if isinstance(obj, dict) else ns.plain(obj)
                version = (plain.get("metadata") or {}).get("resourceVersion") or version
                if change["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    yield change["type"], plain
        except ApiException as exc:
            if exc.status != 410:
                log.warning("watch of %ss broke (HTTP %s); listing again", what, exc.status)
            return
        except (OSError, ValueError, HTTPError) as exc:  # a dropped connection
            if not stop.is_set():
                log.warning("watch of %ss broke (%s); listing again", what, exc)
            return
