"""The plumbing every part of a ``Registry`` shares: its backend, project and actor,
events made and checked at the call, and the buffer of a run's records (appended with
the next write or question, on ``flush()``, or once ``FLUSH_AFTER_SECONDS`` have passed
since it began; see ``registry.sdk``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

from lineage import queries
from registry import writes
from registry.backend import Backend, LocalBackend
from registry.errors import ConfigError, EventRejected
from registry.events import NewEvent
from registry.ids import check_name, openlineage_id
from registry.intake import Item
from registry.ledger import Ledger
from registry.sdk.handles import Deployment

FLUSH_AFTER_SECONDS = 5.0


class Stamp(TypedDict, total=False):
    """When an event happened (default: now) and who did it (default: the connection's
    actor)."""

    occurred_at: Any
    actor: str | None


class Session:
    """A connection to the ledger for one project and actor: the base of ``Registry``."""

    def __init__(self, backend: Backend | Ledger, project: str, actor: str):
        self.backend: Backend = LocalBackend(backend) if isinstance(backend, Ledger) else backend
        self.project = check_name(project, "project")
        self.actor = actor
        self._pending: list[Item] = []
        self._pending_since = 0.0
        self._datasets: dict[str, dict[str, Any]] = {}

    @property
    def ledger(self) -> Ledger:
        """The ledger of a local connection (a connection to a server has none)."""
        if isinstance(self.backend, LocalBackend):
            return self.backend.ledger
        raise ConfigError("this connection talks to a server over HTTP: it has no local ledger")

    def close(self) -> None:
        """Append anything buffered and release the connection."""
        self.flush()
        self.backend.close()

    def _append(self, events: Sequence[Item]) -> list[int]:
        """Append buffered run events first, then ``events``, as one batch."""
        batch = [*self._pending, *events]
        try:
            positions = self.backend.append(self.project, batch)
        except EventRejected as exc:
            self._datasets.clear()  # it may know versions the refused batch held
            if exc.index < len(self._pending):
                # A buffered record the ledger refuses would block every later write:
                # drop it (the error says which) and keep the rest for the next append.
                del self._pending[exc.index]
            raise
        self._pending.clear()
        return positions[len(batch) - len(events) :]

    def _append_one(
        self, type: str, entity: str, body: Mapping[str, Any], **at: Unpack[Stamp]
    ) -> int:
        """Append one event of this connection (after anything buffered), made as the
        service layer makes it (``registry.writes.event``), at ``at["occurred_at"]``
        and by ``at["actor"]`` when given; its position."""
        actor = at.get("actor")
        by = writes.Author(self.project, actor) if actor else self
        return self._append([writes.event(by, type, entity, body, at.get("occurred_at"))])[0]

    def flush(self) -> None:
        """Append every buffered run event now."""
        if self._pending:
            self._append([])

    def _hold(self, event: NewEvent) -> None:
        """Buffer a run's record; flush when the buffer has waited long enough."""
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(event)
        if time.monotonic() - self._pending_since >= FLUSH_AFTER_SECONDS:
            self.flush()

    def buffered(self) -> int:
        """How many records are buffered (a mark for ``discard_buffered``)."""
        return len(self._pending)

    def discard_buffered(self, mark: int) -> None:
        """Drop the records buffered since ``buffered()`` returned ``mark``: a recording
        that failed half-way (its end could not be appended) leaves nothing behind for
        the next write to append, such as a run that never ends."""
        del self._pending[mark:]
        self._datasets.clear()

    def _hold_all(self, items: Sequence[Item]) -> None:
        """Buffer several records (a deferred registration) as ``_hold`` does one."""
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend(items)
        if time.monotonic() - self._pending_since >= FLUSH_AFTER_SECONDS:
            self.flush()

    def _deployment(self, deployment: Deployment | str) -> str:
        """The node id of a deployment handle, or of a deployment name or id."""
        if isinstance(deployment, Deployment):
            return deployment.id
        if openlineage_id(deployment):
            return deployment  # named as Marquez names it: the question resolves it
        return queries.resolve(deployment, "deployment", self.project)
