"""The remediation rule the ledger is composed with (``registry.assembly.RULES``).

An ``erasure-remediated`` event resolves the ``retrain-required`` flag an erasure put
on a model version; it holds only when the new version was trained without anything
the erasure touched. The rule runs on the projected state, after its batch reached
the projections, inside the append's transaction: a refusal rolls the batch back.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import Connection

from registry.errors import EventRejected
from registry.events import NewEvent
from registry.store.raw import Raw

if TYPE_CHECKING:
    from registry.ledger import Ledger


class _Check:
    """One ``erasure-remediated`` event being checked: what a refusal names."""

    def __init__(self, raw: Raw, index: int, event: NewEvent):
        self.raw = raw
        self.index = index
        self.event = event
        self.erasure: str = event.body["erasure"]
        self.old: str = event.body["model"]

    def reject(self, where: str, message: str) -> NoReturn:
        event = self.event
        raise EventRejected(self.index, event.event_id, event.type, where, message)


def _open_flag(check: _Check) -> Any:
    """The erasure's stored row, once its flag on the old model version is open for this
    event; refuses otherwise."""
    raw, event, erasure, old = check.raw, check.event, check.erasure, check.old
    row = raw.one("SELECT project, status, summary FROM erasures WHERE erasure = ?", (erasure,))
    flag = raw.one(
        "SELECT resolved_pos, project FROM remediations WHERE model = ? AND erasure = ?",
        (old, erasure),
    )
    # The flag belongs to the flagged model's project (an erasure of another project
    # that granted it the data may have set it); only that project remediates it.
    if row is None or row[1] != "erased" or flag is None or flag[1] != event.project:
        check.reject(
            "body.erasure",
            f"no completed erasure {erasure} flagged a model version of project "
            f"{event.project!r} as {old}",
        )
    position = raw.scalar(
        "SELECT position FROM events WHERE project = ? AND event_id = ?",
        (event.project, event.event_id),
    )
    if flag[0] is None or int(flag[0]) != int(position):
        check.reject(
            "body.model",
            f"the flag erasure {erasure} put on {old} is not open for remediation "
            "(retained with a justification, or already remediated)",
        )
    return row


def _training_inputs(check: _Check) -> list[str]:
    """The inputs of the run that produced the new model version; refuses a version
    that remediates itself or was not produced by a run."""
    event = check.event
    if event.entity == check.old:
        check.reject("entity", "a model version cannot remediate itself; register a new version")
    run = check.raw.scalar("SELECT run FROM cat_models WHERE id = ?", (event.entity,))
    if run is None:
        check.reject(
            "entity",
            f"{event.entity} was not produced by a run: register it from the run that "
            "retrained it, so its training data can be checked",
        )
    return sorted(
        r[0]
        for r in check.raw.all(
            "SELECT src FROM lineage_edges WHERE dst = ? AND kind = 'input'", (run,)
        )
    )


def _check_records(ledger: Ledger, check: _Check, inputs: list[str]) -> None:
    """Refuse when an input dataset version holds a record the erasure erased."""
    raw, erasure = check.raw, check.erasure
    refs = {
        r[0]
        for r in raw.all(
            "SELECT reference FROM erased_refs WHERE erasure = ? AND kind = 'record'",
            (erasure,),
        )
    }
    pseudo = ledger.pseudonymizer(check.event.project)
    for node in inputs:
        if not node.startswith("dataset:"):
            continue
        for (record,) in raw.all("SELECT record FROM record_index WHERE dataset = ?", (node,)):
            if pseudo.erased_record(record) in refs:
                check.reject(
                    "entity",
                    f"its run read {node}, which holds a record erasure {erasure} erased; "
                    "expected the erased records excluded",
                )


def check_remediation(ledger: Ledger, conn: Connection, index: int, event: NewEvent) -> None:
    """Refuse an ``erasure-remediated`` event (after its batch reached the projections)
    unless it resolved an open ``retrain-required`` flag and its model version was
    trained without anything the erasure touched."""
    check = _Check(Raw(conn), index, event)
    row = _open_flag(check)
    inputs = _training_inputs(check)
    summary = json.loads(row[2])
    touched = {*summary["datasets"], *summary["derived_datasets"], *summary["models"]}
    for node in inputs:
        if node in touched:
            check.reject(
                "entity",
                f"its run read {node}, which held or came from the erased subject's data; "
                "expected inputs registered without the erased records",
            )
    _check_records(ledger, check, inputs)
