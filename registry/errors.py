"""Errors a user can act on: each says what was wrong and what was expected.

Each class names its problem kind: ``slug`` (the ``urn:mlledger:problem:<slug>`` of the
HTTP API's problem details), ``status`` (the HTTP status) and ``title``. The API answers
an error with its class's kind, and the HTTP client raises the class a kind names, so the
table of kinds is this module alone.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class for every error mlledger raises on purpose.

    An error raised as the base class itself is refused input (``invalid-input``).
    """

    slug = "invalid-input"
    status = 400
    title = "The input was refused"


class InvalidNodeId(LedgerError, ValueError):
    """A node id string that does not parse."""

    slug = "invalid-node-id"
    title = "A node id does not parse"


class InvalidInput(LedgerError, ValueError):
    """Input the ledger refuses; ``field``, when known, is the dotted path of the
    offending value (``params.lr``). The kind ``invalid-input`` names this class (the
    base class has it too, for errors raised as ``LedgerError`` itself)."""

    slug = "invalid-input"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class FieldError(InvalidInput):
    """Input refused at a known field: ``field`` is its dotted path (``params.lr``)."""

    field: str

    def __init__(self, field: str, message: str):
        super().__init__(message, field=field)


class EventRejected(FieldError, ValueError):
    """An event in a batch is invalid; the whole batch was written nowhere.

    ``index`` is the event's place in the batch, ``field`` the dotted path of the
    offending field. The SDK raises it at the call that made the event (``index``
    0), before anything is buffered or sent.
    """

    slug = "event-rejected"
    status = 422
    title = "An event of the batch was refused; nothing was written"

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

    slug = "not-found"
    status = 404
    title = "Not found"


class Conflict(LedgerError):
    """A write that contradicts what is already recorded."""

    slug = "conflict"
    status = 409
    title = "The write contradicts what is recorded"


class ConfigError(LedgerError):
    """Settings that cannot work (bad database URL, missing key, ...)."""

    slug = "unavailable"
    status = 503
    title = "The store cannot be used"


class NoLedger(ConfigError):
    """The database named holds no ledger, and the call is not one that creates it."""


class GraphUnavailable(ConfigError):
    """The Neo4j lineage graph cannot be reached: a question is refused, never answered
    from a stale graph."""


class Unauthenticated(LedgerError, PermissionError):
    """A server refused the request: no API key, or an unknown or revoked one (401)."""

    slug = "unauthenticated"
    status = 401
    title = "No valid API key"


class Forbidden(LedgerError, PermissionError):
    """A server refused the request: the key's project or role does not allow it (403)."""

    slug = "forbidden"
    status = 403
    title = "The API key does not allow this"


class IntegrityViolation(LedgerError):
    """Stored data disagrees with its hashes, tree or signed checkpoints: something was
    changed outside the ledger. Nothing is signed over it."""

    slug = "integrity"
    status = 500
    title = "The stored log does not match its hashes or signed checkpoints"


def kinds() -> dict[str, type[LedgerError]]:
    """Every problem kind (slug) and the class it names: the class that declares the
    slug in its own body, the subclass winning over ``LedgerError`` (``invalid-input``
    names ``InvalidInput``). Subclasses that only inherit a kind (``NoLedger``) name none."""
    found: dict[str, type[LedgerError]] = {}
    pending: list[type[LedgerError]] = [LedgerError]
    while pending:
        cls = pending.pop(0)
        if "slug" in vars(cls):
            found[cls.slug] = cls
        pending.extend(cls.__subclasses__())
    return found


def error_for(slug: str) -> type[LedgerError] | None:
    """The class a problem kind names, or None for a kind no error class has (the HTTP
    API's own: ``invalid-request``, ``method-not-allowed``, ...)."""
    return kinds().get(slug)
