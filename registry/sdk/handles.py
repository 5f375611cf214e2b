"""What the SDK hands back for the versions and deployments it registers: small frozen
records whose ``str()`` is their node id, accepted wherever a node id is. They are the
records the service layer's writes return (``registry.writes``), so a local connection
and the API describe a write alike."""

from __future__ import annotations

from registry.writes import DatasetVersion, Deployment, ModelVersion

__all__ = ["DatasetVersion", "Deployment", "ModelVersion", "NodeLike", "node_of"]

NodeLike = str | DatasetVersion | ModelVersion | Deployment


def node_of(value: NodeLike) -> str:
    """The node id of a handle, or the string given."""
    return value.id if not isinstance(value, str) else value
