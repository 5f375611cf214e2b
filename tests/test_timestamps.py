"""``timestamps``: many times read at once give exactly what ``to_timestamp`` gives for
each, the same errors included."""

from __future__ import annotations

import random
import time

import pytest

from registry.errors import FieldError
from registry.timeutil import timestamps, to_timestamp


def one_by_one(value: object) -> str:
    try:
        return to_timestamp(value, "at.0")  # type: ignore[arg-type]
    except FieldError as exc:
        return f"error: {exc}"


def at_once(value: object) -> str:
    try:
        return timestamps([value], "at.{}")[0]
    except FieldError as exc:
        return f"error: {exc}"


def test_unix_seconds_read_at_once_are_read_as_one_by_one() -> None:
    rng = random.Random(3)
    now = time.time()
    values: list[object] = [rng.uniform(0, 2e9) for _ in range(3000)]
    values += [now + rng.random() for _ in range(3000)]
    values += [x + 0.9999995 for x in range(300)]  # rounds up into the next second
    values += [float(x) for x in range(50)] + list(range(50))
    values += [1.5e-7, 0.0, 253402300799.999999, 253402300799.9999996, -1.5, float("nan")]
    for value in values:
        assert at_once(value) == one_by_one(value), value


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-05T18:40:12.123456Z",
        "2026-13-01T00:00:00.000000Z",  # no 13th month
        "2026-02-30T00:00:00.000000Z",
        "2026-01-01T00:00:00.00000xZ",
        "2026-01-01T00:00:00.000000z",
        "2026-01-01T00:00:00.\uff10\uff10\uff10\uff10\uff10\uff10Z",  # not ASCII digits
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00.000000+01:00",
        "yesterday",
    ],
)
def test_stored_form_text_is_checked_as_one_by_one(text: str) -> None:
    assert at_once(text) == one_by_one(text)


def test_a_batch_names_the_row_at_fault() -> None:
    good = to_timestamp(None)
    with pytest.raises(FieldError) as raised:
        timestamps([good, good, "2026-13-01T00:00:00.000000Z"], "body.at.{}")
    assert raised.value.field == "body.at.2"
