"""The test-suite's Neo4j server (tests/support/neo4jserver.py): a real server on Bolt,
with authentication, that leaves nothing behind.

Without Java or Maven these tests are skipped locally and fail in CI (``CI=true``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest

from tests.support.neo4jserver import (
    ENV_URL,
    MISSING_MESSAGE,
    Neo4jServer,
    build,
    ensure_server,
    missing_reason,
    source_digest,
)


def _unavailable() -> None:
    message = missing_reason() or MISSING_MESSAGE
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server() -> Iterator[Neo4jServer]:
    started = ensure_server()
    if started is None:
        _unavailable()
    assert started is not None
    yield started
    started.stop()


@pytest.fixture(scope="module")
def throwaway(server: Neo4jServer) -> Iterator[Neo4jServer]:
    """A server started here: the shared one, or one of its own when that is external."""
    if not server.is_external:
        yield server
        return
    _require_tools()
    with Neo4jServer() as started:
        yield started


def test_write_and_read_a_node_with_the_credentials(server: Neo4jServer) -> None:
    server.clear()
    marker = f"node-{uuid.uuid4().hex}"
    with neo4j.GraphDatabase.driver(server.url, auth=(server.user, server.password)) as driver:
        driver.verify_connectivity()
        driver.execute_query("CREATE (:Probe {name: $name, n: 42})", name=marker)
        records, _, _ = driver.execute_query(
            "MATCH (p:Probe {name: $name}) RETURN p.n AS n", name=marker
        )
    assert [record["n"] for record in records] == [42]


def test_a_wrong_password_is_refused(server: Neo4jServer) -> None:
    with (
        neo4j.GraphDatabase.driver(server.url, auth=(server.user, server.password + "x")) as bad,
        pytest.raises(neo4j.exceptions.AuthError),
    ):
        bad.verify_connectivity()


def test_no_credentials_are_refused(server: Neo4jServer) -> None:
    with (
        neo4j.GraphDatabase.driver(server.url) as anonymous,
        pytest.raises(neo4j.exceptions.AuthError),
    ):
        anonymous.execute_query("RETURN 1")


def test_clear_deletes_every_node_and_relationship(server: Neo4jServer) -> None:
    driver = server.driver()
    driver.execute_query("UNWIND range(1, 500) AS i CREATE (:A {i: i})-[:R]->(:B {i: i})")
    server.clear()
    records, _, _ = driver.execute_query("MATCH (n) RETURN count(n) AS nodes")
    assert records[0]["nodes"] == 0
    records, _, _ = driver.execute_query("MATCH ()-[r]->() RETURN count(r) AS rels")
    assert records[0]["rels"] == 0


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def test_the_throwaway_server_listens_on_loopback_only(throwaway: Neo4jServer) -> None:
    assert throwaway.url == f"bolt://127.0.0.1:{throwaway.port}"
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read the listening sockets from")
    # 127.0.0.1, as an IPv4 socket or an IPv6 one (::ffff:127.0.0.1).
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}
    addresses = _listening_addresses(throwaway.port)
    assert addresses and addresses <= loopback, f"listening on {addresses}"


def test_data_dir_holds_the_store_and_the_transaction_logs(throwaway: Neo4jServer) -> None:
    data_dir = throwaway.data_dir
    assert data_dir is not None and data_dir.is_dir()
    canary = f"personal-data-canary-{uuid.uuid4().hex}"
    throwaway.driver().execute_query("CREATE (:Person {email: $email})", email=canary)
    assert any((data_dir / "data" / "databases" / "neo4j").iterdir())
    logs = sorted((data_dir / "data" / "transactions" / "neo4j").glob("*.transaction.db.*"))
    assert logs, "no transaction log files under data/transactions/neo4j"
    # A committed transaction is in the log at once: a grep of data_dir finds the value
    # (a long one: short strings are stored packed, see tests/support/neo4jserver.py).
    assert any(canary.encode() in path.read_bytes() for path in logs)


def test_short_strings_are_not_stored_as_utf8(throwaway: Neo4jServer) -> None:
    """Documents the limit of a byte search of data_dir (see the module's docstring)."""
    data_dir = throwaway.data_dir
    assert data_dir is not None
    short = f"{uuid.uuid4().hex[:12]}@example.com"
    throwaway.driver().execute_query("CREATE (:Person {email: $email})", email=short)
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    assert not any(short.encode() in path.read_bytes() for path in files)


def _require_tools() -> None:
    if missing_reason() is not None:
        _unavailable()


def test_stop_removes_the_data_dir_and_ends_the_server() -> None:
    _require_tools()
    own_server = Neo4jServer().start()
    try:
        data_dir = own_server.data_dir
        pid = own_server.pid
        assert data_dir is not None and data_dir.is_dir() and pid is not None
        rss = own_server.rss_bytes()
        assert 0 < rss < 1024 * 2**20, f"the server uses {rss / 2**20:.0f} MiB"
    finally:
        own_server.stop()
    assert not data_dir.exists()
    assert not data_dir.parent.exists()
    assert not Path(f"/proc/{pid}").exists()
    assert own_server.data_dir is None and not own_server.running
    own_server.stop()  # idempotent


_KILLED_PARENT = """
import os, signal
from tests.support.neo4jserver import Neo4jServer
server = Neo4jServer().start()
print(server.pid, server.data_dir, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_server_ends_with_the_process_that_started_it() -> None:
    _require_tools()
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", _KILLED_PARENT],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    pid_text, data_dir_text = result.stdout.split()
    data_dir = Path(data_dir_text)
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid_text}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{pid_text}").exists(), "the server outlived its parent"
    finally:
        # Nobody was left to remove the directory (atexit does not run on SIGKILL).
        shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.mark.skipif(bool(os.environ.get(ENV_URL)), reason=f"{ENV_URL} names the server")
def test_the_server_is_the_throwaway_one_unless_a_url_is_given(server: Neo4jServer) -> None:
    assert not server.is_external
    assert server.data_dir is not None and server.data_dir.is_dir()
    assert server.user == "neo4j" and len(server.password) >= 16


def _setting(server: Neo4jServer, name: str) -> str:
    records, _, _ = server.driver().execute_query(
        "SHOW SETTINGS YIELD name, value WHERE name = $name RETURN value", name=name
    )
    return str(records[0]["value"])


def test_page_cache_heap_and_jit_of_a_benchmark_server() -> None:
    _require_tools()
    with Neo4jServer(page_cache="96m", full_jit=True, extra_jvm_options=["-Xmx768m"]) as big:
        assert big.pid is not None
        argv = Path(f"/proc/{big.pid}/cmdline").read_bytes().decode().split("\0")
        assert "-XX:TieredStopAtLevel=1" not in argv
        assert "-Dmlledger.neo4j.pagecache=96m" in argv
        # The last -Xmx is the one the JVM takes: the one given, after the default.
        assert [a for a in argv if a.startswith("-Xmx")][-1] == "-Xmx768m"
        assert _setting(big, "server.memory.pagecache.size") in ("96.00MiB", "100663296")
    with Neo4jServer() as small:
        assert _setting(small, "server.memory.pagecache.size") in ("64.00MiB", "67108864")


def test_a_page_cache_that_is_not_a_size_is_refused() -> None:
    with pytest.raises(ValueError, match="page_cache"):
        Neo4jServer(page_cache="lots")


def test_the_build_is_stale_when_the_launcher_sources_change(tmp_path: Path) -> None:
    project = tmp_path / "neo4j"
    source = project / "src" / "main" / "java" / "Launcher.java"
    source.parent.mkdir(parents=True)
    (project / "pom.xml").write_text("<project/>")
    source.write_text("class Launcher {}")
    before = source_digest(project)
    assert before == source_digest(project)
    source.write_text("class Launcher { }")
    assert source_digest(project) != before
    # The build in use records the digest of the sources it was built from.
    _require_tools()
    info = json.loads((build() / "build-info.json").read_text())
    assert info["source"] == source_digest()
