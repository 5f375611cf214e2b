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
from dataclasses import dataclass
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
        parts = [f"{alias}.position < ?"]
        params: list[Any] = [self.upto]
        if self.project is not None:
            parts.append(f"{alias}.project = ?")
            params.append(self.project)
        if self.since is not None:
            parts.append(f"{alias}.recorded_at >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append(f"{alias}.recorded_at < ?")
            params.append(self.until)
        return " AND ".join(parts), params

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
        parts: list[str] = []
        params: list[Any] = []
        if self.project is not None:
            parts.append(f"{alias}.project = ?")
            params.append(self.project)
        if self.since is not None:
            parts.append(f"{alias}.at >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append(f"{alias}.at < ?")
            params.append(self.until)
        return (" AND ".join(parts) or "1 = 1"), params

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "since": self.since,
            "until": self.until,
            "upto": self.upto,
        }


# Told how many more rows were written (drives a progress bar).
Progress = Callable[[int], None]
