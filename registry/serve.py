"""``mlledger serve``: the HTTP API and the web interface under uvicorn."""

from __future__ import annotations

import os
import sys

from registry.assembly import open_ledger
from registry.errors import NoLedger
from registry.settings import normalise_url, shown_url


def ensure_ledger(url: str) -> None:
    """Open (and migrate) the ledger at ``url``, creating it when there is none: the
    server takes first writes. Its creation is said on stderr, since a mistyped
    ``--db`` would otherwise serve an empty ledger without a word."""
    try:
        open_ledger(url, create=False).close()
    except NoLedger:
        open_ledger(url).close()
        print(f"mlledger serve: no ledger was at {shown_url(url)}: created a new, empty one",
              file=sys.stderr)  # fmt: skip


def default_workers() -> int:
    """One worker process per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity to ask about
        return os.cpu_count() or 1


def serve(
    db: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Serve the API on ``db`` until interrupted.

    The database is opened (and migrated) once before the server starts, so a bad
    URL or key fails here with a clear message; where it holds no ledger yet, one is
    created and that is said on stderr. uvicorn's own access log is off
    by default: every request is recorded in the access trail instead.
    ``workers`` defaults to one per core (``default_workers``).
    """
    import uvicorn

    url = normalise_url(db)
    ensure_ledger(url)
    # Workers are separate processes: they find the database through the environment.
    os.environ["MLLEDGER_DB"] = url
    workers = workers or default_workers()
    os.environ["MLLEDGER_SERVE_WORKERS"] = str(workers)
    uvicorn.run(
        "registry.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
        server_header=False,
    )
