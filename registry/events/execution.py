"""The event types of dispatched jobs: what an executor (``executors``) asked for when it
submitted a run's job, and what the platform then reported the job did: where it was
scheduled (node, GPUs), when it started, how it ended (exit code and reason) or that it
was cancelled. Each is an event of the run the job executes. ``deployment-drifted``
is an event of a deployment: a change to its Kubernetes objects made by someone else.

They hold what the platform reported, never what was asked, except ``job-submitted``,
which is the request and its digest. No free text from the job travels in them (a
container's messages may hold anything): a reason is one of the platform's short,
fixed words.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from registry.events.catalogue import (
    Body,
    Part,
    check_model,
    event_type,
    optional,
    validates,
)

#: A platform's short reason word: ``OOMKilled``, ``DeadlineExceeded``, ``Evicted``...
REASON_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,79}$")
#: A Kubernetes object name (RFC 1123 subdomain), or a local job's name.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_reason(value: str) -> str:
    """A field check: a platform's reason word, never free text."""
    if not REASON_RE.match(value):
        raise ValueError(
            "expected a short reason word (letters, digits, '_.:-', at most 80 characters), "
            "never free text"
        )
    return value


class Resources(Part):
    """What a job asked of the platform for each attempt."""

    cpu: str | None = Field(default=None, max_length=32, description="CPU request ('2', '500m').")
    memory: str | None = Field(
        default=None, max_length=32, description="Memory request ('8Gi', '512Mi')."
    )
    gpus: int = Field(default=0, ge=0, le=1024, strict=True, description="nvidia.com/gpu count.")
    gpu_product: str | None = Field(
        default=None,
        max_length=128,
        description="GPU product the job was pinned to (a node label value), if any.",
    )


@event_type("job-submitted", entity="run")
class JobSubmitted(Body):
    """An executor submitted the run's job: where, under which name, from which image
    and command, with which resources and limits, and the digest of the exact spec it
    submitted (the Kubernetes manifest, or the local executor's spec), so the spec
    can be checked later against what was kept."""

    executor: Literal["local", "kubernetes"] = Field(description="Which executor.")
    target: str = Field(
        min_length=1,
        max_length=300,
        description="Where: the Kubernetes server and namespace, or the local host.",
    )
    name: str = Field(description="The job's object name (derived from the run id).")
    image: str | None = Field(default=None, max_length=500, description="Container image.")
    command: tuple[str, ...] = Field(
        min_length=1, max_length=64, description="Command and arguments, as submitted."
    )
    resources: Resources = Field(default_factory=Resources, description="Per attempt.")
    retries: int = Field(
        default=0, ge=0, le=100, strict=True, description="Attempts after the first."
    )
    deadline_s: int | None = Field(
        default=None, ge=1, strict=True, description="Seconds the whole job may run."
    )
    ttl_s: int | None = Field(
        default=None, ge=0, strict=True, description="Seconds the platform keeps it after it ends."
    )
    spec_digest: str = Field(description="sha256 of the canonical JSON of the submitted spec.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("expected a lowercase RFC 1123 name (letters, digits, '-', '.')")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(part) > 4096 for part in value):
            raise ValueError("an argument is longer than 4096 characters")
        return value

    @field_validator("spec_digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not DIGEST_RE.match(value):
            raise ValueError("expected 'sha256:' and 64 lowercase hex digits")
        return value


class Attempt(Body):
    """Base of the events about one attempt (a pod, or a local process) of a job."""

    attempt: str = Field(
        min_length=1, max_length=253, description="The attempt: its pod's name, or local pid."
    )


@event_type("job-scheduled", entity="run")
class JobScheduled(Attempt):
    """The platform placed an attempt of the run's job on a node, with the GPUs it
    reported for that node."""

    node: str = Field(min_length=1, max_length=253, description="The node it runs on.")
    gpus: int = Field(ge=0, le=1024, strict=True, description="GPUs the attempt holds.")
    gpu_product: str | None = Field(
        default=None,
        max_length=128,
        description="The node's GPU product label (nvidia.com/gpu.product), when read.",
    )


@event_type("job-started", entity="run")
class JobStarted(Attempt):
    """An attempt's container started running."""


@event_type("job-attempt-failed", entity="run")
class JobAttemptFailed(Attempt):
    """An attempt ended without success; the job may retry."""

    exit_code: int | None = Field(default=None, strict=True, description="Container exit code.")
    reason: str | None = Field(
        default=None,
        description="The platform's reason: OOMKilled, Error, Evicted, Preempted, ...",
    )

    _reason = validates("reason", optional(check_reason))


@event_type("job-succeeded", entity="run")
class JobSucceeded(Body):
    """The job completed: its last attempt exited 0."""

    attempt: str | None = Field(default=None, max_length=253, description="The attempt.")
    exit_code: int = Field(default=0, strict=True, description="Exit code of the attempt.")


@event_type("job-failed", entity="run")
class JobFailed(Body):
    """The job failed for good, with the platform's reason (BackoffLimitExceeded,
    DeadlineExceeded, ...) and the exit code and reason of its last attempt."""

    reason: str = Field(description="Why the job failed, as the platform said.")
    exit_code: int | None = Field(
        default=None, strict=True, description="Exit code of the last attempt, when it had one."
    )
    attempt_reason: str | None = Field(
        default=None, description="The last attempt's reason (OOMKilled, Evicted, ...)."
    )

    _reason = validates("reason", check_reason)
    _attempt_reason = validates("attempt_reason", optional(check_reason))


@event_type("job-cancelled", entity="run")
class JobCancelled(Body):
    """The job was cancelled (its attempts stopped, its objects deleted) by the event's
    actor."""

    reason: str | None = Field(default=None, max_length=200, description="Why, in a few words.")


#: How a served model version's Kubernetes Deployment was changed by someone else.
DriftChange = Literal["scaled", "image-changed", "deleted", "spec-changed"]
#: A field manager's name, as Kubernetes keeps it in ``metadata.managedFields``.
MANAGER_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,127}$")


@event_type("deployment-drifted", entity="deployment")
class DeploymentDrifted(Body):
    """A Kubernetes object serving the deployment was changed by someone other than the
    executor (``kubectl scale``, ``kubectl edit``, a patch) or deleted without the
    executor retiring it. The executor records the change and does not undo it; the
    traffic split that results is recorded as ``deployment-configured``. The event's
    actor is ``kubernetes:<manager>``."""

    change: DriftChange = Field(
        description="scaled (replicas), image-changed, deleted, or spec-changed (another field)."
    )
    object: str = Field(description="The Kubernetes Deployment's name.")
    model: str = Field(description="The model version the Deployment serves.")
    manager: str | None = Field(
        default=None,
        description="The field manager that made the change (metadata.managedFields), such "
        "as kubectl-scale or kubectl-edit; null when unknown (a deletion).",
    )
    before: int | str | None = Field(
        default=None,
        description="What the executor had set: replicas (scaled), image (image-changed); "
        "null for deleted and spec-changed.",
    )
    after: int | str | None = Field(
        default=None,
        description="What Kubernetes reports now: replicas (scaled), image (image-changed), "
        "the spec fields the manager set, comma-separated (spec-changed); null once deleted.",
    )

    _model = validates("model", check_model)

    @field_validator("object")
    @classmethod
    def _object(cls, value: str) -> str:
        if not NAME_RE.match(value) or len(value) > 253:
            raise ValueError("expected a lowercase RFC 1123 name (letters, digits, '-', '.')")
        return value

    @field_validator("manager")
    @classmethod
    def _manager(cls, value: str | None) -> str | None:
        if value is not None and not MANAGER_RE.match(value):
            raise ValueError("expected a field manager's name: 1-128 printable characters")
        return value

    @field_validator("before", "after")
    @classmethod
    def _small(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and len(value) > 500:
            raise ValueError("expected at most 500 characters (replicas or an image)")
        return value
