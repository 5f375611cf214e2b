"""Plain DB-API access for the hot paths (appends, projections).

Statements are written once with ``?`` placeholders and run on the driver's
cursor inside the SQLAlchemy transaction; for PostgreSQL the placeholders
become ``%s``. This skips statement construction and compilation, which would
otherwise cost more than the database work itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection


class Raw:
    """A driver cursor over a SQLAlchemy connection's current transaction."""

    def __init__(self, conn: Connection):
        self.postgres = conn.dialect.name == "postgresql"
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        self._cursor = dbapi.cursor()
        self._sql: dict[str, str] = {}

    def _prepare(self, sql: str) -> str:
        prepared = self._sql.get(sql)
        if prepared is None:
            prepared = sql.replace("?", "%s") if self.postgres else sql
            self._sql[sql] = prepared
        return prepared

    def run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Execute one statement; return the cursor."""
        self._cursor.execute(self._prepare(sql), params)
        return self._cursor

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Execute one statement for each parameter row."""
        rows = list(rows)
        if rows:
            self._cursor.executemany(self._prepare(sql), rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row, or None."""
        return self.run(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.run(sql, params).fetchall())

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]


def placeholders(n: int) -> str:
    """``?,?,...`` for an IN list of ``n`` items."""
    return ",".join("?" * n)
