"""What Kubernetes reports about a job, as transitions: read from a Job and its pods
(plain JSON forms, as the API sends them), never from what was asked.

- a pod bound to a node: ``job-scheduled`` (the node, the ``nvidia.com/gpu`` the pod
  holds, the node's GPU product label when it could be read), at the pod's
  ``PodScheduled`` time;
- its container running (or ran): ``job-started``, at the container's start;
- a pod that failed: ``job-attempt-failed`` with its exit code and reason (the
  container's, such as ``OOMKilled`` or ``Error``; else the pod's: ``Evicted``,
  ``DeadlineExceeded``; ``Preempted`` when the scheduler preempted it);
- the Job ``Complete``: ``job-succeeded``; ``Failed``: ``job-failed`` with the Job's
  reason (``BackoffLimitExceeded``, ``DeadlineExceeded``, ...) and its last failed
  attempt's exit code and reason.

Every time comes from Kubernetes, so the same object read twice gives the same
transitions (and the same event ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from executors.base import Transition
from executors.kubernetes.render import CONTAINER, GPU, RUN_ANNOTATION
from executors.spec import run_of

#: A function giving a node's GPU product label (None when unknown or unreadable).
ProductOf = Callable[[str], str | None]
#: Pod disruption reasons (the DisruptionTarget condition) and what the ledger calls them.
DISRUPTIONS = {
    "PreemptionByScheduler": "Preempted",
    "PreemptionByKubeScheduler": "Preempted",
    "EvictionByEvictionAPI": "Evicted",
    "DeletionByTaintManager": "Evicted",
    "TerminationByKubelet": "Evicted",
}
#: Order of transitions at the same time.
ORDER = {
    "job-scheduled": 0,
    "job-started": 1,
    "job-attempt-failed": 2,
    "job-succeeded": 3,
    "job-failed": 3,
}


def run_of_object(obj: dict[str, Any]) -> str | None:
    """The run a Job or pod belongs to: its annotation, else its name (a pod is named
    after its Job)."""
    meta = obj.get("metadata") or {}
    run = (meta.get("annotations") or {}).get(RUN_ANNOTATION)
    if run:
        return str(run)
    owner = (meta.get("labels") or {}).get("batch.kubernetes.io/job-name") or (
        meta.get("labels") or {}
    ).get("job-name")
    return run_of(owner or meta.get("name", ""))


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return dict(status)
    return {}


def _gpus(pod: dict[str, Any]) -> int:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        total += int(limits.get(GPU, 0) or 0)
    return total


def attempt_end(pod: dict[str, Any]) -> dict[str, Any] | None:
    """How a failed pod ended: ``{exit_code, reason, at}``, or None while it has not failed."""
    status = pod.get("status") or {}
    if status.get("phase") != "Failed":
        return None
    state = _container(pod).get("state") or {}
    terminated = state.get("terminated") or {}
    disruption = _condition(pod, "DisruptionTarget")
    reason = (
        DISRUPTIONS.get((disruption or {}).get("reason", ""))
        or status.get("reason")
        or terminated.get("reason")
        or "Error"
    )
    if terminated.get("reason") == "OOMKilled":
        reason = "OOMKilled"
    at = (
        terminated.get("finishedAt")
        or (disruption or {}).get("lastTransitionTime")
        or _latest_condition_time(pod)
        or (pod.get("metadata") or {}).get("creationTimestamp")
    )
    code = terminated.get("exitCode")
    return {"exit_code": None if code is None else int(code), "reason": reason, "at": at}


def _latest_condition_time(obj: dict[str, Any]) -> str | None:
    times = [
        c.get("lastTransitionTime")
        for c in (obj.get("status") or {}).get("conditions") or []
        if c.get("lastTransitionTime")
    ]
    return max(times) if times else None


def pod_transitions(run: str, pod: dict[str, Any], product_of: ProductOf) -> list[Transition]:
    """The transitions one pod (an attempt) reports."""
    name = pod["metadata"]["name"]
    node = (pod.get("spec") or {}).get("nodeName")
    found: list[Transition] = []
    if node:
        scheduled = _condition(pod, "PodScheduled") or {}
        at = scheduled.get("lastTransitionTime") or (pod.get("status") or {}).get("startTime")
        body = {"attempt": name, "node": node, "gpus": _gpus(pod), "gpu_product": product_of(node)}
        found.append(Transition(run, "job-scheduled", body, at or "", f"scheduled/{name}"))
    state = _container(pod).get("state") or {}
    started = (state.get("running") or {}).get("startedAt") or (state.get("terminated") or {}).get(
        "startedAt"
    )
    if started:
        found.append(Transition(run, "job-started", {"attempt": name}, started, f"started/{name}"))
    end = attempt_end(pod)
    if end is not None:
        body = {"attempt": name, "exit_code": end["exit_code"], "reason": end["reason"]}
        found.append(
            Transition(run, "job-attempt-failed", body, end["at"] or "", f"attempt-failed/{name}")
        )
    return found


def job_transitions(
    run: str, job: dict[str, Any], pods: Iterable[dict[str, Any]]
) -> list[Transition]:
    """The job's end, if it ended: succeeded, or failed with its last attempt's end."""
    pods = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
    complete = _condition(job, "Complete")
    if complete is not None:
        winner = next(
            (p for p in reversed(pods) if (p.get("status") or {}).get("phase") == "Succeeded"),
            None,
        )
        body: dict[str, Any] = {"exit_code": 0}
        if winner is not None:
            body["attempt"] = winner["metadata"]["name"]
        at = complete.get("lastTransitionTime") or (job.get("status") or {}).get("completionTime")
        return [Transition(run, "job-succeeded", body, at or "", "job-succeeded")]
    failed = _condition(job, "Failed")
    if failed is not None:
        ends = [e for e in (attempt_end(p) for p in pods) if e is not None]
        last = ends[-1] if ends else {}
        body = {
            "reason": failed.get("reason") or "Failed",
            "exit_code": last.get("exit_code"),
            "attempt_reason": last.get("reason"),
        }
        at = failed.get("lastTransitionTime") or ""
        return [Transition(run, "job-failed", body, at, "job-failed")]
    return []


def transitions(
    job: dict[str, Any] | None, pods: Iterable[dict[str, Any]], product_of: ProductOf
) -> list[Transition]:
    """Every transition a Job and its pods report, in the order they happened."""
    pods = list(pods)
    run = run_of_object(job) if job is not None else None
    if run is None and pods:
        run = run_of_object(pods[0])
    if run is None:
        return []
    found = [t for pod in pods for t in pod_transitions(run, pod, product_of)]
    if job is not None:
        found += job_transitions(run, job, pods)
    return sorted((t for t in found if t.occurred_at), key=lambda t: (t.occurred_at, ORDER[t.type]))
