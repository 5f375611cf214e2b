"""The W3C PROV export: ``prov.json``, one PROV-JSON document built with ``prov``.

- entities: dataset versions (``mlledger:DatasetVersion``) and model versions
  (``mlledger:ModelVersion``), with their digests, locations and counts;
- activities: runs (``mlledger:Run``, params, metrics, code and environment as
  JSON text) and serving intervals (``mlledger:Serving``: a deployment serving a
  model version with a traffic share, from when to when);
- agents: the actors that registered versions and started runs;
- relations: ``used`` (run inputs; a serving interval's model version),
  ``wasGeneratedBy`` (run outputs), ``wasDerivedFrom`` (derived datasets; a model
  version from each input of its run), ``wasAssociatedWith`` (run and the actor
  who started it), ``wasAttributedTo`` (version and its registrar),
  ``wasInformedBy`` (child run and parent run).

docs/exports.md has the mapping in full. Identifiers live in the namespace
``node`` (``https://mlledger.dev/node/``): the node id with its kind as a path
segment (``node:dataset/<project>/<name>@<version>``, ``node:run/<uuid>``);
agents live in ``actor``. Records and subjects never appear: the document is
about versions, runs and the people who acted, not about data subjects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from prov.model import PROV_TYPE, Namespace, ProvDocument

from audit.exports.scope import Progress, Scope
from audit.outdir import export_dir
from registry.ids import NodeId, kind_of
from registry.store.raw import Raw
from registry.timeutil import stored_form

if TYPE_CHECKING:
    from registry.ledger import Ledger

FILE = "prov.json"
ML = Namespace("mlledger", "https://mlledger.dev/ns#")
NODE = Namespace("node", "https://mlledger.dev/node/")
ACTOR = Namespace("actor", "https://mlledger.dev/actor/")


def _node(node_id: str) -> Any:
    kind = kind_of(node_id)
    return NODE[f"{kind}/{node_id.removeprefix(kind + ':')}"]


def _actor(name: str) -> Any:
    return ACTOR[quote(name, safe="@.-_")]


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    # Earlier versions wrote years below 1000 without zero padding.
    return datetime.fromisoformat((stored_form(text) or text).replace("Z", "+00:00"))


def _attrs(values: dict[str, Any]) -> dict[Any, Any]:
    """mlledger attributes, leaving out nulls (PROV has no null)."""
    return {ML[k]: v for k, v in values.items() if v is not None}


class _Builder:
    def __init__(self, raw: Raw, scope: Scope):
        self.raw = raw
        self.scope = scope
        self.doc = ProvDocument()
        for namespace in (ML, NODE, ACTOR):
            self.doc.add_namespace(namespace)
        self.nodes: set[str] = set()
        self.agents: set[str] = set()

    def select(self, sql: str, column: str) -> list[Any]:
        where, params = self.scope.events_where("e")
        return self.raw.all(
            f"{sql} WHERE EXISTS (SELECT 1 FROM events e WHERE e.position = {column} AND {where})",
            params,
        )

    def agent(self, name: str) -> Any:
        if name not in self.agents:
            self.doc.agent(_actor(name), {PROV_TYPE: "prov:Person", ML["name"]: name})
            self.agents.add(name)
        return _actor(name)

    def registrars(self) -> dict[str, str]:
        """Who registered each dataset and model version in scope."""
        where, params = self.scope.events_where("e")
        return {
            entity: actor
            for entity, actor in self.raw.all(
                f"SELECT e.entity, e.actor FROM events e WHERE {where} AND e.type IN "
                "('dataset-version-registered', 'model-version-registered')",
                params,
            )
        }

    def build(self) -> ProvDocument:
        self.entities(
            "SELECT d.id, d.name, d.version, d.digest, d.uri, d.row_count, "
            "COALESCE(c.records, 0), d.registered_at FROM cat_datasets d "
            "LEFT JOIN dataset_record_counts c ON c.dataset = d.id",
            "d.position",
            "DatasetVersion",
            ("id", "name", "version", "digest", "uri", "row_count", "records", "registered_at"),
        )
        self.entities(
            "SELECT m.id, m.name, m.version, m.artifact_uri, m.artifact_digest, m.framework, "
            "m.registered_at FROM cat_models m",
            "m.position",
            "ModelVersion",
            (
                "id",
                "name",
                "version",
                "artifact_uri",
                "artifact_digest",
                "framework",
                "registered_at",
            ),
        )
        for node, actor in sorted(self.registrars().items()):
            if node in self.nodes:
                self.doc.wasAttributedTo(_node(node), self.agent(actor))
        self.runs()
        self.edges()
        self.serving()
        return self.doc

    def entities(self, sql: str, column: str, type: str, keys: tuple[str, ...]) -> None:
        """One PROV entity of ``type`` per row in scope; the row's first column is its id."""
        for row in self.select(sql, column):
            self.doc.entity(
                _node(row[0]),
                {PROV_TYPE: ML[type], **_attrs(dict(zip(keys, row, strict=True)))},
            )
            self.nodes.add(row[0])

    def runs(self) -> None:
        """One PROV activity per run in scope, associated with who started it and
        informed by its parent run."""
        doc = self.doc
        runs = self.select(
            "SELECT r.id, r.job, r.status, r.params, r.metrics, r.code, r.environment, "
            "r.actor, r.started_at, r.ended_at, r.parent_run FROM cat_runs r",
            "r.position",
        )
        keys = ("id", "job", "status", "params", "metrics", "code", "environment")
        for row in runs:
            node, actor, start, end = row[0], row[7], row[8], row[9]
            attrs = _attrs(dict(zip(keys, row[:7], strict=True)))
            doc.activity(_node(node), _time(start), _time(end), {PROV_TYPE: ML["Run"], **attrs})
            self.nodes.add(node)
            doc.wasAssociatedWith(_node(node), self.agent(actor))
        for node, *_rest, parent in runs:
            if parent in self.nodes:
                doc.wasInformedBy(_node(node), _node(parent))

    def edges(self) -> None:
        doc = self.doc
        inputs: dict[str, list[str]] = {}
        for src, dst, kind in self.raw.all(
            "SELECT src, dst, kind FROM lineage_edges WHERE opened_pos < ? "
            "AND kind IN ('input', 'output', 'derived') ORDER BY opened_pos, src, dst",
            (self.scope.upto,),
        ):
            if src not in self.nodes or dst not in self.nodes:
                continue
            if kind == "input":
                doc.used(_node(dst), _node(src))
                inputs.setdefault(dst, []).append(src)
            elif kind == "output":
                doc.wasGeneratedBy(_node(dst), _node(src))
            else:
                doc.wasDerivedFrom(_node(dst), _node(src))
        for run, used in inputs.items():
            for model in self.outputs(run):
                for source in used:
                    doc.wasDerivedFrom(_node(model), _node(source), _node(run))

    def outputs(self, run: str) -> Iterable[str]:
        return [
            r[0]
            for r in self.raw.all(
                "SELECT dst FROM lineage_edges WHERE src = ? AND kind = 'output' "
                "AND opened_pos < ? ORDER BY dst",
                (run, self.scope.upto),
            )
            if r[0] in self.nodes and kind_of(r[0]) == "model"
        ]

    def serving(self) -> None:
        doc = self.doc
        for deployment, model, traffic, endpoint, start, end, opened, closed in self.select(
            "SELECT h.deployment, h.model, h.traffic, h.endpoint, h.valid_from, h.valid_to, "
            "h.opened_pos, h.closed_pos FROM deployment_history h",
            "h.opened_pos",
        ):
            if model not in self.nodes:
                continue
            ended = end if closed is not None and closed < self.scope.upto else None
            served = NodeId.parse(deployment)
            activity = NODE[f"serving/{served.project}/{served.name}/{opened}/{model}"]
            doc.activity(
                activity,
                _time(start),
                _time(ended),
                {
                    PROV_TYPE: ML["Serving"],
                    **_attrs(
                        {
                            "deployment": deployment,
                            "model": model,
                            "traffic": float(traffic),
                            "endpoint": endpoint,
                        }
                    ),
                },
            )
            doc.used(activity, _node(model))


def document(ledger: Ledger, scope: Scope) -> ProvDocument:
    """The PROV document of ``scope``."""
    with ledger.store.read() as conn:
        return _Builder(Raw(conn), scope).build()


def write(
    ledger: Ledger, out: Path, scope: Scope, progress: Progress | None = None
) -> list[tuple[Path, int]]:
    """Write ``prov.json`` into ``out``; returns it with its number of PROV records."""
    path = export_dir(out) / FILE
    doc = document(ledger, scope)
    text = str(doc.serialize(format="json"))  # without a destination, the text itself
    path.write_text(json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n")
    records = len(doc.records)
    if progress is not None:
        progress(records)
    return [(path, records)]
