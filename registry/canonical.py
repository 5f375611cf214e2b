"""Canonical JSON (RFC 8785, JCS) and RFC 6962 leaf hashes.

``rfc8785`` is the reference encoder. It is pure Python, so for the common case
we take the C ``json`` encoder, whose output is byte-identical to JCS whenever
the value holds no float that prints differently (integral floats, exponents)
and no key outside the Basic Multilingual Plane (JCS sorts keys by UTF-16 code
units, Python by code points). A cheap scan of the fast output detects every
such case (with some false alarms) and falls back to the reference encoder.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import rfc8785

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# Integral float ("1.0", "-0.0"), any exponent ("1e-05", "1e+16"), an integer too
# long to be an exact IEEE double, or an astral-plane character: use the reference.
_SUSPECT = re.compile(r"\.0(?=[,\]}]|$)|[eE][+-]|\d{16}|[\U00010000-\U0010FFFF]")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON (UTF-8 bytes)."""
    text = _ENCODER.encode(value)
    if _SUSPECT.search(text):
        return rfc8785.dumps(value)
    return text.encode("utf-8")


def leaf_hash(canonical: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + canonical).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()
