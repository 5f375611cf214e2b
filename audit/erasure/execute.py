"""Carrying out an erasure: request it, complete it in one transaction, finish after.

``request`` appends ``subject-erasure-requested`` with its resumable request row;
``complete`` (under the append lock, in one transaction) plans the cascade, rewrites
every event holding the subject's pseudonyms (``redactions``: each keeps its leaf
hash), forgets the subject's vault entries, key, records and predictions, and appends
``subject-erased``. ``finish`` then purges the deleted bytes and signs a checkpoint;
``certify`` makes the signed certificate of a completed erasure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from audit.checkpoints import load_signing_key, write_checkpoint
from audit.erasure.certificate import make_certificate
from audit.erasure.plan import Plan, Retain, check_retain, chunks, epochs, flags, make_plan
from audit.erasure.purge import attested
from audit.erasure.purge import purge as purge_store
from audit.leaves import Redaction, leaves, redactions
from audit.proofs import make_bundle
from audit.tree import EVENTS
from lineage import prediction_filters
from registry.canonical import canonical_text, leaf_hash
from registry.errors import Conflict, IntegrityViolation, NotFound
from registry.events import canonical_event, make_event
from registry.ids import new_id, subject_id
from registry.lazy import lazy_import
from registry.store.raw import Raw, placeholders
from registry.timeutil import now

if TYPE_CHECKING:
    from registry import payloads
    from registry.ledger import Ledger
else:
    payloads = lazy_import("registry.payloads")  # pyarrow, only for erasures with predictions


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
        """JSON-ready form."""
        return asdict(self)


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


def _since(began: float) -> float:
    return round(time.perf_counter() - began, 4)


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
    elif not plan.holds_data():
        if last is None:
            raise NotFound(f"no data subject with that id in project {project!r}")
        return Outcome(
            "already-erased", last[0], who, requested_position=last[1], erased_position=last[2]
        )
    else:
        check_retain(plan, retain)
        erasure = request(ledger, project, pseudonym, reference, actor=actor, retain=retain)
        outcome = complete(ledger, erasure)
    outcome.seconds = _since(began)
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


def _already_erased(raw: Raw, erasure: str) -> Outcome:
    """The no-op outcome of completing an erasure that is no longer requested."""
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


def _erased_event(
    plan: Plan,
    erasure: str,
    reference: str,
    requested_pos: int,
    actor: str,
    models: list[dict[str, Any]],
    redacted: list[dict[str, Any]],
) -> Any:
    """The ``subject-erased`` event declaring what the erasure rewrote and flagged."""
    return make_event(
        "subject-erased",
        project=plan.project,
        entity=subject_id(plan.project, reference),
        actor=actor,
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


def complete(ledger: Ledger, erasure: str) -> Outcome:
    """Carry out a requested erasure in one transaction (see the package docstring)."""
    began = time.perf_counter()
    with ledger.store.append_transaction() as conn:
        raw = Raw(conn)
        row = raw.one(
            "SELECT project, subject, reference, requested_pos FROM erasure_requests "
            "WHERE erasure = ?",
            (erasure,),
        )
        if row is None:
            return _already_erased(raw, erasure)
        project, pseudonym, reference, requested_pos = row[0], row[1], row[2], int(row[3])
        retain = _retained(raw, requested_pos)
        plan = make_plan(ledger, conn, project, pseudonym)
        erased_pos = int(raw.scalar("SELECT MAX(position) FROM events")) + 1
        redacted = _redact(conn, plan, erased_pos)
        _forget(ledger, raw, plan, erasure)
        models = flags(plan.models, retain)
        actor = _requested_by(raw, requested_pos)
        event = _erased_event(plan, erasure, reference, requested_pos, actor, models, redacted)
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
        seconds=_since(began),
    )


def _retained(raw: Raw, requested_pos: int) -> list[Retain]:
    body = raw.scalar("SELECT body FROM events WHERE position = ?", (requested_pos,))
    return [Retain(**r) for r in json.loads(body).get("retain", [])]


def _requested_by(raw: Raw, requested_pos: int) -> str:
    return str(raw.scalar("SELECT actor FROM events WHERE position = ?", (requested_pos,)))


# --- redaction -----------------------------------------------------------------------------

_EVENT = (
    "SELECT e.position, e.event_id, e.type, e.schema_version, e.project, e.entity, e.actor, "
    "e.occurred_at, e.recorded_at, e.body, e.personal_refs, e.trace_id, e.leaf_hash, "
    "p.payload FROM events e LEFT JOIN event_payloads p ON p.position = e.position "
    "WHERE e.position = ?"
)


def _check_leaf(conn: Connection, position: int) -> None:
    """Refuse to rewrite an event that no longer matches its leaf hash."""
    leaf = next(leaves(conn, EVENTS, position, position + 1), None)
    if leaf is None or leaf.computed != leaf.stored:
        raise IntegrityViolation(
            f"refusing to erase: the event at position {position} does not match its "
            "leaf hash (run `mlledger audit verify`)"
        )


def _check_payload(position: int, payload: bytes, body_json: str, before: Redaction | None) -> None:
    """Refuse to rewrite a payload that no longer matches its digest (the digest an
    earlier redaction declared, else the event's own)."""
    wanted = (
        before.payload_digest
        if before is not None and before.payload_digest
        else json.loads(body_json)["payload_digest"]
    )
    if payloads.digest(payload) != wanted:
        raise IntegrityViolation(
            f"refusing to erase: the payload at position {position} does not match "
            "its digest (run `mlledger audit verify`)"
        )


def _without(
    type_: str, body: dict[str, Any], entity: str, payload: bytes | None, plan: Plan
) -> tuple[dict[str, Any], str, bytes | None]:
    """The body, entity and payload of an event once the subject's pseudonyms are gone
    (the payload None when it is unchanged)."""
    erased = set(plan.records)
    if type_ == "dataset-records-added":
        kept = [
            (r, s)
            for r, s in zip(body["records"], body["subjects"], strict=True)
            if r not in erased
        ]
        return {"records": [r for r, _ in kept], "subjects": [s for _, s in kept]}, entity, None
    if type_ == "subject-data-stored":
        return body, subject_id(plan.project, plan.reference), None
    if type_ == "predictions-logged" and payload is not None:
        return body, entity, payloads.redact_predictions(payload, erased)[0]
    return body, entity, None


def _redact_one(
    raw: Raw, plan: Plan, position: int, erased_pos: int, before: Redaction | None
) -> dict[str, Any]:
    """Rewrite the event at ``position`` without the subject; return its declaration."""
    row = raw.one(_EVENT, (position,))
    # The first twelve columns are canonical_event's arguments, in its order.
    type_, entity, body_json, stored = row[2], row[5], row[9], row[13]
    payload = None if stored is None else bytes(stored)
    if payload is not None:
        _check_payload(position, payload, body_json, before)
    body, new_entity, new_payload = _without(type_, json.loads(body_json), entity, payload, plan)
    new_body, _ = canonical_text(body)
    fields = list(row[:12])
    fields[5], fields[9], fields[10] = new_entity, new_body, json.loads(row[10])
    new_leaf = leaf_hash(canonical_event(*fields))
    new_digest = payloads.digest(new_payload) if new_payload is not None else None
    raw.run(
        "INSERT INTO redactions (position, erased_pos, leaf, payload_digest) VALUES (?, ?, ?, ?)",
        (position, erased_pos, new_leaf, new_digest),
    )
    if new_body != body_json or new_entity != entity:
        raw.run(
            "UPDATE events SET entity = ?, body = ? WHERE position = ?",
            (new_entity, new_body, position),
        )
    if new_payload is not None:
        raw.run("UPDATE event_payloads SET payload = ? WHERE position = ?", (new_payload, position))
    return {"position": position, "leaf": new_leaf.hex(), "payload": new_digest}


def _redact(conn: Connection, plan: Plan, erased_pos: int) -> list[dict[str, Any]]:
    """Rewrite every event holding the subject's pseudonyms; return the declarations."""
    positions = plan.events
    if not positions:
        return []
    raw = Raw(conn)
    earlier = redactions(conn, positions[0], positions[-1] + 1)
    declared = []
    for position in positions:
        _check_leaf(conn, position)
        declared.append(_redact_one(raw, plan, position, erased_pos, earlier.get(position)))
    return declared


def _forget(ledger: Ledger, raw: Raw, plan: Plan, erasure: str) -> None:
    """Delete the subject's vault entries, key and request row, and take their records
    and predictions out of the indexes, as a replay of the redacted log would."""
    project = plan.project
    raw.run("DELETE FROM vault_entries WHERE project = ? AND subject = ?", (project, plan.subject))
    raw.run("DELETE FROM subject_keys WHERE project = ? AND subject = ?", (project, plan.subject))
    raw.run("DELETE FROM erasure_requests WHERE erasure = ?", (erasure,))
    removed: dict[str, int] = {}
    emptied: set[int] = set()
    for chunk in chunks(plan.records):
        marks = placeholders(len(chunk))
        # The filters are a superset of the epochs holding the records: none is missed.
        sought = epochs(ledger, raw, project, chunk)
        if sought:
            emptied.update(
                int(row[0])
                for row in raw.all(
                    f"SELECT DISTINCT epoch FROM prediction_index WHERE epoch IN "
                    f"({placeholders(len(sought))}) AND project = ? AND record IN ({marks})",
                    (*sought, project, *chunk),
                )
            )
            raw.run(
                f"DELETE FROM prediction_index WHERE epoch IN ({placeholders(len(sought))}) "
                f"AND project = ? AND record IN ({marks})",
                (*sought, project, *chunk),
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
    if emptied:
        prediction_filters.rewrite(raw, emptied)
    for dataset, count in sorted(removed.items()):
        raw.run(
            "UPDATE dataset_record_counts SET records = records - ? WHERE dataset = ?",
            (count, dataset),
        )
    # A replay creates no count for a version none of whose records remain.
    raw.run("DELETE FROM dataset_record_counts WHERE records <= 0")


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
    key, _, _ = load_signing_key(ledger.store.url, ledger.settings.signing_key, create=True)
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


def certify(
    ledger: Ledger, project: str, erasure: str, *, purge: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The signed certificate (a DSSE envelope) of a completed erasure, with the
    inclusion proofs of its two events against the latest checkpoint (one is signed
    first when none covers them).

    ``purge`` is the report (``PurgeReport.as_dict()``) of a purge that ran after the
    erasure committed, as ``finish`` or a batch's purge returns it: the certificate
    records its method, when it finished, its seconds and tables (``audit.erasure.
    purge.attested``). Without it the certificate's ``purge`` is null: the ledger keeps
    no record of purges, so a certificate made later attests none.
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
    raise Conflict("checkpoints are being signed too fast to prove both events; try again")
