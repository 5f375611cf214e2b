"""Serving through Kubernetes: model versions behind a ledger deployment, and the
watcher that records what Kubernetes reports about them.

``ServingExecutor`` makes and changes the objects (``serving_render``): one Deployment
per model version, one Service selecting all of them, so traffic splits by the ratio of
ready replicas. It writes with the field manager ``mlledger`` and never writes to the
ledger.

``ServingWatcher`` lists and watches the executor's Deployments (listing again when its
watch expires) and records, for each ledger deployment:

- ``deployment-configured`` whenever the split of *ready* replicas across model
  versions differs from the last one the ledger holds (endpoint: the Service's
  in-cluster URL; traffic: each version's share of the ready replicas, in percent,
  summing to 100; versions with no ready replica left out; nothing while none is ready);
- ``deployment-drifted`` when a Deployment was changed by a field manager other than
  ``mlledger`` (replicas, image, another field of its spec) or deleted without the
  executor retiring it; the executor's own state is not applied again: the ledger
  records what serves, it does not fight whoever changed it;
- ``deployment-retired`` once every Deployment of the deployment is gone.

Event ids are derived from what is recorded, so a restarted watcher (or two) records
nothing twice: the ledger writes nothing for an event id it holds with the same content.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from executors.base import EVENT_NAMESPACE
from executors.kubernetes.client import Namespaced, follow
from executors.kubernetes.serving_render import (
    CONTAINER,
    DEPLOYMENT_ANNOTATION,
    DEPLOYMENT_LABEL,
    DESIRED_ANNOTATION,
    FIELD_MANAGER,
    MODEL_ANNOTATION,
    PORT_ANNOTATION,
    RETIRING_ANNOTATION,
    SERVING_SELECTOR,
    SPEC_ANNOTATION,
    ServingSpec,
    deployment_manifest,
    deployment_name,
    desired,
    digest,
    endpoint,
    service_manifest,
    service_name,
)
from registry import writes
from registry.canonical import canonical_json
from registry.errors import Conflict, EventRejected, InvalidInput, LedgerError, NotFound
from registry.ids import NodeId, deployment_id

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from registry.events import NewEvent
    from registry.sdk import Registry

log = logging.getLogger(__name__)

#: Seconds between comparisons of every deployment seen with the ledger.
RESYNC_SECONDS = 5.0
MERGE = "application/merge-patch+json"


def serving_id(project: str, name: str) -> str:
    """The ledger deployment named ``name`` (or given by its id) in ``project``."""
    if name.startswith("deployment:"):
        node = NodeId.parse(name)
        if node.kind != "deployment" or node.project != project:
            raise InvalidInput(
                f"{name} is no deployment of project {project!r}", field="deployment"
            )
        return str(node)
    return deployment_id(project, name)


class ServingExecutor(Namespaced):
    """Serving deployments of one project in one namespace of one cluster."""

    def __init__(self, api: ApiClient, namespace: str, project: str):
        from kubernetes import client

        super().__init__(api, namespace)
        self.project = project
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

    def deployment(self, name: str) -> str:
        return serving_id(self.project, name)

    # --- writes ----------------------------------------------------------------------------

    def _create_or_patch(
        self, resource: str, create: Any, patch: Any, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            made = create(self.namespace, cast(Any, body), field_manager=FIELD_MANAGER)
        except ApiException as exc:
            if exc.status != 409:
                raise self.refusal("create", resource, exc) from None
            changes = {k: v for k, v in body.items() if k in ("metadata", "spec")}
            made = self.call(
                "patch",
                f"{resource}/{name}",
                patch,
                name,
                self.namespace,
                changes,
                field_manager=FIELD_MANAGER,
                _content_type=MERGE,
            )
        return self.plain(made)

    def _service(self, dep: str, port: int) -> None:
        body = service_manifest(dep, port, self.namespace)
        self._create_or_patch(
            "services",
            self.core.create_namespaced_service,
            self.core.patch_namespaced_service,
            body["metadata"]["name"],
            body,
        )

    def _deployment(self, dep: str, model: str, replicas: int, spec: ServingSpec) -> str:
        body = deployment_manifest(dep, model, replicas, spec, self.namespace)
        name = body["metadata"]["name"]
        self._create_or_patch(
            "deployments.apps",
            self.apps.create_namespaced_deployment,
            self.apps.patch_namespaced_deployment,
            name,
            body,
        )
        return str(name)

    def deploy(
        self, name: str, models: dict[str, int], spec: ServingSpec | None = None, **fields: Any
    ) -> list[str]:
        """Serve each model version of ``models`` with its number of replicas from
        ``spec`` (or a spec made of ``fields``: ``image``, ``port``, ``cpu``,
        ``memory``, ``gpus``, ``gpu_product``, ``tolerations``, ``env``), its Deployment
        made or changed to this spec, behind the deployment's Service; return the
        Deployments' names."""
        if spec is None:
            spec = ServingSpec.make(**fields)
        elif fields:
            spec = ServingSpec.make(**{**spec.model_dump(), **fields})
        dep = self.deployment(name)
        _check_models(self.project, models)
        self._service(dep, spec.port)
        return [self._deployment(dep, m, r, spec) for m, r in models.items()]

    def scale(self, name: str, model: str, replicas: int) -> str:
        """Set the replicas of the Deployment serving ``model``."""
        return self.shift(name, {model: replicas})[0]

    def shift(
        self, name: str, models: dict[str, int], spec: ServingSpec | None = None
    ) -> list[str]:
        """Set the replicas of several model versions at once (a canary: v1 4 and v2 1
        for 80/20, then v1 0 and v2 5). A version not served yet is deployed from
        ``spec``, else from the spec of one already served; the others are left as they
        are. Return the Deployments' names."""
        dep = self.deployment(name)
        _check_models(self.project, models)
        found = {_model_of(d): d for d in self.objects(dep)}
        names = []
        for model, replicas in models.items():
            current = found.get(model)
            if current is None:
                base = spec or self._spec_of(found.values())
                if base is None:
                    raise NotFound(
                        f"deployment {dep} serves nothing in namespace {self.namespace}; "
                        "deploy it first (with an image)"
                    )
                self._service(dep, base.port)
                names.append(self._deployment(dep, model, replicas, base))
                continue
            image = _image(current) or ""
            want = _desired(current)
            if want is not None:
                image = str(want.get("image") or image)
            object_name = current["metadata"]["name"]
            patch = {
                "metadata": {"annotations": {DESIRED_ANNOTATION: desired(replicas, image)}},
                "spec": {"replicas": replicas},
            }
            self.call(
                "patch",
                f"deployments.apps/{object_name}",
                self.apps.patch_namespaced_deployment,
                object_name,
                self.namespace,
                patch,
                field_manager=FIELD_MANAGER,
                _content_type=MERGE,
            )
            names.append(object_name)
        return names

    def _spec_of(self, objects: Iterable[dict[str, Any]]) -> ServingSpec | None:
        for obj in objects:
            text = _annotations(obj).get(SPEC_ANNOTATION)
            if text:
                return ServingSpec.model_validate_json(text)
        return None

    def retire(self, name: str) -> bool:
        """Delete every Deployment of the deployment and its Service, marked first as
        retired by the executor (so the watcher tells it from a deletion by someone
        else); False when there was nothing to delete."""
        dep = self.deployment(name)
        objects = self.objects(dep)
        mark = {"metadata": {"annotations": {RETIRING_ANNOTATION: "true"}}}
        service = service_name(dep)
        had_service = True
        try:
            self.call(
                "patch",
                f"services/{service}",
                self.core.patch_namespaced_service,
                service,
                self.namespace,
                mark,
                field_manager=FIELD_MANAGER,
                _content_type=MERGE,
            )
        except NotFound:
            had_service = False
        for obj in objects:
            object_name = obj["metadata"]["name"]
            try:
                self.call(
                    "patch",
                    f"deployments.apps/{object_name}",
                    self.apps.patch_namespaced_deployment,
                    object_name,
                    self.namespace,
                    mark,
                    field_manager=FIELD_MANAGER,
                    _content_type=MERGE,
                )
                self.call(
                    "delete",
                    f"deployments.apps/{object_name}",
                    self.apps.delete_namespaced_deployment,
                    object_name,
                    self.namespace,
                    propagation_policy="Background",
                )
            except NotFound:
                continue
        if had_service:
            with contextlib.suppress(NotFound):
                self.call(
                    "delete",
                    f"services/{service}",
                    self.core.delete_namespaced_service,
                    service,
                    self.namespace,
                )
        return had_service or bool(objects)

    # --- reads -----------------------------------------------------------------------------

    def objects(self, dep: str | None = None) -> list[dict[str, Any]]:
        """The executor's serving Deployments (of ``dep`` only, when given)."""
        selector = SERVING_SELECTOR
        if dep is not None:
            selector += f",{DEPLOYMENT_LABEL}={digest(dep, size=20)}"
        found = self.call(
            "list",
            "deployments.apps",
            self.apps.list_namespaced_deployment,
            self.namespace,
            label_selector=selector,
        )
        return [self.plain(d) for d in found.items]

    def service(self, dep: str) -> dict[str, Any] | None:
        """The Service of ``dep`` as Kubernetes reports it, or None."""
        name = service_name(dep)
        try:
            return self.plain(
                self.call(
                    "get",
                    f"services/{name}",
                    self.core.read_namespaced_service,
                    name,
                    self.namespace,
                )
            )
        except NotFound:
            return None

    def report(self, name: str) -> dict[str, Any]:
        """What Kubernetes reports now about a deployment: its endpoint, and each model
        version's Deployment with its replicas (asked, ready) and image, and the split
        of ready replicas."""
        dep = self.deployment(name)
        objects = self.objects(dep)
        service = self.service(dep)
        port = _port(objects, service)
        return {
            "deployment": dep,
            "endpoint": endpoint(dep, self.namespace, port) if port else None,
            "service": service_name(dep) if service else None,
            "models": [
                {
                    "model": _model_of(obj),
                    "object": obj["metadata"]["name"],
                    "replicas": (obj.get("spec") or {}).get("replicas"),
                    "ready": _ready(obj),
                    "image": _image(obj),
                }
                for obj in sorted(objects, key=lambda o: _model_of(o))
            ],
            "split": split(objects),
        }


# --- what Kubernetes reports, as values ------------------------------------------------------


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _model_of(obj: dict[str, Any]) -> str:
    return _annotations(obj).get(MODEL_ANNOTATION, "")


def _deployment_of(obj: dict[str, Any]) -> str | None:
    return _annotations(obj).get(DEPLOYMENT_ANNOTATION)


def _ready(obj: dict[str, Any]) -> int:
    return int((obj.get("status") or {}).get("readyReplicas") or 0)


def _image(obj: dict[str, Any]) -> str | None:
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or []:
        if container.get("name") == CONTAINER:
            return str(container.get("image"))
    return None


def _desired(obj: dict[str, Any]) -> dict[str, Any] | None:
    text = _annotations(obj).get(DESIRED_ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _port(objects: Iterable[dict[str, Any]], service: dict[str, Any] | None = None) -> int | None:
    for obj in [*([service] if service else []), *objects]:
        text = _annotations(obj).get(PORT_ANNOTATION)
        if text and text.isdigit():
            return int(text)
    return None


def split(objects: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Each model version's share of the ready replicas, in percent (hundredths),
    summing to exactly 100; versions with none ready left out; {} when none is."""
    ready: dict[str, int] = {}
    for obj in objects:
        count = _ready(obj)
        if count > 0:
            ready[_model_of(obj)] = ready.get(_model_of(obj), 0) + count
    total = sum(ready.values())
    if not total:
        return {}
    # Largest remainder, in hundredths of a percent: the parts add up to 10000.
    exact = {m: r * 10000 / total for m, r in ready.items()}
    parts = {m: int(v) for m, v in exact.items()}
    left = 10000 - sum(parts.values())
    for m in sorted(exact, key=lambda m: (parts[m] - exact[m], m))[:left]:
        parts[m] += 1
    return {m: parts[m] / 100 for m in sorted(parts)}


def _paths(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The leaf paths of a ``fieldsV1`` set."""
    found: list[tuple[str, ...]] = []
    for key, value in fields.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            found += _paths(value, path)
        else:
            found.append(path)
    return found


@dataclass(frozen=True)
class Entry:
    """One ``metadata.managedFields`` entry of a writer other than the executor."""

    manager: str
    time: str | None
    paths: tuple[tuple[str, ...], ...]

    def owns(self, test: Any) -> bool:
        return any(test(p) for p in self.paths)


def _entries(obj: dict[str, Any]) -> list[Entry]:
    found = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER or entry.get("subresource") == "status":
            continue
        paths = tuple(p for p in _paths(entry.get("fieldsV1") or {}) if p and p[0] == "f:spec")
        if paths:
            found.append(Entry(str(entry.get("manager") or ""), entry.get("time"), paths))
    return sorted(found, key=lambda e: e.time or "", reverse=True)


def _is_replicas(path: tuple[str, ...]) -> bool:
    return path == ("f:spec", "f:replicas")


def _is_image(path: tuple[str, ...]) -> bool:
    return path[-1] == "f:image"


def _is_other(path: tuple[str, ...]) -> bool:
    return not (_is_replicas(path) or _is_image(path) or path[-1] in (".", "f:name"))


@dataclass(frozen=True)
class Drift:
    """A change to a Deployment by someone else, as ``deployment-drifted`` records it."""

    change: str
    object: str
    model: str
    manager: str | None
    before: int | str | None
    after: int | str | None
    at: str | None
    key: str

    def body(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "object": self.object,
            "model": self.model,
            "manager": self.manager,
            "before": self.before,
            "after": self.after,
        }


def drifts(obj: dict[str, Any]) -> list[Drift]:
    """The changes made to a Deployment by field managers other than the executor: its
    replicas or image differ from what the executor asked (``mlledger.io/desired``), or
    another field of its spec belongs to someone else."""
    want = _desired(obj)
    if want is None:
        return []
    name = obj["metadata"]["name"]
    model = _model_of(obj)
    entries = _entries(obj)
    found = []

    def manager(test: Any) -> Entry | None:
        owners = [e for e in entries if e.owns(test)]
        return owners[0] if owners else (entries[0] if entries else None)

    replicas = (obj.get("spec") or {}).get("replicas")
    if replicas is not None and replicas != want.get("replicas"):
        who = manager(_is_replicas)
        found.append(_drift("scaled", name, model, who, want.get("replicas"), replicas))
    image = _image(obj)
    if image != want.get("image"):
        who = manager(_is_image)
        found.append(_drift("image-changed", name, model, who, want.get("image"), image))
    for entry in entries:
        fields = _field_names(p for p in entry.paths if _is_other(p))
        if fields:
            # after: the fields of the spec that manager set (stable while it owns them).
            found.append(_drift("spec-changed", name, model, entry, None, fields[:500]))
    return found


def _field_names(paths: Iterable[tuple[str, ...]]) -> str:
    """Field paths as ``spec.template.spec.containers[name=server].env``, joined by
    commas (the leaf of a list element dropped: it names the element)."""
    names = set()
    for path in paths:
        parts = []
        for part in path:
            if part.startswith("f:"):
                parts.append(part[2:])
            elif part.startswith("k:"):
                try:
                    key = json.loads(part[2:])
                    inner = ",".join(f"{k}={v}" for k, v in sorted(key.items()))
                except (ValueError, AttributeError):
                    inner = part[2:]
                parts[-1:] = [f"{parts[-1] if parts else ''}[{inner}]"]
            elif part.startswith("v:"):
                parts[-1:] = [f"{parts[-1] if parts else ''}[{part[2:]}]"]
        names.add(".".join(parts))
    return ",".join(sorted(names))


def _drift(
    change: str,
    name: str,
    model: str,
    who: Entry | None,
    before: Any,
    after: Any,
) -> Drift:
    manager = who.manager if who else None
    at = who.time if who else None
    parts = [change, name, manager, before, after]
    if change == "spec-changed":
        parts.append(at)
    key = json.dumps(parts, sort_keys=True, default=str)
    return Drift(change, name, model, manager, before, after, at, key)


# --- the watcher ---------------------------------------------------------------------------


@dataclass
class Actor:
    """Who an event names: the watcher's identity, or ``kubernetes:<manager>``."""

    project: str
    actor: str


@dataclass
class Held:
    """What the ledger holds of a deployment now."""

    status: str | None
    endpoint: str | None = None
    split: dict[str, float] = field(default_factory=dict)
    since: dict[str, str] = field(default_factory=dict)


def serving_event_id(dep: str, key: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{dep}/serving/{key}"))


class ServingWatcher:
    """Watches one namespace's serving Deployments and records what they report."""

    def __init__(self, registry: Registry, executor: ServingExecutor):
        self.registry = registry
        self.executor = executor
        self.cache: dict[str, dict[str, Any]] = {}
        self.retiring: set[str] = set()
        self.known: set[str] = set()
        self.changes: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self.recorded = 0
        self._appended: set[str] = set()
        self._lock = threading.Lock()

    # --- what the ledger holds -------------------------------------------------------------

    def held(self, dep: str) -> Held:
        try:
            history = self.registry.history(dep)
        except NotFound:
            return Held(None)
        current = [i for i in history["intervals"] if i.get("to") is None]
        if history["status"] != "active":
            return Held(history["status"], history.get("endpoint"))
        return Held(
            "active",
            history.get("endpoint"),
            {i["model"]: float(i["traffic"]) for i in current},
            {i["model"]: str(i["from"]) for i in current},
        )

    # --- reconciling one deployment --------------------------------------------------------

    def apply(self, event: str, obj: dict[str, Any]) -> int:
        """Take one Deployment as seen and record what its deployment now reports."""
        dep = _deployment_of(obj)
        if dep is None or NodeId.parse(dep).project != self.registry.project:
            return 0
        name = obj["metadata"]["name"]
        if event == "DELETED":
            self.cache.pop(name, None)
            if _annotations(obj).get(RETIRING_ANNOTATION) == "true":
                self.retiring.add(dep)
        else:
            self.cache[name] = obj
            if _annotations(obj).get(RETIRING_ANNOTATION) != "true":
                self.retiring.discard(dep)
        return self.reconcile(dep)

    def reconcile(self, dep: str) -> int:
        """Record what Kubernetes reports of ``dep`` that the ledger does not hold yet;
        return how many events were appended."""
        with self._lock:
            self.known.add(dep)
            objects = [o for o in self.cache.values() if _deployment_of(o) == dep]
            held = self.held(dep)
            events: list[NewEvent] = []
            reg = self.registry
            if held.status == "active":
                for obj in objects:
                    for d in drifts(obj):
                        events.append(self._drifted(dep, d))
                present = {_model_of(o) for o in objects}
                missing = [m for m in held.split if m not in present]
                retiring = dep in self.retiring or (bool(missing) and self._service_retiring(dep))
                if missing and not retiring:
                    for model in missing:
                        d = Drift(
                            "deleted",
                            deployment_name(dep, model),
                            model,
                            None,
                            None,
                            None,
                            None,
                            json.dumps(["deleted", model, held.since.get(model)]),
                        )
                        events.append(self._drifted(dep, d))
                if not objects:
                    key = json.dumps(["retired", sorted(held.since.values())])
                    reason = "retired" if retiring else "deleted outside the ledger"
                    events.append(
                        writes.event(
                            reg,
                            "deployment-retired",
                            dep,
                            {"reason": reason},
                            event_id=serving_event_id(dep, key),
                        )
                    )
                    return self._append(events)
            if dep in self.retiring or any(
                _annotations(o).get(RETIRING_ANNOTATION) == "true" for o in objects
            ):
                return self._append(events)  # retiring: recorded once every object is gone
            observed = split(objects)
            port = _port(objects)
            url = endpoint(dep, self.executor.namespace, port) if port else None
            if (
                observed
                and url
                and (held.status != "active" or observed != held.split or url != held.endpoint)
            ):
                versions = sorted(
                    (
                        o["metadata"]["name"],
                        (o.get("status") or {}).get("observedGeneration"),
                        o["metadata"].get("resourceVersion"),
                    )
                    for o in objects
                )
                key = canonical_json({"split": observed, "objects": versions}).decode()
                body = {
                    "endpoint": url,
                    "served": [{"model": m, "traffic": t} for m, t in observed.items()],
                }
                events.append(
                    writes.event(
                        reg,
                        "deployment-configured",
                        dep,
                        body,
                        event_id=serving_event_id(dep, "configured/" + key),
                    )
                )
            return self._append(events)

    def _drifted(self, dep: str, d: Drift) -> NewEvent:
        who = Actor(self.registry.project, f"kubernetes:{d.manager or 'unknown'}")
        return writes.event(
            who,
            "deployment-drifted",
            dep,
            d.body(),
            d.at,
            serving_event_id(dep, "drifted/" + d.key),
        )

    def _service_retiring(self, dep: str) -> bool:
        service = self.executor.service(dep)
        return service is None or _annotations(service).get(RETIRING_ANNOTATION) == "true"

    def _append(self, events: list[NewEvent]) -> int:
        """Append what this watcher has not appended yet (the ledger itself writes
        nothing for an event id it holds); return how many events were new here."""
        fresh = [e for e in events if e.event_id not in self._appended]
        if not fresh:
            return 0
        reg = self.registry
        try:
            reg.backend.append(reg.project, fresh)
        except Conflict as exc:
            log.info("recorded by another writer already: %s", exc)
            return 0
        except EventRejected as exc:
            log.warning("not recorded: %s", exc)
            return 0
        self._appended.update(e.event_id for e in fresh)
        self.recorded += len(fresh)
        return len(fresh)

    # --- listing and watching --------------------------------------------------------------

    def relist(self) -> str:
        """List every serving Deployment, record what each deployment reports (those
        gone too), and return the resource version to watch from."""
        ex = self.executor
        found = ex.call(
            "list",
            "deployments.apps",
            ex.apps.list_namespaced_deployment,
            ex.namespace,
            label_selector=SERVING_SELECTOR,
        )
        self.cache = {}
        for item in found.items:
            obj = ex.plain(item)
            dep = _deployment_of(obj)
            if dep is not None and NodeId.parse(dep).project == self.registry.project:
                self.cache[obj["metadata"]["name"]] = obj
        deps = {_deployment_of(o) for o in self.cache.values()} | self.known
        for dep in sorted(d for d in deps if d):
            self.reconcile(dep)
        return str(found.metadata.resource_version)

    def _stream(self, version: str, stop: threading.Event) -> None:
        """Feed Deployment changes to the queue from ``version`` until ``stop``; when the
        watch expires or breaks, ask for a relist."""
        ex = self.executor
        for event, obj in follow(
            ex, ex.apps.list_namespaced_deployment, SERVING_SELECTOR, version, stop
        ):
            if not stop.is_set():
                self.changes.put((event, obj))
        if not stop.is_set():
            self.changes.put(("relist", {}))

    def run(self, stop: threading.Event, *, until: float | None = None) -> None:
        """Watch until ``stop`` is set (or ``until``, a ``time.monotonic()`` moment).
        Every ``RESYNC_SECONDS`` the deployments seen are compared with the ledger
        again, so a write that failed (the ledger briefly unreachable) is made later."""
        while not stop.is_set() and (until is None or time.monotonic() < until):
            version = self.relist()
            halt = threading.Event()
            thread = threading.Thread(target=self._stream, args=(version, halt), daemon=True)
            thread.start()
            resync = time.monotonic() + RESYNC_SECONDS
            while not stop.is_set() and (until is None or time.monotonic() < until):
                if time.monotonic() > resync:
                    self._safely(self.resync)
                    resync = time.monotonic() + RESYNC_SECONDS
                try:
                    item = self.changes.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None or item[0] == "relist":
                    break
                self._safely(self.apply, *item)
            halt.set()
            thread.join(timeout=1)
            while True:
                try:
                    item = self.changes.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[0] != "relist":
                    self._safely(self.apply, *item)

    def resync(self) -> int:
        """Compare every deployment seen with what the ledger holds, and record what
        differs; return how many events were appended."""
        return sum(self.reconcile(dep) for dep in sorted(self.known))

    @staticmethod
    def _safely(function: Any, *args: Any) -> None:
        """``function(*args)``; a refusal by the ledger or the cluster, or a dropped
        connection, is logged and left to the next resync: the watcher outlives it."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            function(*args)
        except (LedgerError, ApiException, HTTPError, OSError) as exc:
            log.warning("recording what Kubernetes reports failed (%s); retrying later", exc)


def _check_models(project: str, models: dict[str, int]) -> None:
    if not models:
        raise InvalidInput("no model version to serve: give MODEL=REPLICAS", field="model")
    for model, replicas in models.items():
        node = NodeId.parse(model)
        if node.kind != "model" or node.project != project:
            raise InvalidInput(f"{model} is no model version of project {project!r}", field="model")
        if not isinstance(replicas, int) or replicas < 0:
            raise InvalidInput(f"replicas of {model}: expected 0 or more", field="model")
