"""Shared fixtures: every store backend, a ledger and an SDK connection per test.

``store_url`` runs a test once on SQLite and once on a real PostgreSQL server
(started by ``tests/support/pgserver.py``). Without PostgreSQL the postgres half is
skipped locally and fails in CI (``CI=true``): there, a missing service is an
error, never a silent skip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lineage.neo4j import Neo4jGraph
from registry.events import StoredEvent
from registry.ledger import Ledger
from registry.sdk import Registry
from tests.support import neo4jserver
from tests.support.apiserver import ApiServer
from tests.support.helpers import connected, opened_ledger
from tests.support.pgserver import MISSING_MESSAGE, PostgresServer, ensure_server
from tests.support.worlds import Scenario, build_world

#: Settings that must not leak from the developer's shell into a test.
CLEARED_ENV = (
    "MLLEDGER_DB",
    "MLLEDGER_MASTER_KEY",
    "MLLEDGER_PROJECT",
    "MLLEDGER_ACTOR",
    "MLLEDGER_API_KEY",
    "MLLEDGER_CHECKPOINT_EVERY",
    "MLLEDGER_CHECKPOINT_SECONDS",
    "MLLEDGER_GRAPH",
    "MLLEDGER_GRAPH_USER",
    "MLLEDGER_GRAPH_PASSWORD",
    "MLLEDGER_GRAPH_WAIT",
)
#: The tests of the training frameworks' callbacks (torch, Lightning, transformers,
#: datasets: about 6 GB) run in a virtualenv of their own (``make test-frameworks``,
#: which sets ``MLLEDGER_FRAMEWORK_TESTS=1``); the main run does not collect them. The
#: folder itself is left out, not only its files: its conftest imports torch.
collect_ignore = [] if os.environ.get("MLLEDGER_FRAMEWORK_TESTS") == "1" else ["frameworks"]
#: Kills in the crash test by default; `--crash-kills N` (CI runs 200) for the long run.
DEFAULT_CRASH_KILLS = 24


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--crash-kills",
        type=int,
        default=DEFAULT_CRASH_KILLS,
        help="writer processes the crash test kills with SIGKILL, per backend "
        f"(default {DEFAULT_CRASH_KILLS}; CI's long run: 200)",
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (skip, or fail in CI, without one)."""
    server = ensure_server()
    if server is None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(MISSING_MESSAGE, pytrace=False)
        pytest.skip(MISSING_MESSAGE)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[neo4jserver.Neo4jServer]:
    """One Neo4j server for the whole session (skip, or fail in CI, without Java and
    Maven to build and run it)."""
    server = neo4jserver.ensure_server()
    if server is None:
        message = neo4jserver.missing_reason() or neo4jserver.MISSING_MESSAGE
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield server
    server.stop()


@pytest.fixture
def neo4j_graph(neo4j_server: neo4jserver.Neo4jServer) -> Iterator[Neo4jGraph]:
    """The session's Neo4j server, emptied, as a lineage graph (closed after the test)."""
    neo4j_server.clear()
    graph = Neo4jGraph(neo4j_server.url, (neo4j_server.user, neo4j_server.password))
    yield graph
    graph.close()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the master key and the signing key in the test's own directory, never in
    ``./.mlledger``."""
    key_file = tmp_path / "keys" / "master.key"
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(key_file))
    monkeypatch.setenv("MLLEDGER_SIGNING_KEY", str(tmp_path / "keys" / "signing.key"))
    # A PostgreSQL ledger's default key directory is under XDG_CONFIG_HOME: the test's own.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    return key_file


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database of each backend (the PostgreSQL one dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def ledger(store_url: str, isolated_env: Path) -> Iterator[Ledger]:
    """The ledger at ``store_url``, closed after the test."""
    yield from opened_ledger(store_url)


@pytest.fixture
def reg(store_url: str, isolated_env: Path) -> Iterator[Registry]:
    """An SDK connection (project ``test``, actor ``tester``), closed after the test."""
    yield from connected(store_url, project="test", actor="tester")


@pytest.fixture
def world(reg: Registry) -> Scenario:
    """The query tests' scenario (``tests.support.worlds.build_world``) in ``reg``;
    modules that need another world define a ``world`` fixture of their own."""
    return build_world(reg)


@pytest.fixture
def cli_json(cli: Callable[..., tuple[int, str, str]]) -> Callable[..., Any]:
    """Run a command through the module's own ``cli`` fixture with ``--json``; return its
    parsed output, failing on a non-zero status or anything on stderr."""

    def run(*args: str, **options: Any) -> Any:
        status, out, err = cli(*args, "--json", **options)
        assert status == 0, err
        assert err == ""
        return json.loads(out)

    return run


@pytest.fixture
def last_event(ledger: Ledger) -> Callable[[], StoredEvent]:
    """A function returning the newest event of the log (failing when the log is empty)."""

    def newest() -> StoredEvent:
        event = ledger.last_event()
        assert event is not None, "the log is empty: expected the event just appended"
        return event

    return newest


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real server (uvicorn on 127.0.0.1) on a SQLite file, shared by a test module."""
    # Modules sharing it send hundreds of requests without a valid key on purpose: the
    # rate limit of failed authentication (tested in test_gate.py) would answer 429.
    server = ApiServer(
        tmp_path_factory.mktemp("api"), env={"MLLEDGER_AUTH_FAILURES_PER_MINUTE": "100000"}
    )
    yield from server.serving()


@pytest.fixture
def server_ledger(api_server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """The ledger behind ``api_server``, opened in this process with the server's key file."""
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(api_server.key_file))
    yield from opened_ledger(api_server.db)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def store_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """A real server on each store (a PostgreSQL database of its own, dropped after),
    shared by a test module; the module's ``SERVER_ENV`` dict adds settings."""
    directory = tmp_path_factory.mktemp("server")
    db = None
    pg: PostgresServer | None = None
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_server")
        db = pg.create_database()
    env = {"MLLEDGER_CHECKPOINT_EVERY": "0", **getattr(request.module, "SERVER_ENV", {})}
    yield from ApiServer(directory, db=db, env=env).serving()
    if pg is not None and db is not None:
        pg.drop_database(db.rsplit("/", 1)[1])
