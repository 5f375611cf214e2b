"""Marquez's read API (v1), on the key's own project: the routes Marquez's web
interface and clients call, with Marquez's paths, parameters and shapes
(``lineage.openlineage.marquez``), so that a Marquez reader pointed at this server
works unchanged. Keys, roles and the access trail apply as on every route.

Namespaces and dataset names hold ``/`` and ``:`` (``s3://bucket``,
``orders/daily``); Marquez's readers send them percent-encoded in one path segment
(``s3:%2F%2Fbucket``), which the gate keeps as one segment (``MARQUEZ_PREFIXES``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from fastapi import APIRouter, Path, Query

from lineage.openlineage import marquez
from registry.api.deps import LedgerDep, Principal, allow_own
from registry.api.problems import responses
from registry.api.schemas import URL_TEXT_PATTERN, Time

router = APIRouter(tags=["marquez"])

_NAME: dict[str, Any] = {"min_length": 1, "max_length": 3072, "pattern": URL_TEXT_PATTERN}
Namespace = Annotated[str, Path(description="The namespace, percent-encoded.", **_NAME)]
JobName = Annotated[str, Path(description="The job's name, percent-encoded.", **_NAME)]
DatasetName = Annotated[str, Path(description="The dataset's name, percent-encoded.", **_NAME)]
Limit = Annotated[int, Query(ge=0, le=10_000, description="How many to return.")]
Offset = Annotated[int, Query(ge=0, le=2**31, description="How many to skip first.")]
_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
RunUuid = Annotated[str, Path(description="The run's id (a UUID).", pattern=_UUID)]
_NOT_FOUND = responses("not-found")


def _any_case(*words: str) -> str:
    """A pattern taking each of ``words`` in any case, as Marquez does."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in w) for w in words)
    return f"^({'|'.join(spelled)})$"


def _segment(value: str) -> str:
    """A path segment as sent, once the gate kept its encoded ``/`` (and ``%``)."""
    return unquote(value)


@router.get("/namespaces", responses=responses())
def namespaces(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.namespaces")],
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's NamespaceList: every namespace with a dataset or job of the key's
    project, by name (``totalCount`` added)."""
    return marquez.namespaces(ledger, who.project, limit=limit, offset=offset)


@router.get("/namespaces/{namespace}", responses=_NOT_FOUND)
def namespace(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.namespaces")],
    namespace: Namespace,
) -> dict[str, Any]:
    """Marquez's Namespace."""
    return marquez.namespace(ledger, who.project, _segment(namespace))


@router.get("/namespaces/{namespace}/jobs", responses=responses())
def jobs(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.jobs")],
    namespace: Namespace,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's JobList: the namespace's jobs by name, with ``totalCount``."""
    return marquez.jobs(ledger, who.project, _segment(namespace), limit=limit, offset=offset)


@router.get("/namespaces/{namespace}/jobs/{job}", responses=_NOT_FOUND)
def job(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.jobs")],
    namespace: Namespace,
    job: JobName,
) -> dict[str, Any]:
    """Marquez's Job, with its latest runs and the job facets of the latest."""
    return marquez.job(ledger, who.project, _segment(namespace), _segment(job))


@router.get("/namespaces/{namespace}/jobs/{job}/runs", responses=_NOT_FOUND)
def job_runs(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.runs")],
    namespace: Namespace,
    job: JobName,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's RunList: the job's runs, newest first, with ``totalCount``."""
    return marquez.job_runs(
        ledger, who.project, _segment(namespace), _segment(job), limit=limit, offset=offset
    )


@router.get("/namespaces/{namespace}/jobs/{job}/versions", responses=_NOT_FOUND)
def job_versions(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.jobs")],
    namespace: Namespace,
    job: JobName,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's JobVersionList: the job's versions (runs reading and writing the same
    datasets from the same code), newest first, with ``totalCount``."""
    return marquez.job_versions(
        ledger, who.project, _segment(namespace), _segment(job), limit=limit, offset=offset
    )


@router.get("/namespaces/{namespace}/jobs/{job}/versions/{version}", responses=_NOT_FOUND)
def job_version(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.jobs")],
    namespace: Namespace,
    job: JobName,
    version: Annotated[str, Path(description="The job version (a UUID).", pattern=_UUID)],
) -> dict[str, Any]:
    """Marquez's JobVersion, with its latest run."""
    return marquez.job_version_of(ledger, who.project, _segment(namespace), _segment(job), version)


@router.get("/runlineage/upstream", responses=_NOT_FOUND)
def run_upstream(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.runs")],
    run_id: Annotated[
        str, Query(alias="runId", pattern=_UUID, description="The run's id (a UUID).")
    ],
    depth: Annotated[int, Query(ge=0, le=100)] = 20,
) -> dict[str, Any]:
    """Marquez's UpstreamRunLineage: the run, the runs that wrote what it read, and
    theirs, to ``depth`` levels, nearest first."""
    return marquez.run_upstream(ledger, who.project, run_id, depth)


@router.get("/jobs/runs/{id}", responses=_NOT_FOUND)
def run(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.runs")],
    id: RunUuid,
) -> dict[str, Any]:
    """Marquez's Run, with the run facets its OpenLineage events carried."""
    return marquez.run(ledger, who.project, id)


@router.get("/jobs/runs/{id}/facets", responses=_NOT_FOUND)
def run_facets(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.runs")],
    id: RunUuid,
    type: Annotated[Literal["run", "job"], Query(description="Run or job facets.")] = "run",
) -> dict[str, Any]:
    """Marquez's FacetsResult: the run's (or its job's) facets, merged over its events
    in the order received."""
    return marquez.run_facets(ledger, who.project, id, type)


@router.get("/namespaces/{namespace}/datasets", responses=responses())
def datasets(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.datasets")],
    namespace: Namespace,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's DatasetList: the namespace's datasets by name, with ``totalCount``."""
    return marquez.datasets(ledger, who.project, _segment(namespace), limit=limit, offset=offset)


@router.get("/namespaces/{namespace}/datasets/{dataset}", responses=_NOT_FOUND)
def dataset(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.datasets")],
    namespace: Namespace,
    dataset: DatasetName,
) -> dict[str, Any]:
    """Marquez's Dataset: its latest version's fields, first and latest times."""
    return marquez.dataset(ledger, who.project, _segment(namespace), _segment(dataset))


@router.get("/namespaces/{namespace}/datasets/{dataset}/versions", responses=_NOT_FOUND)
def dataset_versions(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.datasets")],
    namespace: Namespace,
    dataset: DatasetName,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's DatasetVersionList: the dataset's versions, newest first."""
    return marquez.dataset_versions(
        ledger,
        who.project,
        _segment(namespace),
        _segment(dataset),
        limit=limit,
        offset=offset,
    )


@router.get("/namespaces/{namespace}/datasets/{dataset}/versions/{version}", responses=_NOT_FOUND)
def dataset_version(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.datasets")],
    namespace: Namespace,
    dataset: DatasetName,
    version: Annotated[str, Path(description="The version, percent-encoded.", **_NAME)],
) -> dict[str, Any]:
    """Marquez's DatasetVersion, with the run that created it."""
    return marquez.dataset_version(
        ledger, who.project, _segment(namespace), _segment(dataset), _segment(version)
    )


@router.get("/column-lineage", responses=responses("invalid-node-id", "not-found"))
def column_lineage(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.column_lineage")],
    node_id: Annotated[
        str,
        Query(
            alias="nodeId",
            min_length=1,
            max_length=3072,
            description="dataset:<namespace>:<name>, datasetField:<namespace>:<name>:<field> "
            "or job:<namespace>:<name>",
            pattern=f"^(dataset|datasetField|job):{URL_TEXT_PATTERN[1:-2]}*:{URL_TEXT_PATTERN[1:-2]}*$",
        ),
    ],
    depth: Annotated[int, Query(ge=0, le=100)] = 20,
    with_downstream: Annotated[bool, Query(alias="withDownstream")] = False,
) -> dict[str, Any]:
    """Marquez's column lineage graph: the fields the start's fields were made from
    (``columnLineage`` facets), and with ``withDownstream`` what they went into."""
    return marquez.column_lineage(ledger, who.project, node_id, depth, with_downstream)


@router.get("/sources", responses=responses())
def sources(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.sources")],
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's SourceList: the data sources (``dataSource`` facets) the key's project's
    datasets named, by name."""
    return marquez.sources(ledger, who.project, limit=limit, offset=offset)


@router.get("/sources/{source}", responses=_NOT_FOUND)
def source(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.sources")],
    source: Annotated[str, Path(description="The source's name, percent-encoded.", **_NAME)],
) -> dict[str, Any]:
    """Marquez's Source."""
    return marquez.source(ledger, who.project, _segment(source))


@router.get("/tags", responses=responses())
def tags(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.tags")],
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's TagList: the tags the key's project's OpenLineage events named (``tags``
    run, job and dataset facets), by name (``totalCount`` added)."""
    return marquez.tags(ledger, who.project, limit=limit, offset=offset)


@router.get("/search", responses=responses())
def search(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.search")],
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=1024,
            description="Part of a name: `%` matches any characters, `_` any one; "
            "case-insensitive.",
        ),
    ],
    filter: Annotated[
        str | None,
        Query(pattern=_any_case("dataset", "job"), description="`dataset` or `job`."),
    ] = None,
    sort: Annotated[
        str,
        Query(
            pattern=_any_case("name", "updated_at", "update_at"),
            description="`name`, or `updated_at` (newest first).",
        ),
    ] = "name",
    limit: Annotated[int, Query(ge=0, le=10_000)] = 10,
    namespace: Annotated[str | None, Query(max_length=3072, pattern=URL_TEXT_PATTERN)] = None,
    before: Annotated[date | None, Query(description="Updated before this day.")] = None,
    after: Annotated[date | None, Query(description="Updated after this day.")] = None,
) -> dict[str, Any]:
    """Marquez's SearchResultList: datasets and jobs of the key's project by name."""
    return marquez.search(
        ledger,
        who.project,
        q,
        filter=filter,
        sort=sort,
        limit=limit,
        namespace=namespace,
        before=before.isoformat() if before else None,
        after=after.isoformat() if after else None,
    )


@router.get("/events/lineage", responses=responses())
def lineage_events(
    ledger: LedgerDep,
    who: Annotated[Principal, allow_own("read", "marquez.events")],
    before: Annotated[Time | None, Query(description="Received events up to this time.")] = None,
    after: Annotated[Time | None, Query(description="Received events from this time.")] = None,
    sort_direction: Annotated[
        str,
        Query(
            alias="sortDirection", pattern=_any_case("asc", "desc"), description="`asc` or `desc`."
        ),
    ] = "desc",
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Marquez's LineageEventList: the OpenLineage events the key's project received,
    by ``eventTime``, as received (less the fields redacted on the way in)."""
    return marquez.lineage_events(
        ledger,
        who.project,
        before=before,
        after=after,
        sort_direction=sort_direction,
        limit=limit,
        offset=offset,
    )
