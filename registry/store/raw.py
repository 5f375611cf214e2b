"""Plain DB-API access for the hot paths (appends, projections).

Statements are written once with ``?`` placeholders and run on the driver's
cursor inside the SQLAlchemy transaction; for PostgreSQL the placeholders
become ``%s``. This skips statement construction and compilation, which would
otherwise cost more than the database work itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

#: A statement ``many`` may send as ``COPY``: an insert of values, nothing after them.
_PLAIN_INSERT = re.compile(r"INSERT INTO (\w+) \(([\w, ]+)\) VALUES \(\?(?:, ?\?)*\)")
#: Rows from which ``many`` copies rather than pipelines statements on PostgreSQL.
_COPY_FROM = 4


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
        """Execute one statement for each parameter row. On PostgreSQL a plain
        ``INSERT INTO t (a, b) VALUES (?, ?)`` of several rows becomes one ``COPY``
        (``insert``): the same rows and constraints at a fraction of the round trips.
        ``COPY`` does not cast as an ``INSERT`` does (a float is refused by an integer
        column, a bool is stored as ``t`` in a text one): pass values of the
        columns' own types."""
        rows = list(rows)
        if not rows:
            return
        if self.postgres and len(rows) >= _COPY_FROM:
            plain = _PLAIN_INSERT.fullmatch(sql)
            if plain is not None:
                table, names = plain.group(1), plain.group(2)
                self.insert(table, [n.strip() for n in names.split(",")], rows)
                return
        self._cursor.executemany(self._prepare(sql), rows)

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert rows into ``table``'s ``columns``: on PostgreSQL as one ``COPY``
        stream (an ``INSERT`` a row costs a statement each, even pipelined), on
        SQLite with one prepared ``INSERT``. Either way within the transaction: a
        failure (a duplicate key) undoes the whole batch."""
        rows = list(rows)
        if not rows:
            return
        names = ", ".join(columns)
        if self.postgres:
            with self._cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        sql = f"INSERT INTO {table} ({names}) VALUES ({placeholders(len(columns))})"
        self._cursor.executemany(self._prepare(sql), rows)

    def among(self, items: Sequence[Any]) -> str:
        """The condition "is one of ``items``" after a column: ``= ANY(?)`` with one
        array parameter on PostgreSQL (one statement text for every length, cheap to
        plan and to send), ``IN (?, ...)`` on SQLite. Pass ``among_params(items)``."""
        return "= ANY(?)" if self.postgres else f"IN ({placeholders(len(items))})"

    def among_params(self, items: Sequence[Any]) -> list[Any]:
        return [list(items)] if self.postgres else list(items)

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
