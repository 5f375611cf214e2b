"""What the SDK captures on its own: file digests (and a model artifact's URI), the code
version (git) and the environment (Python, platform, host, key package versions) a run
ran in."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from registry.errors import FieldError, InvalidInput

KEY_PACKAGES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "torch",
    "tensorflow",
    "xgboost",
    "lightgbm",
    "pyarrow",
    "mlledger",
)


def file_digest(path: str | Path, field: str = "path") -> str:
    """``sha256:<hex>`` of a file, or of a directory's files (names and contents, sorted);
    ``field`` names the argument that gave ``path``, for the error when it is missing."""
    target = Path(path)
    if not target.exists():
        raise InvalidInput(f"cannot digest {target}: no such file or directory", field=field)
    digest = hashlib.sha256()
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    for file in files:
        if target.is_dir():
            digest.update(str(file.relative_to(target)).encode() + b"\x00")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def artifact_of(
    name: str, uri: str | None, path: str | Path | None, digest: str | None
) -> tuple[str, str]:
    """``(uri, digest)`` of a model's artifact, each given or taken from ``path``."""
    if digest is None:
        if path is None:
            raise FieldError(
                "artifact_digest",
                f"model {name!r}: give artifact_digest= or artifact_path= to digest",
            )
        digest = file_digest(path, "artifact_path")
    if uri is None:
        if path is None:
            raise FieldError(
                "artifact_uri", f"model {name!r}: give artifact_uri= or artifact_path="
            )
        uri = Path(path).resolve().as_uri()
    return uri, digest


@functools.lru_cache(maxsize=8)
def capture_code(cwd: str) -> dict[str, Any]:
    """Git commit, branch and dirty flag of ``cwd``; captured once per process, as the
    code that runs is the code that was loaded."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None, "git_branch": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit,
        "git_dirty": bool(status),
        "git_branch": git("rev-parse", "--abbrev-ref", "HEAD"),
    }


@functools.lru_cache(maxsize=1)
def capture_environment() -> dict[str, Any]:
    """Python version, platform, host and the versions of key packages installed."""
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": packages,
    }
