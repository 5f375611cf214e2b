"""Errors a user can act on: each says what was wrong and what was expected."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class for every error mlledger raises on purpose."""


class InvalidNodeId(LedgerError, ValueError):
    """A node id string that does not parse."""


class FieldError(LedgerError):
    """A value the ledger refuses; ``field`` is its dotted path (``body.params.lr``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class EventRejected(FieldError, ValueError):
    """An event in a batch is invalid; the whole batch was written nowhere.

    ``index`` is the event's place in the batch, ``field`` the dotted path of the
    offending field. The SDK raises it at the call that made the event (``index``
    0), before anything is buffered or sent.
    """

    def __init__(self, index: int, event_id: str, event_type: str, field: str, message: str):
        super().__init__(
            field,
            f"event #{index} ({event_type}, id {event_id}) field {field!r}: {message}; "
            "nothing in the batch was written",
        )
        self.index = index
        self.event_id = event_id
        self.event_type = event_type
        self.message = message


class NotFound(LedgerError, LookupError):
    """A node the question names is not in the ledger."""


class Conflict(LedgerError):
    """A write that contradicts what is already recorded."""


class ConfigError(LedgerError):
    """Settings that cannot work (bad database URL, missing key, ...)."""


class NoLedger(ConfigError):
    """The database named holds no ledger, and the call is not one that creates it."""


class Unauthenticated(LedgerError, PermissionError):
    """A server refused the request: no API key, or an unknown or revoked one (401)."""


class Forbidden(LedgerError, PermissionError):
    """A server refused the request: the key's project or role does not allow it (403)."""


class IntegrityViolation(LedgerError):
    """Stored data disagrees with its hashes, tree or signed checkpoints: something was
    changed outside the ledger. Nothing is signed over it."""
