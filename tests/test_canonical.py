"""Canonical JSON (RFC 8785), leaf hashes (RFC 6962) and keyed pseudonyms, cross-checked
against reference implementations."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

import pytest
import rfc8785

from registry.canonical import (
    MAX_DEPTH,
    canonical_json,
    canonical_text,
    json_problem,
    leaf_hash,
    loads,
    node_hash,
    storable_text,
)
from registry.events import canonical_event, hashed_form
from registry.vault import Pseudonymizer


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value mixing the cases where a naive encoder departs from JCS."""
    choice = rng.randrange(10 if depth < 3 else 7)
    if choice == 0:
        return rng.random() * 10 ** rng.randrange(-9, 25) * rng.choice((1, -1))
    if choice == 1:
        return float(rng.randrange(-(10**6), 10**6))
    if choice == 2:
        return rng.randrange(-(2**53) + 1, 2**53)
    if choice == 3:
        return "".join(
            rng.choice('ab\u00e9\u4e2d\U0001f600\n"\\\x01\x7f-e+1.0')
            for _ in range(rng.randrange(6))
        )
    if choice == 4:
        return rng.choice((True, False, None))
    if choice in (5, 6):
        return rng.choice((0.0, -0.0, 1e16, 1e21, 5e-7, 1e-6, 0.1, 2.0**53))
    if choice == 7:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(40))]
    keys = ["a", "Z", "\u00e9", "\U0001f600", "\uff01", "_", "10", "1"]
    return {
        rng.choice(keys) + rng.choice(keys): random_value(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


def test_fast_encoder_matches_the_reference_on_random_values() -> None:
    rng = random.Random(8785)
    for _ in range(3000):
        value = random_value(rng)
        assert canonical_json(value) == rfc8785.dumps(value), value


def _nested(levels: int) -> Any:
    value: Any = 1
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


def test_storable_text_is_the_careful_answer_or_none() -> None:
    """The one-call answer for a storable value is its RFC 8785 text (as the reference
    writes it); wherever the careful path would refuse a value or write it otherwise,
    the fast one gives no answer."""
    rng = random.Random(6962)
    values = [random_value(rng) for _ in range(3000)]
    refused = [
        {"p": float("nan")},
        [1, float("inf")],
        {"n": 2**53},
        [-(2**60)],
        {"\ud800": 1},
        {"s": "a\udfffb"},
        _nested(MAX_DEPTH + 1),
        {"o": object()},
        {"s": {1, 2}},
    ]
    answered = 0
    for value in [*values, *refused, _nested(MAX_DEPTH), {"k": "\x00"}, {"e": "1e+5 1.0"}]:
        text = storable_text(value)
        if text is None:
            continue
        answered += 1
        assert json_problem(value) is None, value
        assert text.encode() == rfc8785.dumps(value), value
    assert answered > 500  # the common case is answered at once
    for value in refused:
        assert storable_text(value) is None, value
    assert storable_text(_nested(MAX_DEPTH)) is not None
    assert storable_text({"label": 1, "p": 0.25}) == '{"label":1,"p":0.25}'


def test_rfc8785_examples() -> None:
    # Number serialisation examples from RFC 8785, Appendix B.
    for number, text in [
        (0.0, "0"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (333333333.3333333, "333333333.3333333"),
        (1e20, "100000000000000000000"),
        (9007199254740992.0, "9007199254740992"),
        (0.000001, "0.000001"),
    ]:
        assert canonical_json(number).decode() == text
    # Keys sort by UTF-16 code units: U+1F600 (a surrogate pair) before U+FF01.
    assert canonical_json({"\uff01": 1, "\U0001f600": 2}) == rfc8785.dumps(
        {"\uff01": 1, "\U0001f600": 2}
    )
    assert canonical_json({"b": [1, {"d": 2, "c": 3}], "a": "\u20ac"}) == (
        '{"a":"\u20ac","b":[1,{"c":3,"d":2}]}'.encode()
    )


def test_canonical_text_reads_back_as_the_same_value() -> None:
    rng = random.Random(6962)
    for _ in range(2000):
        value = random_value(rng)
        text, as_is = canonical_text(value)
        again = loads(text)
        assert canonical_json(again) == text.encode()
        if as_is:
            assert json.dumps(again, sort_keys=True) == json.dumps(value, sort_keys=True)


def test_large_integral_floats_read_back_as_floats() -> None:
    assert canonical_json(1e16) == b"10000000000000000"
    assert isinstance(loads("10000000000000000"), float)
    assert loads("9007199254740991") == 2**53 - 1


def test_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json(float("nan"))


def test_canonical_event_is_the_canonical_json_of_the_hashed_form() -> None:
    body = {"params": {"lr": 1e-5, "name": "\u00e9t\u00e9", "steps": 10}, "ok": True}
    args = (
        7,
        "5f0c2d1e-0000-4000-8000-000000000001",
        "run-started",
        1,
        "p",
        "run:5f0c2d1e-0000-4000-8000-000000000001",
        "ana",
        "2026-01-01T00:00:00.000000Z",
        "2026-01-01T00:00:01.000000Z",
    )
    form = hashed_form(*args, body, ["ref-1"], "trace")
    expected = rfc8785.dumps(form)
    assert canonical_event(*args, canonical_json(body).decode(), ["ref-1"], "trace") == expected
    assert leaf_hash(expected) == hashlib.sha256(b"\x00" + expected).digest()


def test_rfc6962_hashes() -> None:
    # RFC 6962 / RFC 9162: the hash of an empty leaf, and interior nodes.
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    left, right = leaf_hash(b"\x00"), leaf_hash(b"\x10")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


@pytest.mark.parametrize("secret", [b"s" * 32, bytes(range(32)), b"k" * 80])
def test_pseudonyms_are_hmac_sha256(secret: bytes) -> None:
    pseudo = Pseudonymizer(secret)
    for key in ("abc", "\u00e9", 12, "x" * 1000):
        raw = str(key).encode()
        record = hmac.digest(secret, b"record\x00" + raw, "sha256")[:16].hex()
        assert pseudo.record(key) == record == pseudo.records([key])[0]
        assert pseudo.subject(key) == hmac.digest(secret, b"subject\x00" + raw, "sha256")[:16].hex()
    assert pseudo.record("a") != pseudo.subject("a")
