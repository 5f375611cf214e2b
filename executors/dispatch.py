"""The dispatcher: submits a run's job through an executor and records in the ledger,
through the SDK, what the platform reports.

Submission, in an order that a crash at any point leaves recoverable:

1. the executor makes the job's objects, not started (a suspended Job), named after
   the new run id;
2. ``run-started`` (and ``run-inputs-used``) and ``job-submitted`` are appended in one
   batch, with the digest of the exact spec submitted;
3. the executor releases the job (its Secret made, the Job resumed).

``recover()`` finishes or cleans up what a crash left: objects whose run never reached
the ledger are removed; a submitted job that was never released is released.

Recording: each ``Transition`` becomes one event whose id is derived from what it
reports, so a transition reported again is appended once. A job's end also ends its
run (``run-completed`` or ``run-failed``) unless the run already ended.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from executors.base import Executor, Transition, event_id
from executors.spec import JobSpec, RunContext, object_name
from registry import writes
from registry.canonical import canonical_json
from registry.errors import Conflict, EventRejected, NotFound
from registry.ids import run_id
from registry.timeutil import now
from registry.tracing import inject, span

if TYPE_CHECKING:
    from registry.sdk import Registry

log = logging.getLogger(__name__)

#: The run's status once its job ended, by the job's terminal event.
RUN_END = {
    "job-succeeded": "run-completed",
    "job-failed": "run-failed",
    "job-cancelled": "run-failed",
}
#: A job's status in the ledger once it ended.
ENDED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Submission:
    """A submitted job: its run, its objects' name, the digest of what was submitted
    and the log position of its ``job-submitted`` event."""

    run: str
    name: str
    spec_digest: str
    position: int


def reachable(url: str) -> str:
    """The ledger's URL as a job's process, started in another directory, reaches it: an
    SQLite file by its absolute path."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return url


def spec_digest(rendered: dict[str, Any]) -> str:
    """``sha256:`` of the canonical JSON (RFC 8785) of a submitted spec."""
    return "sha256:" + hashlib.sha256(canonical_json(rendered)).hexdigest()


def traceparent(run: str) -> str:
    """The W3C ``traceparent`` a job carries: the caller's trace when there is one, else
    a trace whose id is the run's UUID (so the job's spans name their run)."""
    carried = inject({}).get("traceparent")
    if carried:
        return carried
    return f"00-{uuid.UUID(run.removeprefix('run:')).hex}-{secrets.token_hex(8)}-01"


class Dispatcher:
    """Jobs of one project, through one executor, recorded through one SDK connection."""

    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        *,
        ledger_url: str,
        api_key: str | None = None,
    ):
        self.registry = registry
        self.executor = executor
        self.ledger_url = reachable(ledger_url)
        self.api_key = api_key
        # Event ids recorded, by run, while the run's job runs; then only that it ended.
        self._recorded: dict[str, set[str]] = {}
        self._ended: set[str] = set()

    # --- submission ----------------------------------------------------------------------

    def context(self, run: str) -> RunContext:
        return RunContext(
            run=run,
            project=self.registry.project,
            actor=self.registry.actor,
            ledger_url=self.ledger_url,
            api_key=self.api_key,
            traceparent=traceparent(run),
        )

    def submit(self, spec: JobSpec, *, run: str | None = None) -> Submission:
        """Submit ``spec`` as a new run's job (``run``: a run id to use, for a caller
        that must know it first); return what was submitted."""
        run = run_id(uuid.UUID(run.removeprefix("run:"))) if run else run_id(uuid.uuid4())
        with span(
            "executor.submit", **{"mlledger.run": run, "mlledger.executor": self.executor.kind}
        ):
            context = self.context(run)
            rendered = self.executor.render(spec, context)
            digest = spec_digest(rendered)
            self.executor.create(rendered, context)
            # An interruption (Ctrl-C) leaves what ``recover()`` finishes or removes.
            try:
                position = self._append_submission(run, spec, digest)
            except Exception:
                # Nothing in the ledger: leave nothing on the platform either.
                self.executor.remove(run)
                raise
            try:
                self.executor.release(run, context)
            except Exception as exc:
                self.executor.remove(run)
                self._fail(run, "SubmissionFailed", f"{type(exc).__module__}.{type(exc).__name__}")
                raise
        return Submission(run, object_name(run), digest, position)

    def _append_submission(self, run: str, spec: JobSpec, digest: str) -> int:
        reg = self.registry
        tags = {**spec.tags, "mlledger.executor": self.executor.kind}
        started = {
            "job": spec.job,
            "params": spec.params,
            "code": {},
            "environment": {},
            "parent_run": None,
            "tags": tags,
        }
        submitted = {
            "executor": self.executor.kind,
            "target": self.executor.target,
            "name": object_name(run),
            # The local executor runs the command on its host: no image is used.
            "image": spec.image if self.executor.kind == "kubernetes" else None,
            "command": list(spec.command),
            "resources": spec.resources(),
            "retries": spec.retries,
            "deadline_s": spec.deadline_s,
            "ttl_s": spec.ttl_s,
            "spec_digest": digest,
        }
        events = [writes.event(reg, "run-started", run, started)]
        if spec.inputs:
            events.append(writes.event(reg, "run-inputs-used", run, {"inputs": list(spec.inputs)}))
        events.append(writes.event(reg, "job-submitted", run, submitted))
        return reg.backend.append(reg.project, events)[-1]

    def _fail(self, run: str, reason: str, error_type: str) -> None:
        """Record that ``run``'s job failed before it could start."""
        self.record(
            [Transition(run, "job-failed", {"reason": reason}, now())], error_type=error_type
        )

    # --- recording -----------------------------------------------------------------------

    def record(self, transitions: Iterable[Transition], *, error_type: str | None = None) -> int:
        """Append each transition not yet recorded (by its event id); a terminal one
        also ends the run. Return how many events were appended."""
        appended = 0
        for t in transitions:
            ident = t.event_id
            if t.run in self._ended or ident in self._recorded.get(t.run, ()):
                continue
            appended += self._record_one(t, error_type)
            self._recorded.setdefault(t.run, set()).add(ident)
            if t.terminal:
                self._ended.add(t.run)
                self._recorded.pop(t.run, None)
        return appended

    def _record_one(self, t: Transition, error_type: str | None) -> int:
        reg = self.registry
        made = writes.event(reg, t.type, t.run, t.body, t.occurred_at, t.event_id)
        batch = [made]
        if t.terminal:
            end = RUN_END[t.type]
            body = {} if end == "run-completed" else {"error_type": error_type or _error_type(t)}
            batch.append(
                writes.event(reg, end, t.run, body, t.occurred_at, event_id(t.run, "run-end"))
            )
        try:
            reg.backend.append(reg.project, batch)
            return len(batch)
        except EventRejected as exc:
            if t.terminal and exc.index == 1:
                # The run ended already (its own code ended it): record the job's end alone.
                reg.backend.append(reg.project, batch[:1])
                return 1
            if not self.submitted(t.run):
                # A job of another project or ledger sharing the namespace: not ours.
                log.warning("not recorded: %s is no job of project %s", t.run, reg.project)
                self._forget(t.run)
                return 0
            if self.ended(t.run):
                # The platform reports on after the job's end (a cancelled job's pods
                # going away): the ledger keeps nothing after the end.
                log.info("not recorded, the job had ended: %s of %s", t.type, t.run)
                self._forget(t.run)
                return 0
            raise
        except Conflict:
            # The same transition recorded by another watcher with other content (a
            # different actor): the first one stands.
            log.info("already recorded by another writer: %s of %s", t.type, t.run)
            return 0

    def _forget(self, run: str) -> None:
        """Record nothing more about ``run``."""
        self._ended.add(run)
        self._recorded.pop(run, None)

    def known_ended(self, run: str) -> bool:
        """Whether this dispatcher recorded (or learnt of) the end of ``run``'s job."""
        return run in self._ended

    def ended(self, run: str) -> bool:
        """Whether the ledger holds the end of ``run``'s job."""
        if run in self._ended:
            return True
        try:
            return self.registry.job(run)["status"] in ENDED
        except NotFound:
            return False

    def sync(self, run: str) -> list[Transition]:
        """Record what the platform reports now for ``run``; return those transitions."""
        seen = self.executor.observe(run)
        self.record(seen)
        return seen

    def wait(
        self, run: str, *, timeout: float | None = None, poll: float = 0.2
    ) -> list[Transition]:
        """Record ``run``'s transitions until its job ends (or ``timeout`` seconds
        pass); return every transition seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seen = self.sync(run)
            if any(t.terminal for t in seen):
                return seen
            if deadline is not None and time.monotonic() > deadline:
                return seen
            time.sleep(poll)

    # --- cancellation and recovery -------------------------------------------------------

    def cancel(self, run: str, *, reason: str | None = None) -> bool:
        """Stop ``run``'s job, remove its objects and record ``job-cancelled`` (with the
        run failed); False when the job had already ended (nothing to cancel)."""
        run = run_id(uuid.UUID(run.removeprefix("run:")))
        self.record(self.executor.observe(run))
        if run in self._ended:
            return False
        if not self.executor.cancel(run):
            raise NotFound(f"no job for run {run} in {self.executor.target}")
        body = {"reason": reason} if reason else {}
        self.record(
            [Transition(run, "job-cancelled", body, now())], error_type="mlledger.JobCancelled"
        )
        return True

    def submitted(self, run: str) -> bool:
        """Whether the ledger holds ``run``'s ``job-submitted``."""
        try:
            self.registry.job(run)
        except NotFound:
            return False
        return True

    def recover(self) -> dict[str, list[str]]:
        """Finish or clean up what an interrupted submission left: objects of runs whose
        ``job-submitted`` is not in the ledger are removed; submitted jobs never
        released are released. Return the runs of each."""
        removed, released = [], []
        for found in self.executor.made():
            if not self.submitted(found.run):
                self.executor.remove(found.run)
                removed.append(found.run)
            elif not found.released and not found.finished:
                self.executor.release(found.run, self.context(found.run))
                released.append(found.run)
        return {"removed": removed, "released": released}


def _error_type(t: Transition) -> str:
    """A failed job's ``run-failed`` error type: the platform's reason, qualified."""
    reason = t.body.get("attempt_reason") or t.body.get("reason") or "Failed"
    return f"job.{reason}"
