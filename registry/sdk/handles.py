"""What the SDK hands back for the versions and deployments it registers: small frozen
records whose ``str()`` is their node id, accepted wherever a node id is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetVersion:
    """A registered dataset version: its node id, name, version, digest and record count."""

    id: str
    name: str
    version: str
    digest: str
    records: int

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version: its node id, name, version and artifact digest."""

    id: str
    name: str
    version: str
    artifact_digest: str

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Deployment:
    """A configured deployment: its node id, name, endpoint and traffic split."""

    id: str
    name: str
    endpoint: str
    served: tuple[tuple[str, float], ...]

    def __str__(self) -> str:
        return self.id


NodeLike = str | DatasetVersion | ModelVersion | Deployment


def node_of(value: NodeLike) -> str:
    """The node id of a handle, or the string given."""
    return value.id if not isinstance(value, str) else value
