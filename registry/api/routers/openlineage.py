"""OpenLineage compatibility: events in (``POST /api/v1/lineage``, the official
clients' default endpoint), Marquez-shaped lineage out, and our own runs,
models and deployments emitted as OpenLineage events."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import StreamingResponse

from lineage import openlineage
from registry.api.deps import LedgerDep, Principal, allow, allow_own
from registry.api.schemas import Positions

router = APIRouter(tags=["openlineage"])


@router.post("/lineage", response_model=Positions, status_code=status.HTTP_201_CREATED)
def ingest(
    event: Annotated[
        dict[str, Any],
        Body(description="A RunEvent, DatasetEvent or JobEvent (OpenLineage 2-0-x)."),
    ],
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("write", "openlineage.ingest")],
) -> Positions:
    """Record an OpenLineage event in the key's project. Sending it again is harmless."""
    openlineage.validate(event)
    batch = openlineage.to_events(ledger, who.project, who.actor, event)
    # Its ids are derived from the document: the first event to claim a run start or end
    # stands, a later one claiming it (a retry, or a concurrent request) is skipped.
    return Positions(positions=ledger.append(batch, first_wins=True))


@router.get("/lineage", response_model=dict[str, Any])
def marquez_lineage(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "openlineage.lineage")],
    node_id: Annotated[
        str,
        Query(
            alias="nodeId",
            min_length=1,
            max_length=1000,
            description="dataset:<namespace>:<name> or job:<namespace>:<name>",
        ),
    ],
    depth: Annotated[int, Query(ge=0, le=100)] = 20,
) -> dict[str, Any]:
    """The lineage graph around a dataset or job, in the shape Marquez answers."""
    return openlineage.marquez_graph(ledger, who.project, node_id, depth)


@router.get(
    "/projects/{project}/openlineage",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def emit(
    ledger: LedgerDep,
    who: Annotated[Principal, allow("audit", "openlineage.export")],
    since: Annotated[int, Query(ge=0, le=2**62, description="First log position.")] = 0,
) -> StreamingResponse:
    """The project's runs, models and deployments as OpenLineage RunEvents, one JSON
    document per line."""

    documents = openlineage.emit(ledger, who.project, since=since)
    # The first document is made before the answer starts, so an error there is still
    # answered with problem details instead of a cut stream.
    first = next(documents, None)

    def lines() -> Iterator[bytes]:
        if first is None:
            return
        for document in itertools.chain([first], documents):
            yield json.dumps(document, separators=(",", ":")).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
