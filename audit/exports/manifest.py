"""The statement an export's ``manifest.json`` signs, as pydantic models.

``manifest.json`` is a DSSE envelope whose payload is an in-toto Statement v1
(``ExportStatement``): its subjects are the data files (name and SHA-256) and its
predicate (``PREDICATE_TYPE``) holds each file's size, the export's parameters and
the signed checkpoint it reflects. ``statement`` writes one; ``read_statement``
reads one, raising ``ExportError`` naming the first member of the wrong shape.
``docs/schemas/export-manifest.schema.json`` is the statement's JSON Schema
(``audit.schemas``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from registry.errors import IntegrityViolation

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlledger.dev/attestations/export/v1"
SHA256_PATTERN = "^[0-9a-f]{64}$"
#: A relative POSIX path: not empty, not absolute, no ``..`` part.
RELATIVE_PATTERN = "^(?!/)(?!(.*/)?\\.\\.(/|$)).+$"


class ExportError(IntegrityViolation):
    """A manifest that cannot be believed: not signed by the key, or malformed."""


def _relative(path: str) -> str:
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise ValueError("not a relative path")
    return path


Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN, description="SHA-256, lowercase hex.")]
Count = Annotated[int, Field(ge=0)]
RelativePath = Annotated[
    str,
    AfterValidator(_relative),
    Field(description="Relative POSIX path.", json_schema_extra={"pattern": RELATIVE_PATTERN}),
]


class _Part(BaseModel):
    model_config = ConfigDict(strict=True)


class ExportedFile(_Part):
    """One data file of the export."""

    path: RelativePath
    sha256: Sha256
    size: Count = Field(description="Bytes.")
    rows: Count | None = Field(
        default=None, exclude_if=lambda v: v is None, description="Rows, where counted."
    )


class ExportParameters(_Part):
    """What was exported: the log before ``upto``, of ``project`` (or all), in a window."""

    project: str | None
    since: str | None
    until: str | None
    upto: Count = Field(description="The log size exported: the checkpoint's tree size.")


class CheckpointEvidence(_Part):
    """The signed checkpoint the export reflects."""

    origin: str
    tree_size: Count
    seq: Count
    note: str = Field(description="The C2SP signed note.")


class ExportPredicate(_Part):
    """The predicate of an export statement (``PREDICATE_TYPE``)."""

    format: Literal["parquet", "openlineage", "prov"]
    parameters: ExportParameters
    files: list[ExportedFile]
    checkpoint: CheckpointEvidence
    exported_at: str
    producer: str


class Digest(_Part):
    sha256: Sha256


class Subject(_Part):
    """A data file as an in-toto subject: its name and digest."""

    name: str
    digest: Digest


class ExportStatement(_Part):
    """The in-toto Statement v1 an export's ``manifest.json`` signs (its DSSE payload)."""

    model_config = ConfigDict(title="mlledger export manifest statement")

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject]
    predicateType: Literal["https://mlledger.dev/attestations/export/v1"]
    predicate: ExportPredicate


def statement(
    fmt: str,
    parameters: dict[str, Any],
    files: list[dict[str, Any]],
    evidence: dict[str, Any],
    exported_at: str,
    producer: str,
) -> dict[str, Any]:
    """The statement of an export, as JSON to sign."""
    return ExportStatement.model_validate(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": f["path"], "digest": {"sha256": f["sha256"]}} for f in files],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "format": fmt,
                "parameters": parameters,
                "files": files,
                "checkpoint": evidence,
                "exported_at": exported_at,
                "producer": producer,
            },
        }
    ).model_dump(by_alias=True)


def _file_problem(loc: tuple[Any, ...], value: Any) -> str:
    what = f"predicate.files[{loc[2]}]"
    member = loc[3] if len(loc) > 3 else None
    if member == "path":
        return f"the manifest's {what}.path {value!r} is not a relative path"
    if member == "sha256":
        return f"the manifest's {what}.sha256 is not a SHA-256 hex digest"
    if member == "size":
        return f"the manifest's {what}.size is not a byte count"
    if member is None:
        return f"the manifest's {what} is not a JSON object"
    return f"the manifest's {what}.{member} is not a row count"


#: The message for a member of the wrong shape, by where it is; checked in this order.
_PROBLEMS: tuple[tuple[Callable[[tuple[Any, ...]], bool], Callable[..., str]], ...] = (
    (
        lambda loc: not loc or loc[0] in ("_type", "predicateType"),
        lambda loc, value: (
            f"the manifest is not an mlledger export statement: expected _type "
            f"{STATEMENT_TYPE!r} and predicateType {PREDICATE_TYPE!r}"
        ),
    ),
    (
        lambda loc: loc == ("predicate",),
        lambda loc, value: "the manifest's predicate is not a JSON object",
    ),
    (
        lambda loc: loc == ("predicate", "files"),
        lambda loc, value: "the manifest's predicate.files is not a list",
    ),
    (lambda loc: loc[:2] == ("predicate", "files"), _file_problem),
    (
        lambda loc: loc[0] == "subject",
        lambda loc, value: "the manifest's subjects and predicate.files disagree",
    ),
    (
        lambda loc: loc in (("predicate", "checkpoint"), ("predicate", "parameters")),
        lambda loc, value: "the manifest's predicate has no checkpoint or parameters object",
    ),
)


def _rank(error: Any) -> tuple[int, tuple[str, ...]]:
    loc = tuple(error["loc"])
    found = next((i for i, (test, _) in enumerate(_PROBLEMS) if test(loc)), len(_PROBLEMS))
    return found, tuple(str(p).zfill(12) for p in loc)


def read_statement(data: Any) -> ExportStatement:
    """``data`` (a manifest's decoded payload) as an ExportStatement; raise ExportError
    naming the first member of the wrong shape."""
    try:
        return ExportStatement.model_validate(data)
    except ValidationError as exc:
        error = min(exc.errors(), key=_rank)
    loc = tuple(error["loc"])
    value = None if error["type"] == "missing" else error["input"]
    for test, message in _PROBLEMS:
        if test(loc):
            raise ExportError(message(loc, value))
    where = ".".join(str(p) for p in loc)
    raise ExportError(f"the manifest's {where} is not what an export writes: {error['msg']}")
