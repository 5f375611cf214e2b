"""Timestamps: one fixed, sortable text form everywhere (UTC, microseconds, 'Z').

Every timestamp is stored as exactly 27 characters, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``,
the year always four digits, so that text order is time order. Times from
``EARLIEST`` to ``LATEST`` (years 1 to 9999, once in UTC) can be stored; others are
refused, naming the field and the range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from registry.errors import FieldError

#: The form, for ``strptime``; writing goes through ``format_time``, as ``strftime``'s
#: ``%Y`` writes the years before 1000 with fewer than four digits on some platforms.
FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
EARLIEST = "0001-01-01T00:00:00.000000Z"
LATEST = "9999-12-31T23:59:59.999999Z"
RANGE = f"from {EARLIEST} to {LATEST}"
EXAMPLE = "2026-01-31T12:00:00Z"
# Versions before the fixed-width form wrote years before 1000 with 1 to 3 digits.
_STORED = re.compile(r"(\d{1,4})(-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")


def format_time(moment: datetime) -> str:
    """An aware datetime in the stored form (converted to UTC).

    Raises OverflowError when the time falls outside years 1-9999 once in UTC.
    """
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def now() -> str:
    """The current time as a timestamp string."""
    return format_time(datetime.now(UTC))


def stored_form(text: str) -> str | None:
    """A timestamp as stored by this or an earlier version, in today's fixed-width
    form; None when ``text`` is neither."""
    match = _STORED.fullmatch(text)
    if match is None:
        return None
    return match[1].zfill(4) + match[2]


def is_stored(text: str) -> bool:
    """Whether ``text`` is a timestamp in the stored form (27 characters, a real time)."""
    if len(text) != 27 or not _STORED.fullmatch(text):
        return False
    try:
        datetime.strptime(text, FORMAT)
    except ValueError:
        return False
    return True


def _shown(value: object) -> str:
    """``value`` quoted for a message (``repr`` escapes NUL and lone surrogates), cut
    to 64 characters."""
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= 64 else text[:64] + "...")


def _out_of_range(value: object, what: str) -> FieldError:
    return FieldError(what, f"{what} {_shown(value)} is out of range: expected a time {RANGE}")


def to_timestamp(value: datetime | str | float | int | None, what: str = "time") -> str:
    """Normalise a datetime, ISO 8601 string or Unix seconds to the canonical form.

    Naive datetimes (and ISO strings without an offset) are taken as local time,
    as ``datetime.now()`` gives them. Raises FieldError (``field`` is ``what``) for
    anything else, and for a time outside ``RANGE`` once in UTC.
    """
    if value is None:
        return now()
    if isinstance(value, bool):
        raise FieldError(
            what, f"{what}: expected a datetime, ISO 8601 string or Unix seconds, got a bool"
        )
    if isinstance(value, int | float):
        try:
            return format_time(datetime.fromtimestamp(value, UTC))
        except (OverflowError, OSError, ValueError):
            raise _out_of_range(value, what) from None
    original = value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise FieldError(
                what, f"{what} {_shown(value)} is not a time: expected ISO 8601, e.g. {EXAMPLE}"
            ) from None
    if not isinstance(value, datetime):
        raise FieldError(
            what,
            f"{what}: expected a datetime, ISO 8601 string or Unix seconds, "
            f"got {type(value).__name__}",
        )
    try:
        if value.tzinfo is None:
            value = value.astimezone()
        return format_time(value)
    except (OverflowError, OSError, ValueError):
        raise _out_of_range(original, what) from None


def timestamps(values: Iterable[Any], label: str) -> list[str]:
    """Each of ``values`` as ``to_timestamp`` makes it (``label.format(i)`` names the
    i-th in an error), faster for many times within the same seconds, as a batch of
    predictions has them: Unix seconds (not negative) and strings already in the stored
    form are checked once per second they fall in, not parsed one by one."""
    seconds: dict[Any, str] = {}
    made: list[str] = []
    for index, value in enumerate(values):
        kind = type(value)
        if (kind is float and 0.0 <= value < math.inf) or (kind is int and value >= 0):
            whole = math.floor(value)
            micros = round((value - whole) * 1_000_000)  # as datetime.fromtimestamp rounds
            if micros >= 1_000_000:
                whole, micros = whole + 1, micros - 1_000_000
            head = seconds.get(whole)
            if head is None:
                try:
                    head = seconds[whole] = to_timestamp(whole, label.format(index))[:19]
                except FieldError:  # said of the value given, not of its second
                    made.append(to_timestamp(value, label.format(index)))
                    continue
            made.append(f"{head}.{micros:06d}Z")
        elif (
            kind is str
            and len(value) == 27
            and value[19] == "."
            and value[26] == "Z"
            and value[20:26].isascii()
            and value[20:26].isdigit()
        ):
            head = value[:19]
            if head not in seconds:
                checked = to_timestamp(head + ".000000Z", label.format(index))
                if checked[:19] != head:  # not the stored form (a "z", a lone digit)
                    made.append(to_timestamp(value, label.format(index)))
                    continue
                seconds[head] = head
            made.append(value)
        else:
            made.append(to_timestamp(value, label.format(index)))
    return made
