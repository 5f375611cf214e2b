"""Erasure of a data subject (GDPR Art. 17): plan, execute, resume, certify.

An erasure runs in two transactions:

1. ``subject-erasure-requested`` is appended, and the subject's pseudonym is put
   in ``erasure_requests`` beside it: the request is durable and can be resumed.
2. Under the append lock, in one transaction: the cascade is planned from the
   projections (the subject's records, the dataset versions holding them and
   everything downstream: runs, model versions, deployments, predictions); each
   event that holds the subject's pseudonyms is checked against its leaf hash and
   rewritten without them (``redactions``: it keeps its leaf hash, so every
   checkpoint and proof stands); the subject's vault entries and data key are
   deleted; their records and predictions leave the indexes; the request row is
   deleted; and ``subject-erased`` is appended, declaring what was rewritten and
   flagging each affected model version with its remediation status.

A crash leaves either no request, a request (resumed by the next ``erase`` or by
``mlledger erase --resume``), or a completed erasure: never half of one. The
physical purge (``audit.purge``) and the certificate (``audit.certificate``)
follow the commit. Pseudonyms never leave this module in a result: the subject
and their records are named by their erasure references.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from audit.certificate import make_certificate
from audit.checkpoints import load_signing_key, write_checkpoint
from audit.leaves import leaves, redactions
from audit.proofs import make_bundle
from audit.purge import attested
from audit.purge import purge as purge_store
from audit.tree import EVENTS
from lineage.graph import graph_of
from lineage.queries import _descendants
from registry.canonical import canonical_text, leaf_hash
from registry.errors import EventRejected, IntegrityViolation, LedgerError, NotFound
from registry.events import REMEDIATION_STATUSES, NewEvent, canonical_event, make_event
from registry.ids import kind_of, new_id, subject_id
from registry.lazy import lazy_import
from registry.settings import Settings
from registry.store.raw import Raw, placeholders
from registry.timeutil import now

if TYPE_CHECKING:
    from registry import payloads
    from registry.ledger import Ledger
else:
    payloads = lazy_import("registry.payloads")  # pyarrow, only for erasures with predictions

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
        return bool(self.records or self.vault_entries or self.subject_events)

    def as_dict(self) -> dict[str, Any]:
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


@dataclass
class Outcome:
    """The result of one ``erase``: ``status`` is ``planned`` (dry run), ``erased``,
    ``resumed`` (an interrupted erasure completed) or ``already-erased`` (a no-op)."""

    status: str
    erasure: str | None
    subject: str
    plan: dict[str, Any] | None = None
    requested_position: int | None = None
    erased_position: int | None = None
    models: list[dict[str, Any]] = field(default_factory=list)
    redactions: int = 0
    seconds: float = 0.0
    purge: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    certificate: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- planning ----------------------------------------------------------------------------


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _epochs(raw: Raw) -> list[int]:
    last = raw.scalar("SELECT MAX(epoch) FROM prediction_index")
    return list(range(int(last or 0) + 1))


def make_plan(ledger: Ledger, conn: Connection, project: str, subject: str) -> Plan:
    """The cascade of erasing the subject with pseudonym ``subject``, read in ``conn``."""
    raw = Raw(conn)
    pseudo = ledger.pseudonymizer(project)
    # No DISTINCT: with it, SQLite prefers the (project, record) index and scans the project.
    records = sorted(
        {
            r[0]
            for r in raw.all(
                "SELECT record FROM record_index WHERE project = ? AND subject = ?",
                (project, subject),
            )
        }
    )
    datasets: set[str] = set()
    predictions: dict[int, int] = {}
    epochs = _epochs(raw)
    for chunk in _chunks(records):
        marks = placeholders(len(chunk))
        datasets.update(
            r[0]
            for r in raw.all(
                f"SELECT DISTINCT dataset FROM record_index WHERE project = ? AND record IN "
                f"({marks})",
                (project, *chunk),
            )
        )
        for position, count in raw.all(
            f"SELECT position, COUNT(*) FROM prediction_index WHERE epoch IN "
            f"({placeholders(len(epochs))}) AND project = ? AND record IN ({marks}) "
            "GROUP BY position",
            (*epochs, project, *chunk),
        ):
            predictions[int(position)] = predictions.get(int(position), 0) + int(count)
    graph = graph_of(ledger).current(conn)
    downstream = _descendants(graph, [d for d in sorted(datasets) if d in graph])
    by_kind: dict[str, list[str]] = {"dataset": [], "run": [], "model": [], "deployment": []}
    for node in sorted(downstream - datasets):
        by_kind.setdefault(kind_of(node), []).append(node)
    erased = set(records)
    record_events = []
    for dataset in sorted(datasets):
        for position, type_, body in raw.all(
            "SELECT position, type, body FROM events WHERE entity = ? ORDER BY position",
            (dataset,),
        ):
            if type_ == "dataset-records-added" and erased.intersection(
                json.loads(body)["records"]
            ):
                record_events.append(int(position))
    subject_events = [
        int(r[0])
        for r in raw.all(
            "SELECT position FROM events WHERE entity = ? ORDER BY position",
            (subject_id(project, subject),),
        )
    ]
    vault_entries = int(
        raw.scalar(
            "SELECT COUNT(*) FROM vault_entries WHERE project = ? AND subject = ?",
            (project, subject),
        )
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
        record_events=record_events,
        subject_events=subject_events,
        vault_entries=vault_entries,
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


def _check_retain(plan: Plan, retain: Sequence[Retain]) -> None:
    for rule in retain:
        if not rule.justification.strip() or not rule.approver.strip():
            raise LedgerError(
                f"retaining {rule.model}: a justification and an approver are both required"
            )
        if rule.model != "*" and rule.model not in plan.models:
            affected = ", ".join(plan.models) or "none"
            raise LedgerError(
                f"cannot retain {rule.model}: this erasure does not affect it "
                f"(affected model versions: {affected})"
            )


# --- erasing -----------------------------------------------------------------------------


def _pending(raw: Raw, project: str, reference: str) -> tuple[str, str, int] | None:
    row = raw.one(
        "SELECT erasure, subject, requested_pos FROM erasure_requests "
        "WHERE project = ? AND reference = ?",
        (project, reference),
    )
    return None if row is None else (row[0], row[1], int(row[2]))


def _last_erasure(raw: Raw, project: str, reference: str) -> tuple[str, int, int] | None:
    row = raw.one(
        "SELECT erasure, requested_pos, erased_pos FROM erasures WHERE project = ? AND "
        "reference = ? AND status = 'erased' ORDER BY erased_pos DESC LIMIT 1",
        (project, reference),
    )
    return None if row is None else (row[0], int(row[1]), int(row[2]))


def erase(
    ledger: Ledger,
    project: str,
    subject: str | int,
    *,
    actor: str,
    retain: Sequence[Retain] = (),
    dry_run: bool = False,
) -> Outcome:
    """Erase data subject ``subject`` (their id as the caller knows it) from ``project``.

    A dry run returns the plan and changes nothing. Erasing a subject already
    erased (holding no data since) is a no-op that says so; a subject whose
    erasure was interrupted has it completed. Raises NotFound for a subject the
    project never held. Raises ConfigError, before anything is written, when the
    signing key that must sign the erasure's checkpoint and certificate is missing
    or is not the key that signed the log's checkpoints.
    """
    began = time.perf_counter()
    if not dry_run:
        # Refused here, rather than after the erasure commits, when its checkpoint
        # and certificate could not be signed.
        signing_key(ledger)
    pseudo = ledger.pseudonymizer(project)
    pseudonym = pseudo.subject(subject)
    reference = pseudo.erasure_reference(pseudonym)
    with ledger.store.read() as conn:
        raw = Raw(conn)
        pending = _pending(raw, project, reference)
        plan = make_plan(ledger, conn, project, pseudonym)
        last = _last_erasure(raw, project, reference)
    who = subject_id(project, reference)
    if dry_run:
        return Outcome("planned", pending[0] if pending else None, who, plan.as_dict())
    if pending is not None:
        outcome = complete(ledger, pending[0])
        outcome.status = "resumed"
        outcome.seconds = round(time.perf_counter() - began, 4)
        return outcome
    if not plan.holds_data():
        if last is not None:
            return Outcome(
                "already-erased",
                last[0],
                who,
                None,
                requested_position=last[1],
                erased_position=last[2],
            )
        raise NotFound(f"no data subject with that id in project {project!r}")
    _check_retain(plan, retain)
    erasure = request(ledger, project, pseudonym, reference, actor=actor, retain=retain)
    outcome = complete(ledger, erasure)
    outcome.seconds = round(time.perf_counter() - began, 4)
    return outcome


def request(
    ledger: Ledger,
    project: str,
    pseudonym: str,
    reference: str,
    *,
    actor: str,
    retain: Sequence[Retain] = (),
) -> str:
    """Append ``subject-erasure-requested`` with its resumable request row; return the
    erasure id."""
    event = make_event(
        "subject-erasure-requested",
        project=project,
        entity=subject_id(project, reference),
        actor=actor,
        body={"erasure": new_id(), "retain": [asdict(r) for r in retain]},
    )
    erasure = event.body["erasure"]

    def remember(conn: Connection) -> None:
        raw = Raw(conn)
        position = raw.scalar(
            "SELECT position FROM events WHERE project = ? AND event_id = ?",
            (project, event.event_id),
        )
        raw.run(
            "INSERT INTO erasure_requests (erasure, project, subject, reference, "
            f"requested_pos, created_at) VALUES ({placeholders(6)})",
            (erasure, project, pseudonym, reference, position, now()),
        )

    ledger.append([event], before_commit=remember)
    return str(erasure)


def pending_erasures(ledger: Ledger, project: str | None = None) -> list[str]:
    """Ids of erasures requested and not yet completed (oldest first)."""
    sql = "SELECT erasure FROM erasure_requests"
    params: tuple[str, ...] = ()
    if project is not None:
        sql += " WHERE project = ?"
        params = (project,)
    with ledger.store.read() as conn:
        return [r[0] for r in Raw(conn).all(sql + " ORDER BY requested_pos", params)]


def complete(ledger: Ledger, erasure: str) -> Outcome:
    """Carry out a requested erasure in one transaction (see the module docstring)."""
    began = time.perf_counter()
    with ledger.store.append_transaction() as conn:
        raw = Raw(conn)
        row = raw.one(
            "SELECT project, subject, reference, requested_pos FROM erasure_requests "
            "WHERE erasure = ?",
            (erasure,),
        )
        if row is None:
            done = raw.one(
                "SELECT project, reference, requested_pos, erased_pos FROM erasures "
                "WHERE erasure = ? AND status = 'erased'",
                (erasure,),
            )
            if done is None:
                raise NotFound(f"no erasure {erasure} requested")
            return Outcome(
                "already-erased",
                erasure,
                subject_id(done[0], done[1]),
                requested_position=int(done[2]),
                erased_position=int(done[3]),
            )
        project, pseudonym, reference, requested_pos = row[0], row[1], row[2], int(row[3])
        retain = _retained(raw, requested_pos)
        plan = make_plan(ledger, conn, project, pseudonym)
        erased_pos = int(raw.scalar("SELECT MAX(position) FROM events")) + 1
        redacted = _redact(conn, plan, erased_pos)
        _forget(raw, plan, erasure)
        models = flags(plan.models, retain)
        event = make_event(
            "subject-erased",
            project=project,
            entity=subject_id(project, reference),
            actor=_requested_by(raw, requested_pos),
            body={
                "erasure": erasure,
                "request": requested_pos,
                "records": len(plan.records),
                "record_refs": plan.record_refs,
                "datasets": plan.datasets,
                "derived_datasets": plan.derived_datasets,
                "runs": plan.runs,
                "models": models,
                "deployments": plan.deployments,
                "predictions": plan.predictions,
                "vault_entries": plan.vault_entries,
                "redactions": redacted,
            },
        )
        [position] = ledger.append_locked(conn, [event])
        if position != erased_pos:
            raise IntegrityViolation(
                f"the erasure's event landed at position {position}, not {erased_pos}: "
                "its redactions name the wrong erasure"
            )
    return Outcome(
        "erased",
        erasure,
        subject_id(project, reference),
        plan.as_dict(),
        requested_position=requested_pos,
        erased_position=erased_pos,
        models=models,
        redactions=len(redacted),
        seconds=round(time.perf_counter() - began, 4),
    )


def _retained(raw: Raw, requested_pos: int) -> list[Retain]:
    body = raw.scalar("SELECT body FROM events WHERE position = ?", (requested_pos,))
    return [Retain(**r) for r in json.loads(body).get("retain", [])]


def _requested_by(raw: Raw, requested_pos: int) -> str:
    return str(raw.scalar("SELECT actor FROM events WHERE position = ?", (requested_pos,)))


_EVENT = (
    "SELECT e.position, e.event_id, e.type, e.schema_version, e.project, e.entity, e.actor, "
    "e.occurred_at, e.recorded_at, e.body, e.personal_refs, e.trace_id, e.leaf_hash, "
    "p.payload FROM events e LEFT JOIN event_payloads p ON p.position = e.position "
    "WHERE e.position = ?"
)


def _redact(conn: Connection, plan: Plan, erased_pos: int) -> list[dict[str, Any]]:
    """Rewrite every event holding the subject's pseudonyms; return the declarations."""
    raw = Raw(conn)
    erased = set(plan.records)
    positions = plan.events
    if not positions:
        return []
    earlier = redactions(conn, positions[0], positions[-1] + 1)
    declared = []
    for position in positions:
        leaf = next(leaves(conn, EVENTS, position, position + 1), None)
        if leaf is None or leaf.computed != leaf.stored:
            raise IntegrityViolation(
                f"refusing to erase: the event at position {position} does not match its "
                "leaf hash (run `mlledger audit verify`)"
            )
        (
            _,
            event_id,
            type_,
            version,
            project,
            entity,
            actor,
            occurred,
            recorded,
            body_json,
            refs_json,
            trace_id,
            _leaf,
            payload,
        ) = raw.one(_EVENT, (position,))
        wanted_payload = None
        if payload is not None:
            before = earlier.get(position)
            wanted_payload = (
                before.payload_digest
                if before is not None and before.payload_digest
                else json.loads(body_json)["payload_digest"]
            )
            if payloads.digest(bytes(payload)) != wanted_payload:
                raise IntegrityViolation(
                    f"refusing to erase: the payload at position {position} does not match "
                    "its digest (run `mlledger audit verify`)"
                )
        body = json.loads(body_json)
        new_entity, new_payload = entity, None
        if type_ == "dataset-records-added":
            kept = [
                (r, s)
                for r, s in zip(body["records"], body["subjects"], strict=True)
                if r not in erased
            ]
            body = {"records": [r for r, _ in kept], "subjects": [s for _, s in kept]}
        elif type_ == "subject-data-stored":
            new_entity = subject_id(project, plan.reference)
        elif type_ == "predictions-logged":
            new_payload, _rows = payloads.redact_predictions(bytes(payload), erased)
        new_body, _ = canonical_text(body)
        refs = json.loads(refs_json)
        new_leaf = leaf_hash(
            canonical_event(
                position,
                event_id,
                type_,
                version,
                project,
                new_entity,
                actor,
                occurred,
                recorded,
                new_body,
                refs,
                trace_id,
            )
        )
        new_digest = payloads.digest(new_payload) if new_payload is not None else None
        raw.run(
            "INSERT INTO redactions (position, erased_pos, leaf, payload_digest) "
            "VALUES (?, ?, ?, ?)",
            (position, erased_pos, new_leaf, new_digest),
        )
        if new_body != body_json or new_entity != entity:
            raw.run(
                "UPDATE events SET entity = ?, body = ? WHERE position = ?",
                (new_entity, new_body, position),
            )
        if new_payload is not None:
            raw.run(
                "UPDATE event_payloads SET payload = ? WHERE position = ?",
                (new_payload, position),
            )
        declared.append({"position": position, "leaf": new_leaf.hex(), "payload": new_digest})
    return declared


def _forget(raw: Raw, plan: Plan, erasure: str) -> None:
    """Delete the subject's vault entries, key and request row, and take their records
    and predictions out of the indexes, as a replay of the redacted log would."""
    project = plan.project
    raw.run("DELETE FROM vault_entries WHERE project = ? AND subject = ?", (project, plan.subject))
    raw.run("DELETE FROM subject_keys WHERE project = ? AND subject = ?", (project, plan.subject))
    raw.run("DELETE FROM erasure_requests WHERE erasure = ?", (erasure,))
    epochs = _epochs(raw)
    removed: dict[str, int] = {}
    for chunk in _chunks(plan.records):
        marks = placeholders(len(chunk))
        raw.run(
            f"DELETE FROM prediction_index WHERE epoch IN ({placeholders(len(epochs))}) "
            f"AND project = ? AND record IN ({marks})",
            (*epochs, project, *chunk),
        )
        for dataset, count in raw.all(
            f"SELECT dataset, COUNT(*) FROM record_index WHERE project = ? AND record IN "
            f"({marks}) GROUP BY dataset",
            (project, *chunk),
        ):
            removed[dataset] = removed.get(dataset, 0) + int(count)
        raw.run(
            f"DELETE FROM record_index WHERE project = ? AND record IN ({marks})",
            (project, *chunk),
        )
    for dataset, count in sorted(removed.items()):
        raw.run(
            "UPDATE dataset_record_counts SET records = records - ? WHERE dataset = ?",
            (count, dataset),
        )
    # A replay creates no count for a version none of whose records remain.
    raw.run("DELETE FROM dataset_record_counts WHERE records <= 0")


# --- remediation ---------------------------------------------------------------------------


def check_remediation(ledger: Ledger, conn: Connection, index: int, event: NewEvent) -> None:
    """Refuse an ``erasure-remediated`` event (after its batch reached the projections)
    unless it resolved an open ``retrain-required`` flag and its model version was
    trained without anything the erasure touched."""
    raw = Raw(conn)
    erasure, old = event.body["erasure"], event.body["model"]

    def reject(where: str, message: str) -> None:
        raise EventRejected(index, event.event_id, event.type, where, message)

    row = raw.one("SELECT project, status, summary FROM erasures WHERE erasure = ?", (erasure,))
    flag = raw.one(
        "SELECT resolved_pos, project FROM remediations WHERE model = ? AND erasure = ?",
        (old, erasure),
    )
    # The flag belongs to the flagged model's project (an erasure of another project
    # that granted it the data may have set it); only that project remediates it.
    if row is None or row[1] != "erased" or flag is None or flag[1] != event.project:
        reject(
            "body.erasure",
            f"no completed erasure {erasure} flagged a model version of project "
            f"{event.project!r} as {old}",
        )
    assert row is not None and flag is not None
    position = raw.scalar(
        "SELECT position FROM events WHERE project = ? AND event_id = ?",
        (event.project, event.event_id),
    )
    if flag[0] is None or int(flag[0]) != int(position):
        reject(
            "body.model",
            f"the flag erasure {erasure} put on {old} is not open for remediation "
            "(retained with a justification, or already remediated)",
        )
    if event.entity == old:
        reject("entity", "a model version cannot remediate itself; register a new version")
    run = raw.scalar("SELECT run FROM cat_models WHERE id = ?", (event.entity,))
    if run is None:
        reject(
            "entity",
            f"{event.entity} was not produced by a run: register it from the run that "
            "retrained it, so its training data can be checked",
        )
    summary = json.loads(row[2])
    touched = {*summary["datasets"], *summary["derived_datasets"], *summary["models"]}
    inputs = sorted(
        r[0]
        for r in raw.all("SELECT src FROM lineage_edges WHERE dst = ? AND kind = 'input'", (run,))
    )
    for node in inputs:
        if node in touched:
            reject(
                "entity",
                f"its run read {node}, which held or came from the erased subject's data; "
                "expected inputs registered without the erased records",
            )
    refs = {
        r[0]
        for r in raw.all(
            "SELECT reference FROM erased_refs WHERE erasure = ? AND kind = 'record'",
            (erasure,),
        )
    }
    pseudo = ledger.pseudonymizer(event.project)
    for node in inputs:
        if not node.startswith("dataset:"):
            continue
        for (record,) in raw.all("SELECT record FROM record_index WHERE dataset = ?", (node,)):
            if pseudo.erased_record(record) in refs:
                reject(
                    "entity",
                    f"its run read {node}, which holds a record erasure {erasure} erased; "
                    "expected the erased records excluded",
                )


# --- batches ---------------------------------------------------------------------------------


def erase_many(
    ledger: Ledger,
    project: str,
    subjects: Iterable[str],
    *,
    actor: str,
    retain: Sequence[Retain] = (),
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Erase each subject in turn (each atomically); a subject the project never held
    is reported ``not-found`` and the batch goes on. Re-running a batch after an
    interruption resumes it: erased subjects are no-ops, an interrupted one is
    completed."""
    outcomes = []
    pseudo = ledger.pseudonymizer(project)
    for subject in subjects:
        try:
            outcome = erase(ledger, project, subject, actor=actor, retain=retain)
        except NotFound:
            reference = pseudo.erasure_reference(pseudo.subject(subject))
            outcome = Outcome("not-found", None, subject_id(project, reference))
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return outcomes


# --- after the commit: purge, checkpoint, certificate ---------------------------------------


def signing_key(ledger: Ledger) -> Any:
    """The log's signing key (``MLLEDGER_SIGNING_KEY`` or beside the database), made on
    first use: it signs the checkpoint and the certificate of each erasure."""
    key, _, _ = load_signing_key(ledger.store.url, Settings().signing_key, create=True)
    return key


def finish(ledger: Ledger, outcome: Outcome, *, purge: bool = True, sign: bool = True) -> Outcome:
    """After an erasure commits: purge the deleted bytes physically and sign a
    checkpoint covering its ``subject-erased`` event (a batch does both once, after
    its last subject: ``purge`` and ``sign`` False before). A no-op outcome is
    returned as it is."""
    if outcome.status not in ("erased", "resumed"):
        return outcome
    if purge:
        outcome.purge = purge_store(ledger.store).as_dict()
    if sign:
        outcome.checkpoint = checkpoint(ledger)
    return outcome


def checkpoint(ledger: Ledger) -> dict[str, Any]:
    """Sign a checkpoint of the events log if it grew since the last one; return it."""
    signed, _ = write_checkpoint(ledger.store, signing_key(ledger), "events", min_growth=1)
    return {"seq": signed.seq, "size": signed.size, "note": signed.note}


def certificate(
    ledger: Ledger, project: str, erasure: str, *, purge: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The signed certificate (a DSSE envelope) of a completed erasure, with the
    inclusion proofs of its two events against the latest checkpoint (one is signed
    first when none covers them).

    ``purge`` is the report (``PurgeReport.as_dict()``) of a purge that ran after the
    erasure committed, as ``finish`` or a batch's purge returns it: the certificate
    records its method, when it finished, its seconds and tables (``audit.purge.
    attested``). Without it the certificate's ``purge`` is null: the ledger keeps no
    record of purges, so a certificate made later attests none.
    """
    claimed = None if purge is None else attested(purge)

    with ledger.store.read() as conn:
        row = Raw(conn).one(
            "SELECT requested_pos, erased_pos FROM erasures WHERE erasure = ? AND project = ? "
            "AND status = 'erased'",
            (erasure, project),
        )
        latest = Raw(conn).scalar("SELECT MAX(tree_size) FROM checkpoints WHERE tree = 'events'")
    if row is None:
        raise NotFound(f"no completed erasure {erasure} in project {project!r}")
    requested_pos, erased_pos = int(row[0]), int(row[1])
    if latest is None or int(latest) <= erased_pos:
        checkpoint(ledger)
    key = signing_key(ledger)
    for _ in range(3):  # a checkpoint signed between the two bundles: make them again
        request = make_bundle(ledger.store, requested_pos)
        erased = make_bundle(ledger.store, erased_pos)
        if request["checkpoint"] == erased["checkpoint"]:
            return make_certificate(key, request=request, erased=erased, purge=claimed)
    raise LedgerError("checkpoints are being signed too fast to prove both events; try again")


def erasures(ledger: Ledger, project: str) -> list[dict[str, Any]]:
    """Every erasure of the project, oldest first (references and counts, no pseudonyms)."""
    with ledger.store.read() as conn:
        rows = Raw(conn).all(
            "SELECT erasure, reference, status, requested_by, requested_at, requested_pos, "
            "erased_at, erased_pos, summary FROM erasures WHERE project = ? "
            "ORDER BY requested_pos",
            (project,),
        )
    return [
        {
            "erasure": r[0],
            "subject": subject_id(project, r[1]),
            "status": r[2],
            "requested_by": r[3],
            "requested_at": r[4],
            "requested_position": int(r[5]),
            "erased_at": r[6],
            "erased_position": None if r[7] is None else int(r[7]),
            "summary": None if r[8] is None else json.loads(r[8]),
        }
        for r in rows
    ]


def remediations(ledger: Ledger, project: str, status: str | None = None) -> list[dict[str, Any]]:
    """Remediation flags of the project's model versions (``status`` filters: open
    flags are ``retrain-required``), in the order they were flagged."""
    sql = (
        "SELECT model, erasure, status, justification, approver, flagged_pos, resolved_by, "
        "resolved_pos FROM remediations WHERE project = ?"
    )
    params: tuple[Any, ...] = (project,)
    if status is not None:
        sql += " AND status = ?"
        params = (project, status)
    with ledger.store.read() as conn:
        rows = Raw(conn).all(sql + " ORDER BY flagged_pos, model", params)
    return [
        {
            "model": r[0],
            "erasure": r[1],
            "status": r[2],
            "justification": r[3],
            "approver": r[4],
            "flagged_position": int(r[5]),
            "resolved_by": r[6],
            "resolved_position": None if r[7] is None else int(r[7]),
        }
        for r in rows
    ]


def erased_keys(ledger: Ledger, project: str, keys: Sequence[str | int]) -> list[bool]:
    """For each record key, whether an erasure erased that record (training code drops
    those before it retrains a flagged model)."""
    pseudo = ledger.pseudonymizer(project)
    refs = [pseudo.erased_record(p) for p in pseudo.records(keys)]
    found: set[str] = set()
    with ledger.store.read() as conn:
        raw = Raw(conn)
        for chunk in _chunks(sorted(set(refs))):
            found.update(
                r[0]
                for r in raw.all(
                    "SELECT reference FROM erased_refs WHERE project = ? AND kind = 'record' "
                    f"AND reference IN ({placeholders(len(chunk))})",
                    (project, *chunk),
                )
            )
    return [ref in found for ref in refs]
