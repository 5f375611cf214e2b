"""Model versions: registering one (outside a run, or for ``Run.register_model``) and
moving an alias (``Registry.set_alias``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, Unpack

from registry import writes
from registry.events import NewEvent
from registry.sdk.capture import artifact_of
from registry.sdk.handles import ModelVersion, node_of
from registry.sdk.runs import Run
from registry.sdk.session import Session


class ModelFields(TypedDict, total=False):
    """The keyword arguments of ``register_model`` (a registry's or a run's) beyond its
    name and version: the artifact (``artifact_uri`` with ``artifact_digest``, or
    ``artifact_path`` to digest), the ``framework``, ``tags`` and ``occurred_at``."""

    artifact_uri: str | None
    artifact_path: str | Path | None
    artifact_digest: str | None
    framework: str | None
    tags: Mapping[str, str] | None
    occurred_at: Any


class Models(Session):
    """The model calls of a ``Registry``."""

    def _next_model_version(self, name: str) -> str:
        """One more than the highest all-digit version of ``name`` (stored or buffered)."""
        top = self.backend.top_model_version(self.project, name)
        numbers = [top] if top is not None else []
        numbers += [
            int(e.body["version"])
            for e in self._pending
            if isinstance(e, NewEvent)
            and e.type == "model-version-registered"
            and e.body["name"] == name
            and e.body["version"].isdigit()
        ]
        return str(max(numbers, default=0) + 1)

    def _model_event(
        self, name: str, version: str | None, run: str | None, fields: ModelFields
    ) -> tuple[NewEvent, ModelVersion]:
        """The ``model-version-registered`` event of a new version (its artifact from
        ``fields``, as ``artifact_of`` reads it), made by the service layer, and its handle."""
        uri, digest = artifact_of(
            name,
            fields.get("artifact_uri"),
            fields.get("artifact_path"),
            fields.get("artifact_digest"),
        )
        body = {
            "name": name,
            "version": version or self._next_model_version(name),
            "run": run,
            "artifact_uri": uri,
            "artifact_digest": digest,
            "framework": fields.get("framework"),
            "tags": dict(fields.get("tags") or {}),
        }
        return writes.model_event(self, body, fields.get("occurred_at"))

    def register_model(
        self,
        name: str,
        version: str | None = None,
        *,
        run: Run | str | None = None,
        **fields: Unpack[ModelFields],
    ) -> ModelVersion:
        """Register a model version (outside a run; inside one use ``run.register_model``):
        its artifact by ``artifact_uri`` and ``artifact_digest``, or ``artifact_path`` to
        digest; ``framework``, ``tags`` and ``occurred_at`` as ``ModelFields`` says."""
        producer = run.id if isinstance(run, Run) else run
        event, model = self._model_event(name, version, producer, fields)
        self._append([event])
        return model

    def set_alias(
        self,
        model: ModelVersion | str,
        alias: str,
        *,
        moved_by: str | None = None,
        occurred_at: Any = None,
    ) -> int:
        """Point ``alias`` (or stage) of the model at this version; ``moved_by`` defaults to
        the actor."""
        node = node_of(model)
        if not self._pending_model(node):
            node = self.backend.resolve_model(self.project, node)
        return self._append_one(
            "model-alias-moved", node, {"alias": alias}, occurred_at=occurred_at, actor=moved_by
        )

    def _pending_model(self, node: str) -> bool:
        """Whether the buffer holds the registration of model version ``node``."""
        return any(e.entity == node and e.type == "model-version-registered" for e in self._pending)
