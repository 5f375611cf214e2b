"""Erasure certificates: a signed attestation that the ledger ran a data subject's erasure.

A certificate is an in-toto Statement v1
(https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md) in a DSSE
envelope (https://github.com/secure-systems-lab/dsse), signed with the log's
Ed25519 key, the key that signs its checkpoints::

    {"payloadType": "application/vnd.in-toto+json",
     "payload": "<base64 of the statement's compact sorted-key JSON>",
     "signatures": [{"keyid": "<key name>+<8 hex key ID>", "sig": "<base64>"}]}

The statement's subject is the ``subject-erased`` event (named
``<origin>/events/<position>``, digest the SHA-256 of its RFC 8785 text) and its
predicate (``PREDICATE_TYPE``) says what the erasure touched. The predicate also
carries both events' texts, their inclusion proofs and the signed checkpoint they
lead to, so the certificate is checked offline with nothing but the log's public
key: every other predicate field must be what the two events say, and an event is
believed only once its proof leads to a root the key signed. ``purge`` (the physical
purge that ran after the erasure, or null) is the signer's claim alone: the ledger
keeps no record of purges for a verifier to check it against.

The certificate's shape is ``audit.erasure.schema`` (pydantic models, published as
``docs/schemas/erasure-certificate.schema.json``); this module makes and checks one.

It attests the erasure *process* and what that process recorded; it is not a
proof that no copy of the data remains anywhere (``STATEMENT``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from audit import merkle
from audit.checkpoints import origin
from audit.dsse import PAYLOAD_TYPE, EnvelopeError, open_envelope, pae, sign_envelope
from audit.dsse import short as _short
from audit.erasure.schema import (
    ERASED_TYPE,
    PREDICATE_TYPE,
    REQUEST_TYPE,
    STATEMENT,
    STATEMENT_TYPE,
    Statement,
)
from audit.note import NoteError, SigningKey, VerifierKey, verify_checkpoint
from audit.proofs import ProofError, _hashes, verify_bundle
from registry.errors import FieldError
from registry.events import REMEDIATION_STATUSES

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT",
    "STATEMENT_TYPE",
    "CertificateError",
    "VerifiedCertificate",
    "make_certificate",
    "open_envelope",
    "pae",
    "sign_envelope",
    "verify_certificate",
]

_REFERENCE = re.compile(r"[0-9a-f]{32}")
_LEAF = re.compile(r"[0-9a-f]{64}")
_PAYLOAD_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Predicate fields that are not derived from the two entries: the statement's text, the
# purge the signer ran (its own claim, covered by the signature) and the log's proofs.
_OWN_FIELDS = ("statement", "purge", "log")
_LOG_FIELDS = {"origin", "tree_size", "checkpoint", "events"}
_EVENT_FIELDS = {"index", "entry", "inclusion_proof"}

#: An erasure certificate that does not verify; the message says which check failed.
#: One class with the envelope's errors: a certificate is first a DSSE envelope.
CertificateError = EnvelopeError


# --- reading entries ----------------------------------------------------------------------


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CertificateError(f"{what} is {_short(value)}; expected a JSON object")
    return value


def _field(obj: dict[str, Any], name: str, what: str) -> Any:
    if name not in obj:
        raise CertificateError(f"{what} has no field {name!r}")
    return obj[name]


def _str(obj: dict[str, Any], name: str, what: str, pattern: re.Pattern[str] | None = None) -> str:
    value = _field(obj, name, what)
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        expected = f"a string matching {pattern.pattern!r}" if pattern else "a string"
        raise CertificateError(f"{what}.{name} is {_short(value)}; expected {expected}")
    return value


def _optional_str(obj: dict[str, Any], name: str, what: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise CertificateError(f"{what}.{name} is {_short(value)}; expected a string or null")
    return value


def _count(obj: dict[str, Any], name: str, what: str) -> int:
    value = _field(obj, name, what)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CertificateError(f"{what}.{name} is {_short(value)}; expected a whole number >= 0")
    return value


def _list(obj: dict[str, Any], name: str, what: str) -> list[Any]:
    value = obj.get(name, [])
    if not isinstance(value, list):
        raise CertificateError(f"{what}.{name} is {_short(value)}; expected a list")
    return value


def _id(value: Any, what: str, prefix: str) -> str:
    if not isinstance(value, str) or not value.startswith(prefix) or value == prefix:
        raise CertificateError(f"{what} is {_short(value)}; expected a {prefix[:-1]} id")
    return value


def _ids(obj: dict[str, Any], name: str, what: str, prefix: str) -> list[str]:
    """A list of node ids of one kind (``prefix`` is ``<kind>:``)."""
    return [
        _id(item, f"{what}.{name}[{i}]", prefix) for i, item in enumerate(_list(obj, name, what))
    ]


def _references(obj: dict[str, Any], name: str, what: str) -> list[str]:
    items = _list(obj, name, what)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not _REFERENCE.fullmatch(item):
            raise CertificateError(
                f"{what}.{name}[{i}] is {_short(item)}; expected 32 lowercase hex digits"
            )
    return items


def _uuid(obj: dict[str, Any], name: str, what: str) -> str:
    value = _str(obj, name, what)
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        canonical = None
    if canonical != value:
        raise CertificateError(f"{what}.{name} is {_short(value)}; expected a lowercase uuid")
    return value


def _entry(text: str, what: str, event_type: str) -> dict[str, Any]:
    """The parsed event in ``text``, which must be of type ``event_type``."""
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise CertificateError(f"the {what} entry is not JSON") from None
    event = _object(event, f"the {what} entry")
    found = _field(event, "type", f"the {what} entry")
    if found != event_type:
        raise CertificateError(
            f"the {what} entry is a {_short(found)} event; expected {event_type!r}"
        )
    return event


def _remediation(items: list[Any], what: str) -> list[dict[str, Any]]:
    flags = []
    for i, item in enumerate(items):
        where = f"{what}[{i}]"
        flag = _object(item, where)
        status = _str(flag, "status", where)
        if status not in REMEDIATION_STATUSES:
            raise CertificateError(
                f"{where}.status is {status!r}; expected one of {', '.join(REMEDIATION_STATUSES)}"
            )
        entry = {
            "model": _id(_field(flag, "model", where), f"{where}.model", "model:"),
            "status": status,
            "justification": _optional_str(flag, "justification", where),
            "approver": _optional_str(flag, "approver", where),
        }
        if status == "retained-with-justification" and not (
            entry["justification"] and entry["approver"]
        ):
            raise CertificateError(
                f"{where} ({entry['model']}) is retained without a justification and an approver"
            )
        flags.append(entry)
    return flags


def _redactions(items: list[Any], what: str) -> list[int]:
    positions = []
    for i, item in enumerate(items):
        where = f"{what}[{i}]"
        redaction = _object(item, where)
        positions.append(_count(redaction, "position", where))
        _str(redaction, "leaf", where, _LEAF)
        payload = _optional_str(redaction, "payload", where)
        if payload is not None and not _PAYLOAD_DIGEST.fullmatch(payload):
            raise CertificateError(
                f"{where}.payload is {_short(payload)}; expected 'sha256:<64 hex>' or null"
            )
    return positions


def _one_subject(request: dict[str, Any], erased: dict[str, Any]) -> tuple[str, str]:
    """The project and subject both entries name; raises if they name two."""
    project = _str(request, "project", "the request entry")
    if _str(erased, "project", "the erased entry") != project:
        raise CertificateError(
            f"the erased entry's project {erased['project']!r} is not the request's {project!r}"
        )
    subject = re.compile(rf"subject:{re.escape(project)}/[0-9a-f]{{32}}")
    entity = _str(request, "entity", "the request entry", subject)
    if _str(erased, "entity", "the erased entry") != entity:
        raise CertificateError(
            f"the erased entry is about {_short(erased['entity'])}, the request about "
            f"{entity!r}: they are not one subject's erasure"
        )
    return project, entity


def _affected(done: dict[str, Any], remediation: list[dict[str, Any]]) -> dict[str, Any]:
    """The predicate's ``affected``, from the ``subject-erased`` event's body."""
    return {
        "records": {
            "count": _count(done, "records", "erased.body"),
            "references": _references(done, "record_refs", "erased.body"),
        },
        "datasets": _ids(done, "datasets", "erased.body", "dataset:"),
        "derived_datasets": _ids(done, "derived_datasets", "erased.body", "dataset:"),
        "runs": _ids(done, "runs", "erased.body", "run:"),
        "models": [flag["model"] for flag in remediation],
        "deployments": _ids(done, "deployments", "erased.body", "deployment:"),
        "predictions": _count(done, "predictions", "erased.body"),
        "vault_entries": _count(done, "vault_entries", "erased.body"),
    }


def _facts(request_text: str, erased_text: str) -> dict[str, Any]:
    """The predicate fields the two entries imply; raises if they are not one erasure.

    Both make_certificate and verify_certificate use it, so a certificate says exactly
    what its entries say.
    """
    request = _entry(request_text, "request", REQUEST_TYPE)
    erased = _entry(erased_text, "erased", ERASED_TYPE)
    project, entity = _one_subject(request, erased)
    requested = _count(request, "position", "the request entry")
    completed = _count(erased, "position", "the erased entry")
    asked = _object(_field(request, "body", "the request entry"), "the request entry's body")
    done = _object(_field(erased, "body", "the erased entry"), "the erased entry's body")
    erasure = _uuid(asked, "erasure", "request.body")
    if _uuid(done, "erasure", "erased.body") != erasure:
        raise CertificateError(
            f"the erased entry completes erasure {done['erasure']}, the request is for "
            f"{erasure}: they are not one erasure"
        )
    if _count(done, "request", "erased.body") != requested:
        raise CertificateError(
            f"the erased entry names request position {done['request']}, but the request "
            f"entry is at position {requested}"
        )
    if completed <= requested:
        raise CertificateError(
            f"the erased entry (position {completed}) is not after its request "
            f"(position {requested})"
        )
    _list(asked, "retain", "request.body")
    remediation = _remediation(_list(done, "models", "erased.body"), "erased.body.models")
    return {
        "erasure": erasure,
        "project": project,
        "subject": entity,
        "requested": {
            "position": requested,
            "at": _str(request, "recorded_at", "the request entry"),
        },
        "completed": {
            "position": completed,
            "at": _str(erased, "recorded_at", "the erased entry"),
        },
        "requested_by": _str(request, "actor", "the request entry"),
        "affected": _affected(done, remediation),
        "remediation": remediation,
        "redactions": _redactions(
            _list(done, "redactions", "erased.body"), "erased.body.redactions"
        ),
    }


def _canonical(value: Any) -> str:
    # Compared as JSON text, so that 1, 1.0 and true are three different values.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _difference(expected: Any, found: Any, path: str) -> str | None:
    """The first place where ``found`` is not ``expected``, described; None if equal."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for name in sorted(set(expected) | set(found)):
            if name not in found:
                return f"{path}.{name} is missing"
            if name not in expected:
                return f"{path}.{name} is not a field of this predicate"
            problem = _difference(expected[name], found[name], f"{path}.{name}")
            if problem:
                return problem
        return None
    if isinstance(expected, list) and isinstance(found, list) and len(expected) == len(found):
        for i, (want, got) in enumerate(zip(expected, found, strict=True)):
            problem = _difference(want, got, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if _canonical(expected) != _canonical(found):
        return f"{path} is {_short(found)}, but the log's entries say {_short(expected)}"
    return None


def _subject(log_origin: str, position: int, erased_text: str) -> list[dict[str, Any]]:
    digest = hashlib.sha256(erased_text.encode("utf-8")).hexdigest()
    return [{"name": f"{log_origin}/events/{position}", "digest": {"sha256": digest}}]


# --- certificates -------------------------------------------------------------------------


@contextmanager
def _failing(what: str) -> Iterator[None]:
    try:
        yield
    except (ProofError, NoteError) as exc:
        raise CertificateError(f"{what}: {exc}") from None


def make_certificate(
    key: SigningKey,
    *,
    request: dict[str, Any],
    erased: dict[str, Any],
    purge: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The erasure certificate (a signed DSSE envelope) from the proof bundles of an
    erasure's ``subject-erasure-requested`` and ``subject-erased`` events, both made
    against the same checkpoint. ``purge`` describes the purge that ran after the
    erasure (``audit.erasure.purge.attested``: method, finished_at, seconds, tables), or None
    when the caller ran none; it is the signer's own claim, signed with the rest."""
    if purge is not None and not isinstance(purge, dict):
        raise FieldError(
            "purge", f"purge must be a JSON object or None, not {type(purge).__name__}"
        )
    verifier = key.verifier()
    for name, bundle in (("request", request), ("erased", erased)):
        with _failing(f"the {name} bundle does not verify"):
            verify_bundle(bundle, verifier)
        if bundle["tree"] != "events":
            raise CertificateError(
                f"the {name} bundle proves a {bundle['tree']} entry; expected an events entry"
            )
    if (request["tree_size"], request["checkpoint"]) != (erased["tree_size"], erased["checkpoint"]):
        raise CertificateError(
            f"the bundles are against different checkpoints (sizes {request['tree_size']} and "
            f"{erased['tree_size']}): make both with the same checkpoint"
        )
    facts = _facts(request["entry"], erased["entry"])
    log_origin = origin(key.name, "events")
    predicate = {
        "statement": STATEMENT,
        **facts,
        "purge": purge,
        "log": {
            "origin": log_origin,
            "tree_size": request["tree_size"],
            "checkpoint": request["checkpoint"],
            "events": [
                {
                    "index": bundle["index"],
                    "entry": bundle["entry"],
                    "inclusion_proof": list(bundle["inclusion_proof"]),
                }
                for bundle in (request, erased)
            ],
        },
    }
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": _subject(log_origin, facts["completed"]["position"], erased["entry"]),
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    # What mlledger signs has the published shape (docs/schemas/): checked, not assumed.
    Statement.model_validate(statement)
    return sign_envelope(key, statement)


class VerifiedCertificate(BaseModel):
    """What a verified erasure certificate attests: the reader's typed answer."""

    erasure: str
    project: str
    subject: str
    requested_position: int
    requested_at: str
    requested_by: str
    completed_position: int
    completed_at: str
    records: int
    record_refs: list[str]
    datasets: list[str]
    derived_datasets: list[str]
    runs: list[str]
    models: list[str]
    deployments: list[str]
    predictions: int
    vault_entries: int
    remediation: list[dict[str, Any]]
    redactions: list[int]
    purge: dict[str, Any] | None
    origin: str
    tree_size: int
    root: bytes

    @classmethod
    def of(
        cls, facts: dict[str, Any], purge: Any, log_origin: str, size: int, root: bytes
    ) -> VerifiedCertificate:
        """The answer for a certificate whose predicate is ``facts`` (``_facts``)."""
        affected = facts["affected"]
        return cls(
            erasure=facts["erasure"],
            project=facts["project"],
            subject=facts["subject"],
            requested_position=facts["requested"]["position"],
            requested_at=facts["requested"]["at"],
            requested_by=facts["requested_by"],
            completed_position=facts["completed"]["position"],
            completed_at=facts["completed"]["at"],
            records=affected["records"]["count"],
            record_refs=affected["records"]["references"],
            datasets=affected["datasets"],
            derived_datasets=affected["derived_datasets"],
            runs=affected["runs"],
            models=affected["models"],
            deployments=affected["deployments"],
            predictions=affected["predictions"],
            vault_entries=affected["vault_entries"],
            remediation=facts["remediation"],
            redactions=facts["redactions"],
            purge=purge,
            origin=log_origin,
            tree_size=size,
            root=root,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the CLI and API."""
        return {
            "ok": True,
            "erasure": self.erasure,
            "project": self.project,
            "subject": self.subject,
            "requested": {
                "position": self.requested_position,
                "at": self.requested_at,
                "by": self.requested_by,
            },
            "completed": {"position": self.completed_position, "at": self.completed_at},
            "affected": {
                "records": self.records,
                "record_refs": self.record_refs,
                "datasets": self.datasets,
                "derived_datasets": self.derived_datasets,
                "runs": self.runs,
                "models": self.models,
                "deployments": self.deployments,
                "predictions": self.predictions,
                "vault_entries": self.vault_entries,
            },
            "remediation": self.remediation,
            "redactions": self.redactions,
            "purge": self.purge,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash": base64.b64encode(self.root).decode("ascii"),
            "statement": STATEMENT,
        }


def _proved_entries(
    log: dict[str, Any], key: VerifierKey
) -> tuple[list[str], list[int], int, bytes]:
    """The request and erased entry texts and their indices, once each is proved in the
    checkpoint the key signed; with that checkpoint's tree size and root."""
    log_origin = origin(key.name, "events")
    found = _field(log, "origin", "predicate.log")
    if found != log_origin:
        raise CertificateError(
            f"predicate.log.origin is {_short(found)}; expected {log_origin!r}, the events "
            "log of this key"
        )
    note = _str(log, "checkpoint", "predicate.log")
    with _failing("the checkpoint does not verify with the public key"):
        checkpoint = verify_checkpoint(key, note, log_origin)
    size = _count(log, "tree_size", "predicate.log")
    if size != checkpoint.size:
        raise CertificateError(
            f"predicate.log.tree_size {size} is not the checkpoint's size {checkpoint.size}"
        )
    events = _field(log, "events", "predicate.log")
    if not isinstance(events, list) or len(events) != 2:
        raise CertificateError(
            "predicate.log.events must list two events: the request, then the erasure"
        )
    texts, indices = [], []
    for i, name in enumerate(("request", "erased")):
        where = f"predicate.log.events[{i}]"
        event = _object(events[i], where)
        if set(event) != _EVENT_FIELDS:
            raise CertificateError(f"{where} must have exactly the fields {sorted(_EVENT_FIELDS)}")
        index = _count(event, "index", where)
        text = _str(event, "entry", where)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise CertificateError(f"{where}.entry is not valid UTF-8 text") from None
        with _failing(f"{where} ({name})"):
            proof = _hashes(event["inclusion_proof"], "inclusion_proof")
        if not merkle.verify_inclusion(index, size, merkle.leaf_hash(data), proof, checkpoint.root):
            raise CertificateError(
                f"the {name} entry is not proved in the log: its inclusion proof does not lead "
                f"from index {index} to the checkpoint's root at size {size} (the entry or the "
                "proof was changed)"
            )
        texts.append(text)
        indices.append(index)
    return texts, indices, size, checkpoint.root


def _erasure_predicate(statement: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The predicate of an erasure statement, and its ``log``, once both are objects and
    the statement's types are an erasure's."""
    if statement.get("_type") != STATEMENT_TYPE:
        raise CertificateError(
            f"statement _type is {_short(statement.get('_type'))}; expected {STATEMENT_TYPE!r}"
        )
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise CertificateError(
            f"predicateType is {_short(statement.get('predicateType'))}; "
            f"expected {PREDICATE_TYPE!r} (an erasure certificate)"
        )
    predicate = _object(statement.get("predicate"), "the predicate")
    log = _object(_field(predicate, "log", "the predicate"), "predicate.log")
    if set(log) != _LOG_FIELDS:
        raise CertificateError(f"predicate.log must have exactly the fields {sorted(_LOG_FIELDS)}")
    return predicate, log


def _claimed_purge(predicate: dict[str, Any]) -> dict[str, Any] | None:
    _str(predicate, "statement", "the predicate")
    purge = _field(predicate, "purge", "the predicate")
    if purge is not None and not isinstance(purge, dict):
        raise CertificateError(f"predicate.purge is {_short(purge)}; expected an object or null")
    return purge


def verify_certificate(envelope: Any, key: VerifierKey) -> VerifiedCertificate:
    """Check an erasure certificate offline with the log's public key.

    Raises CertificateError, naming the first check that fails, for anything that is
    not a certificate this key's log issued, unchanged.
    """
    statement = open_envelope(envelope, key)
    predicate, log = _erasure_predicate(statement)
    (request_text, erased_text), indices, size, root = _proved_entries(log, key)
    facts = _facts(request_text, erased_text)
    for name, field, index in zip(
        ("request", "erased"), ("requested", "completed"), indices, strict=True
    ):
        if facts[field]["position"] != index:
            # The proof places the entry at its index; its own position must agree.
            raise CertificateError(
                f"the {name} entry's position {facts[field]['position']} is not its index {index}"
            )
    purge = _claimed_purge(predicate)
    claimed = {name: value for name, value in predicate.items() if name not in _OWN_FIELDS}
    problem = _difference(facts, claimed, "predicate")
    if problem:
        raise CertificateError(problem)
    expected = _subject(log["origin"], facts["completed"]["position"], erased_text)
    problem = _difference(expected, statement.get("subject"), "subject")
    if problem:
        raise CertificateError(f"the statement's subject is not the erased entry: {problem}")
    return VerifiedCertificate.of(facts, purge, log["origin"], size, root)
