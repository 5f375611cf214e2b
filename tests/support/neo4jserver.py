"""A throwaway Neo4j server for the test-suite, speaking Bolt with authentication on.

There is no Docker and no Neo4j package to install, so the server is built from Maven
Central: ``tests/support/neo4j/`` is a small Maven project (``pom.xml``, one Java class)
whose launcher runs an embedded Neo4j Community database (``org.neo4j:neo4j``) with the
Bolt connector on 127.0.0.1 and the user ``neo4j`` given a password.

Building (:func:`build`, ``python -m tests.support.neo4jserver build``)
    needs Maven and a JDK (17 or 21 for Neo4j 5.26). It packages the launcher
    (``neo4j-launcher.jar``, whose manifest names its dependencies in ``lib/``, about
    210 jars, 125 MB) and records a class-data-sharing archive of one start (``cds.jsa``,
    about 110 MB; it brings the start from about 6 s down to about 4 s). Maven builds in
    a temporary directory beside the cache, which is then renamed to
    ``${XDG_CACHE_HOME:-~/.cache}/mlledger/neo4j/<version>/``; the archive is recorded
    there (it fits only the jar paths it was made with), and ``build-info.json``,
    written last, marks the cache complete: an interrupted build is started over, a
    complete cache is reused as it is. ``build-info.json`` records the sha256 of the
    launcher's sources (``pom.xml`` and the Java files, :func:`source_digest`); a cache
    built from other sources is not complete, and is built again once. Maven's own repository
    stays at its default (``~/.m2``; Neo4j and the plugins take 170 MB there). Measured
    on 2 shared cores: 25 s cold (empty ``~/.m2``: Maven 10 s, the archive 16 s), 19 s
    with a warm ``~/.m2``; the cache takes 230 MB.

Starting (:class:`Neo4jServer`, ``python -m tests.support.neo4jserver up``)
    takes about 4 seconds and about 400 MB of memory (``-Xmx512m``, a 64 MB page
    cache): a fresh temporary directory, a free port on 127.0.0.1, a random password.
    :attr:`Neo4jServer.data_dir` holds everything the server writes: the store files
    (``data/databases/``), the transaction logs (``data/transactions/``) and its own
    logs (``logs/``), for tests that look for leaked personal data in them. Mind that
    a byte search finds only longer strings: Neo4j packs a short string value into its
    property record (a "short string" encoding of 5 to 8 bits a character), so
    ``"alice@example.com"`` or ``"Jörg Müller"`` never appear as UTF-8 bytes in the
    store or the transaction logs. Values of about 55 characters and more (fewer with
    upper-case letters, symbols or non-Latin-1 characters: 28 and more is always enough)
    go to the string store as UTF-8, and so into the transaction log, where a search
    finds them as soon as the transaction is committed.
    :meth:`Neo4jServer.stop` (also run at exit) shuts the database down cleanly
    (SIGTERM) and removes the directory; the server also stops when the process that
    started it ends, however it ends (its standard input closes, and the kernel sends it
    SIGTERM). :meth:`Neo4jServer.clear` deletes every node and relationship.
    For a big graph (the benchmark), ``Neo4jServer(page_cache="1g", full_jit=True,
    extra_jvm_options=["-Xmx2g"])`` gives a bigger page cache (the launcher's system
    property ``mlledger.neo4j.pagecache``), both JIT compilers and a bigger heap (options
    given come after the defaults, and the JVM takes the last ``-Xmx``).

Set ``MLLEDGER_TEST_NEO4J_URL`` (``bolt://host:port`` or ``neo4j://host:port``) with
``MLLEDGER_TEST_NEO4J_USER`` (default ``neo4j``) and ``MLLEDGER_TEST_NEO4J_PASSWORD`` to
use an existing server instead; :meth:`Neo4jServer.clear` then deletes everything in its
default database, and :attr:`Neo4jServer.data_dir` is ``None``.

In the tests, :func:`ensure_server` gives a started server, building the launcher when
needed, or ``None`` when Java or Maven is missing: a skip locally, a failure under
``CI=true`` (:data:`MISSING_MESSAGE`), like the PostgreSQL server's fixture.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.throwaway import (
    ThrowawayServer,
    dying_with_parent,
    free_port,
    run_step,
    wait_until_interrupted,
)

if TYPE_CHECKING:
    import neo4j

__all__ = [
    "DEFAULT_VERSION",
    "ENV_PASSWORD",
    "ENV_URL",
    "ENV_USER",
    "MISSING_MESSAGE",
    "PAGE_CACHE_PROPERTY",
    "Neo4jServer",
    "Neo4jServerError",
    "build",
    "cache_dir",
    "ensure_server",
    "find_java",
    "missing_reason",
    "source_digest",
]

#: The Neo4j release the launcher embeds (5.26 is the LTS line that runs on Java 17).
DEFAULT_VERSION = "5.26.30"

#: Environment variables naming an existing server to use instead of starting one.
ENV_URL = "MLLEDGER_TEST_NEO4J_URL"
ENV_USER = "MLLEDGER_TEST_NEO4J_USER"
ENV_PASSWORD = "MLLEDGER_TEST_NEO4J_PASSWORD"

#: What to tell the user when no server is available (a skip locally, an error in CI).
MISSING_MESSAGE = (
    "Neo4j is not available: the test server is an embedded Neo4j built from Maven "
    "Central, which needs a JDK 17+ (`java` on PATH or JAVA_HOME) and Maven (`mvn` on "
    "PATH), and one of them is missing. Install them with `apt-get install "
    "openjdk-17-jdk-headless maven`, then run `python -m tests.support.neo4jserver build` "
    f"(about 30 s, cached), or set {ENV_URL}=bolt://HOST:PORT with {ENV_USER} and "
    f"{ENV_PASSWORD} to use an existing server."
)

_PROJECT = Path(__file__).resolve().parent / "neo4j"
_JAR = "neo4j-launcher.jar"
_CDS = "cds.jsa"
_INFO = "build-info.json"
_READY_RE = re.compile(r"^NEO4J READY (bolt://\S+)$", re.MULTILINE)
_MIN_JAVA = 17
#: The launcher's system property for its page cache (default 64 MB): bytes, or 512m, 2g.
PAGE_CACHE_PROPERTY = "mlledger.neo4j.pagecache"
_PAGE_CACHE_RE = re.compile(r"^\d+[kKmMgG]?$")
_C1_ONLY = "-XX:TieredStopAtLevel=1"
#: Small enough for several servers side by side on a 2-core, 24 GB machine.
#: ``extra_jvm_options`` come after these, so a later ``-Xmx2g`` overrides ``-Xmx512m``
#: (HotSpot takes the last of a repeated option).
_JVM_OPTIONS = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    _C1_ONLY,  # quicker to start, fast enough for tests; left out with ``full_jit``
    "-XX:+ExitOnOutOfMemoryError",
    # The JVM's own warnings (class-data sharing, ...) go to stderr, not stdout.
    "-Xlog:disable",
    "-Xlog:all=warning:stderr",
)
_START_ATTEMPTS = 3
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 30.0
_CLEAR_BATCH = 10_000
_BUILD_TIMEOUT_S = 1800.0


class Neo4jServerError(RuntimeError):
    """The launcher could not be built, or the server started, reached or used."""


# -- tools -------------------------------------------------------------------------------


def _java_major(java: str) -> int | None:
    """The feature release of the JDK behind ``java`` (17, 21, ...), or ``None``."""
    try:
        result = subprocess.run(
            [java, "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if result.returncode != 0 or match is None:
        return None
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major


def find_java() -> str | None:
    """Path of a ``java`` of release 17 or newer (``$JAVA_HOME/bin/java``, else PATH)."""
    candidates = []
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path is not None:
        candidates.append(on_path)
    for java in candidates:
        major = _java_major(java)
        if major is not None and major >= _MIN_JAVA:
            return java
    return None


def _java_id(java: str) -> str:
    """Identifies one JDK installation (a class-data archive only fits the JDK that made it)."""
    real = Path(java).resolve()
    return f"{real}:{real.stat().st_mtime_ns}"


# -- building ------------------------------------------------------------------------------


def cache_dir(version: str = DEFAULT_VERSION) -> Path:
    """Where the launcher of ``version`` is cached (whether or not it is there)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlledger" / "neo4j" / version


def source_digest(project: Path = _PROJECT) -> str:
    """sha256 of the launcher's Maven project: ``pom.xml`` and the Java sources under
    ``src/``, each file's path (relative to ``project``) and bytes, in path order. A
    cached build made from other sources is not complete (:func:`_complete`)."""
    digest = hashlib.sha256()
    files = [project / "pom.xml", *sorted((project / "src").rglob("*.java"))]
    for path in files:
        data = path.read_bytes()
        digest.update(f"{path.relative_to(project).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _complete(directory: Path, version: str) -> bool:
    """True when ``directory`` holds a finished build of ``version`` made from the
    launcher's current sources (:func:`source_digest`)."""
    try:
        info = json.loads((directory / _INFO).read_text())
    except (OSError, ValueError):
        return False
    return (
        info.get("version") == version
        and info.get("source") == source_digest()
        and (directory / _JAR).is_file()
        and (directory / "lib" / f"neo4j-{version}.jar").is_file()
    )


def build(version: str = DEFAULT_VERSION, *, quiet: bool = False) -> Path:
    """Return the directory holding the launcher, building it when missing.

    The cache (:func:`cache_dir`) is used when complete; otherwise the launcher is built
    with Maven in a temporary directory beside it and renamed into place. A lock file
    keeps two builds of one version from running at once. Progress goes to stderr
    unless ``quiet``; Maven's whole output to ``build.log`` beside the cache.

    :raises Neo4jServerError: Java or Maven is missing, or the build failed (the log's
        tail is in the message).
    """
    target = cache_dir(version)
    if _complete(target, version):
        return target
    java = find_java()
    if java is None:
        raise Neo4jServerError(
            f"cannot build the Neo4j launcher: no Java {_MIN_JAVA}+ found "
            "(JAVA_HOME/bin/java or `java` on PATH)"
        )
    mvn = shutil.which("mvn")
    if mvn is None:
        raise Neo4jServerError("cannot build the Neo4j launcher: `mvn` (Maven) is not on PATH")
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".lock-{version}").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(target, version):  # built meanwhile by another process
            return target
        for stale in root.glob(f".build-{version}-*"):  # what a killed build left behind
            shutil.rmtree(stale, ignore_errors=True)
        _build_into(java, mvn, version, root, target, quiet=quiet)
    return target


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(f"neo4j: {message}", file=sys.stderr, flush=True)


def _build_into(
    java: str, mvn: str, version: str, root: Path, target: Path, *, quiet: bool
) -> None:
    work = Path(tempfile.mkdtemp(prefix=f".build-{version}-", dir=root))
    log_path = root / f"build-{version}.log"
    started = time.monotonic()
    try:
        src = work / "src"
        out = work / "out"
        shutil.copytree(_PROJECT, src, ignore=shutil.ignore_patterns("target"))
        digest = source_digest(src)  # of what Maven builds, copied before it is read
        java_home = Path(java).resolve().parent.parent
        env = dict(os.environ, JAVA_HOME=str(java_home))
        argv = [mvn, "-B", "package", f"-Dneo4j.version={version}"]
        _say(quiet, f"building the launcher of Neo4j {version} with Maven ...")
        with log_path.open("w") as log:
            try:
                result = run_step(argv, cwd=src, env=env, log=log, timeout=_BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise Neo4jServerError(
                    f"the Maven build ran over {_BUILD_TIMEOUT_S:.0f}s (log: {log_path})"
                ) from None
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            raise Neo4jServerError(
                f"the Maven build of the Neo4j launcher exited {result.returncode} "
                f"(log: {log_path}):\n{tail}"
            )
        out.mkdir()
        (src / "target" / _JAR).rename(out / _JAR)
        (src / "target" / "lib").rename(out / "lib")
        maven_s = time.monotonic() - started
        # Renamed into place before the class-data archive is recorded: the archive only
        # fits the jar paths it was made with. build-info.json, written last, marks the
        # cache complete; until then a later build starts over.
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
        _say(quiet, f"Maven build: {maven_s:.1f}s; recording a class-data archive of one start")
        t0 = time.monotonic()
        cds_ok = _record_cds(java, target, log_path)
        cds_s = time.monotonic() - t0
        info = {
            "version": version,
            "source": digest,
            "java": _java_id(java),
            "cds": cds_ok,
            "maven_seconds": round(maven_s, 1),
            "cds_seconds": round(cds_s, 1),
        }
        partial = target / f"{_INFO}.part"
        partial.write_text(json.dumps(info, indent=2) + "\n")
        partial.rename(target / _INFO)
        _say(
            quiet,
            f"built in {time.monotonic() - started:.1f}s (Maven {maven_s:.1f}s, class-data "
            f"archive {cds_s:.1f}s{'' if cds_ok else ', not usable: skipped'}) into {target}",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _record_cds(java: str, launcher_dir: Path, log_path: Path) -> bool:
    """Start the server once with ``-XX:ArchiveClassesAtExit``; True when the archive is
    there. Without it the server still works, only starts about 2 s slower."""
    partial = launcher_dir / f"{_CDS}.part"
    partial.unlink(missing_ok=True)
    server = Neo4jServer(
        launcher_dir,
        java=java,
        cds=False,
        extra_jvm_options=[f"-XX:ArchiveClassesAtExit={partial}"],
    )
    try:
        server.start()
    except Neo4jServerError as exc:
        with log_path.open("a") as log:
            log.write(f"\n# start for the class-data archive failed:\n{exc}\n")
        raise Neo4jServerError(
            f"the Neo4j launcher was built but does not start (log: {log_path}):\n{exc}"
        ) from exc
    finally:
        server.stop()
    if partial.is_file() and partial.stat().st_size > 0:
        partial.rename(launcher_dir / _CDS)
        return True
    partial.unlink(missing_ok=True)
    with log_path.open("a") as log:
        log.write("\n# no class-data archive was written; the server starts without one\n")
    return False


# -- the server ------------------------------------------------------------------------------


class Neo4jServer(ThrowawayServer):
    """A Neo4j server for tests: a throwaway one, or an existing one by URL.

    ``Neo4jServer()`` starts its own server on :meth:`start` (building the launcher
    first when it is not cached); ``Neo4jServer(url=..., user=..., password=...)`` wraps
    an existing server, whose :meth:`start` only checks the connection and whose
    :meth:`stop` only closes the driver.
    """

    error = Neo4jServerError

    def __init__(
        self,
        launcher_dir: Path | None = None,
        *,
        url: str | None = None,
        user: str = "neo4j",
        password: str | None = None,
        java: str | None = None,
        cds: bool = True,
        extra_jvm_options: list[str] | None = None,
        page_cache: str | None = None,
        full_jit: bool = False,
    ) -> None:
        """Prepare (but do not start) a server.

        :param launcher_dir: a directory made by :func:`build`; built when omitted.
        :param url: Bolt URL of an existing server to use instead (with ``password``).
        :param user: the user to connect as (the throwaway server has only ``neo4j``).
        :param java: the ``java`` to run; :func:`find_java` when omitted.
        :param cds: use the launcher's class-data archive when it fits this JDK.
        :param extra_jvm_options: after the defaults, so they win (``-Xmx2g`` replaces
            the default ``-Xmx512m``).
        :param page_cache: Neo4j's page cache: bytes, or with a ``k``, ``m`` or ``g``
            suffix (``"1g"``); ``None``: the launcher's 64 MB.
        :param full_jit: run both JIT compilers (C1 and C2), for a long-running
            benchmark server; by default only C1 (quicker to start).
        """
        if url is not None and password is None:
            raise ValueError(f"an existing Neo4j server ({url}) needs a password")
        if page_cache is not None and not _PAGE_CACHE_RE.match(page_cache):
            raise ValueError(
                f"page_cache must be bytes or a size with a k, m or g suffix, got {page_cache!r}"
            )
        self._page_cache = page_cache
        self._full_jit = full_jit
        self._external_url = url
        self._launcher_dir = launcher_dir
        self._java = java
        self._cds = cds
        self._extra_jvm_options = list(extra_jvm_options or [])
        self.user = user
        self.password = password or ""
        self._tmpdir: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._driver: neo4j.Driver | None = None
        self._started = False
        self.startup_seconds: float | None = None

    def _own_url(self) -> str:
        """The Bolt URL of the throwaway server."""
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        """``(user, password)``, as the driver takes it."""
        return (self.user, self.password)

    @property
    def data_dir(self) -> Path | None:
        """Everything the throwaway server writes: ``data/databases/`` (store files),
        ``data/transactions/`` (transaction logs) and ``logs/`` (``None`` when stopped
        or external). Short strings are stored packed, not as UTF-8: see the module's
        documentation before searching these files for a value."""
        return None if self._tmpdir is None else self._tmpdir / "home"

    def alive(self) -> bool:
        """True while the throwaway server's JVM runs (or, external, while started)."""
        if self.is_external:
            return self._started
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the server's JVM (``None`` when stopped or external)."""
        return None if self._proc is None else self._proc.pid

    def rss_bytes(self) -> int:
        """Resident memory of the server's JVM (0 when stopped or external)."""
        if self._proc is None:
            return 0
        try:
            status = Path(f"/proc/{self._proc.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match[1]) * 1024 if match else 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Neo4jServer:
        """Start the server (idempotent) and return ``self``.

        :raises Neo4jServerError: Java is missing, the launcher cannot be built, or the
            server did not get ready (the tail of its output is in the message).
        """
        if self._started:
            return self
        atexit.register(self.stop)
        if self.is_external:
            try:
                self.driver().verify_connectivity()
            except Exception as exc:
                self.stop()
                raise Neo4jServerError(
                    f"cannot connect to the {ENV_URL} server {self._external_url} "
                    f"as {self.user!r}: {exc}"
                ) from exc
            self._started = True
            return self
        try:
            if self._java is None:
                self._java = find_java()
                if self._java is None:
                    raise Neo4jServerError(MISSING_MESSAGE)
            if self._launcher_dir is None:
                self._launcher_dir = build()
            t0 = time.monotonic()
            self._start_process()
            self.startup_seconds = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent, never raises on cleanup)."""
        atexit.unregister(self.stop)
        self._started = False
        driver, self._driver = self._driver, None
        if driver is not None:
            with contextlib.suppress(Exception):  # the server may already be gone
                driver.close()
        self._stop_process()
        tmpdir, self._tmpdir = self._tmpdir, None
        self._port = None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    # -- using it -----------------------------------------------------------------------------

    def driver(self) -> neo4j.Driver:
        """A driver connected with the credentials (one per server, closed by :meth:`stop`)."""
        import neo4j

        if self._driver is None:
            url = self._external_url or f"bolt://127.0.0.1:{self.port}"
            self._driver = neo4j.GraphDatabase.driver(url, auth=self.auth)
        return self._driver

    def clear(self) -> None:
        """Delete every node and relationship, in transactions of at most
        :data:`_CLEAR_BATCH` nodes (so a big graph fits in memory); indexes and
        constraints stay. An empty or small graph takes one query."""
        driver = self.driver()
        while True:
            records, _, _ = driver.execute_query(
                "MATCH (n) WITH n LIMIT $batch DETACH DELETE n RETURN count(*) AS deleted",
                batch=_CLEAR_BATCH,
            )
            if records[0]["deleted"] < _CLEAR_BATCH:
                return

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the launcher's output and of Neo4j's debug log."""
        if self._tmpdir is None:
            return ""
        parts = []
        for path in (
            self._tmpdir / "launcher.log",
            self._tmpdir / "home" / "logs" / "debug.log",
        ):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            if tail:
                parts.append(f"--- {path.name} ---\n{tail}")
        return "\n".join(parts)

    # -- internals ------------------------------------------------------------------------------

    def _jvm_command(self, home: Path, port: int) -> list[str]:
        assert self._java is not None and self._launcher_dir is not None
        options = [o for o in _JVM_OPTIONS if not (self._full_jit and o == _C1_ONLY)]
        argv = [self._java, *options]
        archive = self._launcher_dir / _CDS
        if self._cds and archive.is_file():
            try:
                info = json.loads((self._launcher_dir / _INFO).read_text())
            except (OSError, ValueError):
                info = {}
            if info.get("java") == _java_id(self._java):
                argv.append(f"-XX:SharedArchiveFile={archive}")
        if self._page_cache is not None:
            argv.append(f"-D{PAGE_CACHE_PROPERTY}={self._page_cache}")
        argv += self._extra_jvm_options
        argv += ["-jar", str(self._launcher_dir / _JAR), str(home), str(port), "-"]
        return argv

    def _start_process(self) -> None:
        """Start the JVM on a free port, retrying if the port got taken meanwhile."""
        self._tmpdir = Path(tempfile.mkdtemp(prefix="mlneo4j-"))
        if not self.password:
            self.password = secrets.token_urlsafe(24)
        last_error: Neo4jServerError | None = None
        for _ in range(_START_ATTEMPTS):
            home = self._tmpdir / "home"
            shutil.rmtree(home, ignore_errors=True)
            port = free_port()
            try:
                self._spawn(home, port)
                self._wait_ready(port)
            except Neo4jServerError as exc:
                last_error = exc
                self._stop_process()
                if "already in use" not in str(exc).lower():
                    break
                continue
            self._port = port
            return
        assert last_error is not None
        raise last_error

    def _spawn(self, home: Path, port: int) -> None:
        assert self._tmpdir is not None
        stdout_path = self._tmpdir / "ready.out"
        stdout_path.unlink(missing_ok=True)
        argv = self._jvm_command(home, port)
        with (
            stdout_path.open("wb") as stdout,
            (self._tmpdir / "launcher.log").open("ab") as stderr,
        ):
            try:
                self._proc = subprocess.Popen(
                    argv,
                    cwd=self._tmpdir,
                    stdin=subprocess.PIPE,
                    stdout=stdout,
                    stderr=stderr,
                    preexec_fn=dying_with_parent(signal.SIGTERM),
                )
            except OSError as exc:
                raise Neo4jServerError(f"cannot run {argv[0]}: {exc}") from exc
        assert self._proc.stdin is not None
        # The password goes through standard input, not the command line; stdin stays
        # open: its end tells the launcher to shut down.
        self._proc.stdin.write(self.password.encode() + b"\n")
        self._proc.stdin.flush()

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None and self._tmpdir is not None
        stdout_path = self._tmpdir / "ready.out"
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                text = stdout_path.read_text(errors="replace")
            except OSError:
                text = ""
            match = _READY_RE.search(text)
            if match is not None:
                if match[1] != f"bolt://127.0.0.1:{port}":
                    raise Neo4jServerError(f"the launcher reports {match[1]}, not port {port}")
                return
            code = self._proc.poll()
            if code is not None:
                raise Neo4jServerError(
                    f"the Neo4j launcher exited {code} before it was ready "
                    f"(Bolt port {port}):\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise Neo4jServerError(
                    f"Neo4j was not ready within {_START_TIMEOUT_S:.0f}s "
                    f"(Bolt port {port}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _stop_process(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if the JVM lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=_STOP_TIMEOUT_S)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # the pipe's reader is gone
                proc.stdin.close()


def missing_reason() -> str | None:
    """Why no throwaway server can be started here (:data:`MISSING_MESSAGE` with what
    was found), or ``None`` when Java is there and the launcher is cached or Maven is
    there to build it."""
    java = find_java()
    cached = _complete(cache_dir(), DEFAULT_VERSION)
    mvn = shutil.which("mvn")
    if java is not None and (cached or mvn is not None):
        return None
    found = (
        f"java {_MIN_JAVA}+: {java or 'not found'}; mvn: {mvn or 'not found'}; "
        f"launcher cache {cache_dir()}: {'complete' if cached else 'not built'}"
    )
    return f"{MISSING_MESSAGE} (Found: {found}.)"


def ensure_server() -> Neo4jServer | None:
    """Return a started server for the tests, or ``None`` if none can be had.

    * ``MLLEDGER_TEST_NEO4J_URL`` set: wrap that existing server (checked with a
      connection; never started or stopped here).
    * else, Java found, and the launcher cached or Maven there to build it: start a
      throwaway server (building the launcher first if needed).
    * else: ``None``. The caller decides: in CI (``CI=true``) that is a hard failure
      (use :data:`MISSING_MESSAGE`), locally a skip.

    :raises Neo4jServerError: the tools exist (or the URL is set) but the launcher could
        not be built or the server started or reached; a real failure, not a skip.
    """
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        password = os.environ.get(ENV_PASSWORD)
        if not password:
            raise Neo4jServerError(f"{ENV_URL} is set ({url}) but {ENV_PASSWORD} is not")
        user = os.environ.get(ENV_USER, "").strip() or "neo4j"
        return Neo4jServer(url=url, user=user, password=password).start()
    if missing_reason() is not None:
        return None
    return Neo4jServer().start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.neo4jserver",
        description="Build, or start, the Neo4j server of the test-suite.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the launcher (cached) and print its folder")
    p_build.add_argument("--version", default=DEFAULT_VERSION)
    sub.add_parser("up", help="start a server, print its URL and credentials, wait for Ctrl-C")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            t0 = time.monotonic()
            was_cached = _complete(cache_dir(args.version), args.version)
            directory = build(args.version)
            if was_cached:
                _say(False, f"cached build is complete ({time.monotonic() - t0:.1f}s to check)")
            print(directory)
            return 0
        with Neo4jServer() as server:
            print(f"url:      {server.url}")
            print(f"user:     {server.user}")
            print(f"password: {server.password}")
            print(f"data dir: {server.data_dir}")
            print(
                f"started in {server.startup_seconds or 0:.1f}s, "
                f"{server.rss_bytes() / 2**20:.0f} MiB resident; Ctrl-C stops it",
                flush=True,
            )
            if not wait_until_interrupted(server.alive):
                print("error: the server exited", file=sys.stderr)
                return 1
    except Neo4jServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
