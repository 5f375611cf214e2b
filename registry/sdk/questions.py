"""The questions a ``Registry`` answers (``lineage.queries``), each after appending
whatever is buffered, so an answer sees every record made before it."""

from __future__ import annotations

from typing import Any

from lineage import queries
from registry.sdk.handles import DatasetVersion, Deployment, ModelVersion, NodeLike, node_of
from registry.sdk.session import Session
from registry.sdk.values import checked_key
from registry.timeutil import to_timestamp
from registry.tracing import span


class Questions(Session):
    """The question calls of a ``Registry``."""

    def _ask(self, question: str, **params: Any) -> dict[str, Any]:
        self.flush()
        with span(f"sdk.{question}", **{"mlledger.project": self.project}):
            return self.backend.ask(self.project, question, **params)

    def scored(self, record: str | int) -> dict[str, Any]:
        """Which model version, in which deployment, scored record R, and when."""
        return self._ask("scored", record=checked_key(record, "record"))

    def trained_on(self, model: ModelVersion | str) -> dict[str, Any]:
        """Dataset versions that trained a model version, transitively, with record counts."""
        return self._ask("trained_on", model=node_of(model))

    def downstream(self, dataset: DatasetVersion | str) -> dict[str, Any]:
        """Runs, datasets, model versions, deployments and predictions downstream of a dataset."""
        return self._ask("downstream", dataset=node_of(dataset))

    def lineage(
        self,
        node: NodeLike,
        *,
        direction: queries.Direction = "both",
        depth: int = 3,
        as_of: Any = None,
    ) -> dict[str, Any]:
        """The lineage subgraph around a node, optionally as of a past time."""
        return self._ask(
            "lineage",
            node=node_of(node),
            direction=direction,
            depth=depth,
            as_of=None if as_of is None else to_timestamp(as_of, "as_of"),
        )

    def footprint(self, subject: str | int) -> dict[str, Any]:
        """Everything linked to data subject S."""
        return self._ask("footprint", subject=checked_key(subject, "subject"))

    def aliases(self, name: str) -> dict[str, Any]:
        """Where each alias (stage) of a model pointed over time, and who moved it."""
        return self._ask("aliases", name=name)

    def history(self, deployment: Deployment | str) -> dict[str, Any]:
        """Which model versions a deployment served, from when to when."""
        return self._ask("history", deployment=self._deployment(deployment))
