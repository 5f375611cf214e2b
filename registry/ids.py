"""Typed node ids: the one place they are parsed and formatted.

Formats::

    dataset:<project>/<name>@<version>
    model:<project>/<name>@<version>
    run:<uuid>
    deployment:<project>/<name>
    record:<project>/<pseudonym>
    subject:<project>/<pseudonym>
    job:<project>/<name>
    project:<project>
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from registry.errors import InvalidNodeId
from registry.lazy import lazy_import

if TYPE_CHECKING:
    import uuid6
else:
    # Loaded when the first id is made: it reads its own version from the installed
    # metadata (about 25 ms), which a command that only reads or prints help would pay.
    uuid6 = lazy_import("uuid6")

Kind = Literal["dataset", "model", "run", "deployment", "record", "subject", "job", "project"]
KINDS: tuple[Kind, ...] = (
    "dataset",
    "model",
    "run",
    "deployment",
    "record",
    "subject",
    "job",
    "project",
)

_NAME = r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}"
_NAME_RE = re.compile(rf"^{_NAME}\Z")
_VERSIONED_RE = re.compile(rf"^(?P<project>{_NAME})/(?P<name>{_NAME})@(?P<version>{_NAME})\Z")
_NAMED_RE = re.compile(rf"^(?P<project>{_NAME})/(?P<name>{_NAME})\Z")


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a valid project/name/version, else raise InvalidNodeId."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise InvalidNodeId(
            f"{what} {value!r} is not valid: expected 1-128 characters of letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class NodeId:
    """A parsed node id. ``name`` holds the run uuid or the pseudonym for those kinds."""

    kind: Kind
    project: str | None
    name: str
    version: str | None = None

    def __str__(self) -> str:
        if self.kind == "run":
            return f"run:{self.name}"
        if self.kind == "project":
            return f"project:{self.name}"
        if self.version is not None:
            return f"{self.kind}:{self.project}/{self.name}@{self.version}"
        return f"{self.kind}:{self.project}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> NodeId:
        """Parse ``text``; raise InvalidNodeId naming the expected format when it does not fit."""
        if not isinstance(text, str) or ":" not in text:
            raise InvalidNodeId(
                f"node id {text!r} has no kind: expected '<kind>:...' with kind "
                f"one of {', '.join(KINDS)}"
            )
        kind, rest = text.split(":", 1)
        if kind == "run":
            try:
                return cls("run", None, str(uuid.UUID(rest)))
            except ValueError:
                raise InvalidNodeId(f"run id {text!r}: expected 'run:<uuid>'") from None
        if kind in ("dataset", "model"):
            m = _VERSIONED_RE.match(rest)
            if not m:
                raise InvalidNodeId(
                    f"{kind} id {text!r}: expected '{kind}:<project>/<name>@<version>'"
                )
            return cls(kind, m["project"], m["name"], m["version"])  # type: ignore[arg-type]
        if kind == "project":
            if not _NAME_RE.match(rest):
                raise InvalidNodeId(f"project id {text!r}: expected 'project:<project>'")
            return cls("project", rest, rest)
        if kind in ("deployment", "record", "subject", "job"):
            m = _NAMED_RE.match(rest)
            if not m:
                raise InvalidNodeId(f"{kind} id {text!r}: expected '{kind}:<project>/<name>'")
            return cls(kind, m["project"], m["name"])  # type: ignore[arg-type]
        raise InvalidNodeId(
            f"node id {text!r}: unknown kind {kind!r}, expected one of {', '.join(KINDS)}"
        )


def new_id() -> str:
    """A fresh UUID for an event, run or vault entry: version 7 (RFC 9562), time-ordered,
    so rows keyed by it are appended at the end of their indexes instead of scattered."""
    return str(uuid6.uuid7())


def _versioned(kind: Kind, project: str, name: str, version: str) -> str:
    return str(
        NodeId(
            kind,
            check_name(project, "project"),
            check_name(name, f"{kind} name"),
            check_name(version, f"{kind} version"),
        )
    )


def dataset_id(project: str, name: str, version: str) -> str:
    return _versioned("dataset", project, name, version)


def model_id(project: str, name: str, version: str) -> str:
    return _versioned("model", project, name, version)


def run_id(value: str | uuid.UUID) -> str:
    return str(NodeId("run", None, str(uuid.UUID(str(value)))))


def deployment_id(project: str, name: str) -> str:
    return str(
        NodeId("deployment", check_name(project, "project"), check_name(name, "deployment name"))
    )


def job_id(project: str, name: str) -> str:
    """Node id of a job known only from static metadata (an OpenLineage JobEvent)."""
    return str(NodeId("job", check_name(project, "project"), check_name(name, "job name")))


def project_id(project: str) -> str:
    """Node id of a project itself (what a grant of access is about)."""
    return str(NodeId("project", check_name(project, "project"), project))


def record_id(project: str, pseudonym: str) -> str:
    """Node id of a record, by its pseudonym."""
    return f"record:{project}/{pseudonym}"


def subject_id(project: str, pseudonym: str) -> str:
    """Node id of a data subject, by their pseudonym."""
    return f"subject:{project}/{pseudonym}"


# A record or subject node id anywhere in a text: what follows the project is a
# pseudonym (or a raw id a client put where it should not).
_PERSONAL_RE = re.compile(r"\b(record|subject):([A-Za-z0-9][A-Za-z0-9._\-]{0,127})/[^\s&/?#'\"]*")


def redact_people(text: str) -> str:
    """``text`` with the pseudonym (or whatever stands there) of every record and subject
    node id replaced: ``record:p/3f…`` -> ``record:p/[redacted]``. For what cannot be
    erased (the access trail, spans, logs): a pseudonym identifies a person as long as
    the project's secret exists."""
    return _PERSONAL_RE.sub(lambda m: f"{m.group(1)}:{m.group(2)}/[redacted]", text)


def label_of(node: str) -> str:
    """What a node id names within its project: ``name@version`` of a dataset or model
    version, the name of a deployment or job, the pseudonym of a record or subject,
    the uuid of a run, the name of a project."""
    parsed = NodeId.parse(node)
    return parsed.name if parsed.version is None else f"{parsed.name}@{parsed.version}"


def kind_of(node: str) -> str:
    """The kind prefix of a node id string, without a full parse."""
    return node.split(":", 1)[0]


def openlineage_id(text: str) -> bool:
    """Whether ``text`` is an OpenLineage node id as Marquez writes them
    (``dataset:<namespace>:<name>``, ``job:<namespace>:<name>``): ours never hold a
    second ``:``."""
    kind, sep, rest = text.partition(":")
    return bool(sep) and kind in ("dataset", "job") and ":" in rest
