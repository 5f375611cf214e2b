"""Settings, read from ``MLLEDGER_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.errors import ConfigError

DEFAULT_DB = "sqlite:///.mlledger/ledger.db"


class Settings(BaseSettings):
    """``MLLEDGER_DB``, ``MLLEDGER_PROJECT``, ``MLLEDGER_ACTOR``, ``MLLEDGER_MASTER_KEY``,
    ``MLLEDGER_KEY_FILE``, ``MLLEDGER_API_KEY``, ``MLLEDGER_SIGNING_KEY`` (the checkpoint
    signing key's file), ``MLLEDGER_CHECKPOINT_EVERY`` (events) and
    ``MLLEDGER_CHECKPOINT_SECONDS`` (a server's automatic checkpoints)."""

    model_config = SettingsConfigDict(env_prefix="MLLEDGER_", extra="ignore")

    db: str = DEFAULT_DB
    project: str = "default"
    actor: str | None = None
    master_key: str | None = None
    key_file: str | None = None
    api_key: str | None = None
    signing_key: str | None = None
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0


def normalise_url(url: str | None) -> str:
    """Turn what a user types into a SQLAlchemy URL.

    Accepts ``sqlite:///path``, a bare file path, ``postgresql://...`` (the psycopg
    driver is chosen for it) and ``postgresql+psycopg://...``.
    """
    if not url:
        url = Settings().db
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


def default_actor() -> str:
    """``MLLEDGER_ACTOR`` or ``<os user>@<host>``."""
    configured = Settings().actor
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def default_key_file(url: str) -> Path:
    """Where the master key lives when ``MLLEDGER_MASTER_KEY`` is not set.

    Beside the database file for SQLite; ``./.mlledger/master.key`` otherwise.
    """
    configured = Settings().key_file
    if configured:
        return Path(configured)
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).parent / "master.key"
    return Path(".mlledger") / "master.key"


def default_signing_key_file(url: str) -> Path:
    """Where the checkpoint signing key lives when ``MLLEDGER_SIGNING_KEY`` is not set:
    beside the database file for SQLite, ``./.mlledger/signing.key`` otherwise."""
    configured = Settings().signing_key
    if configured:
        return Path(configured)
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).parent / "signing.key"
    return Path(".mlledger") / "signing.key"
