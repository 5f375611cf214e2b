"""The model dossier: one model version accounted for, for a reader who is not an engineer.

``build_model_dossier(ledger, project, model, key)`` gathers, in one read of the
catalogue, the model's identity and artifact digest; its training data, followed
upstream through runs, derivations and parent models down to dataset versions
(drawn as a lineage picture and listed with digests and record counts); the
training run's params, metrics, code and environment; every alias (stage) move
with who made it; the deployment timeline; prediction volume per deployment per
day; every erasure that flagged it and the remediation; and a proof bundle for
each of its key events, against a checkpoint signed by ``key`` (signed first when
the newest one does not cover them). When the training run was executed as a job
(``lineage.executions``), where: the executor, target, node, GPUs and GPU product the
platform reported, the image, how the job ended, and the digest of its spec.

``ModelDossier.write(out)`` writes ``index.html`` (self-contained: inline CSS and
SVG, no script, nothing fetched), ``model-card.md``, ``lineage.svg``,
``predictions.svg``, ``dossier.json`` and ``evidence/<position>.json`` (each
accepted by ``mlledger audit verify-proof``).
"""

from __future__ import annotations

import base64
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from audit.checkpoints import latest_checkpoint, write_checkpoint
from audit.note import verify_checkpoint
from audit.outdir import new_or_empty
from audit.proofs import make_bundle
from audit.reports.render import MarkdownText, lineage_svg, md_code, md_text, volume_svg
from lineage.graph import graph_of
from lineage.jobqueries import run_execution
from lineage.queries import relation, resolve_model, training_depths
from lineage.walks import TRAINING_EDGES
from registry.errors import NotFound
from registry.ids import kind_of
from registry.store.raw import Raw, placeholders
from registry.timeutil import now
from registry.wording import counted, noun

if TYPE_CHECKING:
    from audit.note import SigningKey
    from registry.ledger import Ledger

FILES = ("index.html", "model-card.md", "lineage.svg", "predictions.svg", "dossier.json")
_CHUNK = 500


@dataclass
class ModelDossier:
    """A model version's dossier: its data, the rendered page and card, and the proofs."""

    data: dict[str, Any]
    html: str
    markdown: str
    lineage_svg: str
    volume_svg: str
    evidence: dict[int, dict[str, Any]] = field(default_factory=dict)

    def write(self, out: str | Path) -> list[Path]:
        """Write the dossier into ``out``, a new or empty directory."""
        target = new_or_empty(out)
        (target / "evidence").mkdir(parents=True, exist_ok=True)
        contents = (
            self.html,
            self.markdown,
            self.lineage_svg,
            self.volume_svg,
            json.dumps(self.data, indent=2, sort_keys=True) + "\n",
        )
        written = []
        for name, text in zip(FILES, contents, strict=True):
            (target / name).write_text(text, encoding="utf-8")
            written.append(target / name)
        for position, bundle in sorted(self.evidence.items()):
            path = target / "evidence" / f"{position}.json"
            path.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n")
            written.append(path)
        return written


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _upstream(graph: Any, model: str) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
    """Nodes upstream of ``model`` over training edges, with their distance in hops
    (the picture's columns), and the edges between them."""
    depth = {model: 0}
    edges: list[tuple[str, str, str]] = []
    queue: deque[str] = deque([model])
    while queue:
        node = queue.popleft()
        for src, dst, data in graph.in_edges(node, data=True):
            if data["kind"] not in TRAINING_EDGES:
                continue
            edges.append((src, dst, data["kind"]))
            if src not in depth:
                depth[src] = depth[node] + 1
                queue.append(src)
    return depth, sorted(set(edges))


def _datasets(raw: Raw, nodes: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(nodes), _CHUNK):
        chunk = nodes[start : start + _CHUNK]
        for node, name, version, digest, uri, rows, records, at in raw.all(
            "SELECT d.id, d.name, d.version, d.digest, d.uri, d.row_count, c.records, "
            "d.registered_at FROM cat_datasets d LEFT JOIN dataset_record_counts c "
            f"ON c.dataset = d.id WHERE d.id IN ({placeholders(len(chunk))})",
            chunk,
        ):
            found[node] = {
                "id": node,
                "name": name,
                "version": version,
                "digest": digest,
                "uri": uri,
                "row_count": rows,
                "records": records or 0,
                "registered_at": at,
            }
    return found


def _events(raw: Raw, entity: str, types: tuple[str, ...]) -> list[tuple[int, str, str, str]]:
    return [
        (int(p), t, a, at)
        for p, t, a, at in raw.all(
            "SELECT position, type, actor, recorded_at FROM events WHERE entity = ? "
            f"AND type IN ({placeholders(len(types))}) ORDER BY position",
            (entity, *types),
        )
    ]


def _position(value: Any) -> int | None:
    return None if value is None else int(value)


def _identity(raw: Raw, project: str, model: str) -> dict[str, Any]:
    """The model version's catalogue row; NotFound unless it is of ``project``."""
    row = raw.one(
        "SELECT id, project, name, version, run, artifact_uri, artifact_digest, framework, "
        "tags, registered_at, position FROM cat_models WHERE id = ?",
        (model,),
    )
    if row is None or row[1] != project:
        raise NotFound(f"no model version {model} in project {project!r}")
    registered = _events(raw, model, ("model-version-registered",))
    return {
        "id": row[0],
        "project": row[1],
        "name": row[2],
        "version": row[3],
        "run": row[4],
        "artifact_uri": row[5],
        "artifact_digest": row[6],
        "framework": row[7],
        "tags": _json(row[8]) or {},
        "registered_at": row[9],
        "registered_by": registered[0][2] if registered else None,
        "position": int(row[10]),
    }


def _training_run(
    raw: Raw, run_node: str | None
) -> tuple[dict[str, Any] | None, list[tuple[int, str, str, str]]]:
    """The run that trained the model (None when unknown) and its start and end events."""
    r = None
    if run_node is not None:
        r = raw.one(
            "SELECT id, job, status, params, metrics, code, environment, tags, actor, "
            "started_at, ended_at, error_type FROM cat_runs WHERE id = ?",
            (run_node,),
        )
    if r is None:
        return None, []
    run = {
        "id": r[0],
        "job": r[1],
        "status": r[2],
        **{k: _json(v) or {} for k, v in zip(_RUN_JSON, r[3:8], strict=True)},
        "started_by": r[8],
        "started_at": r[9],
        "ended_at": r[10],
        "error_type": r[11],
    }
    return run, _events(raw, r[0], ("run-started", "run-completed", "run-failed"))


_RUN_JSON = ("params", "metrics", "code", "environment", "tags")


def _execution(raw: Raw, project: str, run: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the training run was executed: its job, when it has one in ``project``."""
    if run is None:
        return None
    found = run_execution(raw, project, run["id"])
    return None if found is None else dict(found)


def _training(ledger: Ledger, conn: Any, raw: Raw, model: str) -> dict[str, Any]:
    """What the model was trained on, followed upstream: datasets with their depth,
    runs, models, and the edges and labels of the picture."""
    graph = graph_of(ledger).current(conn)
    distance, edges = _upstream(graph, model) if model in graph else ({model: 0}, [])
    # Depth as trained-on counts it: steps of data flow, 1 for what the training
    # run read (docs/concepts.md, "Depth").
    depth = training_depths(graph, model) if model in graph else {model: 0}
    labels = {n: graph.nodes[n].get("label", n) if n in graph else n for n in distance}
    dataset_nodes = sorted(n for n in distance if kind_of(n) == "dataset")
    details = _datasets(raw, dataset_nodes)
    datasets = sorted(
        (
            {
                **details.get(n, {"id": n, "name": labels[n], "records": 0}),
                "depth": depth[n],
                "relation": relation(depth[n]),
            }
            for n in dataset_nodes
        ),
        key=lambda d: (d["depth"], d["id"]),
    )
    return {
        "datasets": datasets,
        "runs": sorted(n for n in distance if kind_of(n) == "run"),
        "models": sorted(n for n in distance if kind_of(n) == "model" and n != model),
        "nodes": len(distance),
        "edges": [{"src": s, "dst": d, "kind": k} for s, d, k in edges],
        "labels": labels,
        "distance": distance,
    }


def _history(raw: Raw, table: str, first: str, extra: tuple[str, ...], model: str) -> list[Any]:
    """The model's rows of ``alias_history`` or ``deployment_history``, in order opened:
    ``first`` and ``extra`` columns, then when and at which positions each opened and closed."""
    columns = ", ".join((first, *extra))
    rows = raw.all(
        f"SELECT {columns}, valid_from, valid_to, opened_pos, closed_pos FROM {table} "
        f"WHERE model = ? ORDER BY opened_pos, {first}",
        (model,),
    )
    return [
        {
            **dict(zip((first, *extra), row, strict=False)),
            "from": row[-4],
            "to": row[-3],
            "position": int(row[-2]),
            "closed_position": _position(row[-1]),
        }
        for row in rows
    ]


def _aliases(raw: Raw, model: str) -> list[dict[str, Any]]:
    return [
        {"alias": a["alias"], "moved_by": a["moved_by"], **_opened(a)}
        for a in _history(raw, "alias_history", "alias", ("moved_by",), model)
    ]


def _deployments(raw: Raw, model: str) -> list[dict[str, Any]]:
    return [
        {
            "deployment": d["deployment"],
            "traffic": float(d["traffic"]),
            "endpoint": d["endpoint"],
            **_opened(d),
        }
        for d in _history(raw, "deployment_history", "deployment", ("traffic", "endpoint"), model)
    ]


def _opened(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("from", "to", "position", "closed_position")}


def _predictions(raw: Raw, project: str, model: str) -> dict[str, Any]:
    """Prediction volume: in all, per deployment, and per deployment per day."""
    totals = {
        d: {"count": int(n), "first_at": first, "last_at": last}
        for d, n, first, last in raw.all(
            "SELECT deployment, n, first_at, last_at FROM prediction_counts WHERE model = ? "
            "ORDER BY deployment",
            (model,),
        )
    }
    daily: list[dict[str, Any]] = []
    if totals:
        epochs = [e[0] for e in raw.all("SELECT DISTINCT epoch FROM prediction_index")]
        daily = [
            {"deployment": d, "day": day, "count": int(n)}
            for d, day, n in raw.all(
                "SELECT deployment, SUBSTR(at, 1, 10) AS day, COUNT(*) FROM prediction_index "
                f"WHERE epoch IN ({placeholders(len(epochs))}) AND project = ? "
                "AND model = ? GROUP BY deployment, day ORDER BY day, deployment",
                (*epochs, project, model),
            )
        ]
    return {
        "total": sum(t["count"] for t in totals.values()),
        "by_deployment": totals,
        "daily": daily,
    }


def _erasures(raw: Raw, model: str) -> list[dict[str, Any]]:
    """Every erasure that flagged the model, and its remediation."""
    keys = ("erasure", "status", "justification", "approver", "flagged_position", "resolved_by")
    return [
        {
            **dict(zip(keys, row[:6], strict=True)),
            "flagged_position": int(row[4]),
            "resolved_position": _position(row[6]),
            "erased_at": row[7],
        }
        for row in raw.all(
            "SELECT r.erasure, r.status, r.justification, r.approver, r.flagged_pos, "
            "r.resolved_by, r.resolved_pos, e.erased_at FROM remediations r "
            "LEFT JOIN erasures e ON e.erasure = r.erasure WHERE r.model = ? "
            "ORDER BY r.flagged_pos",
            (model,),
        )
    ]


def _remediates(raw: Raw, model: str) -> list[dict[str, Any]]:
    return [
        {
            "erasure": json.loads(body)["erasure"],
            "model": json.loads(body)["model"],
            "position": int(p),
        }
        for p, body in raw.all(
            "SELECT position, body FROM events WHERE entity = ? "
            "AND type = 'erasure-remediated' ORDER BY position",
            (model,),
        )
    ]


def _key_events(data: dict[str, Any], run_events: list[tuple[int, str, str, str]]) -> list[Any]:
    """The positions whose events the dossier proves, each with its type."""
    aliases = data["aliases"]
    found = {
        data["model"]["position"]: "model-version-registered",
        **{p: t for p, t, _, _ in run_events},
        **{a["position"]: "model-alias-moved" for a in aliases},
        **{
            a["closed_position"]: "model-alias-moved"
            for a in aliases
            if a["closed_position"] is not None
        },
        **{d["position"]: "deployment-configured" for d in data["deployments"]},
        **{e["flagged_position"]: "subject-erased" for e in data["erasures"]},
        **_job_events(data["execution"]),
        **{r["position"]: "erasure-remediated" for r in data["remediates"]},
    }
    return [{"position": p, "type": t} for p, t in sorted(found.items())]


def _job_events(execution: dict[str, Any] | None) -> dict[int, str]:
    """The training job's key events: its submission (the spec's digest) and its end."""
    if execution is None:
        return {}
    found = {execution["submitted_position"]: "job-submitted"}
    if execution["status"] in ("succeeded", "failed", "cancelled"):
        found[execution["position"]] = f"job-{execution['status']}"
    return found


def _gather(ledger: Ledger, project: str, model: str) -> dict[str, Any]:
    with ledger.store.read() as conn:
        raw = Raw(conn)
        identity = _identity(raw, project, model)
        run, run_events = _training_run(raw, identity["run"])
        parts = {
            "execution": _execution(raw, project, run),
            "training": _training(ledger, conn, raw, model),
            "aliases": _aliases(raw, model),
            "deployments": _deployments(raw, model),
            "predictions": _predictions(raw, project, model),
            "erasures": _erasures(raw, model),
            "remediates": _remediates(raw, model),
        }
        head = int(raw.scalar("SELECT MAX(position) FROM events") or 0)
    data = {
        "report": "model-dossier",
        "generated_at": now(),
        "log_head": head,
        "model": identity,
        "run": run,
        **parts,
    }
    data["key_events"] = _key_events(data, run_events)
    return data


def _evidence(
    ledger: Ledger, project: str, key: SigningKey, positions: list[int]
) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Proof bundles of ``positions`` against a signed checkpoint covering them all."""
    store = ledger.store
    with store.read() as conn:
        checkpoint = latest_checkpoint(conn, "events")
    if checkpoint is None or (positions and checkpoint.size <= max(positions)):
        checkpoint, _ = write_checkpoint(store, key, "events")
    bundles = {p: make_bundle(store, p, project=project) for p in positions}
    # Every bundle leads to the newest checkpoint when it was made; show that one.
    note = next(iter(bundles.values()))["checkpoint"] if bundles else checkpoint.note
    shown = verify_checkpoint(key.verifier(), note)
    signed = {
        "tree_size": shown.size,
        "note": note,
        # base64, as in the signed note and the bundles' leaf hashes
        "root_hash": base64.b64encode(shown.root).decode(),
        "public_key": key.verifier().to_string(),
    }
    return bundles, signed


def _inert(value: Any) -> MarkdownText:
    """A value the card prints: made inert as text unless a filter already did."""
    return value if isinstance(value, MarkdownText) else md_text(value)


def _environment(*, markdown: bool = False) -> Environment:
    """The templates' environment: the page's, autoescaped as HTML, or (``markdown``)
    the card's, where ``md`` and ``code`` escape each value and anything printed
    without them is escaped as text."""
    env = Environment(
        loader=PackageLoader("audit.reports", "templates"),
        autoescape=False
        if markdown
        else select_autoescape(["html", "html.j2"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_inert if markdown else None,
    )
    env.filters["json"] = lambda value: json.dumps(value, sort_keys=True, ensure_ascii=False)
    env.filters["when"] = lambda ts: "—" if ts is None else str(ts)[:19].replace("T", " ")
    # What was recorded: a field the run reported as unknown (null) is left out.
    env.filters["known"] = lambda fields: {k: v for k, v in fields.items() if v is not None}
    env.filters["counted"] = counted
    env.globals["noun"] = noun
    if markdown:
        env.filters["md"] = md_text
        env.filters["code"] = md_code
    return env


def build_model_dossier(ledger: Ledger, project: str, model: str, key: SigningKey) -> ModelDossier:
    """The dossier of ``model`` (``name@version``, ``name@alias`` or an id) in ``project``."""
    node = resolve_model(ledger, model, project)
    data = _gather(ledger, project, node)
    positions = [e["position"] for e in data["key_events"]]
    bundles, signed = _evidence(ledger, project, key, positions)
    data["evidence"] = {
        "checkpoint": signed,
        "events": [
            {
                **e,
                "leaf_hash": bundles[e["position"]]["leaf_hash"],
                "file": f"evidence/{e['position']}.json",
            }
            for e in data["key_events"]
        ],
    }
    picture = lineage_svg(data["training"], node)
    chart = volume_svg(data["predictions"]["daily"])
    html = _environment().get_template("model.html.j2").render(d=data, lineage=picture, chart=chart)
    markdown = _environment(markdown=True).get_template("model.md.j2").render(d=data)
    return ModelDossier(data, html, markdown, picture, chart, bundles)
