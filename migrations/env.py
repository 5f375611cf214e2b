"""Alembic environment: runs on the connection the ledger hands over, or on
the URL given with ``-x db=...`` / ``MLLEDGER_DB`` when run from the command line."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from registry.settings import normalise_url

    url = context.get_x_argument(as_dictionary=True).get("db") or os.environ.get("MLLEDGER_DB")
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        _run(conn)
