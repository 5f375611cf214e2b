"""The ``Registry`` (every SDK call, gathered from the modules that hold them) and
``connect``, which opens one from the settings: the one place the SDK reads
``MLLEDGER_*`` (``registry.settings.Settings``)."""

from __future__ import annotations

import atexit
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from registry.assembly import open_ledger
from registry.backend import Backend, LocalBackend
from registry.errors import ConfigError, InvalidInput
from registry.ids import check_name, new_id
from registry.sdk.datasets import Datasets
from registry.sdk.deployments import Deployments
from registry.sdk.handles import NodeLike, node_of
from registry.sdk.jobs import Jobs
from registry.sdk.models import Models
from registry.sdk.predictions import PredictionLog
from registry.sdk.questions import Questions
from registry.sdk.runs import Run, current_run
from registry.sdk.subjects import Subjects
from registry.settings import Settings, default_actor, given
from registry.tracing import adopt_traceparent


class Registry(Datasets, Models, Deployments, PredictionLog, Subjects, Questions, Jobs):
    """A connection to the ledger for one project and actor."""

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        job: str,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Sequence[NodeLike] = (),
        tags: Mapping[str, str] | None = None,
        parent: Run | str | None = None,
        run_id: str | uuid.UUID | None = None,
        code_dir: str | Path | None = None,
        occurred_at: Any = None,
        ended_at: Any = None,
    ) -> Run:
        """A run as a context manager; an exception inside marks it failed and re-raises.

        ``occurred_at`` and ``ended_at`` backfill a run that happened earlier: its
        records default to the start time and its end to ``ended_at``.
        """
        return Run(
            self,
            job,
            params=dict(params or {}),
            inputs=[node_of(i) for i in inputs],
            tags=dict(tags or {}),
            parent=parent.id if isinstance(parent, Run) else parent,
            uuid_=uuid.UUID(str(run_id) if run_id else new_id()),
            code_dir=str(code_dir or Path.cwd()),
            occurred_at=occurred_at,
            ended_at=ended_at,
        )

    def job_run(
        self,
        *,
        run_id: str | uuid.UUID | None = None,
        inputs: Sequence[NodeLike] = (),
        settings: Settings | None = None,
    ) -> Run:
        """The run of the job this process belongs to, as a context manager: code
        dispatched by ``mlledger jobs submit`` records its inputs, params, metrics and
        model versions into the run the executor started (``MLLEDGER_RUN_ID``, or
        ``run_id``). The block neither starts nor ends the run: the executor records the
        job's end from what the platform reports (its exit code). Its events carry the
        trace of the submission (``TRACEPARENT``) when the process has no trace of its
        own."""
        chosen = run_id or given(settings).run_id
        adopt_traceparent(os.environ.get("TRACEPARENT"))
        if not chosen:
            raise ConfigError(
                "no run to record into: MLLEDGER_RUN_ID is not set. job_run() is for code "
                "an executor runs (mlledger jobs submit); elsewhere use run(JOB)"
            )
        try:
            uuid_ = uuid.UUID(str(chosen).removeprefix("run:"))
        except ValueError:
            raise InvalidInput(
                f"run id {str(chosen)!r}: expected 'run:<uuid>' or '<uuid>'", field="run_id"
            ) from None
        return Run(
            self,
            "",
            params={},
            inputs=[node_of(i) for i in inputs],
            tags={},
            parent=None,
            uuid_=uuid_,
            code_dir=str(Path.cwd()),
            occurred_at=None,
            attached=True,
        )


def open_backend(
    target: str, api_key: str | None, *, create: bool = True, settings: Settings | None = None
) -> Backend:
    """The backend at ``target``: a server's ``http(s)://`` URL (with ``api_key`` sent as
    a bearer token), else a database URL or file opened here."""
    if target.startswith(("http://", "https://")):
        from registry.client import HttpBackend

        return HttpBackend(target, api_key)
    return LocalBackend(open_ledger(target, create=create, settings=settings))


def connect(
    db: str | None = None,
    *,
    project: str | None = None,
    actor: str | None = None,
    api_key: str | None = None,
    create: bool = True,
    settings: Settings | None = None,
) -> Registry:
    """Open the ledger: a database URL or file (``db``, ``MLLEDGER_DB``, or
    ``./.mlledger/ledger.db``), or a server's ``http(s)://`` URL, with ``api_key``
    (or ``MLLEDGER_API_KEY``) sent as a bearer token. A database holding no ledger
    yet is created, unless ``create=False`` (then ``NoLedger``, a ``ConfigError``).
    ``settings`` stands in for the ``MLLEDGER_*`` environment, read when not given."""
    settings = given(settings)
    project = check_name(project or settings.project, "project")  # before touching a file
    backend = open_backend(
        db or settings.db, api_key or settings.api_key, create=create, settings=settings
    )
    return Registry(backend, project, actor or default_actor(settings))


_environment_runs: dict[str, Run] = {}
_environment_lock = threading.Lock()


def active_run(*, settings: Settings | None = None) -> Run | None:
    """The run that records made now belong to: the innermost ``with reg.run(...)`` (or
    ``job_run()``) block of the calling thread or task; else, in a job's process
    (``MLLEDGER_RUN_ID`` set by an executor), the job's run, attached on first use
    through ``connect()`` (``MLLEDGER_DB`` or a server's URL with ``MLLEDGER_API_KEY``,
    ``MLLEDGER_PROJECT``) and flushed when the process exits; else None.

    Autologging and ``@registry.track`` record into it instead of starting a run."""
    run = current_run()
    if run is not None:
        return run
    if settings is None and not os.environ.get("MLLEDGER_RUN_ID"):
        return None  # reading the settings costs milliseconds: not on every fit
    chosen = given(settings)
    if not chosen.run_id:
        return None
    with _environment_lock:
        run = _environment_runs.get(chosen.run_id)
        if run is None:
            reg = connect(settings=chosen)
            run = reg.job_run(settings=chosen).begin()
            _environment_runs[chosen.run_id] = run
            atexit.register(reg.close)
        return run
