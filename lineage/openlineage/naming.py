"""Names and ids: OpenLineage datasets and jobs as mlledger names, derived event
ids, and mlledger nodes as OpenLineage ``(namespace, name)`` pairs.

The rules are described in ``docs/openlineage.md``; changing one renames what
was already ingested, so they are fixed.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from lineage.openlineage.constants import ID_NAMESPACE, JOB_MAX, NAME_MAX, UNSAFE
from registry.ids import NodeId


def _hash8(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def _safe(text: str, suffix: str | None) -> str:
    """A valid mlledger name from ``text``: unsafe characters replaced by '_', leading
    punctuation dropped, trimmed to fit with ``-<suffix>``. Without a suffix, the text
    is kept as it is when already valid, else suffixed with a hash of itself."""
    base = UNSAFE.sub("_", text).lstrip("._-")
    if suffix is None:
        if base == text and 0 < len(base) <= NAME_MAX:
            return base
        suffix = _hash8(text)
    base = base[: NAME_MAX - len(suffix) - 1]
    return f"{base}-{suffix}" if base else suffix


def dataset_name(namespace: str, name: str) -> str:
    """mlledger dataset name of the OpenLineage dataset ``(namespace, name)``:
    the name made safe, with ``-`` and the first 8 hex digits of
    ``sha256(namespace + '\\0' + name)`` always appended."""
    return _safe(name, _hash8(namespace, name))


def version_label(version: str) -> str:
    """mlledger version label of an OpenLineage ``datasetVersion``: as it is when
    valid, else made safe and suffixed with 8 hex digits of its SHA-256."""
    return _safe(version, None)


def job_name(namespace: str, name: str) -> str:
    """mlledger name (in ``job:<project>/<name>``) of the OpenLineage job, made like
    a dataset name."""
    return dataset_name(namespace, name)


def run_job(name: str, namespace: str) -> str:
    """The job text of a run-started: the OpenLineage job name, shortened (with a
    hash) only when it is empty or longer than 300 characters."""
    if 0 < len(name) <= JOB_MAX:
        return name
    suffix = _hash8(namespace, name)
    return f"{name[: JOB_MAX - 9]}-{suffix}" if name else f"job-{suffix}"


def dataset_uri(namespace: str, name: str) -> str:
    """Where an OpenLineage dataset lives, following the naming spec: ``file`` + path
    gives ``file://<path>``; a namespace with a scheme (``s3://bucket``,
    ``postgres://host:5432``) is joined to the name with one '/'; any other
    namespace (``bigquery``) gives ``<namespace>/<name>``."""
    if namespace == "file":
        return "file://" + name
    if namespace.endswith("/"):
        return namespace + name.lstrip("/")
    if name.startswith("/"):
        return namespace + name
    return f"{namespace}/{name}"


def event_id(*parts: str) -> str:
    """The id of a derived event: a uuid5 of ``parts`` in ``ID_NAMESPACE``."""
    return str(uuid.uuid5(ID_NAMESPACE, "\0".join(parts)))


# --- mlledger nodes as OpenLineage datasets and jobs -------------------------------------


def parsed(text: str | bytes) -> Any:
    """A JSON column of a catalogue row, parsed: by orjson (a few times as fast as the
    standard library's parser, for the read model's tens of thousands of rows), or by
    the standard library for what orjson refuses (integers beyond 64 bits, ``NaN``)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def tags_of(text: str | None) -> dict[str, str]:
    """A catalogue row's ``tags`` column as a dict (empty when NULL)."""
    return {} if not text else dict(parsed(text))


def _origin(tags: Mapping[str, str], name_tag: str) -> tuple[str, str] | None:
    """(namespace, name) an ingested node came with: the tags ``openlineage.namespace``
    and ``name_tag``; None for a native node."""
    if "openlineage.namespace" in tags and name_tag in tags:
        return tags["openlineage.namespace"], tags[name_tag]
    return None


def dataset_key(project: str, name: str, tags: Mapping[str, str]) -> tuple[str, str]:
    """(namespace, name) of a dataset version: its OpenLineage origin, else the project."""
    return _origin(tags, "openlineage.name") or (project, name)


def model_key(project: str, name: str) -> tuple[str, str]:
    """(namespace, name) of a model's versions: ``model/<name>`` in the project."""
    return project, f"model/{name}"


def run_key(project: str, job: str, tags: Mapping[str, str]) -> tuple[str, str]:
    """(namespace, name) of a run's job: its OpenLineage origin, else the project."""
    return _origin(tags, "openlineage.job") or (project, job)


def deployment_key(project: str, name: str) -> tuple[str, str]:
    """(namespace, name) of a deployment's job: ``deployment/<name>`` in the project."""
    return project, f"deployment/{name}"


def deployment_run(deployment: str, position: int) -> str:
    """The OpenLineage runId of a deployment's configuration change at ``position``."""
    return str(uuid.uuid5(ID_NAMESPACE, f"deployment-change\0{deployment}\0{position}"))


def uuid_of(run: str) -> str:
    """The OpenLineage runId of an mlledger run node id."""
    return NodeId.parse(run).name
