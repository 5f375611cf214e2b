"""OpenLineage compatibility: events in (``POST /api/v1/lineage``, the official
clients' default endpoint), Marquez-shaped lineage out, and our own runs,
models and deployments emitted as OpenLineage events."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urljoin

import orjson
from fastapi import APIRouter, Body, Query, status
from fastapi.responses import Response, StreamingResponse

from lineage import openlineage
from lineage.answers import MarquezLineage
from registry.api.deps import LedgerDep, Principal, allow, allow_own
from registry.api.problems import responses
from registry.api.schemas import TEXT_PATTERN, TIME_PATTERN, URL_TEXT_PATTERN, Positions, Time

router = APIRouter(tags=["openlineage"])
#: A character the gate lets through in a URL (no control character).
_URL_TEXT = URL_TEXT_PATTERN[1:-2]
_COMPONENTS = "#/components/schemas/"


def _schemas() -> dict[str, dict[str, Any]]:
    """The OpenLineage schemas the ledger checks events against, as OpenAPI components:
    each definition of the spec (``OpenLineage.RunEvent``, ...) and of the facets it
    checks (``ParentRunFacet.ParentRunFacet``, ...), references pointed at them, with
    the checked facets declared where they live and times held to years 1 to 9999."""
    documents = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(openlineage.SCHEMAS.rglob("*.json"))
    ]
    names = {}
    for document in documents:
        stem = document["$id"].rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
        stem = stem.split(":")[-2] if stem.startswith("urn:") else stem
        for definition in document["$defs"]:
            names[(document["$id"], definition)] = f"{stem}.{definition}"

    def pointed(node: Any, base: str) -> Any:
        if isinstance(node, list):
            return [pointed(item, base) for item in node]
        if not isinstance(node, dict):
            return node
        found = {key: pointed(value, base) for key, value in node.items()}
        if found.get("format") not in (None, *openlineage.FORMATS.checkers):
            del found["format"]  # a format the ledger does not check (uri): any string
        if "$ref" in found:
            ref = found["$ref"]
            # urljoin leaves a fragment alone under a URN base ($id of mlledger's facets).
            target, _, fragment = (
                base + ref if ref.startswith("#") else urljoin(base, ref)
            ).partition("#")
            found["$ref"] = _COMPONENTS + names[(target, fragment.removeprefix("/$defs/"))]
        return found

    schemas = {
        names[(document["$id"], definition)]: pointed(schema, document["$id"])
        for document in documents
        for definition, schema in document["$defs"].items()
    }
    by_file = {
        path.relative_to(openlineage.SCHEMAS).as_posix(): json.loads(path.read_text("utf-8"))
        for path in openlineage.SCHEMAS.rglob("*.json")
    }
    where = {"run": "OpenLineage.Run", "dataset": "OpenLineage.Dataset"}
    member = {"run": "facets", "dataset": "facets", "output": "outputFacets"}
    for container, files in openlineage.CHECKED_FACETS.items():
        owner = where.get(container, "OpenLineage.OutputDataset")
        facets = _facet_map(schemas[owner], member[container])
        for key, file in files.items():
            document = by_file[file]
            checked = pointed(document["properties"][key], document["$id"])
            # A facet marked deleted is only a facet of its container.
            deleted = {
                "allOf": [
                    facets["additionalProperties"],
                    {"required": ["_deleted"], "properties": {"_deleted": {"const": True}}},
                ]
            }
            facets.setdefault("properties", {})[key] = {"anyOf": [checked, deleted]}
    base = schemas["OpenLineage.BaseEvent"]["properties"]
    base["eventTime"]["pattern"] = TIME_PATTERN
    # Text the ledger stores in columns of its own (event bodies, names): no NUL.
    parent = schemas["ParentRunFacet.ParentRunFacet"]["allOf"][1]["properties"]["job"]
    for holder, fields in (
        (base, ("producer", "schemaURL")),
        (schemas["OpenLineage.Dataset"]["properties"], ("namespace", "name")),
        (schemas["OpenLineage.Job"]["properties"], ("namespace", "name")),
        (parent["properties"], ("namespace", "name")),
    ):
        for field in fields:
            holder[field]["pattern"] = TEXT_PATTERN
    return schemas


def _facet_map(schema: dict[str, Any], member: str) -> dict[str, Any]:
    """The object schema of the facet map ``member`` in ``schema`` (directly, or in the
    last part of its ``allOf``), as the OpenLineage spec writes them."""
    parts = schema.get("allOf", [schema])
    holder = next(p for p in reversed(parts) if member in p.get("properties", {}))
    facets: dict[str, Any] = holder["properties"][member]["anyOf"][0]
    return facets


#: Components of the OpenAPI document (``registry.api.openapi.complete`` adds them).
SCHEMAS = _schemas()
_EVENT = {
    "description": "A RunEvent, DatasetEvent or JobEvent (OpenLineage 2-0-2): checked "
    "against the spec, with the facets the ledger reads checked against theirs.",
    "oneOf": [
        {"$ref": _COMPONENTS + "OpenLineage.RunEvent"},
        {"$ref": _COMPONENTS + "OpenLineage.DatasetEvent"},
        {"$ref": _COMPONENTS + "OpenLineage.JobEvent"},
    ],
}


@router.post(
    "/lineage",
    response_model=Positions,
    status_code=status.HTTP_201_CREATED,
    responses=responses("event-rejected", "conflict"),
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": copy.deepcopy(_EVENT)}}}
    },
)
def ingest(
    event: Annotated[
        dict[str, Any],
        Body(description="A RunEvent, DatasetEvent or JobEvent (OpenLineage 2-0-x)."),
    ],
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("write", "openlineage.ingest")],
) -> Response:
    """Record an OpenLineage event in the key's project. Sending it again is harmless."""
    batch = openlineage.to_events(ledger, who.project, who.actor, event)  # checks it first
    # Its ids are derived from the document: the first event to claim a run start or end
    # stands, a later one claiming it (a retry, or a concurrent request) is skipped.
    positions = ledger.append(batch, first_wins=True)
    # Producers send one request per event: the answer (a list of integers, ``Positions``)
    # is written directly rather than checked against its model on every request.
    return Response(
        orjson.dumps({"positions": positions}),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
    )


@router.get(
    "/lineage",
    response_model=MarquezLineage,
    responses=responses("invalid-node-id", "not-found"),
)
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
            json_schema_extra={"pattern": f"^(dataset|job):{_URL_TEXT}*:{_URL_TEXT}*$"},
        ),
    ],
    depth: Annotated[int, Query(ge=0, le=100)] = 20,
    as_of: Annotated[
        Time | None,
        Query(
            alias="asOf",
            description="The graph as it stood at this time (RFC 3339); not a Marquez "
            "parameter: Marquez's readers leave it out.",
        ),
    ] = None,
) -> dict[str, Any]:
    """The lineage graph around a dataset or job, in the shape Marquez answers; with
    ``asOf``, as it stood at that time."""
    return openlineage.marquez_graph(ledger, who.project, node_id, depth, as_of)


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
