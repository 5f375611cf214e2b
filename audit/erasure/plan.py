"""What erasing one data subject touches: the plan, read from the projections.

The subject's records, the dataset versions holding them and everything downstream
(runs, model versions, deployments, predictions), the events holding their
pseudonyms and their vault entries; and which affected model versions are kept in
service (``Retain``) and which must be retrained (``flags``). Planning writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from lineage import prediction_filters
from lineage.graph import graph_of
from lineage.queries import _descendants
from registry.errors import FieldError
from registry.events import REMEDIATION_STATUSES
from registry.ids import kind_of, subject_id
from registry.store.raw import Raw, placeholders

if TYPE_CHECKING:
    from registry.ledger import Ledger

CHUNK = 500
DEFAULT_STATUS, RETAINED = REMEDIATION_STATUSES


@dataclass(frozen=True)
class Retain:
    """An affected model version (or ``"*"``: all of them) kept in service, and why."""

    model: str
    justification: str
    approver: str


@dataclass
class Plan:
    """What erasing one subject touches. ``subject`` and ``records`` are pseudonyms,
    used inside the transaction only; ``as_dict`` shows erasure references instead."""

    project: str
    reference: str
    subject: str
    records: list[str]
    record_refs: list[str]
    datasets: list[str]
    derived_datasets: list[str]
    runs: list[str]
    models: list[str]
    deployments: list[str]
    predictions: int
    prediction_events: list[int]
    record_events: list[int]
    subject_events: list[int]
    vault_entries: int

    @property
    def events(self) -> list[int]:
        """Positions of the events to rewrite."""
        return sorted({*self.prediction_events, *self.record_events, *self.subject_events})

    def holds_data(self) -> bool:
        """Whether anything of the subject is left to erase."""
        return bool(self.records or self.vault_entries or self.subject_events)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, naming the subject and records by erasure reference."""
        return {
            "project": self.project,
            "subject": subject_id(self.project, self.reference),
            "records": {"count": len(self.records), "references": self.record_refs},
            "datasets": self.datasets,
            "derived_datasets": self.derived_datasets,
            "runs": self.runs,
            "models": self.models,
            "deployments": self.deployments,
            "predictions": {"count": self.predictions, "batches": self.prediction_events},
            "vault_entries": self.vault_entries,
            "events_to_redact": self.events,
        }


def chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """``items`` in slices of at most ``CHUNK``, the most one ``IN (...)`` names."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def epochs(ledger: Ledger, raw: Raw, project: str, records: Sequence[str]) -> list[int]:
    """The epochs of the prediction index that may hold ``records`` (named so its index
    serves ``record IN``): those whose filter says "maybe", a superset of those that
    do, and the newest; none when it is empty."""
    return prediction_filters.cache_of(ledger.store).epochs(raw, project, records)


def _subject_records(raw: Raw, project: str, subject: str) -> list[str]:
    # No DISTINCT: with it, SQLite prefers the (project, record) index and scans the project.
    rows = raw.all(
        "SELECT record FROM record_index WHERE project = ? AND subject = ?", (project, subject)
    )
    return sorted({r[0] for r in rows})


def _holders(
    ledger: Ledger, raw: Raw, project: str, records: list[str]
) -> tuple[set[str], dict[int, int]]:
    """The dataset versions holding ``records``, and per prediction batch (position) the
    number of its predictions about them."""
    datasets: set[str] = set()
    predictions: dict[int, int] = {}
    for chunk in chunks(records):
        marks = placeholders(len(chunk))
        datasets.update(
            r[0]
            for r in raw.all(
                f"SELECT DISTINCT dataset FROM record_index WHERE project = ? AND record IN "
                f"({marks})",
                (project, *chunk),
            )
        )
        sought = epochs(ledger, raw, project, chunk)
        if not sought:
            continue
        for position, count in raw.all(
            f"SELECT position, COUNT(*) FROM prediction_index WHERE epoch IN "
            f"({placeholders(len(sought))}) AND project = ? AND record IN ({marks}) "
            "GROUP BY position",
            (*sought, project, *chunk),
        ):
            predictions[int(position)] = predictions.get(int(position), 0) + int(count)
    return datasets, predictions


def _downstream(ledger: Ledger, conn: Connection, datasets: set[str]) -> dict[str, list[str]]:
    """Every node downstream of ``datasets`` (themselves excluded), by kind."""
    graph = graph_of(ledger).current(conn)
    below = _descendants(graph, [d for d in sorted(datasets) if d in graph])
    by_kind: dict[str, list[str]] = {"dataset": [], "run": [], "model": [], "deployment": []}
    for node in sorted(below - datasets):
        by_kind.setdefault(kind_of(node), []).append(node)
    return by_kind


def _record_events(raw: Raw, datasets: set[str], records: list[str]) -> list[int]:
    """Positions of the ``dataset-records-added`` events that added any of ``records``."""
    erased = set(records)
    found = []
    for dataset in sorted(datasets):
        for position, type_, body in raw.all(
            "SELECT position, type, body FROM events WHERE entity = ? ORDER BY position",
            (dataset,),
        ):
            if type_ == "dataset-records-added" and erased.intersection(
                json.loads(body)["records"]
            ):
                found.append(int(position))
    return found


def make_plan(ledger: Ledger, conn: Connection, project: str, subject: str) -> Plan:
    """The cascade of erasing the subject with pseudonym ``subject``, read in ``conn``."""
    raw = Raw(conn)
    pseudo = ledger.pseudonymizer(project)
    records = _subject_records(raw, project, subject)
    datasets, predictions = _holders(ledger, raw, project, records)
    by_kind = _downstream(ledger, conn, datasets)
    subject_events = raw.all(
        "SELECT position FROM events WHERE entity = ? ORDER BY position",
        (subject_id(project, subject),),
    )
    vault_entries = raw.scalar(
        "SELECT COUNT(*) FROM vault_entries WHERE project = ? AND subject = ?", (project, subject)
    )
    return Plan(
        project=project,
        reference=pseudo.erasure_reference(subject),
        subject=subject,
        records=records,
        record_refs=sorted(pseudo.erased_record(r) for r in records),
        datasets=sorted(datasets),
        derived_datasets=by_kind["dataset"],
        runs=by_kind["run"],
        models=by_kind["model"],
        deployments=by_kind["deployment"],
        predictions=sum(predictions.values()),
        prediction_events=sorted(predictions),
        record_events=_record_events(raw, datasets, records),
        subject_events=[int(r[0]) for r in subject_events],
        vault_entries=int(vault_entries),
    )


def flags(models: Sequence[str], retain: Sequence[Retain]) -> list[dict[str, Any]]:
    """Each affected model version's remediation status under ``retain``."""
    kept = {r.model: r for r in retain}
    everything = kept.get("*")
    out = []
    for model in models:
        rule = kept.get(model, everything)
        if rule is None:
            out.append(
                {"model": model, "status": DEFAULT_STATUS, "justification": None, "approver": None}
            )
        else:
            out.append(
                {
                    "model": model,
                    "status": RETAINED,
                    "justification": rule.justification,
                    "approver": rule.approver,
                }
            )
    return out


def check_retain(plan: Plan, retain: Sequence[Retain]) -> None:
    """Refuse a rule of ``retain`` without a justification and an approver, or naming a
    model version the plan does not affect."""
    for rule in retain:
        if not rule.justification.strip() or not rule.approver.strip():
            raise FieldError(
                "retain",
                f"retaining {rule.model}: a justification and an approver are both required",
            )
        if rule.model != "*" and rule.model not in plan.models:
            affected = ", ".join(plan.models) or "none"
            raise FieldError(
                "retain",
                f"cannot retain {rule.model}: this erasure does not affect it "
                f"(affected model versions: {affected})",
            )
