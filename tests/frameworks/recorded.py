"""What the framework tests read back from the ledger: a run's events, and the
batches a connection appended."""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.events import StoredEvent
from registry.sdk import Registry


@dataclass
class Appends:
    """The batches a connection appended: the event types of each."""

    batches: list[list[str]] = field(default_factory=list)

    def with_type(self, kind: str) -> list[list[str]]:
        return [batch for batch in self.batches if kind in batch]


def run_events(reg: Registry, run: str) -> list[StoredEvent]:
    """The events of ``run`` and of the model versions it registered, in log order."""
    return [e for e in reg.ledger.tail() if e.entity == run or e.body.get("run") == run]


def only(events: list[StoredEvent], kind: str) -> list[StoredEvent]:
    return [e for e in events if e.type == kind]


def started_run(reg: Registry) -> StoredEvent:
    """The one run-started event of the ledger."""
    (started,) = [e for e in reg.ledger.tail() if e.type == "run-started"]
    return started
