"""One node at a time: a run, a dataset version, a model version, a deployment.

Each function answers what the web interface's entity page of a node shows (and the
API's read route of the same node): the node's catalogue row, its neighbours in the
lineage graph, and, for models and deployments, their prediction volume per day. Every
list is bounded (``ENTITY_LIST_MAX``, ``SERIES_MAX``, ``METRIC_EVENTS_MAX``) and says
how many there are in all, so no node makes an answer slow or huge. Neighbours of
projects the asker may not read are counted (``withheld``), never shown.

The node must be of a project in ``visible`` (the projects the asking ``project`` may
read); NotFound otherwise, as for a node that does not exist.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, cast

from lineage.answers import (
    ENTITY_LIST_MAX,
    AliasMove,
    DatasetVersionAnswer,
    DayCount,
    DeploymentAnswer,
    MetricPoint,
    MetricSeries,
    ModelFlag,
    ModelVersionAnswer,
    ModelVolume,
    Neighbour,
    Neighbours,
    RunAnswer,
    ServedBy,
    ServingInterval,
    Volume,
)
from registry.errors import NotFound
from registry.store.raw import Raw

if TYPE_CHECKING:
    from registry.ledger import Ledger

#: How many of a run's run-metrics-logged events its series are read from (the first).
METRIC_EVENTS_MAX = 2_000
#: How many metrics of a run get a series, and how many points each keeps at most.
SERIES_MAX = 50
POINTS_MAX = 1_000
#: How many days back the daily prediction counts reach.
VOLUME_DAYS = 90
_GRAPH_KINDS = ("dataset", "run", "model", "deployment")


def _json(text: str | None) -> Any:
    return {} if text is None else json.loads(text)


def _neighbours(raw: Raw, node: str, side: str, visible: Collection[str]) -> Neighbours:
    """The nodes at the other end of ``node``'s edges: ``upstream`` (edges into it) or
    ``downstream`` (out of it), each once, oldest edge first, at most ENTITY_LIST_MAX."""
    here, there = ("dst", "src") if side == "upstream" else ("src", "dst")
    rows = raw.all(
        f"SELECT e.{there}, MIN(e.kind), MIN(e.opened_pos) AS opened, n.kind, n.label, "
        f"n.project FROM lineage_edges e LEFT JOIN lineage_nodes n ON n.id = e.{there} "
        f"WHERE e.{here} = ? GROUP BY e.{there}, n.kind, n.label, n.project ORDER BY opened",
        (node,),
    )
    shown: list[Neighbour] = []
    total = withheld = 0
    for other, edge, _, kind, label, project in rows:
        if project is not None and project not in visible:
            withheld += 1
            continue
        total += 1
        if len(shown) < ENTITY_LIST_MAX:
            node_kind = kind if kind in _GRAPH_KINDS else other.partition(":")[0]
            shown.append(
                Neighbour(id=other, kind=cast(Any, node_kind), label=label, edge=str(edge))
            )
    return Neighbours(total=total, nodes=shown, withheld=withheld)


def _sample(points: list[MetricPoint]) -> list[MetricPoint]:
    """At most POINTS_MAX of ``points``, evenly spaced, the first and last kept."""
    if len(points) <= POINTS_MAX:
        return points
    stride = (len(points) - 1) / (POINTS_MAX - 1)
    return [points[round(i * stride)] for i in range(POINTS_MAX)]


def run(ledger: Ledger, project: str, node: str, visible: Collection[str]) -> RunAnswer:
    """The run ``node`` of ``project``: its catalogue row, inputs, outputs and metric
    series (from its first METRIC_EVENTS_MAX run-metrics-logged events)."""
    with ledger.store.read() as conn:
        raw = Raw(conn)
        row = raw.one(
            "SELECT id, project, job, status, params, metrics, code, environment, tags, "
            "parent_run, actor, started_at, ended_at, error_type FROM cat_runs WHERE id = ?",
            (node,),
        )
        if row is None or row[1] not in visible:
            raise NotFound(f"no run {node} in project {project!r}")
        events = int(
            raw.scalar(
                "SELECT COUNT(*) FROM events WHERE entity = ? AND type = 'run-metrics-logged'",
                (node,),
            )
            or 0
        )
        logged = raw.all(
            "SELECT position, body FROM events WHERE entity = ? AND type = "
            "'run-metrics-logged' ORDER BY position LIMIT ?",
            (node, METRIC_EVENTS_MAX),
        )
        inputs = _neighbours(raw, node, "upstream", visible)
        outputs = _neighbours(raw, node, "downstream", visible)
    found: dict[str, list[MetricPoint]] = {}
    for position, body in logged:
        for metric in json.loads(body)["metrics"]:
            key = metric["key"]
            if key in found or len(found) < SERIES_MAX:
                found.setdefault(key, []).append(
                    MetricPoint(
                        step=metric.get("step"),
                        value=float(metric["value"]),
                        position=int(position),
                    )
                )
    series = [
        MetricSeries(key=key, points=_sample(points), total=len(points))
        for key, points in sorted(found.items())
    ]
    return RunAnswer(
        run=row[0],
        project=row[1],
        job=row[2],
        status=row[3],
        params=_json(row[4]),
        metrics=_json(row[5]),
        code=_json(row[6]),
        environment=_json(row[7]),
        tags=_json(row[8]),
        parent_run=row[9],
        started_by=row[10],
        started_at=row[11],
        ended_at=row[12],
        error_type=row[13],
        inputs=inputs,
        outputs=outputs,
        series=series,
        metric_events=events,
        metric_events_read=len(logged),
    )


def dataset(
    ledger: Ledger, project: str, node: str, visible: Collection[str]
) -> DatasetVersionAnswer:
    """The dataset version ``node`` of ``project``: identity, location, schema, record
    count, and what is upstream and downstream of it."""
    with ledger.store.read() as conn:
        raw = Raw(conn)
        row = raw.one(
            "SELECT d.id, d.project, d.name, d.version, d.digest, d.uri, d.schema, "
            "d.row_count, c.records, d.tags, d.registered_at, d.position FROM cat_datasets d "
            "LEFT JOIN dataset_record_counts c ON c.dataset = d.id WHERE d.id = ?",
            (node,),
        )
        if row is None or row[1] not in visible:
            raise NotFound(f"no dataset version {node} in project {project!r}")
        upstream = _neighbours(raw, node, "upstream", visible)
        downstream = _neighbours(raw, node, "downstream", visible)
    return DatasetVersionAnswer(
        dataset=row[0],
        project=row[1],
        name=row[2],
        version=row[3],
        digest=row[4],
        uri=row[5],
        schema_=None if row[6] is None else json.loads(row[6]),
        row_count=None if row[7] is None else int(row[7]),
        records=int(row[8] or 0),
        tags=_json(row[9]),
        registered_at=row[10],
        position=int(row[11]),
        upstream=upstream,
        downstream=downstream,
    )


def _since(days: int) -> str:
    """The first day of the last ``days`` days, today (UTC) included."""
    today = dt.datetime.now(dt.UTC).date()
    return (today - dt.timedelta(days=days - 1)).isoformat()


def _volume(raw: Raw, column: str, node: str, total: int) -> Volume:
    """Predictions per day of a model (``column`` model) or deployment over the last
    VOLUME_DAYS days, from the per-day counts the prediction index keeps (at most one
    row per deployment, model version and day: never the predictions themselves)."""
    since = _since(VOLUME_DAYS)
    rows = raw.all(
        f"SELECT day, SUM(n) FROM prediction_days WHERE {column} = ? AND day >= ? "
        "GROUP BY day ORDER BY day",
        (node, since),
    )
    return Volume(
        total=total,
        days=VOLUME_DAYS,
        since=since,
        daily=[DayCount(day=str(day), count=int(n)) for day, n in rows],
    )


def model(
    ledger: Ledger,
    project: str,
    node: str,
    visible: Collection[str],
    training: tuple[list[Any], int],
) -> ModelVersionAnswer:
    """The model version ``node`` of ``project``: identity, ``training`` (the trained-on
    answer's datasets and withheld count), alias moves, deployments, prediction volume
    and remediation flags."""
    with ledger.store.read() as conn:
        raw = Raw(conn)
        row = raw.one(
            "SELECT id, project, name, version, run, artifact_uri, artifact_digest, "
            "framework, tags, registered_at FROM cat_models WHERE id = ?",
            (node,),
        )
        if row is None or row[1] not in visible:
            raise NotFound(f"no model version {node} in project {project!r}")
        aliases = raw.all(
            "SELECT alias, moved_by, valid_from, valid_to FROM alias_history WHERE model = ? "
            "ORDER BY opened_pos, alias LIMIT ?",
            (node, ENTITY_LIST_MAX),
        )
        served_total = int(
            raw.scalar("SELECT COUNT(*) FROM deployment_history WHERE model = ?", (node,)) or 0
        )
        served = raw.all(
            "SELECT deployment, traffic, endpoint, valid_from, valid_to FROM "
            "deployment_history WHERE model = ? ORDER BY opened_pos DESC, deployment LIMIT ?",
            (node, ENTITY_LIST_MAX),
        )
        total = int(
            raw.scalar("SELECT SUM(n) FROM prediction_counts WHERE model = ?", (node,)) or 0
        )
        volume = _volume(raw, "model", node, total)
        flags = raw.all(
            "SELECT erasure, status, justification, approver, flagged_pos, resolved_by, "
            "resolved_pos FROM remediations WHERE model = ? ORDER BY flagged_pos LIMIT ?",
            (node, ENTITY_LIST_MAX),
        )
    datasets, withheld = training
    return ModelVersionAnswer(
        model=row[0],
        project=row[1],
        name=row[2],
        version=row[3],
        run=row[4],
        artifact_uri=row[5],
        artifact_digest=row[6],
        framework=row[7],
        tags=_json(row[8]),
        registered_at=row[9],
        training=datasets[:ENTITY_LIST_MAX],
        training_withheld=withheld,
        aliases=[AliasMove(alias=a, moved_by=b, start=s, end=e) for a, b, s, e in aliases],
        deployments=[
            ServedBy(deployment=d, traffic=float(t), endpoint=p, start=s, end=e)
            for d, t, p, s, e in served
        ],
        deployments_total=served_total,
        predictions=volume,
        flags=[
            ModelFlag(
                erasure=f[0],
                status=f[1],
                justification=f[2],
                approver=f[3],
                flagged_position=int(f[4]),
                resolved_by=f[5],
                resolved_position=None if f[6] is None else int(f[6]),
            )
            for f in flags
        ],
    )


def deployment(
    ledger: Ledger, project: str, node: str, visible: Collection[str]
) -> DeploymentAnswer:
    """The deployment ``node`` of ``project``: its serving intervals (traffic splits),
    newest first, and its prediction volume per model and per day."""
    with ledger.store.read() as conn:
        raw = Raw(conn)
        row = raw.one(
            "SELECT id, project, name, status, endpoint, created_at, updated_at FROM "
            "cat_deployments WHERE id = ?",
            (node,),
        )
        if row is None or row[1] not in visible:
            raise NotFound(f"no deployment {node} in project {project!r}")
        intervals_total = int(
            raw.scalar("SELECT COUNT(*) FROM deployment_history WHERE deployment = ?", (node,)) or 0
        )
        intervals = raw.all(
            "SELECT model, traffic, endpoint, valid_from, valid_to FROM deployment_history "
            "WHERE deployment = ? ORDER BY opened_pos DESC, model LIMIT ?",
            (node, ENTITY_LIST_MAX),
        )
        now = raw.all(
            "SELECT model, traffic, endpoint, valid_from, valid_to FROM deployment_history "
            "WHERE deployment = ? AND valid_to IS NULL ORDER BY model",
            (node,),
        )
        counts = raw.all(
            "SELECT model, n, first_at, last_at FROM prediction_counts WHERE deployment = ? "
            "ORDER BY n DESC, model LIMIT ?",
            (node, ENTITY_LIST_MAX),
        )
        total = int(
            raw.scalar("SELECT SUM(n) FROM prediction_counts WHERE deployment = ?", (node,)) or 0
        )
        volume = _volume(raw, "deployment", node, total)

    def interval(r: Any) -> ServingInterval:
        return ServingInterval(model=r[0], traffic=float(r[1]), endpoint=r[2], start=r[3], end=r[4])

    return DeploymentAnswer(
        deployment=row[0],
        project=row[1],
        name=row[2],
        status=row[3],
        endpoint=row[4],
        created_at=row[5],
        updated_at=row[6],
        intervals=[interval(r) for r in intervals],
        intervals_total=intervals_total,
        served_now=[interval(r) for r in now],
        by_model=[
            ModelVolume(model=m, count=int(n), first_at=f, last_at=la) for m, n, f, la in counts
        ],
        predictions=volume,
    )
