"""Settings, read from ``MLLEDGER_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from registry.errors import ConfigError

DEFAULT_DB = "sqlite:///.mlledger/ledger.db"
MASTER_KEY_NAME = "master.key"
SIGNING_KEY_NAME = "signing.key"


class Settings(BaseSettings):
    """``MLLEDGER_DB``, ``MLLEDGER_PROJECT``, ``MLLEDGER_ACTOR``, ``MLLEDGER_MASTER_KEY``,
    ``MLLEDGER_KEY_FILE``, ``MLLEDGER_API_KEY``, ``MLLEDGER_SIGNING_KEY`` (the checkpoint
    signing key's file), ``MLLEDGER_CHECKPOINT_EVERY`` (events) and
    ``MLLEDGER_CHECKPOINT_SECONDS`` (a server's automatic checkpoints).

    A relative ``MLLEDGER_KEY_FILE`` or ``MLLEDGER_SIGNING_KEY`` is taken inside the
    ledger's key directory (``key_directory``), never the working directory."""

    model_config = SettingsConfigDict(env_prefix="MLLEDGER_", extra="ignore")

    db: str = DEFAULT_DB
    project: str = "default"
    actor: str | None = None
    master_key: str | None = None
    key_file: str | None = None
    api_key: str | None = None
    #: The run a job's process appends to (set by an executor: ``Registry.job_run``).
    run_id: str | None = None
    #: Where ``mlledger jobs`` dispatches: ``local`` or ``kubernetes``.
    executor: str = "local"
    #: The Kubernetes namespace of the executor's jobs.
    namespace: str = "default"
    #: The ledger as a job reaches it (a Kubernetes job: the server's http(s) URL).
    job_ledger_url: str | None = None
    #: Where the local executor keeps its jobs' folders.
    jobs_dir: str = ".mlledger/jobs"
    signing_key: str | None = None
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0
    #: ``MLLEDGER_MAX_BODY_BYTES``: the largest request body a server reads, decompressed
    #: when it was sent compressed (413 above).
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: ``MLLEDGER_AUTH_FAILURES_PER_MINUTE``: failed authentications of one client address
    #: recorded one by one each minute (ten times as many from all addresses together);
    #: beyond, a server answers 429 and records one summary per minute.
    auth_failures_per_minute: int = Field(default=30, ge=1)
    #: ``MLLEDGER_SERVE_WORKERS``: the worker processes of this server (set by ``mlledger
    #: serve`` for its workers): per-process limits are shared out among them.
    serve_workers: int = Field(default=1, ge=1)
    #: ``MLLEDGER_WEB_IDLE_SECONDS``: a web interface session unused this long ends.
    web_idle_seconds: float = Field(default=8 * 3600, gt=0)
    #: ``MLLEDGER_WEB_ABSOLUTE_SECONDS``: a web interface session ends this long after
    #: sign-in, however used.
    web_absolute_seconds: float = Field(default=24 * 3600, gt=0)
    #: ``MLLEDGER_WEB_FEED_SECONDS``: how often the home page asks for new events.
    web_feed_seconds: float = Field(default=10.0, ge=1)
    #: ``MLLEDGER_GRAPH``: the Neo4j lineage graph (``bolt://HOST:PORT`` or
    #: ``neo4j://HOST:PORT``); unset, the lineage questions walk the embedded graph.
    graph: str | None = None
    graph_user: str = "neo4j"
    graph_password: str | None = None
    #: ``MLLEDGER_GRAPH_WAIT``: the seconds a question spends catching the Neo4j graph up
    #: to the writes made before it; still behind then, it is refused (503), not answered.
    graph_wait: float = Field(default=5.0, gt=0)
    #: ``MLLEDGER_GRAPH_WINDOW``: log positions one Neo4j transaction of a sync covers.
    graph_window: int = Field(default=5000, ge=1)


def given(settings: Settings | None) -> Settings:
    """``settings`` when the caller holds them, else those of the environment (read now):
    the one place a helper below reads ``MLLEDGER_*`` for a caller that passes none."""
    return settings if settings is not None else Settings()


def normalise_url(url: str | None, settings: Settings | None = None) -> str:
    """Turn what a user types into a SQLAlchemy URL (no ``url``: the settings' ``db``).

    Accepts ``sqlite:///path``, a bare file path, ``postgresql://...`` (the psycopg
    driver is chosen for it) and ``postgresql+psycopg://...``.
    """
    if not url:
        url = given(settings).db
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite:///")):
        return url
    if "://" in url:
        raise ConfigError(
            f"database URL {url!r} is not supported: expected sqlite:///PATH, a file path, "
            "or postgresql://USER@HOST:PORT/DB"
        )
    return f"sqlite:///{url}"


def shown_url(url: str) -> str:
    """A database URL as shown to a person: a SQLite file's path; no password."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :].split("?", 1)[0]
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def default_actor(settings: Settings | None = None) -> str:
    """The settings' actor (``MLLEDGER_ACTOR``) or ``<os user>@<host>``."""
    configured = given(settings).actor
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def default_key_file(url: str, settings: Settings | None = None) -> Path:
    """The master key's file when ``MLLEDGER_MASTER_KEY`` is not set: ``MLLEDGER_KEY_FILE``
    or ``master.key`` in the ledger's key directory (``key_directory``)."""
    return key_file_path(url, given(settings).key_file, MASTER_KEY_NAME)


def default_signing_key_file(url: str, settings: Settings | None = None) -> Path:
    """The checkpoint signing key's file: ``MLLEDGER_SIGNING_KEY`` or ``signing.key`` in
    the ledger's key directory (``key_directory``)."""
    return key_file_path(url, given(settings).signing_key, SIGNING_KEY_NAME)


def key_file_path(url: str, configured: str | Path | None, default_name: str) -> Path:
    """The absolute path of a key file of the ledger at ``url``: ``configured`` when
    given (a relative one is taken inside the key directory, never the working
    directory), else ``default_name`` inside the key directory."""
    if configured is not None and str(configured) != "":
        chosen = Path(configured).expanduser()
        if chosen.is_absolute():
            return chosen
        return key_directory(url) / chosen
    return key_directory(url) / default_name


def key_directory(url: str) -> Path:
    """Where a ledger's key files live unless settings name them (absolute).

    SQLite: the directory of the database file. PostgreSQL: a directory of its own
    per database, ``$XDG_CONFIG_HOME/mlledger/postgresql/<host>-<port>-<database>``
    (``~/.config`` when ``XDG_CONFIG_HOME`` is unset), so that every process of one
    user finds the same keys whatever its working directory.
    """
    full = normalise_url(url)
    if full.startswith("sqlite:///"):
        path = full[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:":
            return Path(os.path.abspath(path)).parent
        return config_home() / "sqlite-memory"
    return config_home() / "postgresql" / _database_label(full)


def config_home() -> Path:
    """``$XDG_CONFIG_HOME/mlledger``, or ``~/.config/mlledger`` (absolute)."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    # The XDG base-directory specification says to ignore a relative value.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "mlledger"
    try:
        home = Path.home()
    except RuntimeError:
        raise ConfigError(
            "cannot find the home directory for the default key directory: set "
            "MLLEDGER_KEY_FILE (or MLLEDGER_MASTER_KEY) and MLLEDGER_SIGNING_KEY to "
            "absolute paths, or XDG_CONFIG_HOME"
        ) from None
    if not home.is_absolute():
        raise ConfigError(
            f"the home directory {str(home)!r} is not an absolute path: set "
            "MLLEDGER_KEY_FILE and MLLEDGER_SIGNING_KEY to absolute paths, or XDG_CONFIG_HOME"
        )
    return home / ".config" / "mlledger"


def _database_label(url: str) -> str:
    """``<host>-<port>-<database>`` of a PostgreSQL URL, safe as a directory name."""
    parsed = make_url(url)
    host = parsed.host or str(parsed.query.get("host") or "") or "localhost"
    label = f"{host}-{parsed.port or 5432}-{parsed.database or parsed.username or 'postgres'}"
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in label)


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parent with mode 0700.

    Directories that exist already are left as they are: their mode is their
    owner's choice, never changed behind their back.
    """
    directory = Path(os.path.abspath(directory))
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # made by another process meanwhile: left as it made it


def write_private_file(path: Path, data: bytes) -> bool:
    """Create the secret file ``path`` (a key) holding ``data`` (mode 0600; missing
    directories 0700), durably, unless it exists; return whether this call created it.

    It is written whole and fsynced under a temporary name, then linked into
    place and the directory fsynced: a process racing this one, or one reading
    after a crash, sees no key file or the complete one, never part of it. An
    existing file is never replaced (the racing process's key wins).
    """
    make_private_dirs(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
            created = True
        except FileExistsError:
            created = False
    finally:
        temp.unlink()
    _fsync_directory(path.parent)
    return created


def _fsync_directory(directory: Path) -> None:
    """Make a new directory entry durable (POSIX; elsewhere a directory cannot be opened)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
