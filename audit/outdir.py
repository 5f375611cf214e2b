"""The ``--out`` directory of a report or an export: new or empty (before a report
or an export starts), or an existing directory (for one export format's files)."""

from __future__ import annotations

from pathlib import Path

from registry.errors import FieldError


def new_or_empty(out: str | Path, why: str = "") -> Path:
    """``out`` as a Path, once it is known to be absent or an empty directory; ``why``
    is added to the refusal of a non-empty one."""
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise FieldError("--out", f"--out {target} is a file: expected a new or empty directory")
    if target.is_dir() and any(target.iterdir()):
        raise FieldError(
            "--out", f"--out {target} is not empty: expected a new or empty directory{why}"
        )
    return target


def export_dir(out: str | Path) -> Path:
    """``out`` as a Path, once it is known to be an existing directory (the one an
    export format writes its files into)."""
    target = Path(out)
    if not target.is_dir():
        raise FieldError("out", f"{target} is not a directory: expected the export's directory")
    return target
