"""Timestamps: one fixed, sortable text form everywhere (UTC, microseconds, 'Z')."""

from __future__ import annotations

from datetime import UTC, datetime

from registry.errors import LedgerError

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> str:
    """The current time as a timestamp string."""
    return datetime.now(UTC).strftime(FORMAT)


def to_timestamp(value: datetime | str | float | int | None, what: str = "time") -> str:
    """Normalise a datetime, ISO 8601 string or Unix seconds to the canonical form.

    Naive datetimes (and ISO strings without an offset) are taken as local time,
    as ``datetime.now()`` gives them.
    """
    if value is None:
        return now()
    if isinstance(value, bool):
        raise LedgerError(
            f"{what}: expected a datetime, ISO 8601 string or Unix seconds, got a bool"
        )
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime(FORMAT)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise LedgerError(
                f"{what} {value!r} is not a time: expected ISO 8601, e.g. 2026-01-31T12:00:00Z"
            ) from None
    if not isinstance(value, datetime):
        raise LedgerError(
            f"{what}: expected a datetime, ISO 8601 string or Unix seconds, "
            f"got {type(value).__name__}"
        )
    if value.tzinfo is None:
        value = value.astimezone()
    return value.astimezone(UTC).strftime(FORMAT)
