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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.certificate import CertificateError, open_envelope, sign_envelope
from audit.checkpoints import origin, write_checkpoint
from audit.exports.scope import Progress, Scope
from audit.note import NoteError, SigningKey, VerifierKey, verify_checkpoint
from audit.outdir import new_or_empty
from audit.trail import fold_trail
from registry.errors import FieldError, IntegrityViolation, InvalidInput
from registry.timeutil import now
from registry.wording import counted

if TYPE_CHECKING:
    from registry.ledger import Ledger

__all__ = [
    "FORMATS",
    "MANIFEST",
    "PREDICATE_TYPE",
    "ExportCheck",
    "ExportError",
    "Exported",
    "Scope",
    "export",
    "verify_export",
]

FORMATS = ("parquet", "openlineage", "prov")
MANIFEST = "manifest.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlledger.dev/attestations/export/v1"
_CHUNK = 1 << 20


class ExportError(IntegrityViolation):
    """A manifest that cannot be believed: not signed by the key, or malformed."""


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
        statement = {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": f["path"], "digest": {"sha256": f["sha256"]}} for f in files],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "format": fmt,
                "parameters": scope.as_dict(),
                "files": files,
                "checkpoint": evidence,
                "exported_at": now(),
                "producer": f"mlledger {_version()}",
            },
        }
        envelope = sign_envelope(key, statement)
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
        return {
            "ok": self.ok,
            "directory": self.directory,
            "format": self.format,
            "parameters": self.parameters,
            "checkpoint": self.checkpoint,
            "exported_at": self.exported_at,
            "files": self.files,
            "changed": self.changed,
            "missing": self.missing,
            "extra": self.extra,
        }

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


def _manifest(directory: Path, key: VerifierKey) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path} is missing: not an export directory") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportError(f"cannot read the manifest {path}: {exc}") from None
    try:
        statement = open_envelope(envelope, key)
    except CertificateError as exc:
        raise ExportError(f"the manifest's signature does not verify: {exc}") from None
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != (
        PREDICATE_TYPE
    ):
        raise ExportError(
            f"the manifest is not an mlledger export statement: expected _type "
            f"{STATEMENT_TYPE!r} and predicateType {PREDICATE_TYPE!r}"
        )
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise ExportError("the manifest's predicate is not a JSON object")
    return statement


def _listed(statement: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """path -> (sha256, size), checked against the statement's subjects."""
    predicate = statement["predicate"]
    files = predicate.get("files")
    if not isinstance(files, list):
        raise ExportError("the manifest's predicate.files is not a list")
    listed: dict[str, tuple[str, int]] = {}
    for number, item in enumerate(files):
        what = f"predicate.files[{number}]"
        if not isinstance(item, dict):
            raise ExportError(f"the manifest's {what} is not a JSON object")
        path, sha, size = item.get("path"), item.get("sha256"), item.get("size")
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
            raise ExportError(f"the manifest's {what}.path {path!r} is not a relative path")
        if not isinstance(sha, str) or len(sha) != 64:
            raise ExportError(f"the manifest's {what}.sha256 is not a SHA-256 hex digest")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ExportError(f"the manifest's {what}.size is not a byte count")
        if path in listed:
            raise ExportError(f"the manifest lists {path} twice")
        listed[path] = (sha, size)
    subjects = statement.get("subject")
    named = (
        {
            s.get("name"): (s.get("digest") or {}).get("sha256")
            for s in subjects
            if isinstance(s, dict)
        }
        if isinstance(subjects, list)
        else None
    )
    if named != {path: sha for path, (sha, _) in listed.items()}:
        raise ExportError("the manifest's subjects and predicate.files disagree")
    return listed


def _checkpoint(predicate: dict[str, Any], key: VerifierKey) -> dict[str, Any]:
    evidence = predicate.get("checkpoint")
    parameters = predicate.get("parameters")
    if not isinstance(evidence, dict) or not isinstance(parameters, dict):
        raise ExportError("the manifest's predicate has no checkpoint or parameters object")
    try:
        signed = verify_checkpoint(key, str(evidence.get("note")), evidence.get("origin"))
    except NoteError as exc:
        raise ExportError(f"the manifest's checkpoint does not verify: {exc}") from None
    if signed.size != evidence.get("tree_size") or signed.size != parameters.get("upto"):
        raise ExportError(
            f"the manifest's checkpoint is at size {signed.size} but it claims "
            f"{evidence.get('tree_size')!r} (parameters.upto {parameters.get('upto')!r})"
        )
    return {
        "origin": signed.origin,
        "tree_size": signed.size,
        "root_hash": signed.root.hex(),
        "note": evidence["note"],
    }


def verify_export(directory: str | Path, key: VerifierKey) -> ExportCheck:
    """Check an export directory against its signed manifest, offline.

    Raises ``ExportError`` when the manifest itself cannot be believed; otherwise
    returns the files that changed (size or SHA-256), are missing or are extra."""
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a directory: expected an export directory")
    statement = _manifest(root, key)
    predicate = statement["predicate"]
    listed = _listed(statement)
    check = ExportCheck(
        directory=str(root),
        format=str(predicate.get("format")),
        parameters=predicate.get("parameters") or {},
        checkpoint=_checkpoint(predicate, key),
        exported_at=str(predicate.get("exported_at")),
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
