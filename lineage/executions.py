"""The executions projection: the job that executes each run, from its ``job-*`` events.

One row per run (``run_executions``): what its executor submitted (executor, target,
name, image, command, resources, retries, deadline and the spec's digest) and what the
platform reported since: the job's status, how many attempts were scheduled, the node
and GPUs of the last one, and how the job ended (reason, exit code, the last attempt's
reason). The ledger's checks (``registry.ledger``) keep the events in an order this
projection can follow: a run's job is submitted once, while the run runs, and nothing
follows its end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

from registry.canonical import canonical_text
from registry.events import StoredEvent
from registry.projection import Projection
from registry.store.raw import Raw, placeholders

#: The statuses of a job, in the order a job usually goes through them.
STATUSES = ("submitted", "scheduled", "running", "retrying", "succeeded", "failed", "cancelled")
#: The statuses a job ends in: no job event follows one.
ENDED = frozenset({"succeeded", "failed", "cancelled"})
#: The event types of a run's job, in the order of the catalogue.
JOB_TYPES = (
    "job-submitted",
    "job-scheduled",
    "job-started",
    "job-attempt-failed",
    "job-succeeded",
    "job-failed",
    "job-cancelled",
)
#: The columns of ``run_executions``, in table order.
COLUMNS = (
    "run",
    "project",
    "executor",
    "target",
    "name",
    "image",
    "command",
    "resources",
    "retries",
    "deadline_s",
    "spec_digest",
    "status",
    "attempts",
    "attempt",
    "node",
    "gpus",
    "gpu_product",
    "reason",
    "exit_code",
    "attempt_reason",
    "submitted_at",
    "scheduled_at",
    "started_at",
    "ended_at",
    "submitted_pos",
    "position",
)
INSERT = f"INSERT INTO run_executions ({', '.join(COLUMNS)}) VALUES ({placeholders(len(COLUMNS))})"


def _dumps(value: Any) -> str:
    """A JSON column's text: RFC 8785 (canonical), as the exports promise."""
    return canonical_text(value)[0]


Handler = Callable[[Raw, StoredEvent], None]


class Executions(Projection):
    """The job of each run: as submitted, and as the platform reported it since.

    Job events are few (a handful per run): each is applied with plain statements, in
    order, and a row written at once is read back by the next event of the batch."""

    name = "executions"
    tables = ("run_executions",)

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        handlers = self.handlers()
        raw = Raw(conn)
        for event in events:
            handler = handlers.get(event.type)
            if handler is not None:
                handler(raw, event)

    def handlers(self) -> dict[str, Handler]:
        return {
            "job-submitted": self._submitted,
            "job-scheduled": self._scheduled,
            "job-started": self._started,
            "job-attempt-failed": self._attempt_failed,
            "job-succeeded": self._succeeded,
            "job-failed": self._failed,
            "job-cancelled": self._cancelled,
        }

    def _submitted(self, raw: Raw, e: StoredEvent) -> None:
        b = e.body
        resources = {"cpu": None, "memory": None, "gpus": 0, "gpu_product": None}
        resources.update(b.get("resources") or {})
        row = {
            "run": e.entity,
            "project": e.project,
            "executor": b["executor"],
            "target": b["target"],
            "name": b["name"],
            "image": b.get("image"),
            "command": _dumps(list(b["command"])),
            "resources": _dumps(resources),
            "retries": b.get("retries", 0),
            "deadline_s": b.get("deadline_s"),
            "spec_digest": b["spec_digest"],
            "status": "submitted",
            "attempts": 0,
            "attempt": None,
            "node": None,
            "gpus": None,
            "gpu_product": None,
            "reason": None,
            "exit_code": None,
            "attempt_reason": None,
            "submitted_at": e.occurred_at,
            "scheduled_at": None,
            "started_at": None,
            "ended_at": None,
            "submitted_pos": e.position,
            "position": e.position,
        }
        raw.run(INSERT, tuple(row[c] for c in COLUMNS))

    @staticmethod
    def _update(raw: Raw, e: StoredEvent, changes: dict[str, Any], *extra: str) -> None:
        """Set ``changes`` (and the position of ``e``) on the row of ``e``'s run;
        ``extra`` are SQL assignments written as they are."""
        assignments = [f"{column} = ?" for column in changes] + list(extra) + ["position = ?"]
        raw.run(
            f"UPDATE run_executions SET {', '.join(assignments)} WHERE run = ?",
            (*changes.values(), e.position, e.entity),
        )

    def _scheduled(self, raw: Raw, e: StoredEvent) -> None:
        b = e.body
        # A new attempt: what the last one's exit said no longer describes it.
        self._update(
            raw,
            e,
            {
                "status": "scheduled",
                "attempt": b["attempt"],
                "node": b["node"],
                "gpus": b["gpus"],
                "gpu_product": b.get("gpu_product"),
                "exit_code": None,
                "attempt_reason": None,
                "scheduled_at": e.occurred_at,
            },
            "attempts = attempts + 1",
        )

    def _started(self, raw: Raw, e: StoredEvent) -> None:
        self._update(
            raw,
            e,
            {"status": "running", "attempt": e.body["attempt"], "started_at": e.occurred_at},
        )

    def _attempt_failed(self, raw: Raw, e: StoredEvent) -> None:
        b = e.body
        self._update(
            raw,
            e,
            {
                "status": "retrying",
                "attempt": b["attempt"],
                "exit_code": b.get("exit_code"),
                "attempt_reason": b.get("reason"),
            },
        )

    def _succeeded(self, raw: Raw, e: StoredEvent) -> None:
        b = e.body
        changes: dict[str, Any] = {
            "status": "succeeded",
            "exit_code": b.get("exit_code", 0),
            "attempt_reason": None,
            "ended_at": e.occurred_at,
        }
        if b.get("attempt") is not None:
            changes["attempt"] = b["attempt"]
        self._update(raw, e, changes)

    def _failed(self, raw: Raw, e: StoredEvent) -> None:
        b = e.body
        self._update(
            raw,
            e,
            {
                "status": "failed",
                "reason": b["reason"],
                "exit_code": b.get("exit_code"),
                "attempt_reason": b.get("attempt_reason"),
                "ended_at": e.occurred_at,
            },
        )

    def _cancelled(self, raw: Raw, e: StoredEvent) -> None:
        self._update(
            raw,
            e,
            {"status": "cancelled", "reason": e.body.get("reason"), "ended_at": e.occurred_at},
        )
