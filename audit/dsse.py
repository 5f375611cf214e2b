"""DSSE envelopes (https://github.com/secure-systems-lab/dsse) signed with the log's key.

An envelope carries an in-toto Statement as its base64 payload and Ed25519 signatures
over the payload's pre-authentication encoding (``pae``)::

    {"payloadType": "application/vnd.in-toto+json",
     "payload": "<base64 of the statement's compact sorted-key JSON>",
     "signatures": [{"keyid": "<key name>+<8 hex key ID>", "sig": "<base64>"}]}

Erasure certificates (``audit.erasure.certificate``) and signed export manifests
(``audit.exports``) are such envelopes. ``Envelope`` is the wire shape; ``open_envelope``
reads one and returns its statement once a signature by the log's key verifies.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, model_validator

from audit.note import MAX_SIGNATURES, SigningKey, VerifierKey
from registry.errors import FieldError, IntegrityViolation

PAYLOAD_TYPE = "application/vnd.in-toto+json"

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}|[A-Za-z0-9_-]*={0,2}")
_URL_SAFE = str.maketrans("-_", "+/")
BASE64_PATTERN = rf"^(?:{_BASE64.pattern})$"


class EnvelopeError(IntegrityViolation):
    """A DSSE envelope (an erasure certificate, a signed manifest) that does not verify;
    the message says which check failed."""


def short(value: Any, limit: int = 80) -> str:
    """A bounded JSON rendering of ``value`` for messages."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of ``payload_type`` and ``payload``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def keyid(key: SigningKey | VerifierKey) -> str:
    """The keyid a signature by ``key`` carries: ``<key name>+<8 hex key ID>``."""
    return f"{key.name}+{key.key_id:08x}"


def unbase64(value: Any, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not: DSSE verifiers must accept either."""
    if value is None:
        raise EnvelopeError(f"{what} is missing; expected a base64 string")
    if not isinstance(value, str) or not value.isascii() or not _BASE64.fullmatch(value):
        raise EnvelopeError(
            f"{what} is not base64: expected a string of the standard or URL-safe alphabet"
        )
    text = value.translate(_URL_SAFE).rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not valid base64 (its length is impossible)") from None


class Signature(BaseModel):
    """One signature of an envelope."""

    keyid: str | None = Field(
        default=None,
        description="Which key signed: '<key name>+<8 hex key ID>'. An unauthenticated "
        "hint; unset, null and empty mean the same.",
    )
    sig: str = Field(
        pattern=BASE64_PATTERN,
        description="Base64 (standard or URL-safe) Ed25519 signature over the PAE of "
        "payloadType and the decoded payload.",
    )

    @classmethod
    def read(cls, value: Any, number: int) -> tuple[Signature, bytes]:
        """The envelope's signature number ``number`` and its decoded bytes."""
        if not isinstance(value, dict):
            raise EnvelopeError(f"envelope signatures[{number}] is not a JSON object")
        found = value.get("keyid") or ""  # unset, null and empty mean the same
        if not isinstance(found, str):
            raise EnvelopeError(f"envelope signatures[{number}].keyid is not a string")
        sig = unbase64(value.get("sig"), f"envelope signatures[{number}].sig")
        return cls(keyid=found, sig=value["sig"]), sig


class Envelope(BaseModel):
    """A DSSE envelope holding an in-toto Statement (``PAYLOAD_TYPE``)."""

    model_config = ConfigDict(title="DSSE envelope")

    payload_type: Literal["application/vnd.in-toto+json"] = Field(
        alias="payloadType", description="The payload's media type: an in-toto Statement."
    )
    payload: str = Field(
        pattern=BASE64_PATTERN,
        description="Base64 of the statement's compact, sorted-key UTF-8 JSON.",
        json_schema_extra={"contentEncoding": "base64", "contentMediaType": PAYLOAD_TYPE},
    )
    # Each signature is read as verification reaches it (``Signature.read``): one that
    # verifies settles the envelope, whatever follows it.
    signatures: Annotated[list[Signature], SkipValidation] = Field(
        min_length=1, max_length=MAX_SIGNATURES, description="One or more signatures."
    )

    @model_validator(mode="before")
    @classmethod
    def _envelope_shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise EnvelopeError(
                f"a certificate must be a DSSE envelope (a JSON object), not {type(data).__name__}"
            )
        payload_type = data.get("payloadType")
        if payload_type != PAYLOAD_TYPE:
            raise EnvelopeError(
                f"envelope payloadType is {short(payload_type)}, expected {PAYLOAD_TYPE!r}"
            )
        unbase64(data.get("payload"), "envelope payload")
        signatures = data.get("signatures")
        if not isinstance(signatures, list) or not signatures:
            raise EnvelopeError("envelope signatures must be a non-empty list")
        if len(signatures) > MAX_SIGNATURES:
            raise EnvelopeError(
                f"envelope has {len(signatures)} signatures, over the {MAX_SIGNATURES} accepted"
            )
        return data

    @property
    def payload_bytes(self) -> bytes:
        """The decoded payload."""
        return unbase64(self.payload, "envelope payload")


def _encode_payload(statement: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(
            statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise FieldError("statement", f"the statement is not JSON-serialisable: {exc}") from None


def sign_envelope(key: SigningKey, statement: dict[str, Any]) -> dict[str, Any]:
    """A DSSE envelope of ``statement`` (an in-toto Statement) signed by ``key``."""
    if not isinstance(statement, dict):
        raise FieldError(
            "statement", f"the statement must be a JSON object, not {type(statement).__name__}"
        )
    payload = _encode_payload(statement)
    signature = key.sign_bytes(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": keyid(key), "sig": base64.b64encode(signature).decode("ascii")}],
    }


def _verify_signatures(envelope: Envelope, payload: bytes, key: VerifierKey) -> None:
    """Return once a signature by ``key`` verifies over the payload's PAE; raise else."""
    wanted = keyid(key)
    message = pae(PAYLOAD_TYPE, payload)
    items: list[Any] = list(envelope.signatures)
    tried = 0
    for number, item in enumerate(items):
        signature, sig = Signature.read(item, number)
        if signature.keyid not in ("", wanted):
            continue
        tried += 1
        if key.verify_bytes(sig, message):
            return
    if not tried:
        found = ", ".join(
            sorted({short(s.get("keyid") or "") for s in items if isinstance(s, dict)})
        )
        raise EnvelopeError(
            f"the envelope has no signature with keyid {wanted!r} (it has {found}): "
            "it was not signed by this log's key"
        )
    raise EnvelopeError(
        f"no signature by {wanted} verifies over the envelope: the payload or the "
        "signature was altered, or another key signed it"
    )


def open_envelope(envelope: Any, key: VerifierKey) -> dict[str, Any]:
    """The statement in a DSSE envelope, once a signature by ``key`` verifies over its PAE.

    Only signatures whose keyid is ``key``'s (or unset) are tried: DSSE's keyid is an
    unauthenticated hint that narrows the keys to try, nothing more.
    """
    read = Envelope.model_validate(envelope)
    payload = read.payload_bytes
    _verify_signatures(read, payload, key)
    try:
        statement = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EnvelopeError("the envelope payload is not UTF-8 JSON") from None
    if not isinstance(statement, dict):
        raise EnvelopeError("the envelope payload is not a JSON object (an in-toto Statement)")
    return statement
