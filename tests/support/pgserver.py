"""A throwaway PostgreSQL server for the test-suite.

The suite must run on a fresh machine where nobody set up a database by hand,
so it starts its own server: ``initdb`` into a new temporary directory, a free
TCP port on 127.0.0.1, the unix socket inside that directory, ``trust``
authentication (the server listens on loopback only) and durability switched
off for speed. ``stop()`` (also registered with :mod:`atexit`) shuts the server
down and removes the directory, so nothing is left behind.

PostgreSQL refuses to run as root. When the tests run as root (CI containers),
``initdb`` and ``pg_ctl`` are run as the ``postgres`` OS user through
``runuser``; that user is created as a system user if it does not exist.

Set ``MLLEDGER_TEST_PG_URL`` to an SQLAlchemy URL
(``postgresql+psycopg://user:password@host:port/postgres``) to use an existing
server instead; the account must be allowed to create and drop databases.

Only the standard library and psycopg are used.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from tests.support.throwaway import ThrowawayServer, free_port

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "ENV_URL",
    "MISSING_MESSAGE",
    "PostgresServer",
    "PostgresServerError",
    "ensure_server",
    "find_pg_bindir",
]

#: Environment variable naming an existing server to use instead of starting one.
ENV_URL = "MLLEDGER_TEST_PG_URL"

#: What to tell the user when no server is available (a skip locally, an error in CI).
MISSING_MESSAGE = (
    "PostgreSQL is not available: no initdb/pg_ctl found in /usr/lib/postgresql/*/bin "
    f"or on PATH, and {ENV_URL} is not set. Run `bash .ci/run` (installs PostgreSQL "
    "and runs the tests), or install it with `apt-get install postgresql` "
    "(the tests start their own throwaway server; the system service is not needed), "
    f"or set {ENV_URL}=postgresql+psycopg://USER:PASSWORD@HOST:PORT/postgres "
    "to use an existing server."
)

_DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
_OS_USER = "postgres"
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_START_ATTEMPTS = 3
_START_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 30


class PostgresServerError(RuntimeError):
    """The throwaway server could not be initialised, started or used."""


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>`` directories (``15``, ``9.6``)."""
    parts = re.findall(r"\d+", path.name)
    return tuple(int(p) for p in parts) if parts else (-1,)


def _has_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def find_pg_bindir() -> Path | None:
    """Return the directory holding ``initdb`` and ``pg_ctl``, or ``None``.

    Debian installs the server binaries off PATH, under
    ``/usr/lib/postgresql/<version>/bin``; the newest version wins. Otherwise
    PATH is searched (other distributions, Homebrew, ...).
    """
    if _DEBIAN_PG_ROOT.is_dir():
        for version_dir in sorted(_DEBIAN_PG_ROOT.iterdir(), key=_version_key, reverse=True):
            bindir = version_dir / "bin"
            if _has_binaries(bindir):
                return bindir
    initdb = shutil.which("initdb")
    if initdb is not None:
        bindir = Path(initdb).resolve().parent
        if _has_binaries(bindir):
            return bindir
    return None


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of ``name``, creating a system user if needed (root only)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise PostgresServerError(
            f"running as root and could not create the {name!r} OS user "
            f"(useradd exited {result.returncode}): {result.stderr.strip()}"
        ) from None


def _runuser() -> str:
    """Path of ``runuser`` (in /usr/sbin on Debian, which may not be on PATH)."""
    found = shutil.which("runuser")
    if found is not None:
        return found
    for candidate in ("/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"):
        if os.access(candidate, os.X_OK):
            return candidate
    return "runuser"


def _to_libpq(url: str) -> str:
    """Turn an SQLAlchemy URL (``postgresql+psycopg://...``) into a libpq URI."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise PostgresServerError(f"not a PostgreSQL URL: {url!r}")
    return urlunsplit(("postgresql", *parts[1:]))


def _with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` (everything else kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class PostgresServer(ThrowawayServer):
    """A PostgreSQL server for tests: a throwaway one, or an existing one by URL.

    ``PostgresServer()`` starts its own server on :meth:`start`;
    ``PostgresServer(url=...)`` wraps an existing server, whose
    :meth:`start`/:meth:`stop` only check it and drop the databases created
    through this object. Either way, :meth:`create_database` gives each test a
    fresh database.
    """

    error = PostgresServerError

    def __init__(
        self,
        bindir: Path | None = None,
        *,
        url: str | None = None,
        superuser: str = "postgres",
        durable: bool = False,
    ) -> None:
        """Prepare (but do not start) a server.

        :param bindir: directory with ``initdb``/``pg_ctl``; found with
            :func:`find_pg_bindir` when omitted.
        :param url: SQLAlchemy URL of an existing server to use instead.
        :param superuser: name of the database superuser created by ``initdb``.
        :param durable: keep PostgreSQL's durability (``fsync``, ``synchronous_commit``,
            ``full_page_writes`` on, as in production), for benchmarks; the tests
            switch it off for speed.
        """
        self.durable = durable
        self._external_url = url
        self._bindir = bindir
        self._superuser = superuser
        self._tmpdir: Path | None = None
        self._port: int | None = None
        self._run_as: str | None = None
        self._created: set[str] = set()
        self._started = False

    def _own_url(self) -> str:
        """The SQLAlchemy URL of the throwaway server's maintenance database
        (``postgres``)."""
        return f"postgresql+psycopg://{self._superuser}@127.0.0.1:{self.port}/postgres"

    @property
    def datadir(self) -> Path | None:
        """Data directory of the throwaway server (``None`` when stopped or external)."""
        return None if self._tmpdir is None else self._tmpdir / "data"

    @property
    def log_path(self) -> Path | None:
        """Server log of the throwaway server (``None`` when stopped or external)."""
        return None if self._tmpdir is None else self._tmpdir / "postgres.log"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Start the server (idempotent) and return ``self``.

        :raises PostgresServerError: the binaries are missing, or ``initdb`` or
            ``pg_ctl start`` failed (the server log is included in the message).
        """
        if self._started:
            return self
        if self.is_external:
            self._check_connection()
            self._started = True
            atexit.register(self.stop)
            return self
        if self._bindir is None:
            self._bindir = find_pg_bindir()
            if self._bindir is None:
                raise PostgresServerError(MISSING_MESSAGE)
        atexit.register(self.stop)
        try:
            self._init_cluster()
            self._start_cluster()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent, never raises on cleanup).

        For an external server, drops the databases created through this object.
        """
        atexit.unregister(self.stop)
        self._started = False
        if self.is_external:
            for name in sorted(self._created):
                # Best effort: the server may already be gone.
                with contextlib.suppress(Exception):
                    self.drop_database(name)
            self._created.clear()
            return
        self._created.clear()
        tmpdir = self._tmpdir
        if tmpdir is None:
            return
        try:
            self._stop_cluster(tmpdir / "data")
        finally:
            self._tmpdir = None
            self._port = None
            shutil.rmtree(tmpdir, ignore_errors=True)

    # -- databases -------------------------------------------------------------

    def url_for(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server."""
        return _with_database(self.url, name)

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database and return its SQLAlchemy URL.

        :param name: database name; a unique ``mlledger_test_<hex>`` when omitted.
            Must be a lower-case identifier (``[a-z_][a-z0-9_]*``, at most 63 chars).
        """
        from psycopg import sql

        if name is None:
            name = f"mlledger_test_{uuid.uuid4().hex[:16]}"
        self._check_name(name)
        with self._admin_connection() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.add(name)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, terminating its open connections."""
        from psycopg import sql

        self._check_name(name)
        with self._admin_connection() as conn:
            if conn.info.server_version >= 130000:
                stmt = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            else:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                stmt = sql.SQL("DROP DATABASE IF EXISTS {}")
            conn.execute(stmt.format(sql.Identifier(name)))
        self._created.discard(name)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log ('' if there is none)."""
        log = self.log_path
        if log is None:
            return ""
        try:
            text = log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals -------------------------------------------------------------

    @staticmethod
    def _check_name(name: str) -> None:
        if not _DB_NAME_RE.match(name):
            raise ValueError(f"invalid database name {name!r}: use [a-z_][a-z0-9_]*, <= 63 chars")
        if name in ("postgres", "template0", "template1"):
            raise ValueError(f"refusing to create or drop system database {name!r}")

    def _admin_connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit psycopg connection to the maintenance database."""
        import psycopg

        return psycopg.connect(_to_libpq(self.url), autocommit=True, connect_timeout=10)

    def _check_connection(self) -> None:
        try:
            with self._admin_connection() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            raise PostgresServerError(f"cannot connect to {ENV_URL} server: {exc}") from exc

    def _run(
        self, argv: list[str], *, timeout: float, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary, as the ``postgres`` OS user when we are root."""
        cwd = self._tmpdir if self._tmpdir is not None and self._tmpdir.is_dir() else Path("/")
        if self._run_as is not None:
            argv = [_runuser(), "-u", self._run_as, "--", *argv]
        env = dict(os.environ, LC_ALL="C", LANG="C")
        env.pop("PGDATA", None)
        try:
            result = subprocess.run(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresServerError(f"{' '.join(argv)} timed out after {timeout}s") from exc
        except OSError as exc:
            raise PostgresServerError(f"cannot run {argv[0]}: {exc}") from exc
        if check and result.returncode != 0:
            raise PostgresServerError(
                f"{' '.join(argv)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{self.log_tail()}".rstrip()
            )
        return result

    def _init_cluster(self) -> None:
        """Create the temp dir (owned by ``postgres`` when root) and run ``initdb``."""
        assert self._bindir is not None
        base = Path(tempfile.gettempdir())
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            owner = _ensure_os_user(_OS_USER)
            self._run_as = owner.pw_name
            # The postgres user must be able to reach the directory.
            if not base.stat().st_mode & 0o001:
                base = Path("/tmp")
        # Short prefix: the unix socket path must stay under ~100 bytes.
        self._tmpdir = Path(tempfile.mkdtemp(prefix="mlpg-", dir=base))
        sockdir = self._tmpdir / "sock"
        sockdir.mkdir(mode=0o700)
        if owner is not None:
            for path in (self._tmpdir, sockdir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        datadir = self._tmpdir / "data"
        self._run(
            [
                str(self._bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                self._superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=180,
        )
        # Loopback and the private socket only, no password.
        (datadir / "pg_hba.conf").write_text(
            "# throwaway test server: trust, loopback only\n"
            "local all all trust\n"
            "host  all all 127.0.0.1/32 trust\n"
        )

    def _write_settings(self, datadir: Path, port: int) -> None:
        """(Re)write the server settings; included last so they win."""
        assert self._tmpdir is not None
        sockdir = str(self._tmpdir / "sock").replace("'", "''")
        settings = "\n".join(
            [
                f"port = {port}",
                "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{sockdir}'",
                *(
                    ("fsync = on", "synchronous_commit = on", "full_page_writes = on")
                    if self.durable
                    else ("fsync = off", "synchronous_commit = off", "full_page_writes = off")
                ),
                "max_connections = 100",
                "log_min_messages = warning",
                "",
            ]
        )
        extra = datadir / "mlledger_test.conf"
        extra.write_text(settings)
        conf = datadir / "postgresql.conf"
        include = "include = 'mlledger_test.conf'\n"
        if include not in conf.read_text():
            with conf.open("a") as fh:
                fh.write("\n" + include)
        if self._run_as is not None:
            owner = pwd.getpwnam(self._run_as)
            for path in (extra, conf, datadir / "pg_hba.conf"):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _start_cluster(self) -> None:
        """``pg_ctl start -w`` on a free port, retrying if the port got taken meanwhile."""
        assert self._bindir is not None and self._tmpdir is not None
        datadir = self._tmpdir / "data"
        log = self._tmpdir / "postgres.log"
        last_error: PostgresServerError | None = None
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            self._write_settings(datadir, port)
            result = self._run(
                [
                    str(self._bindir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_S),
                    "-D",
                    str(datadir),
                    "-l",
                    str(log),
                ],
                timeout=_START_TIMEOUT_S + 30,
                check=False,
            )
            if result.returncode == 0:
                self._port = port
                return
            last_error = PostgresServerError(
                f"pg_ctl start exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{self.log_tail()}".rstrip()
            )
            self._stop_cluster(datadir)  # in case it half-started
            if "already in use" not in self.log_tail():
                break
        assert last_error is not None
        raise last_error

    def _stop_cluster(self, datadir: Path) -> None:
        """Stop the server in ``datadir``: fast, then immediate, then SIGKILL the postmaster."""
        pidfile = datadir / "postmaster.pid"
        if self._bindir is None or not pidfile.exists():
            return
        pg_ctl = str(self._bindir / "pg_ctl")
        for mode in ("fast", "immediate"):
            with contextlib.suppress(PostgresServerError):
                self._run(
                    [
                        pg_ctl,
                        "stop",
                        "-w",
                        "-t",
                        str(_STOP_TIMEOUT_S),
                        "-D",
                        str(datadir),
                        "-m",
                        mode,
                    ],
                    timeout=_STOP_TIMEOUT_S + 15,
                    check=False,
                )
            if not pidfile.exists():
                return
        # Last resort: the postmaster we started is stuck. Make sure the pid in
        # the lock file still is that postmaster before signalling it.
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(datadir).encode() not in cmdline:
                return
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:  # gone (or no longer ours to signal)
                return
            time.sleep(0.05)


def ensure_server() -> PostgresServer | None:
    """Return a started server for the tests, or ``None`` if none can be had.

    * ``MLLEDGER_TEST_PG_URL`` set: wrap that existing server (checked with a
      connection; never started or stopped here).
    * else, PostgreSQL binaries found: start a throwaway server.
    * else: ``None``. The caller decides: in CI (``CI=true``) that is a hard
      failure (use :data:`MISSING_MESSAGE`), locally a skip.

    :raises PostgresServerError: the binaries exist (or the URL is set) but the
        server could not be started or reached; that is a real failure, not a skip.
    """
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        return PostgresServer(url=url).start()
    bindir = find_pg_bindir()
    if bindir is None:
        return None
    return PostgresServer(bindir).start()
