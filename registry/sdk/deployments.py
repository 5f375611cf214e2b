"""Deployments: configuring one (the model versions it serves and their traffic) and
retiring it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from registry.ids import deployment_id
from registry.sdk.handles import Deployment, NodeLike, node_of
from registry.sdk.session import Session


def traffic_split(
    served: Mapping[NodeLike, float] | Sequence[NodeLike],
) -> list[tuple[str, float]]:
    """``(model version id, traffic percent)`` pairs: as mapped, or an even split of a
    list whose shares still add up to exactly 100."""
    if isinstance(served, Mapping):
        return [(node_of(m), float(t)) for m, t in served.items()]
    models = [node_of(m) for m in served]
    split = [(m, 100.0 / len(models)) for m in models] if models else []
    if split:  # even shares must still add up to exactly 100
        split[-1] = (split[-1][0], 100.0 - sum(t for _, t in split[:-1]))
    return split


class Deployments(Session):
    """The deployment calls of a ``Registry``."""

    def deploy(
        self,
        name: str,
        *,
        endpoint: str,
        served: Mapping[NodeLike, float] | Sequence[NodeLike],
        occurred_at: Any = None,
    ) -> Deployment:
        """Create or change a deployment: the whole set of model versions it serves now.

        ``served`` maps model versions to traffic percentages (adding up to 100),
        or lists them to split traffic evenly.
        """
        split = traffic_split(served)
        node = deployment_id(self.project, name)
        body = {"endpoint": endpoint, "served": [{"model": m, "traffic": t} for m, t in split]}
        self._append_one("deployment-configured", node, body, occurred_at=occurred_at)
        return Deployment(node, name, endpoint, tuple(split))

    def retire(
        self, deployment: Deployment | str, *, reason: str | None = None, occurred_at: Any = None
    ) -> int:
        """Stop a deployment."""
        node = self._deployment(deployment)
        return self._append_one(
            "deployment-retired", node, {"reason": reason}, occurred_at=occurred_at
        )
