"""The executor interface: what the dispatcher (``executors.dispatch``) asks of a place
that runs jobs, and the ``Transition`` it reports back.

An executor makes a job's objects without starting them (``create``), lets them start
(``release``), and reports what the platform says happened (``observe``, or a stream
for a watcher). It never writes to the ledger: the dispatcher does, from what the
executor reports.

A transition carries its own identity (``key``), from which its event id is derived,
so the same transition reported twice (a watcher restarted, a relist, two watchers)
is the same event, appended once: the ledger writes nothing for an event id it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from executors.spec import JobSpec, RunContext

#: The namespace of the event ids derived from transitions (a fixed, random UUID).
EVENT_NAMESPACE = uuid.UUID("6f1c2b0e-3d4a-4f7b-9a51-0c8e2d7b5a13")
#: The transitions that end a job.
TERMINAL = frozenset({"job-succeeded", "job-failed", "job-cancelled"})

ExecutorKind = Literal["local", "kubernetes"]


def event_id(run: str, key: str) -> str:
    """The event id of the transition ``key`` of ``run``: the same on every report."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{run}/{key}"))


@dataclass(frozen=True)
class Transition:
    """Something the platform reported about a run's job: the event ``type`` with its
    ``body``, when it happened by the platform's clock, and its identity ``key`` (the
    type and the attempt it is about)."""

    run: str
    type: str
    body: dict[str, Any]
    occurred_at: str
    key: str = ""

    @property
    def event_id(self) -> str:
        return event_id(self.run, self.key or self.type)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL


@dataclass
class Made:
    """An object an executor made for a run, as the executor finds it."""

    run: str
    released: bool
    finished: bool = False


class Executor(Protocol):
    """A place that runs jobs."""

    kind: ExecutorKind

    @property
    def target(self) -> str:
        """Where jobs go, as ``job-submitted`` records it (server and namespace, host)."""
        ...

    def render(self, spec: JobSpec, context: RunContext) -> dict[str, Any]:
        """The exact object submitted for ``spec`` (its digest is recorded)."""
        ...

    def create(self, rendered: dict[str, Any], context: RunContext) -> None:
        """Make the job's objects without starting it; making them again is a no-op."""
        ...

    def release(self, run: str, context: RunContext) -> None:
        """Let the job start (with what it needs: on Kubernetes, its Secret)."""
        ...

    def observe(self, run: str) -> list[Transition]:
        """Every transition the platform reports now for ``run``'s job, in order."""
        ...

    def cancel(self, run: str) -> bool:
        """Stop the job and remove its objects; False when there was none."""
        ...

    def logs(self, run: str, *, follow: bool = False) -> Iterator[str]:
        """The output of the job's latest attempt, line by line."""
        ...

    def made(self) -> list[Made]:
        """Every job object this executor made that still exists."""
        ...

    def remove(self, run: str) -> None:
        """Delete what was made for ``run`` (a submission that never reached the ledger)."""
        ...
