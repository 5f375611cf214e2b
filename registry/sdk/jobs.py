"""The jobs a ``Registry`` asks about: the jobs that execute the project's runs
(``lineage.jobqueries``), each question after appending whatever is buffered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.ids import openlineage_id
from registry.sdk.session import Session
from registry.tracing import span
from registry.writes import run_node

if TYPE_CHECKING:
    from registry.sdk.runs import Run


class Jobs(Session):
    """The job calls of a ``Registry``."""

    def jobs(self, status: str | None = None, limit: int = 100) -> dict[str, Any]:
        """The jobs executing the project's runs, newest submission first
        (``{"jobs": [...]}``); with ``status`` (submitted, scheduled, running, retrying,
        succeeded, failed, cancelled), only those in it; at most ``limit`` (1 to 1000)."""
        self.flush()
        with span("sdk.jobs", **{"mlledger.project": self.project}):
            return self.backend.jobs(self.project, status=status, limit=limit)

    def job(self, run: Run | str) -> dict[str, Any]:
        """The job executing ``run`` (a run, ``run:<uuid>``, ``<uuid>`` or an OpenLineage
        ``job:<namespace>:<name>``, that job's newest run in the project): as submitted,
        where and how it ran, and its events in log order. NotFound when the run is not
        the project's or has no job."""
        text = str(run)
        # Named as Marquez names it: the backend resolves it in the project.
        node = text if openlineage_id(text) else run_node(text)
        self.flush()
        with span("sdk.job", **{"mlledger.project": self.project, "mlledger.run": node}):
            return self.backend.job(self.project, node)
