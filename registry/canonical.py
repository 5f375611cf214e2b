"""Canonical JSON (RFC 8785, JCS) and RFC 6962 leaf hashes.

``rfc8785`` is the reference encoder. It is pure Python, so for the common case
we take the C ``json`` encoder, whose output is byte-identical to JCS whenever
the value holds no float that prints differently (integral floats, exponents)
and no key outside the Basic Multilingual Plane (JCS sorts keys by UTF-16 code
units, Python by code points). A cheap scan of the fast output detects every
such case (with some false alarms) and falls back to the reference encoder.

What the ledger stores must also read back the same from SQLite and PostgreSQL:
``text_problem`` refuses text holding NUL (a PostgreSQL text column cannot) or a
lone UTF-16 surrogate (not Unicode, so not UTF-8); ``json_problem`` refuses lone
surrogates, NaN and ±Infinity, and nesting deeper than ``MAX_DEPTH`` in a JSON value (NUL is fine
there: JSON text writes it ``\\u0000``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import rfc8785

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_encode = _ENCODER.encode
_INTEGRAL = re.compile(r"\.0[,\]}]")  # "1.0", "-0.0": JCS writes 1, 0
_EXPONENT = re.compile(r"\d[eE][+-]\d")  # "1e-05", "1e+16": JCS writes 0.00001, 1e+21
_LONG_INT = re.compile(r"[:,\[]-?\d{16}")  # integers beyond an IEEE double's exact range
_ASTRAL = re.compile(r"[\U00010000-\U0010FFFF]")  # JCS sorts keys by UTF-16 code units


def _suspect(text: str) -> bool:
    """Whether the fast encoding may differ from JCS (false alarms are harmless)."""
    if text.endswith(".0") or (".0" in text and _INTEGRAL.search(text)):
        return True
    if ("e-" in text or "e+" in text or "E" in text) and _EXPONENT.search(text):
        return True
    if _LONG_INT.search(text) or text[:16].lstrip("-").isdigit():
        return True
    return not text.isascii() and _ASTRAL.search(text) is not None


def _canonical(value: Any) -> str:
    text = _encode(value)
    if not _suspect(text):
        return text
    # Fall back as locally as possible: only the suspect parts go to the reference.
    if isinstance(value, dict):
        items = sorted(value.items(), key=_utf16_key)
        return "{" + ",".join(_encode(k) + ":" + _canonical(v) for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + _items(value) + "]"
    return rfc8785.dumps(value).decode("utf-8")


def _utf16_key(item: tuple[Any, Any]) -> bytes:
    """The order of an object's member in JCS: its key's UTF-16 code units."""
    key = item[0]
    if not isinstance(key, str):
        raise TypeError(f"keys must be strings, not {type(key).__name__}")
    return key.encode("utf-16-be")


def _items(values: list[Any] | tuple[Any, ...]) -> str:
    """The comma-joined canonical items of a suspect list, halving it to find the
    few items that need the reference encoder."""
    if len(values) <= 8:
        return ",".join(_canonical(v) for v in values)
    parts = []
    for half in (values[: len(values) // 2], values[len(values) // 2 :]):
        text = _encode(half)
        parts.append(_items(half) if _suspect(text) else text[1:-1])
    return ",".join(parts)


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON (UTF-8 bytes)."""
    return _canonical(value).encode("utf-8")


def canonical_lines(values: Sequence[Any], *, numeric_rows: bool = False) -> bytes:
    """The canonical JSON of each of ``values``, each followed by a newline: the bytes
    ``canonical_json`` gives one by one, encoded in one pass when the fast encoder's
    output needs no correction (JSON text holds no raw newline, so lines are values).
    ``numeric_rows``: each value is a list of numbers, booleans and nulls only, so the
    whole sequence is encoded in one call and cut where one list ends and the next
    begins."""
    if not values:
        return b""
    if numeric_rows:
        text = _encode(values)[1:-1].replace("],[", "]\n[")
    else:
        text = "\n".join(map(_encode, values))
    if _suspect(text):
        lines = text.split("\n")
        for index, line in enumerate(lines):
            if _suspect(line):
                lines[index] = _canonical(values[index])
        text = "\n".join(lines)
    return (text + "\n").encode("utf-8")


def canonical_text(value: Any) -> tuple[str, bool]:
    """RFC 8785 text of ``value`` and whether parsing it back gives ``value`` itself
    (true when the fast encoder's output was canonical as it stood)."""
    text = _encode(value)
    if not _suspect(text):
        return text, True
    return _canonical(value), False


def storable_text(value: Any) -> str | None:
    """The RFC 8785 text of a JSON value that can be stored as it stands, found in one
    call of the C encoder: None when the fast answer is not certain (a number JCS
    writes otherwise or beyond ±(2^53-1), NaN, a non-ASCII text that may hold a lone
    surrogate, more than ``MAX_DEPTH`` brackets, a value JSON cannot hold), and the
    caller must take the careful path (``json_problem``, then ``canonical_text``)."""
    try:
        text = _encode(value)
    except (ValueError, TypeError, RecursionError):
        return None
    if _suspect(text) or text.count("[") + text.count("{") > MAX_DEPTH:
        return None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return text


_SAFE = 2**53 - 1


def _number(text: str) -> int | float:
    value = int(text)
    # JCS numbers are IEEE doubles: 1e16 is written "10000000000000000" and must read
    # back as the double it was, or it would not serialise the same way again.
    return value if -_SAFE <= value <= _SAFE else float(value)


_DECODER = json.JSONDecoder(parse_int=_number)


def loads(text: str | bytes) -> Any:
    """Parse canonical JSON back to the values it was made from."""
    return _DECODER.decode(text if isinstance(text, str) else text.decode("utf-8"))


#: RFC 9162 hash of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(canonical: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || entry)."""
    return hashlib.sha256(LEAF_PREFIX + canonical).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


# --- what the stores can hold ---------------------------------------------------------

#: Levels of objects and arrays a stored JSON value may nest (an event body counts as
#: the first level of its own fields).
MAX_DEPTH = 64
NUL_MESSAGE = "contains the NUL character (U+0000); expected text without it"


def text_problem(text: str, *, nul: bool = True) -> str | None:
    """Why ``text`` cannot be stored in a text column (NUL, or a lone surrogate), or None
    when it can; ``nul=False`` lets NUL pass (text stored as JSON, or hashed)."""
    if nul and "\x00" in text:
        return NUL_MESSAGE
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate (U+{ord(text[exc.start]):04X}); expected valid "
            "Unicode, with every \\ud800-\\udfff escape part of a pair"
        )
    return None


def printable(text: str) -> str:
    """``text`` safe to show in a message: non-printable characters (NUL, lone
    surrogates, ...) as backslash escapes."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def json_problem(
    value: Any, depth: int = MAX_DEPTH, *, numbers: bool = True
) -> tuple[str, str] | None:
    """The first place of a JSON value that cannot be stored: ``(path, why)``, the path
    dotted from ``value`` ("" for the value itself), or None when all of it can.

    Requires ``depth >= 0``: the levels of objects and arrays ``value`` may still nest.
    Every string and key must be valid Unicode (``text_problem(nul=False)``); with
    ``numbers`` (the default), every number finite (JSON has no NaN or Infinity) and
    every integer within ±(2^53-1). ``numbers=False`` is for values whose numbers are
    made storable afterwards (OpenLineage keeps such numbers as strings).
    """
    if isinstance(value, str):
        why = text_problem(value, nul=False)
        return None if why is None else ("", why)
    if isinstance(value, int | float):
        why = number_problem(value) if numbers else None
        return None if why is None else ("", why)
    if not isinstance(value, dict | list | tuple):
        return None
    if depth == 0:
        return "", (
            f"nests objects and arrays more than {MAX_DEPTH} levels deep; "
            f"expected at most {MAX_DEPTH}"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                why = text_problem(key, nul=False)
                if why is not None:
                    return printable(key), f"the key {why[:1].lower()}{why[1:]}"
            found = json_problem(item, depth - 1, numbers=numbers)
            if found is not None:
                return _join(printable(str(key)), found)
        return None
    for index, item in enumerate(value):
        if item is None or item is True or item is False:
            continue
        if isinstance(item, int | float):
            why = number_problem(item) if numbers else None
            if why is not None:
                return str(index), why
            continue
        found = json_problem(item, depth - 1, numbers=numbers)
        if found is not None:
            return _join(str(index), found)
    return None


def number_problem(value: float) -> str | None:
    """Why a number cannot be stored (NaN, ±Infinity, an integer beyond ±(2^53-1), which
    a double would round), or None when it can."""
    if isinstance(value, float):
        return None if math.isfinite(value) else not_finite(value)
    return None if -_SAFE <= value <= _SAFE else too_large(value)


def too_large(value: int) -> str:
    digits = str(abs(value))
    shown = (
        str(value)
        if len(digits) <= 24
        else f"{'-' if value < 0 else ''}{digits[:6]}... ({len(digits)} digits)"
    )
    return (
        f"is {shown}, beyond ±(2^53-1), which canonical JSON numbers (IEEE doubles) "
        "cannot hold exactly; expected a smaller integer, or the number as a string"
    )


def not_finite(value: float) -> str:
    return (
        f"is {value!r}, which JSON cannot hold; expected a finite number "
        "(or null, a string, ... to record a missing or special value)"
    )


def _join(step: str, found: tuple[str, str]) -> tuple[str, str]:
    path, why = found
    return (f"{step}.{path}" if path else step), why
