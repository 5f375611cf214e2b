"""Erasure certificates (``audit.erasure.certificate``): DSSE envelopes of in-toto statements
over a log's erasure events, checked offline with the log's public key.

The log here is built in memory: filler leaves, erasure events made with
``canonical_event`` and a checkpoint signed by a fresh key.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from audit import merkle
from audit.checkpoints import origin
from audit.dsse import PAYLOAD_TYPE, open_envelope, pae, sign_envelope
from audit.erasure.certificate import (
    PREDICATE_TYPE,
    STATEMENT,
    STATEMENT_TYPE,
    CertificateError,
    make_certificate,
    verify_certificate,
)
from audit.note import Checkpoint, NoteError, SigningKey, VerifierKey, sign_checkpoint
from registry.canonical import canonical_text
from registry.errors import IntegrityViolation, LedgerError
from registry.events import canonical_event
from tests.mutations import set_at

KEY = SigningKey.generate("test.example/log")
OTHER = SigningKey.generate("test.example/log")  # same name, another key
PROJECT = "acme"
REF = "0123456789abcdef0123456789abcdef"
SUBJECT = f"subject:{PROJECT}/{REF}"
OTHER_SUBJECT = f"subject:{PROJECT}/{'f' * 32}"
ERASURE = "6f1c2a52-3b1e-4b8e-9a43-1f0c8d7e5a10"
ERASURE2 = "0b9e7d44-5a1f-4c3d-8e2b-7a6f5e4d3c2b"
MODEL_A = "model:acme/churn@3"
MODEL_B = "model:acme/churn@4"


def _event(position: int, type_: str, body: dict[str, Any], entity: str = SUBJECT) -> bytes:
    body_json, _ = canonical_text(body)
    return canonical_event(
        position,
        f"00000000-0000-4000-8000-{position:012d}",
        type_,
        1,
        PROJECT,
        entity,
        "dpo@acme.example",
        f"2025-03-01T10:00:{position:02d}.000000Z",
        f"2025-03-01T10:00:{position:02d}.500000Z",
        body_json,
        [],
        None,
    )


def _request(position: int, erasure: str = ERASURE, entity: str = SUBJECT) -> bytes:
    retain = [{"model": MODEL_B, "justification": "legal hold", "approver": "cfo@acme.example"}]
    body = {"erasure": erasure, "retain": retain}
    return _event(position, "subject-erasure-requested", body, entity)


def _erased(position: int, request: int, erasure: str = ERASURE, entity: str = SUBJECT) -> bytes:
    body = {
        "erasure": erasure,
        "request": request,
        "records": 2,
        "record_refs": ["a" * 32, "b" * 32],
        "datasets": ["dataset:acme/customers@1"],
        "derived_datasets": ["dataset:acme/features@1"],
        "runs": ["run:5d0c8a1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f"],
        "models": [
            {
                "model": MODEL_A,
                "status": "retrain-required",
                "justification": None,
                "approver": None,
            },
            {
                "model": MODEL_B,
                "status": "retained-with-justification",
                "justification": "legal hold",
                "approver": "cfo@acme.example",
            },
        ],
        "deployments": ["deployment:acme/churn-prod"],
        "predictions": 5,
        "vault_entries": 3,
        "redactions": [
            {"position": 1, "leaf": "c" * 64, "payload": "sha256:" + "d" * 64},
            {"position": 2, "leaf": "e" * 64, "payload": None},
        ],
    }
    return _event(position, "subject-erased", body, entity)


def _filler(position: int) -> bytes:
    return _event(position, "note-added", {"text": f"filler {position}"}, "dataset:acme/x@1")


# Positions: 3 requests erasure 1, 6 completes it; 8 and 9 are a second erasure of the
# same subject; 10 claims erasure 1 but names request 8; 11 erases another subject.
ENTRIES: list[bytes] = [
    _filler(0),
    _filler(1),
    _filler(2),
    _request(3),
    _filler(4),
    _filler(5),
    _erased(6, 3),
    _filler(7),
    _request(8, ERASURE2),
    _erased(9, 8, ERASURE2),
    _erased(10, 8),
    _erased(11, 3, entity=OTHER_SUBJECT),
]
TREE = merkle.MemoryTree([merkle.leaf_hash(e) for e in ENTRIES])
SIZE = len(ENTRIES)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _note(size: int = SIZE, key: SigningKey = KEY) -> str:
    root = merkle.root_at(size, TREE)
    return sign_checkpoint(key, Checkpoint(origin(key.name, "events"), size, root))


def _bundle(index: int, size: int = SIZE, key: SigningKey = KEY) -> dict[str, Any]:
    """The shape of audit.proofs.make_bundle's bundles."""
    return {
        "format": "mlledger-proof/1",
        "tree": "events",
        "index": index,
        "entry": ENTRIES[index].decode(),
        "leaf_hash": _b64(merkle.leaf_hash(ENTRIES[index])),
        "tree_size": size,
        "inclusion_proof": [_b64(h) for h in merkle.inclusion_proof(index, size, TREE)],
        "checkpoint": _note(size, key),
    }


CERT = make_certificate(KEY, request=_bundle(3), erased=_bundle(6))


def _statement(envelope: dict[str, Any] = CERT) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def _resigned(mutate: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """CERT with its statement changed by ``mutate``, then signed again by the log's key:
    a forgery only the key holder could make, which the content checks must still catch."""
    statement = copy.deepcopy(_statement())
    mutate(statement)
    return sign_envelope(KEY, statement)


def _rejects(envelope: Any, *fragments: str) -> str:
    with pytest.raises(CertificateError) as caught:
        verify_certificate(envelope, KEY.verifier())
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- DSSE ---------------------------------------------------------------------------------


def test_pae_matches_the_dsse_spec_vector() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t\u00e9", b"") == "DSSEv1 3 t\u00e9 0 ".encode()


def test_envelope_is_dsse_over_a_compact_sorted_statement() -> None:
    assert set(CERT) == {"payloadType", "payload", "signatures"}
    assert CERT["payloadType"] == PAYLOAD_TYPE
    [signature] = CERT["signatures"]
    assert signature["keyid"] == f"test.example/log+{KEY.key_id:08x}"
    payload = base64.b64decode(CERT["payload"], validate=True)
    statement = json.loads(payload)
    assert payload == json.dumps(
        statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    sig = base64.b64decode(signature["sig"], validate=True)
    assert KEY.verifier().verify_bytes(sig, pae(PAYLOAD_TYPE, payload))
    assert open_envelope(CERT, KEY.verifier()) == statement


def test_url_safe_unpadded_base64_is_accepted() -> None:
    def url_safe(text: str) -> str:
        return text.replace("+", "-").replace("/", "_").rstrip("=")

    envelope = copy.deepcopy(CERT)
    envelope["payload"] = url_safe(envelope["payload"])
    envelope["signatures"][0]["sig"] = url_safe(envelope["signatures"][0]["sig"])
    verify_certificate(envelope, KEY.verifier())


def test_unset_keyid_is_tried_and_unknown_fields_are_ignored() -> None:
    envelope = copy.deepcopy(CERT)
    del envelope["signatures"][0]["keyid"]
    envelope["extra"] = "ignored, as DSSE asks"
    verify_certificate(envelope, KEY.verifier())


def test_one_good_signature_among_others_suffices() -> None:
    envelope = copy.deepcopy(CERT)
    foreign = sign_envelope(OTHER, _statement())["signatures"][0]
    envelope["signatures"].insert(0, foreign)
    verify_certificate(envelope, KEY.verifier())


# --- raw signatures on the note key -------------------------------------------------------


def test_sign_bytes_and_verify_bytes() -> None:
    message = pae(PAYLOAD_TYPE, b"{}")
    signature = KEY.sign_bytes(message)
    verifier = KEY.verifier()
    assert len(signature) == 64
    assert verifier.verify_bytes(signature, message)
    assert not verifier.verify_bytes(signature, message + b"x")
    assert not verifier.verify_bytes(signature[:-1], message)
    assert not verifier.verify_bytes(bytes(64), message)
    assert not verifier.verify_bytes("not bytes", message)  # type: ignore[arg-type]
    assert not verifier.verify_bytes(signature, "not bytes")  # type: ignore[arg-type]
    assert not OTHER.verifier().verify_bytes(signature, message)


def test_raw_and_note_signatures_never_pass_for_each_other() -> None:
    with pytest.raises(NoteError, match="newline"):
        KEY.sign_bytes(b"origin\n1\nroot\n")
    text = f"{KEY.name}\n1\n{_b64(bytes(32))}\n"
    note_signature = base64.b64decode(KEY.sign(text).rsplit(" ", 1)[1])[4:]
    assert not KEY.verifier().verify_bytes(note_signature, text.encode())


# --- a good certificate -------------------------------------------------------------------


def test_certificate_verifies_and_says_what_the_entries_say() -> None:
    verified = verify_certificate(CERT, KEY.verifier())
    assert verified.erasure == ERASURE
    assert verified.project == PROJECT
    assert verified.subject == SUBJECT
    assert (verified.requested_position, verified.completed_position) == (3, 6)
    assert verified.requested_at == "2025-03-01T10:00:03.500000Z"
    assert verified.completed_at == "2025-03-01T10:00:06.500000Z"
    assert verified.requested_by == "dpo@acme.example"
    assert (verified.records, verified.predictions, verified.vault_entries) == (2, 5, 3)
    assert verified.record_refs == ["a" * 32, "b" * 32]
    assert verified.models == [MODEL_A, MODEL_B]
    assert [m["status"] for m in verified.remediation] == [
        "retrain-required",
        "retained-with-justification",
    ]
    assert verified.redactions == [1, 2]
    assert verified.purge is None
    assert verified.tree_size == SIZE
    assert verified.root == merkle.root_at(SIZE, TREE)
    out = verified.as_dict()
    assert out["ok"] is True
    assert out["affected"]["deployments"] == ["deployment:acme/churn-prod"]
    json.dumps(out)


def test_statement_shape() -> None:
    statement = _statement()
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE
    digest = hashlib.sha256(ENTRIES[6]).hexdigest()
    assert statement["subject"] == [
        {"name": "test.example/log/events/6", "digest": {"sha256": digest}}
    ]
    predicate = statement["predicate"]
    assert predicate["statement"] == STATEMENT
    assert "not a proof of absence" in STATEMENT
    assert set(predicate) == {
        "statement",
        "erasure",
        "project",
        "subject",
        "requested",
        "completed",
        "requested_by",
        "affected",
        "remediation",
        "redactions",
        "purge",
        "log",
    }
    assert predicate["requested"] == {"position": 3, "at": "2025-03-01T10:00:03.500000Z"}
    assert predicate["affected"]["records"] == {"count": 2, "references": ["a" * 32, "b" * 32]}
    assert predicate["affected"]["models"] == [MODEL_A, MODEL_B]
    assert predicate["remediation"][1] == {
        "model": MODEL_B,
        "status": "retained-with-justification",
        "justification": "legal hold",
        "approver": "cfo@acme.example",
    }
    log = predicate["log"]
    assert (log["origin"], log["tree_size"], log["checkpoint"]) == (KEY.name, SIZE, _note())
    assert [e["index"] for e in log["events"]] == [3, 6]
    assert log["events"][1]["entry"] == ENTRIES[6].decode()


def test_certificate_round_trips_through_json() -> None:
    purge = {"backups": ["s3://backups/2025-02"], "completed_at": "2025-03-02T00:00:00Z"}
    envelope = make_certificate(KEY, request=_bundle(3), erased=_bundle(6), purge=purge)
    again = json.loads(json.dumps(envelope))
    assert again == envelope
    assert verify_certificate(again, KEY.verifier()).purge == purge


def test_verifier_key_from_its_string_verifies() -> None:
    verify_certificate(CERT, VerifierKey.from_string(KEY.verifier().to_string()))


# --- make_certificate refuses ---------------------------------------------------------------


def _refuses(request: dict[str, Any], erased: dict[str, Any], *fragments: str) -> None:
    with pytest.raises(CertificateError) as caught:
        make_certificate(KEY, request=request, erased=erased)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_make_refuses_bundles_of_different_checkpoints() -> None:
    _refuses(_bundle(3, size=8), _bundle(6), "different checkpoints", "sizes 8 and 12")


def test_make_refuses_entries_of_different_erasures() -> None:
    _refuses(_bundle(3), _bundle(9), "not one erasure", ERASURE2)


def test_make_refuses_an_erased_event_naming_another_request() -> None:
    _refuses(_bundle(3), _bundle(10), "request position 8", "at position 3")


def test_make_refuses_an_erasure_of_another_subject() -> None:
    _refuses(_bundle(3), _bundle(11), "not one subject's erasure")


def test_make_refuses_events_of_the_wrong_types() -> None:
    _refuses(_bundle(6), _bundle(6), 'request entry is a "subject-erased" event')
    _refuses(_bundle(3), _bundle(4), 'erased entry is a "note-added" event')


def test_make_refuses_a_checkpoint_of_another_key() -> None:
    _refuses(_bundle(3, key=OTHER), _bundle(6, key=OTHER), "request bundle does not verify")


def test_make_refuses_a_bundle_with_a_bad_proof() -> None:
    bad = _bundle(6)
    bad["inclusion_proof"][0] = _b64(bytes(32))
    _refuses(_bundle(3), bad, "erased bundle does not verify", "inclusion proof")


def test_make_refuses_a_purge_that_is_not_an_object() -> None:
    with pytest.raises(LedgerError, match="purge must be a JSON object"):
        make_certificate(KEY, request=_bundle(3), erased=_bundle(6), purge=["x"])  # type: ignore[arg-type]


# --- tampering ----------------------------------------------------------------------------


def test_certificate_error_is_an_integrity_violation() -> None:
    assert issubclass(CertificateError, IntegrityViolation)


def test_a_changed_payload_byte_breaks_the_signature() -> None:
    payload = bytearray(base64.b64decode(CERT["payload"]))
    at = payload.index(b'"predictions":5') + len(b'"predictions":')
    payload[at] = ord("4")
    envelope = {**CERT, "payload": _b64(bytes(payload))}
    _rejects(envelope, "no signature by", "verifies")


def test_a_swapped_signature_is_rejected() -> None:
    other = make_certificate(KEY, request=_bundle(8), erased=_bundle(9))
    envelope = {**CERT, "signatures": other["signatures"]}
    _rejects(envelope, "no signature by", "verifies")


def test_another_key_finds_no_signature() -> None:
    with pytest.raises(CertificateError, match="no signature with keyid"):
        verify_certificate(CERT, OTHER.verifier())
    _rejects(sign_envelope(OTHER, _statement()), "no signature")


def test_a_wrong_keyid_is_rejected() -> None:
    envelope = copy.deepcopy(CERT)
    envelope["signatures"][0]["keyid"] = "test.example/log+00000000"
    _rejects(envelope, "no signature with keyid", "test.example/log+00000000")


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("predicate.affected.records.count", 3, "predicate.affected.records.count is 3"),
        ("predicate.affected.records.count", True, "predicate.affected.records.count is true"),
        ("predicate.affected.records.count", 2.0, "predicate.affected.records.count is 2.0"),
        ("predicate.affected.predictions", 0, "predicate.affected.predictions is 0"),
        ("predicate.affected.vault_entries", 0, "vault_entries is 0"),
        ("predicate.affected.records.references.0", "f" * 32, "references[0]"),
        ("predicate.affected.models.0", "model:acme/other@1", "affected.models[0]"),
        ("predicate.affected.datasets", [], "predicate.affected.datasets is []"),
        ("predicate.remediation.0.status", "retained-with-justification", "remediation[0].status"),
        ("predicate.remediation.1.justification", "we like it", "remediation[1].justification"),
        ("predicate.remediation.1.approver", None, "remediation[1].approver is null"),
        ("predicate.redactions", [1], "predicate.redactions"),
        ("predicate.erasure", ERASURE2, "predicate.erasure"),
        ("predicate.project", "other", "predicate.project"),
        ("predicate.subject", OTHER_SUBJECT, "predicate.subject"),
        ("predicate.requested.at", "2020-01-01T00:00:00Z", "predicate.requested.at"),
        ("predicate.completed.position", 7, "predicate.completed.position"),
        ("predicate.requested_by", "someone@else", "predicate.requested_by"),
        ("predicate.extra", 1, "predicate.extra is not a field"),
        ("subject.0.digest.sha256", "0" * 64, "subject is not the erased entry"),
        ("subject.0.name", "test.example/log/events/3", "subject is not the erased entry"),
        ("predicate.log.origin", "elsewhere", "predicate.log.origin"),
        ("predicate.log.tree_size", 8, "not the checkpoint's size 12"),
        ("_type", "https://in-toto.io/Statement/v0.1", "statement _type"),
        ("predicateType", "https://slsa.dev/provenance/v1", "predicateType"),
    ],
)
def test_a_changed_predicate_is_caught_even_when_signed(
    path: str, value: Any, fragment: str
) -> None:
    _rejects(_resigned(set_at(path, value)), fragment)


def test_a_missing_predicate_field_is_caught() -> None:
    _rejects(_resigned(lambda s: s["predicate"].pop("remediation")), "remediation is missing")
    _rejects(_resigned(lambda s: s["predicate"].pop("purge")), "no field 'purge'")


def test_a_checkpoint_of_another_key_is_rejected() -> None:
    _rejects(
        _resigned(set_at("predicate.log.checkpoint", _note(key=OTHER))),
        "checkpoint does not verify",
    )


def test_a_bad_inclusion_proof_is_rejected() -> None:
    proof = [_b64(h) for h in merkle.inclusion_proof(6, SIZE, TREE)]
    proof[1] = _b64(hashlib.sha256(b"x").digest())
    _rejects(
        _resigned(set_at("predicate.log.events.1.inclusion_proof", proof)),
        "erased entry is not proved",
    )
    _rejects(
        _resigned(set_at("predicate.log.events.1.inclusion_proof", proof[:-1])),
        "erased entry is not proved",
    )


def test_a_wrong_index_is_rejected() -> None:
    _rejects(_resigned(set_at("predicate.log.events.0.index", 4)), "request entry is not proved")


def test_a_changed_entry_text_is_rejected() -> None:
    text = ENTRIES[6].decode().replace('"predictions":5', '"predictions":4')
    assert text != ENTRIES[6].decode()
    # Signed again, the proof no longer leads to the root; unsigned, the signature fails.
    _rejects(_resigned(set_at("predicate.log.events.1.entry", text)), "erased entry is not proved")
    payload = base64.b64decode(CERT["payload"]).replace(
        b'\\"predictions\\":5', b'\\"predictions\\":4'
    )
    assert payload != base64.b64decode(CERT["payload"])
    _rejects({**CERT, "payload": _b64(payload)}, "no signature by")


def _swap_erased(index: int) -> Callable[[dict[str, Any]], None]:
    def mutate(statement: dict[str, Any]) -> None:
        statement["predicate"]["log"]["events"][1] = {
            "index": index,
            "entry": ENTRIES[index].decode(),
            "inclusion_proof": [_b64(h) for h in merkle.inclusion_proof(index, SIZE, TREE)],
        }

    return mutate


def test_entries_of_different_erasures_are_rejected() -> None:
    _rejects(_resigned(_swap_erased(9)), "not one erasure")
    _rejects(_resigned(_swap_erased(10)), "request position 8")
    _rejects(_resigned(_swap_erased(11)), "not one subject's erasure")


def test_the_events_in_the_wrong_order_are_rejected() -> None:
    def swap(statement: dict[str, Any]) -> None:
        statement["predicate"]["log"]["events"].reverse()

    _rejects(_resigned(swap), 'request entry is a "subject-erased" event')


# --- garbage ------------------------------------------------------------------------------


def _with(**fields: Any) -> dict[str, Any]:
    return {**CERT, **fields}


def _signed_payload(payload: bytes) -> dict[str, Any]:
    """An envelope of any payload, signed raw (sign_bytes refuses a trailing newline)."""
    sig = KEY._private.sign(pae(PAYLOAD_TYPE, payload))
    keyid = f"{KEY.name}+{KEY.key_id:08x}"
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": _b64(payload),
        "signatures": [{"keyid": keyid, "sig": _b64(sig)}],
    }


GARBAGE: list[Any] = [
    None,
    0,
    True,
    "certificate",
    b"bytes",
    [],
    [CERT],
    {},
    _with(payloadType="application/json"),
    _with(payloadType=None),
    _with(payload=None),
    _with(payload=5),
    _with(payload="not base64!"),
    _with(payload="QUJD\u00e9"),
    _with(payload="QUJDR"),
    _with(payload=""),
    _with(signatures=None),
    _with(signatures=[]),
    _with(signatures="sig"),
    _with(signatures=[None]),
    _with(signatures=[{}]),
    _with(signatures=[{"keyid": 5, "sig": CERT["signatures"][0]["sig"]}]),
    _with(signatures=[{"keyid": CERT["signatures"][0]["keyid"], "sig": "@@"}]),
    _with(signatures=[{"keyid": CERT["signatures"][0]["keyid"], "sig": ""}]),
    _with(signatures=[CERT["signatures"][0]] * 101),
    _signed_payload(b"\xff\xfe"),
    _signed_payload(b"not json"),
    _signed_payload(b"[1, 2]"),
    _signed_payload(b"[" * 100_000),
    _signed_payload(b"{}"),
    _signed_payload(b'{"_type": "https://in-toto.io/Statement/v1"}'),
    _signed_payload(b'{"a": 1' + b"0" * 5000 + b"}"),
    _signed_payload(json.dumps(_statement()).encode() + b"\n"),
]


@pytest.mark.parametrize("envelope", GARBAGE, ids=[f"garbage{i}" for i in range(len(GARBAGE))])
def test_garbage_envelopes_raise_certificate_error(envelope: Any) -> None:
    _rejects(envelope)


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for name, child in node.items():
            yield from _paths(child, (*prefix, name))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, (*prefix, str(i)))


REPLACEMENTS: list[Any] = [None, True, -1, 2**70, 1.5, "x", "\ud800", [], [None], {}, {"a": None}]
# Values a field may legitimately take other than its own.
HARMLESS = {
    ("predicate", "statement"): ("x", "\ud800"),
    ("predicate", "purge"): (None, {}, {"a": None}),
}


def test_every_field_replaced_by_garbage_is_rejected() -> None:
    statement = _statement()
    tried = 0
    for path in _paths(statement):
        for value in REPLACEMENTS:
            if value in HARMLESS.get(path, ()):
                continue
            mutated = copy.deepcopy(statement)
            set_at(".".join(path), value)(mutated)
            if json.dumps(mutated, sort_keys=True) == json.dumps(statement, sort_keys=True):
                continue
            try:
                envelope = sign_envelope(KEY, mutated)
            except LedgerError:
                # A lone surrogate cannot even be encoded; send the raw JSON escape instead.
                payload = json.dumps(mutated, sort_keys=True).encode()
                envelope = _signed_payload(payload)
            with pytest.raises(CertificateError):
                verify_certificate(envelope, KEY.verifier())
            tried += 1
    assert tried > 500


def test_open_envelope_rejects_garbage() -> None:
    for envelope in GARBAGE[:25]:
        with pytest.raises(CertificateError):
            open_envelope(envelope, KEY.verifier())
