"""The watcher: records every transition of every job the executor made, as Kubernetes
reports it.

It lists the executor's Jobs and pods (label ``app.kubernetes.io/managed-by=mlledger``)
and records what they report, then watches both from the resource versions of those
lists, keeping the latest form of each object in memory: each change of a pod or Job
is turned into the transitions of its run (``executors.kubernetes.observe``) and the
new ones are recorded. A watch that expires (HTTP 410) or breaks is listed again.

A restarted watcher lists everything again; since every event id derives from the
transition it records, nothing is recorded twice and nothing reported is lost.

A Job deleted before its end by anyone but ``mlledger jobs cancel`` (``kubectl delete
job``) ends its run too: after ``DELETION_GRACE`` seconds the watcher records
``job-cancelled`` with the reason ``deleted outside mlledger`` (the run failed,
``job.Deleted``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from executors.base import Transition
from executors.kubernetes import observe
from executors.kubernetes.client import follow
from executors.kubernetes.render import SELECTOR
from registry.errors import LedgerError
from registry.timeutil import to_timestamp

if TYPE_CHECKING:
    from executors.dispatch import Dispatcher
    from executors.kubernetes.jobs import KubernetesExecutor

log = logging.getLogger(__name__)

#: Seconds after a Job's deletion before the watcher records it as cancelled outside
#: mlledger (``jobs cancel`` records its own cancellation first).
DELETION_GRACE = 5.0


@dataclass
class Seen:
    """The latest form of a run's Job and pods (deleted pods are kept: what they
    reported still stands)."""

    job: dict[str, Any] | None = None
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)


class Watcher:
    """Watches one namespace's jobs and records what they report through a dispatcher."""

    def __init__(self, dispatcher: Dispatcher, executor: KubernetesExecutor):
        self.dispatcher = dispatcher
        self.executor = executor
        self.seen: dict[str, Seen] = {}
        # Runs whose Job was deleted before its end, and since when.
        self.deleted: dict[str, float] = {}
        self.changes: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self.recorded = 0

    # --- applying what was seen ----------------------------------------------------------

    def apply(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        """Take one Job or pod as seen, and record what its run now reports."""
        run = observe.run_of_object(obj)
        if run is None:
            return
        if self.dispatcher.known_ended(run):
            # Its end is recorded: nothing more to say about it, nothing to keep.
            self.seen.pop(run, None)
            self.deleted.pop(run, None)
            return
        seen = self.seen.setdefault(run, Seen())
        if kind == "job":
            seen.job = obj
            if event == "DELETED":
                self.deleted.setdefault(run, time.monotonic())
        else:
            seen.pods[obj["metadata"]["name"]] = obj
        found = observe.transitions(seen.job, seen.pods.values(), self.executor.product_of)
        self.recorded += self.dispatcher.record(found)

    def deleted_outside(self, grace: float | None = None) -> None:
        """Record ``job-cancelled`` for Jobs deleted before their end by someone else than
        ``mlledger jobs cancel`` (which records its own cancellation within ``grace``
        seconds of the deletion)."""
        grace = DELETION_GRACE if grace is None else grace
        now = time.monotonic()
        for run, since in list(self.deleted.items()):
            if now - since < grace:
                continue
            del self.deleted[run]
            self.seen.pop(run, None)
            if not self.dispatcher.ended(run):
                body = {"reason": "deleted outside mlledger"}
                stamp = to_timestamp(None)
                self.recorded += self.dispatcher.record(
                    [Transition(run, "job-cancelled", body, stamp)],
                    error_type="job.Deleted",
                )

    def _apply_safely(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        """``apply``, a refusal by the ledger logged instead of stopping the watch."""
        try:
            self.apply(kind, event, obj)
        except LedgerError as exc:
            name = (obj.get("metadata") or {}).get("name")
            log.warning("could not record what %s %s reports: %s", kind, name, exc)

    def relist(self) -> dict[str, str]:
        """List every Job and pod of the executor, record what they report, and return
        the resource versions to watch from."""
        ex = self.executor
        jobs = ex.call(
            "list",
            "jobs.batch",
            ex.batch.list_namespaced_job,
            ex.namespace,
            label_selector=SELECTOR,
        )
        pods = ex.call(
            "list", "pods", ex.core.list_namespaced_pod, ex.namespace, label_selector=SELECTOR
        )
        for item in pods.items:
            self._apply_safely("pod", "ADDED", ex.plain(item))
        for item in jobs.items:
            self._apply_safely("job", "ADDED", ex.plain(item))
        return {"job": jobs.metadata.resource_version, "pod": pods.metadata.resource_version}

    # --- watching ------------------------------------------------------------------------

    def _stream(self, kind: str, version: str, stop: threading.Event) -> None:
        """Feed ``kind`` changes to the queue from ``version`` until ``stop``; when the
        watch expires or breaks, ask for a relist."""
        ex = self.executor
        lister = ex.batch.list_namespaced_job if kind == "job" else ex.core.list_namespaced_pod
        for event, obj in follow(ex, lister, SELECTOR, version, stop):
            if not stop.is_set():
                self.changes.put((kind, event, obj))
        if not stop.is_set():
            self.changes.put(("relist", kind, {}))

    def run(self, stop: threading.Event, *, until: float | None = None) -> None:
        """Watch until ``stop`` is set (or ``until``, a ``time.monotonic()`` moment)."""
        while not stop.is_set() and (until is None or time.monotonic() < until):
            versions = self.relist()
            halt = threading.Event()
            streams = [
                threading.Thread(
                    target=self._stream, args=(kind, versions[kind], halt), daemon=True
                )
                for kind in ("pod", "job")
            ]
            for thread in streams:
                thread.start()
            while not stop.is_set() and (until is None or time.monotonic() < until):
                self.deleted_outside()
                try:
                    item = self.changes.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None:
                    break
                kind, event, obj = item
                if kind == "relist":
                    break
                self._apply_safely(kind, event, obj)
            # A stream notices the halt at its next change or renewal; it adds nothing
            # after it, so the next generation need not wait for it.
            halt.set()
            for thread in streams:
                thread.join(timeout=1)
            self._drain()

    def _drain(self) -> None:
        """Apply what is still queued (changes that arrived while stopping)."""
        while True:
            try:
                item = self.changes.get_nowait()
            except queue.Empty:
                return
            if item is not None and item[0] != "relist":
                self._apply_safely(*item)
