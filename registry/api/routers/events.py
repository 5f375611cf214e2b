"""Batches of events in, the project's log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry import intake, writes
from registry.api.deps import Asking, asking
from registry.api.problems import answering
from registry.api.schemas import EventBatch, EventsPublic, Positions, StoredEventPublic

router = APIRouter(prefix="/projects/{project}", tags=["events"])


@router.post("/events", **answering(Positions, "event-rejected", "conflict"))
def append_events(
    batch: EventBatch, ask: Annotated[Asking, asking("write", "events.append")]
) -> Positions:
    """Append a batch atomically: all its events or none. Re-sending a batch is harmless
    (events are keyed by ``event_id``). This is what the SDK sends in HTTP mode."""
    items = [
        intake.from_wire(
            e.model_dump(), i, project=ask.who.project, actor=ask.who.actor_for(e.actor)
        )
        for i, e in enumerate(batch.events)
    ]
    return Positions(positions=writes.append(ask.ledger, items))


@router.get("/events", response_model=EventsPublic)
def read_events(
    ask: Annotated[Asking, asking("audit", "events.read")],
    since: Annotated[int, Query(ge=0, le=2**62, description="First position.")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> EventsPublic:
    """The project's events from position ``since`` on (payloads left out)."""
    found: list[StoredEventPublic] = []
    start = since
    head = ask.ledger.head()
    while len(found) < limit and start <= head:
        chunk = ask.ledger.read(start, 2000)
        if not chunk:
            break
        for event in chunk:
            start = event.position + 1
            if event.project == ask.who.project:
                found.append(StoredEventPublic(**event.as_dict()))
                if len(found) == limit:
                    break
    return EventsPublic(events=found, next=start)
