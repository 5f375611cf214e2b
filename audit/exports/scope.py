"""What one export covers: a project (or all), a time window and a log prefix.

Every export format reads the same ``Scope``:

- ``upto``: the size of the signed checkpoint the export reflects. Only events at
  positions ``< upto`` are exported, and catalogue rows (runs, dataset and model
  versions, deployments) registered at such positions; the manifest names that
  checkpoint, so a reader can prove any exported event against it.
- ``project``: one project, or ``None`` for every project.
- ``since`` / ``until``: a window on the time the log recorded an event
  (``recorded_at``), ``since`` inclusive, ``until`` exclusive, both in the log's
  timestamp form (``registry.timeutil.FORMAT``). Catalogue rows follow the event
  that registered them; predictions follow their ``predictions-logged`` event; the
  access trail is windowed on its own ``at``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from registry.errors import FieldError
from registry.ids import check_name
from registry.timeutil import to_timestamp


@dataclass(frozen=True)
class Scope:
    upto: int
    project: str | None = None
    since: str | None = None
    until: str | None = None

    @classmethod
    def make(
        cls,
        upto: int,
        project: str | None = None,
        since: Any = None,
        until: Any = None,
    ) -> Scope:
        """A checked scope: ``since``/``until`` may be ISO 8601 text, datetimes or Unix
        seconds, normalised to the log's timestamp form."""
        if isinstance(upto, bool) or not isinstance(upto, int) or upto < 0:
            raise FieldError("upto", f"upto {upto!r} is not a log size (a whole number, 0 or more)")
        if project is not None:
            check_name(project, "project")
        start = None if since is None else to_timestamp(since, "--since")
        stop = None if until is None else to_timestamp(until, "--until")
        if start is not None and stop is not None and stop <= start:
            raise FieldError(
                "until", f"--until {stop} is not after --since {start}: expected a non-empty window"
            )
        return cls(upto, project, start, stop)

    def events_where(self, alias: str = "events") -> tuple[str, list[Any]]:
        """SQL condition and parameters selecting the scope's events (table ``alias``)."""
        parts, params = self._window(alias, "recorded_at")
        return " AND ".join([f"{alias}.position < ?", *parts]), [self.upto, *params]

    def registered_where(self, table: str) -> tuple[str, list[Any]]:
        """SQL condition selecting catalogue rows of ``table`` (which has ``project`` and
        ``position`` columns) whose registering event is in scope."""
        where, params = self.events_where("e")
        return (
            f"EXISTS (SELECT 1 FROM events e WHERE e.position = {table}.position AND {where})",
            params,
        )

    def trail_where(self, alias: str = "access_trail") -> tuple[str, list[Any]]:
        """SQL condition selecting the scope's access-trail entries."""
        parts, params = self._window(alias, "at")
        return (" AND ".join(parts) or "1 = 1"), params

    def _window(self, alias: str, time: str) -> tuple[list[str], list[Any]]:
        """Conditions (and their parameters) on the project and the time window, the
        time being column ``time`` of table ``alias``."""
        conditions = (
            (self.project, f"{alias}.project = ?"),
            (self.since, f"{alias}.{time} >= ?"),
            (self.until, f"{alias}.{time} < ?"),
        )
        parts = [part for value, part in conditions if value is not None]
        return parts, [value for value, _ in conditions if value is not None]

    def as_dict(self) -> dict[str, Any]:
        """The scope's fields by name, in alphabetical order."""
        return dict(sorted(asdict(self).items()))


# Told how many more rows were written (drives a progress bar).
Progress = Callable[[int], None]
