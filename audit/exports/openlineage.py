"""The OpenLineage export: ``openlineage.jsonl``, one OpenLineage event per line.

The events are those ``lineage.openlineage.emit`` produces (a START RunEvent per
run started, COMPLETE or FAIL per run ended, OTHER RunEvents and DatasetEvents for
versions written outside a run, deployments as RunEvents, recorded JobEvents),
with mlledger's ML facets, project by project in log order. Each is valid against
the OpenLineage 2-0-2 JSON schema. Written a chunk of the log at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from audit.exports.scope import Progress, Scope
from audit.outdir import export_dir
from lineage.openlineage import EMITTED_TYPES, emit
from registry.store.raw import Raw, placeholders

if TYPE_CHECKING:
    from registry.ledger import Ledger

FILE = "openlineage.jsonl"
_FLUSH = 500


def _projects(ledger: Ledger, scope: Scope) -> list[str]:
    if scope.project is not None:
        return [scope.project]
    where, params = scope.events_where("events")
    with ledger.store.read() as conn:
        return [
            r[0]
            for r in Raw(conn).all(
                f"SELECT DISTINCT project FROM events WHERE {where} ORDER BY project", params
            )
        ]


def write(
    ledger: Ledger, out: Path, scope: Scope, progress: Progress | None = None
) -> list[tuple[Path, int]]:
    """Write ``openlineage.jsonl`` into ``out``; returns it with its line count."""
    path = export_dir(out) / FILE
    lines = pending = 0
    with path.open("w", encoding="utf-8") as handle:
        for project in _projects(ledger, scope):
            for doc in emit(ledger, project, stop=scope.upto, recorded=(scope.since, scope.until)):
                handle.write(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
                lines += 1
                pending += 1
                if pending == _FLUSH and progress is not None:
                    progress(pending)
                    pending = 0
    if pending and progress is not None:
        progress(pending)
    return [(path, lines)]


def count(ledger: Ledger, scope: Scope) -> int:
    """The log events the export reads (about one line each; a progress bar's total)."""
    where, params = scope.events_where("events")
    with ledger.store.read() as conn:
        return int(
            Raw(conn).scalar(
                f"SELECT COUNT(*) FROM events WHERE {where} "
                f"AND type IN ({placeholders(len(EMITTED_TYPES))})",
                [*params, *EMITTED_TYPES],
            )
            or 0
        )
