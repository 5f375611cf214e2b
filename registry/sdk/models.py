"""Model versions: registering one (outside a run, or for ``Run.register_model``) and
moving an alias (``Registry.set_alias``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registry.events import NewEvent
from registry.ids import model_id
from registry.sdk.capture import artifact_of
from registry.sdk.handles import ModelVersion, node_of
from registry.sdk.runs import Run
from registry.sdk.session import Session


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
        self,
        name: str,
        version: str | None,
        run: str | None,
        uri: str,
        digest: str,
        framework: str | None,
        tags: Mapping[str, str] | None,
        occurred_at: Any,
    ) -> tuple[NewEvent, ModelVersion]:
        """The ``model-version-registered`` event of a new version (its artifact's ``uri``
        and ``digest`` from ``artifact_of``), and its handle."""
        version = version or self._next_model_version(name)
        node = model_id(self.project, name, version)
        body = {
            "name": name,
            "version": version,
            "run": run,
            "artifact_uri": uri,
            "artifact_digest": digest,
            "framework": framework,
            "tags": dict(tags or {}),
        }
        event = self._event("model-version-registered", node, body, occurred_at=occurred_at)
        return event, ModelVersion(node, name, version, digest)

    def register_model(
        self,
        name: str,
        version: str | None = None,
        *,
        run: Run | str | None = None,
        artifact_uri: str | None = None,
        artifact_path: str | Path | None = None,
        artifact_digest: str | None = None,
        framework: str | None = None,
        tags: Mapping[str, str] | None = None,
        occurred_at: Any = None,
    ) -> ModelVersion:
        """Register a model version (outside a run; inside one use ``run.register_model``)."""
        producer = run.id if isinstance(run, Run) else run
        uri, digest = artifact_of(name, artifact_uri, artifact_path, artifact_digest)
        event, model = self._model_event(
            name, version, producer, uri, digest, framework, tags, occurred_at
        )
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
