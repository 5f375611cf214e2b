"""Compliance exports: the log and its catalogue in open formats, with a signed manifest.

``export(ledger, format, out, ...)`` writes one directory:

- the data files of one format (``FORMATS``): Parquet tables (``parquet``),
  OpenLineage JSON lines (``openlineage``) or a W3C PROV-JSON document (``prov``);
- ``manifest.json``: a DSSE envelope, signed with the log's Ed25519 key (the key
  that signs its checkpoints), of an in-toto Statement v1 whose subjects are the
  data files (name and SHA-256) and whose predicate (``PREDICATE_TYPE``) holds
  each file's size, the export's parameters and the signed checkpoint it reflects.

The export first signs a checkpoint of the log (or reuses the newest when the log
has not grown) and exports the events before it, so every exported event can be
proved against the checkpoint in the manifest. It is written into a hidden
sibling directory and renamed into place once complete: a failed export leaves
nothing behind.

``verify_export(directory, key)`` checks a directory offline with the public key
alone and names every changed, missing and extra file (``ExportCheck``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.checkpoints import origin, write_checkpoint
from audit.dsse import EnvelopeError, open_envelope, sign_envelope
from audit.exports.manifest import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    ExportError,
    ExportStatement,
    read_statement,
    statement,
)
from audit.exports.scope import Progress, Scope
from audit.note import NoteError, SigningKey, VerifierKey, verify_checkpoint
from audit.outdir import new_or_empty
from audit.trail import fold_trail
from registry.errors import FieldError, InvalidInput
from registry.timeutil import now
from registry.wording import counted

if TYPE_CHECKING:
    from registry.ledger import Ledger

__all__ = [
    "FORMATS",
    "MANIFEST",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "ExportCheck",
    "ExportError",
    "Exported",
    "Scope",
    "export",
    "verify_export",
]

FORMATS = ("parquet", "openlineage", "prov")
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


@dataclass
class Exported:
    """What ``export`` wrote."""

    directory: Path
    format: str
    scope: Scope
    checkpoint: dict[str, Any]
    files: list[dict[str, Any]]
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "format": self.format,
            "scope": self.scope.as_dict(),
            "checkpoint": self.checkpoint,
            "files": self.files,
            "rows": sum(f.get("rows") or 0 for f in self.files),
            "seconds": round(self.seconds, 3),
        }


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _files(directory: Path) -> Iterator[str]:
    """Every regular file under ``directory`` but the manifest, as a relative POSIX path."""
    for path in sorted(directory.rglob("*")):
        if path.is_file() or path.is_symlink():
            name = path.relative_to(directory).as_posix()
            if name != MANIFEST:
                yield name


def _version() -> str:
    try:
        return importlib.metadata.version("mlledger")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _target(out: str | Path) -> Path:
    return new_or_empty(out, " (an export directory holds exactly what its manifest lists)")


def _writer(fmt: str) -> tuple[Callable[..., list[Any]], Callable[..., int] | None, bool]:
    """The format's ``write`` and ``count`` (when it has one), and whether they take the
    store (else the ledger)."""
    if fmt not in FORMATS:
        raise FieldError(
            "format", f"export format {fmt!r} is not known: expected one of {', '.join(FORMATS)}"
        )
    module = importlib.import_module(f"audit.exports.{fmt}")
    return module.write, getattr(module, "count", None), fmt == "parquet"


def export(
    ledger: Ledger,
    fmt: str,
    out: str | Path,
    key: SigningKey,
    *,
    project: str | None = None,
    since: Any = None,
    until: Any = None,
    progress: Callable[[int | None], Progress] | None = None,
) -> Exported:
    """Export the log in ``fmt`` to the new (or empty) directory ``out`` and sign its
    manifest with ``key``. ``progress``, when given, is called with the expected number
    of rows (None when the format cannot tell) and returns the callback told of each
    chunk written."""
    started = time.perf_counter()
    write, count, takes_store = _writer(fmt)
    target = _target(out)
    Scope.make(0, project, since, until)  # bad input is refused before anything is signed
    source = ledger.store if takes_store else ledger
    fold_trail(ledger.store)  # the access trail is exported whole
    checkpoint, _ = write_checkpoint(ledger.store, key, "events")
    scope = Scope.make(checkpoint.size, project, since, until)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        total = count(source, scope) if count is not None and progress is not None else None
        tick = progress(total) if progress is not None else None
        written = write(source, staging, scope, tick)
        rows = {Path(p).name: r for p, r in _rows(written)}
        files = []
        for name in _files(staging):
            sha, size = _sha256(staging / name)
            entry: dict[str, Any] = {"path": name, "sha256": sha, "size": size}
            if name in rows:
                entry["rows"] = rows[name]
            files.append(entry)
        evidence = {
            "origin": origin(key.name, "events"),
            "tree_size": checkpoint.size,
            "seq": checkpoint.seq,
            "note": checkpoint.note,
        }
        signed = statement(fmt, scope.as_dict(), files, evidence, now(), f"mlledger {_version()}")
        envelope = sign_envelope(key, signed)
        (staging / MANIFEST).write_text(json.dumps(envelope, indent=2, sort_keys=True) + "\n")
        if target.is_dir():
            target.rmdir()  # checked empty above
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Exported(target, fmt, scope, evidence, files, time.perf_counter() - started)


def _rows(written: list[Any]) -> Iterator[tuple[Path, int | None]]:
    """Writers return paths, or (path, rows) pairs when they counted rows."""
    for item in written:
        if isinstance(item, tuple):
            yield Path(item[0]), int(item[1])
        else:
            yield Path(item), None


# --- verification ----------------------------------------------------------------------------


@dataclass
class ExportCheck:
    """The outcome of ``verify_export``: ``ok`` when nothing differs from the manifest."""

    directory: str
    format: str
    parameters: dict[str, Any]
    checkpoint: dict[str, Any]
    exported_at: str
    files: int
    changed: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def as_dict(self) -> dict[str, Any]:
        """``ok``, then the fields, JSON-ready."""
        return {"ok": self.ok, **asdict(self)}

    def summary(self) -> str:
        head = (
            f"{self.format} export of {counted(self.files, 'file')}, checkpoint at size "
            f"{self.checkpoint['tree_size']} ({self.checkpoint['origin']}), exported "
            f"{self.exported_at}"
        )
        if self.ok:
            return f"ok: {head}; every file matches the signed manifest"
        lines = [f"FAILED: {head}"]
        lines += [f"  changed: {c['path']} ({c['reason']})" for c in self.changed]
        lines += [f"  missing: {name}" for name in self.missing]
        lines += [f"  extra:   {name} (not in the manifest)" for name in self.extra]
        return "\n".join(lines)


def _manifest(directory: Path, key: VerifierKey) -> ExportStatement:
    path = directory / MANIFEST
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path} is missing: not an export directory") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportError(f"cannot read the manifest {path}: {exc}") from None
    try:
        opened = open_envelope(envelope, key)
    except EnvelopeError as exc:
        raise ExportError(f"the manifest's signature does not verify: {exc}") from None
    return read_statement(opened)


def _listed(signed: ExportStatement) -> dict[str, tuple[str, int]]:
    """path -> (sha256, size), checked against the statement's subjects."""
    listed: dict[str, tuple[str, int]] = {}
    for item in signed.predicate.files:
        if item.path in listed:
            raise ExportError(f"the manifest lists {item.path} twice")
        listed[item.path] = (item.sha256, item.size)
    named = {s.name: s.digest.sha256 for s in signed.subject}
    if named != {path: sha for path, (sha, _) in listed.items()}:
        raise ExportError("the manifest's subjects and predicate.files disagree")
    return listed


def _checkpoint(signed: ExportStatement, key: VerifierKey) -> dict[str, Any]:
    evidence = signed.predicate.checkpoint
    upto = signed.predicate.parameters.upto
    try:
        checked = verify_checkpoint(key, evidence.note, evidence.origin)
    except NoteError as exc:
        raise ExportError(f"the manifest's checkpoint does not verify: {exc}") from None
    if checked.size != evidence.tree_size or checked.size != upto:
        raise ExportError(
            f"the manifest's checkpoint is at size {checked.size} but it claims "
            f"{evidence.tree_size!r} (parameters.upto {upto!r})"
        )
    return {
        "origin": checked.origin,
        "tree_size": checked.size,
        "root_hash": checked.root.hex(),
        "note": evidence.note,
    }


def verify_export(directory: str | Path, key: VerifierKey) -> ExportCheck:
    """Check an export directory against its signed manifest, offline.

    Raises ``ExportError`` when the manifest itself cannot be believed; otherwise
    returns the files that changed (size or SHA-256), are missing or are extra."""
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a directory: expected an export directory")
    signed = _manifest(root, key)
    listed = _listed(signed)
    check = ExportCheck(
        directory=str(root),
        format=signed.predicate.format,
        parameters=signed.predicate.parameters.model_dump(),
        checkpoint=_checkpoint(signed, key),
        exported_at=signed.predicate.exported_at,
        files=len(listed),
    )
    present = set(_files(root))
    for path, (sha, size) in sorted(listed.items()):
        if path not in present:
            check.missing.append(path)
            continue
        file = root / path
        if file.is_symlink():
            check.changed.append({"path": path, "reason": "replaced by a symbolic link"})
            continue
        found_sha, found_size = _sha256(file)
        if found_size != size:
            check.changed.append(
                {"path": path, "reason": f"size {found_size} bytes, signed {size}"}
            )
        elif found_sha != sha:
            check.changed.append(
                {"path": path, "reason": f"SHA-256 {found_sha[:16]}…, signed {sha[:16]}…"}
            )
    check.extra = sorted(present - set(listed))
    return check
