"""The subject-access report (GDPR Art. 15): what the ledger holds on one data subject.

``subject_report(ledger, project, subject)`` gathers, for the subject's raw id:

- the personal data the vault holds (decrypted attributes, when stored);
- their records (by pseudonymous id: the ledger never stores raw record keys) and
  the dataset versions that list each one;
- where the data went: derived dataset versions, the runs that read any of them,
  the model versions those runs trained (fine-tuned ones included) and the
  deployments that served those models;
- every prediction made about one of their records: when, by which model version
  in which deployment, and what it said;
- when the subject was erased, the erasure (and what remains: nothing but the
  erasure itself).

``write_subject_report(report, out)`` writes it as a self-contained HTML page
(``index.html``, no network needed) and as JSON (``report.json``, the "commonly used
electronic form" of Art. 15(3)). Only the data-protection officer's role may ask
over HTTP; the report names no other subject.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from audit.outdir import new_or_empty
from lineage import prediction_filters, queries
from registry.errors import LedgerError
from registry.ids import NodeId
from registry.store.raw import Raw, placeholders
from registry.timeutil import now
from registry.wording import noun

if TYPE_CHECKING:
    from registry.ledger import Ledger

FILES = ("index.html", "report.json")
_CHUNK = 500
PURPOSES = (
    "Recording which data trained which machine-learning models, and which model "
    "versions scored which records, so that both can be audited and explained "
    "(record-keeping); answering data subjects' requests and erasing their data."
)


def _label(node: str) -> str:
    """``name version`` of a dataset or model id, the id itself otherwise."""
    try:
        parsed = NodeId.parse(node)
    except LedgerError:
        return node
    if parsed.version:
        return f"{parsed.name} {parsed.version}"
    return parsed.name or node


def _records(conn: Any, project: str, pseudonym: str) -> list[str]:
    return [
        r[0]
        for r in Raw(conn).all(
            "SELECT DISTINCT record FROM record_index WHERE project = ? AND subject = ? "
            "ORDER BY record",
            (project, pseudonym),
        )
    ]


def _predictions(
    ledger: Ledger, conn: Any, project: str, records: list[str]
) -> list[dict[str, Any]]:
    raw = Raw(conn)
    filters = prediction_filters.cache_of(ledger.store)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(records), _CHUNK):
        chunk = records[start : start + _CHUNK]
        # Only the epochs whose filter may hold one of the records.
        epochs = filters.epochs(raw, project, chunk)
        if not epochs:
            return rows
        for record, deployment, model, at, output, position, seq in raw.all(
            "SELECT record, deployment, model, at, output, position, seq FROM prediction_index "
            f"WHERE epoch IN ({placeholders(len(epochs))}) AND project = ? "
            f"AND record IN ({placeholders(len(chunk))})",
            (*epochs, project, *chunk),
        ):
            rows.append(
                {
                    "at": at,
                    "record": f"record:{project}/{record}",
                    "model": model,
                    "model_label": _label(model),
                    "deployment": deployment,
                    "deployment_label": _label(deployment),
                    "output": json.loads(output),
                    "position": position,
                    "seq": seq,
                }
            )
    rows.sort(key=lambda p: (p["at"], p["record"], p["position"], p["seq"]))
    return rows


def _datasets(conn: Any, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    found = {
        row[0]: row
        for start in range(0, len(ids), _CHUNK)
        for row in Raw(conn).all(
            "SELECT id, name, version, uri, digest, registered_at FROM cat_datasets "
            f"WHERE id IN ({placeholders(len(ids[start : start + _CHUNK]))})",
            ids[start : start + _CHUNK],
        )
    }
    return [
        {
            "id": node,
            "name": found[node][1],
            "version": found[node][2],
            "uri": found[node][3],
            "digest": found[node][4],
            "registered_at": found[node][5],
        }
        if node in found
        else {"id": node, "name": _label(node), "version": None, "uri": None, "digest": None}
        for node in ids
    ]


def subject_report(ledger: Ledger, project: str, subject: str | int) -> dict[str, Any]:
    """Everything the ledger holds on data subject ``subject`` (their raw id), as JSON.

    Raises ``NotFound`` for a subject the project never saw."""
    footprint = queries.footprint(ledger, project, subject)
    pseudonym = ledger.pseudonymizer(project).subject(subject)
    with ledger.store.read() as conn:
        records = _records(conn, project, pseudonym)
        vault = ledger.vault.get(conn, project, pseudonym)
        predictions = _predictions(ledger, conn, project, records)
        datasets = _datasets(conn, [d["dataset"] for d in footprint["datasets"]])
        derived = _datasets(conn, [d["dataset"] for d in footprint["derived_datasets"]])
    memberships = {r["record"]: r["datasets"] for r in footprint["records"]}
    return {
        "report": "subject-access",
        "project": project,
        "subject": footprint["subject"],
        "generated_at": now(),
        "purposes": PURPOSES,
        "personal_data": vault,
        "records": [
            {"record": record, "datasets": datasets_of}
            for record, datasets_of in sorted(memberships.items())
        ],
        "datasets": datasets,
        "derived_datasets": derived,
        "runs": footprint["runs"],
        "models": [{"id": m["model"], "label": _label(m["model"])} for m in footprint["models"]],
        "deployments": [
            {
                "id": d["deployment"],
                "label": _label(d["deployment"]),
                "models": d["serves_from_here"],
            }
            for d in footprint["deployments"]
        ],
        "predictions": predictions,
        "erased": footprint.get("erased"),
        "counts": {
            "vault_entries": len(vault),
            "records": len(memberships),
            "datasets": len(datasets),
            "derived_datasets": len(derived),
            "runs": len(footprint["runs"]),
            "models": len(footprint["models"]),
            "deployments": len(footprint["deployments"]),
            "predictions": len(predictions),
        },
    }


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("audit.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["json"] = lambda value: json.dumps(value, sort_keys=True, ensure_ascii=False)
    env.filters["when"] = when
    env.globals["noun"] = noun
    return env


def when(ts: str | None) -> str:
    """A log time as a reader reads it: ``2026-11-24 09:16:30 UTC`` (to the second)."""
    return "—" if ts is None else str(ts)[:19].replace("T", " ") + " UTC"


def render_subject_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    return _environment().get_template("subject.html.j2").render(r=report)


def write_subject_report(report: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``index.html`` and ``report.json`` into ``out`` (a new or empty directory)."""
    target = new_or_empty(out)
    target.mkdir(parents=True, exist_ok=True)
    page, data = target / FILES[0], target / FILES[1]
    page.write_text(render_subject_html(report), encoding="utf-8")
    data.write_text(
        json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return [page, data]
