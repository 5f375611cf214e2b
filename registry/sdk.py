"""The Python SDK: what training and serving code calls.

    import registry
    reg = registry.connect()                      # MLLEDGER_DB or ./.mlledger/ledger.db
    raw = reg.register_dataset("patients", "1", uri="file://p.csv", path="p.csv",
                               records=ids, subjects=patient_ids)
    with reg.run("train", params={"C": 1.0}, inputs=[raw]) as run:
        run.log_metrics({"auc": 0.97})
        model = run.register_model("clf", artifact_path="model.pkl", framework="sklearn")
    reg.deploy("clf-api", endpoint="https://...", served={model: 100})
    reg.log_predictions("clf-api", model=model, records=ids, outputs=scores)

Every write becomes events appended through ``Ledger.append``. A run's records
(``run-started``, inputs, params, metrics, model versions) are buffered and
appended in one batch when the run ends; earlier when another write or a
question needs them, on ``flush()``, or with the first record made
``FLUSH_AFTER_SECONDS`` after the buffer began, so a long run shows up as
running while it runs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from lineage import queries
from registry.assembly import open_ledger
from registry.backend import Backend, LocalBackend
from registry.errors import ConfigError, Conflict, EventRejected, FieldError, LedgerError
from registry.events import NewEvent, make_event
from registry.ids import (
    check_name,
    dataset_id,
    deployment_id,
    model_id,
    new_id,
    run_id,
)
from registry.intake import Item, Predictions, RecordsAdded, SubjectData, check_keys, key_problem
from registry.ledger import Ledger
from registry.limits import MAX_ERROR_TYPE
from registry.settings import Settings, default_actor
from registry.timeutil import to_timestamp
from registry.tracing import current_trace_id, span

RECORD_CHUNK = 10_000
FLUSH_AFTER_SECONDS = 5.0
PREDICTION_CHUNK = 20_000
KEY_PACKAGES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "torch",
    "tensorflow",
    "xgboost",
    "lightgbm",
    "pyarrow",
    "mlledger",
)


@dataclass(frozen=True)
class DatasetVersion:
    id: str
    name: str
    version: str
    digest: str
    records: int

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class ModelVersion:
    id: str
    name: str
    version: str
    artifact_digest: str

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Deployment:
    id: str
    name: str
    endpoint: str
    served: tuple[tuple[str, float], ...]

    def __str__(self) -> str:
        return self.id


NodeLike = str | DatasetVersion | ModelVersion | Deployment


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file, or of a directory's files (names and contents, sorted)."""
    target = Path(path)
    if not target.exists():
        raise LedgerError(f"cannot digest {target}: no such file or directory")
    digest = hashlib.sha256()
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    for file in files:
        if target.is_dir():
            digest.update(str(file.relative_to(target)).encode() + b"\x00")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


@functools.lru_cache(maxsize=8)
def capture_code(cwd: str) -> dict[str, Any]:
    """Git commit, branch and dirty flag of ``cwd``; captured once per process, as the
    code that runs is the code that was loaded."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None, "git_branch": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit,
        "git_dirty": bool(status),
        "git_branch": git("rev-parse", "--abbrev-ref", "HEAD"),
    }


@functools.lru_cache(maxsize=1)
def capture_environment() -> dict[str, Any]:
    """Python version, platform, host and the versions of key packages installed."""
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": packages,
    }


def _node(value: NodeLike) -> str:
    return value.id if not isinstance(value, str) else value


def _key(key: Any, field: str) -> Any:
    """``key`` if it is a record key or subject id; else FieldError naming ``field``."""
    why = key_problem(key, "record key" if field == "record" else "subject id")
    if why is not None:
        raise FieldError(field, f"{field}: {why}")
    return key


def _keys(keys: list[Any], field: str) -> list[Any]:
    """``keys`` if each is a record key; else FieldError naming the first bad one."""
    try:
        check_keys(keys, field)
    except FieldError as exc:
        raise FieldError(exc.field, f"{exc.field}: {exc}") from None
    return keys


def _plain(values: Any) -> list[Any]:
    """A list of JSON values from a list, numpy array or Arrow column."""
    if hasattr(values, "to_pylist"):
        return list(values.to_pylist())
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return [
        v.item() if hasattr(v, "item") and not isinstance(v, str | bytes) else v for v in values
    ]


class Registry:
    """A connection to the ledger for one project and actor."""

    def __init__(self, backend: Backend | Ledger, project: str, actor: str):
        self.backend: Backend = LocalBackend(backend) if isinstance(backend, Ledger) else backend
        self.project = check_name(project, "project")
        self.actor = actor
        self._pending: list[Item] = []
        self._pending_since = 0.0
        self._datasets: dict[str, dict[str, Any]] = {}

    @property
    def ledger(self) -> Ledger:
        """The ledger of a local connection (a connection to a server has none)."""
        if isinstance(self.backend, LocalBackend):
            return self.backend.ledger
        raise ConfigError("this connection talks to a server over HTTP: it has no local ledger")

    def close(self) -> None:
        """Append anything buffered and release the connection."""
        self.flush()
        self.backend.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------

    def _event(
        self,
        type: str,
        entity: str,
        body: Mapping[str, Any],
        *,
        occurred_at: Any = None,
        actor: str | None = None,
        **kw: Any,
    ) -> NewEvent:
        """One event of this connection; a value the ledger would refuse raises
        ``EventRejected`` here, at the call that made it, so nothing bad is buffered."""
        event_id = kw.pop("event_id", None) or new_id()
        try:
            return make_event(
                type,
                project=self.project,
                entity=entity,
                actor=actor or self.actor,
                body=dict(body),
                occurred_at=occurred_at,
                trace_id=current_trace_id(),
                event_id=event_id,
                **kw,
            )
        except FieldError as exc:
            raise EventRejected(0, str(event_id), type, exc.field, str(exc)) from None

    def _envelope(self, entity: str, occurred_at: Any = None) -> dict[str, Any]:
        """Envelope fields of a write carrying personal data."""
        return {
            "event_id": new_id(),
            "project": self.project,
            "entity": entity,
            "actor": self.actor,
            "occurred_at": to_timestamp(occurred_at, "occurred_at"),
            "trace_id": current_trace_id(),
        }

    def _append(self, events: Sequence[Item]) -> list[int]:
        """Append buffered run events first, then ``events``, as one batch."""
        batch = [*self._pending, *events]
        try:
            positions = self.backend.append(self.project, batch)
        except EventRejected as exc:
            if exc.index < len(self._pending):
                # A buffered record the ledger refuses would block every later write:
                # drop it (the error says which) and keep the rest for the next append.
                del self._pending[exc.index]
            raise
        self._pending.clear()
        return positions[len(batch) - len(events) :]

    def flush(self) -> None:
        """Append every buffered run event now."""
        if self._pending:
            self._append([])

    def _hold(self, event: NewEvent) -> None:
        """Buffer a run's record; flush when the buffer has waited long enough."""
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(event)
        if time.monotonic() - self._pending_since >= FLUSH_AFTER_SECONDS:
            self.flush()

    # --- datasets -----------------------------------------------------------------------------

    def register_dataset(
        self,
        name: str,
        version: str | None = None,
        *,
        uri: str,
        digest: str | None = None,
        path: str | Path | None = None,
        schema: Mapping[str, str] | None = None,
        row_count: int | None = None,
        records: Iterable[str | int] | None = None,
        subjects: Iterable[str | int | None] | None = None,
        derived_from: Sequence[NodeLike] = (),
        produced_by: Run | str | None = None,
        tags: Mapping[str, str] | None = None,
        occurred_at: Any = None,
    ) -> DatasetVersion:
        """Register a dataset version with its record membership.

        ``digest`` (or ``path`` to digest) identifies the content; ``version``
        defaults to the digest's first 12 hex digits. ``records`` are the record
        keys it holds and ``subjects`` each record's data-subject id (or None).
        Registering the same name, version and digest again returns the existing
        version; another digest under the same version is a Conflict.
        """
        if digest is None:
            if path is None:
                raise LedgerError(f"dataset {name!r}: give digest= or path= to digest")
            digest = file_digest(path)
        version = version or digest.split(":")[-1][:12]
        node = dataset_id(self.project, name, version)
        existing = self._dataset_row(node)
        if existing is not None:
            if existing["digest"] != digest:
                raise Conflict(
                    f"dataset version {node} is already registered with digest "
                    f"{existing['digest']}, not {digest}; register a new version"
                )
            return DatasetVersion(node, name, version, digest, existing["records"])
        keys = list(records) if records is not None else []
        if subjects is not None:
            subject_list = list(subjects)
            if len(subject_list) != len(keys):
                raise LedgerError(
                    f"dataset {name!r}: {len(keys)} records but "
                    f"{len(subject_list)} subjects; expected one subject per record"
                )
        else:
            subject_list = [None] * len(keys)
        producer = produced_by.id if isinstance(produced_by, Run) else produced_by
        body: dict[str, Any] = {
            "name": name,
            "version": version,
            "digest": digest,
            "uri": uri,
            "schema": dict(schema) if schema is not None else None,
            "row_count": row_count if row_count is not None else (len(keys) or None),
            "derived_from": [_node(d) for d in derived_from],
            "produced_by": producer,
            "tags": dict(tags or {}),
        }
        events: list[Item] = [
            self._event("dataset-version-registered", node, body, occurred_at=occurred_at)
        ]
        for start in range(0, len(keys), RECORD_CHUNK):
            events.append(
                RecordsAdded(
                    **self._envelope(node, occurred_at),
                    records=keys[start : start + RECORD_CHUNK],
                    subjects=subject_list[start : start + RECORD_CHUNK],
                )
            )
        self._append(events)
        return DatasetVersion(node, name, version, digest, len(set(keys)))

    def _dataset_row(self, node: str) -> dict[str, Any] | None:
        # Dataset versions are immutable: once seen, their digest never changes.
        known = self._datasets.get(node)
        if known is not None:
            return known
        found = self.backend.dataset(node)
        if found is not None:
            self._datasets[node] = found
        return found

    # --- runs ---------------------------------------------------------------------------------

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
            inputs=[_node(i) for i in inputs],
            tags=dict(tags or {}),
            parent=parent.id if isinstance(parent, Run) else parent,
            uuid_=uuid.UUID(str(run_id) if run_id else new_id()),
            code_dir=str(code_dir or Path.cwd()),
            occurred_at=occurred_at,
            ended_at=ended_at,
        )

    # --- models -------------------------------------------------------------------------------

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
        artifact_uri: str | None,
        artifact_path: str | Path | None,
        artifact_digest: str | None,
        framework: str | None,
        tags: Mapping[str, str] | None,
        occurred_at: Any,
    ) -> tuple[NewEvent, ModelVersion]:
        if artifact_digest is None:
            if artifact_path is None:
                raise LedgerError(
                    f"model {name!r}: give artifact_digest= or artifact_path= to digest"
                )
            artifact_digest = file_digest(artifact_path)
        if artifact_uri is None:
            if artifact_path is None:
                raise LedgerError(f"model {name!r}: give artifact_uri= or artifact_path=")
            artifact_uri = Path(artifact_path).resolve().as_uri()
        version = version or self._next_model_version(name)
        node = model_id(self.project, name, version)
        event = self._event(
            "model-version-registered",
            node,
            {
                "name": name,
                "version": version,
                "run": run,
                "artifact_uri": artifact_uri,
                "artifact_digest": artifact_digest,
                "framework": framework,
                "tags": dict(tags or {}),
            },
            occurred_at=occurred_at,
        )
        return event, ModelVersion(node, name, version, artifact_digest)

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
        event, model = self._model_event(
            name,
            version,
            producer,
            artifact_uri,
            artifact_path,
            artifact_digest,
            framework,
            tags,
            occurred_at,
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
        node = (
            self.backend.resolve_model(self.project, _node(model))
            if not self._pending_model(_node(model))
            else _node(model)
        )
        return self._append(
            [
                self._event(
                    "model-alias-moved",
                    node,
                    {"alias": alias},
                    occurred_at=occurred_at,
                    actor=moved_by,
                )
            ]
        )[0]

    def _pending_model(self, node: str) -> bool:
        return any(e.entity == node and e.type == "model-version-registered" for e in self._pending)

    # --- deployments --------------------------------------------------------------------------

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
        if isinstance(served, Mapping):
            split = [(_node(m), float(t)) for m, t in served.items()]
        else:
            models = [_node(m) for m in served]
            split = [(m, 100.0 / len(models)) for m in models] if models else []
            if split:  # even shares must still add up to exactly 100
                split[-1] = (split[-1][0], 100.0 - sum(t for _, t in split[:-1]))
        node = deployment_id(self.project, name)
        self._append(
            [
                self._event(
                    "deployment-configured",
                    node,
                    {
                        "endpoint": endpoint,
                        "served": [{"model": m, "traffic": t} for m, t in split],
                    },
                    occurred_at=occurred_at,
                )
            ]
        )
        return Deployment(node, name, endpoint, tuple(split))

    def retire(
        self, deployment: Deployment | str, *, reason: str | None = None, occurred_at: Any = None
    ) -> int:
        """Stop a deployment."""
        node = self._deployment(deployment)
        return self._append(
            [self._event("deployment-retired", node, {"reason": reason}, occurred_at=occurred_at)]
        )[0]

    def _deployment(self, deployment: Deployment | str) -> str:
        if isinstance(deployment, Deployment):
            return deployment.id
        return queries.resolve(deployment, "deployment", self.project)

    # --- predictions --------------------------------------------------------------------------

    def log_predictions(
        self,
        deployment: Deployment | str,
        *,
        records: Any = None,
        outputs: Any = None,
        model: NodeLike | None = None,
        models: Sequence[NodeLike] | None = None,
        at: Any = None,
        trace_ids: Sequence[str | None] | None = None,
        table: Any = None,
    ) -> list[int]:
        """Log a batch of predictions; return the positions of the events written.

        Give ``model`` for the whole batch or ``models`` row by row; ``at`` is one
        time for all rows, or one per row (default: now). A pyarrow ``table``
        with columns record, output and optionally model, at, trace_id may stand
        in for the keyword columns.
        """
        if table is not None:
            names = set(table.column_names)
            records = table.column("record")
            outputs = table.column("output")
            models = _plain(table.column("model")) if "model" in names else models
            at = _plain(table.column("at")) if "at" in names else at
            trace_ids = _plain(table.column("trace_id")) if "trace_id" in names else trace_ids
        if records is None or outputs is None:
            raise LedgerError("log_predictions: records= and outputs= (or table=) are required")
        keys = _plain(records)
        outs = _plain(outputs)
        n = len(keys)
        if len(outs) != n:
            raise LedgerError(
                f"log_predictions: {n} records but {len(outs)} outputs; "
                "expected one output per record"
            )
        if (model is None) == (models is None):
            raise LedgerError(
                "log_predictions: give either model= (whole batch) or models= (per row)"
            )
        per_row = [_node(model)] * n if model is not None else [_node(m) for m in models or []]
        if len(per_row) != n:
            raise LedgerError(f"log_predictions: {n} records but {len(per_row)} models")
        if at is None or (not isinstance(at, list | tuple) and not hasattr(at, "tolist")):
            times = [to_timestamp(at, "at")] * n
        else:
            times = [to_timestamp(t, f"at[{i}]") for i, t in enumerate(_plain(at))]
            if len(times) != n:
                raise LedgerError(f"log_predictions: {n} records but {len(times)} times")
        traces = None if trace_ids is None else [None if t is None else str(t) for t in trace_ids]
        if traces is not None and len(traces) != n:
            raise LedgerError(f"log_predictions: {n} records but {len(traces)} trace ids")
        node = self._deployment(deployment)
        events: list[Item] = []
        for start in range(0, n, PREDICTION_CHUNK):
            stop = start + PREDICTION_CHUNK
            chunk_models = per_row[start:stop]
            distinct = list(dict.fromkeys(chunk_models))
            slot = {m: i for i, m in enumerate(distinct)}
            chunk_times = times[start:stop]
            same_time = chunk_times[0] == chunk_times[-1] and len(set(chunk_times)) == 1
            events.append(
                Predictions(
                    **self._envelope(node, chunk_times[0]),
                    models=distinct,
                    records=keys[start:stop],
                    outputs=outs[start:stop],
                    model_index=None if len(distinct) == 1 else [slot[m] for m in chunk_models],
                    at=chunk_times[0] if same_time else chunk_times,
                    trace_ids=None if traces is None else traces[start:stop],
                )
            )
        return self._append(events) if events else []

    # --- personal data ------------------------------------------------------------------------

    def store_subject_data(self, subject: str | int, attributes: Mapping[str, Any]) -> str:
        """Put personal attributes of a data subject in the encrypted vault; return the entry id."""
        if not attributes:
            raise LedgerError("store_subject_data: attributes is empty; expected at least one")
        # The entity (the subject's pseudonymous id) is set where the project's secret is.
        item = SubjectData(
            **self._envelope("subject:pending"), subject=subject, attributes=dict(attributes)
        )
        self._append([item])
        return item.event_id

    def subject_data(self, subject: str | int) -> list[dict[str, Any]]:
        """Decrypt what the vault holds for a data subject."""
        self.flush()
        return self.backend.subject_data(self.project, _key(subject, "subject"))

    # --- erasure (GDPR) -----------------------------------------------------------------------

    def erase(
        self,
        subject: str | int,
        *,
        dry_run: bool = False,
        retain: Sequence[Mapping[str, str]] = (),
        purge: bool = True,
        sign: bool = True,
    ) -> dict[str, Any]:
        """Erase data subject S everywhere (``docs/gdpr.md``); ``dry_run`` returns the
        plan and changes nothing. ``retain`` lists affected model versions kept in
        service (``{"model", "justification", "approver"}``, model ``"*"`` for all);
        every other one is flagged ``retrain-required``. ``purge`` and ``sign``
        (physical purge, a checkpoint) may wait for the end of a batch (``purge()``)."""
        self.flush()
        return self.backend.erase(
            self.project,
            _key(subject, "subject"),
            actor=self.actor,
            dry_run=dry_run,
            retain=[dict(rule) for rule in retain],
            purge=purge,
            sign=sign,
        )

    def resume_erasures(self, *, purge: bool = True) -> list[dict[str, Any]]:
        """Complete every erasure of the project that was interrupted."""
        return self.backend.resume_erasures(self.project, purge=purge)

    def purge(self) -> dict[str, Any]:
        """Physically purge what erasures deleted, and sign a checkpoint (after a batch)."""
        return self.backend.purge(self.project)

    def subject_report(self, subject: str | int) -> dict[str, Any]:
        """Everything held on a data subject, where it went and which models and
        predictions used it (GDPR Art. 15); ``audit.reports.subject``."""
        self.flush()
        return self.backend.subject_report(self.project, _key(subject, "subject"))

    def erasures(self) -> list[dict[str, Any]]:
        """The project's erasures, oldest first."""
        return self.backend.erasures(self.project)

    def erasure_certificate(self, erasure: str) -> dict[str, Any]:
        """The signed certificate (a DSSE envelope) of a completed erasure."""
        return self.backend.erasure_certificate(self.project, erasure)

    def remediations(self, status: str | None = None) -> list[dict[str, Any]]:
        """Remediation flags on model versions; ``status="retrain-required"``: the open ones."""
        self.flush()
        return self.backend.remediations(self.project, status)

    def erased_records(self, records: Iterable[str | int]) -> set[str | int]:
        """The record keys among ``records`` that an erasure erased: drop them before
        retraining a flagged model."""
        keys = _keys(_plain(list(records)), "records")
        return {
            k
            for k, gone in zip(keys, self.backend.erased_records(self.project, keys), strict=True)
            if gone
        }

    # --- questions ----------------------------------------------------------------------------

    def _ask(self, question: str, **params: Any) -> dict[str, Any]:
        self.flush()
        with span(f"sdk.{question}", **{"mlledger.project": self.project}):
            return self.backend.ask(self.project, question, **params)

    def scored(self, record: str | int) -> dict[str, Any]:
        """Which model version, in which deployment, scored record R, and when."""
        return self._ask("scored", record=_key(record, "record"))

    def trained_on(self, model: ModelVersion | str) -> dict[str, Any]:
        """Dataset versions that trained a model version, transitively, with record counts."""
        return self._ask("trained_on", model=_node(model))

    def downstream(self, dataset: DatasetVersion | str) -> dict[str, Any]:
        """Runs, datasets, model versions, deployments and predictions downstream of a dataset."""
        return self._ask("downstream", dataset=_node(dataset))

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
            node=_node(node),
            direction=direction,
            depth=depth,
            as_of=None if as_of is None else to_timestamp(as_of, "as_of"),
        )

    def footprint(self, subject: str | int) -> dict[str, Any]:
        """Everything linked to data subject S."""
        return self._ask("footprint", subject=_key(subject, "subject"))

    def aliases(self, name: str) -> dict[str, Any]:
        """Where each alias (stage) of a model pointed over time, and who moved it."""
        return self._ask("aliases", name=name)

    def history(self, deployment: Deployment | str) -> dict[str, Any]:
        """Which model versions a deployment served, from when to when."""
        return self._ask("history", deployment=self._deployment(deployment))


class Run:
    """A run; use it as a context manager (``with reg.run(...) as run:``)."""

    def __init__(
        self,
        registry: Registry,
        job: str,
        *,
        params: dict[str, Any],
        inputs: list[str],
        tags: dict[str, str],
        parent: str | None,
        uuid_: uuid.UUID,
        code_dir: str,
        occurred_at: Any,
        ended_at: Any = None,
    ):
        self.registry = registry
        self.job = job
        self.id = run_id(uuid_)
        self.uuid = str(uuid_)
        self._start = dict(
            params=params,
            inputs=inputs,
            tags=tags,
            parent=parent,
            code_dir=code_dir,
            occurred_at=occurred_at,
        )
        # A backfilled run's records default to its start time, its end to ended_at.
        self._default_time = occurred_at
        self._ended_at = ended_at if ended_at is not None else occurred_at
        self.status = "new"
        self.models: list[ModelVersion] = []
        self.datasets: list[DatasetVersion] = []

    def __str__(self) -> str:
        return self.id

    def __enter__(self) -> Run:
        s = self._start
        reg = self.registry
        reg._hold(
            reg._event(
                "run-started",
                self.id,
                {
                    "job": self.job,
                    "params": s["params"],
                    "code": capture_code(s["code_dir"]),
                    "environment": capture_environment(),
                    "parent_run": s["parent"],
                    "tags": s["tags"],
                },
                occurred_at=s["occurred_at"],
            )
        )
        self.status = "running"
        if s["inputs"]:
            self.use(*s["inputs"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        reg = self.registry
        if exc_type is None:
            reg._append([reg._event("run-completed", self.id, {}, occurred_at=self._ended_at)])
            self.status = "completed"
        else:
            name = f"{exc_type.__module__}.{exc_type.__qualname__}"
            if len(name) > MAX_ERROR_TYPE:  # still record the failure, the name cut short
                name = name[: MAX_ERROR_TYPE - 3] + "..."
            reg._append(
                [
                    reg._event(
                        "run-failed", self.id, {"error_type": name}, occurred_at=self._ended_at
                    )
                ]
            )
            self.status = "failed"
        return False

    def _buffer(self, type: str, body: dict[str, Any], occurred_at: Any = None) -> None:
        if self.status != "running":
            raise LedgerError(f"run {self.id} is {self.status}: record inside its 'with' block")
        self.registry._hold(
            self.registry._event(type, self.id, body, occurred_at=occurred_at or self._default_time)
        )

    def use(self, *inputs: NodeLike) -> None:
        """Declare dataset or model versions this run reads."""
        if inputs:
            self._buffer("run-inputs-used", {"inputs": [_node(i) for i in inputs]})

    def log_params(self, params: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Record parameters (a key logged again keeps the latest value)."""
        merged = {**(params or {}), **more}
        if merged:
            self._buffer("run-params-logged", {"params": merged})

    def log_metrics(
        self, metrics: Mapping[str, float], *, step: int | None = None, occurred_at: Any = None
    ) -> None:
        """Record metric values."""
        if metrics:
            self._buffer(
                "run-metrics-logged",
                {
                    "metrics": [
                        {"key": k, "value": v if type(v) is int else float(v), "step": step}
                        for k, v in metrics.items()
                    ]
                },
                occurred_at=occurred_at,
            )

    def register_model(
        self,
        name: str,
        version: str | None = None,
        *,
        artifact_uri: str | None = None,
        artifact_path: str | Path | None = None,
        artifact_digest: str | None = None,
        framework: str | None = None,
        tags: Mapping[str, str] | None = None,
        occurred_at: Any = None,
        remediates: Mapping[str, Any] | Sequence[Mapping[str, Any]] = (),
    ) -> ModelVersion:
        """A model version this run produced (appended with the run's other records).

        ``remediates`` takes remediation flags (``Registry.remediations()`` items:
        ``{"erasure", "model"}``) this version resolves: it replaces the flagged
        version, and the ledger refuses the run's batch unless the run read none of
        the erased records nor any dataset version the erasure touched."""
        if self.status != "running":
            raise LedgerError(
                f"run {self.id} is {self.status}: register its models inside the block"
            )
        event, model = self.registry._model_event(
            name,
            version,
            self.id,
            artifact_uri,
            artifact_path,
            artifact_digest,
            framework,
            tags,
            occurred_at or self._default_time,
        )
        self.registry._hold(event)
        flags = [remediates] if isinstance(remediates, Mapping) else list(remediates)
        for flag in flags:
            self.registry._hold(
                self.registry._event(
                    "erasure-remediated",
                    model.id,
                    {"erasure": flag["erasure"], "model": flag["model"]},
                    occurred_at=occurred_at or self._default_time,
                )
            )
        self.models.append(model)
        return model

    def register_dataset(self, name: str, version: str | None = None, **kw: Any) -> DatasetVersion:
        """A dataset version this run wrote (``produced_by`` this run)."""
        self.registry.flush()
        dataset = self.registry.register_dataset(name, version, produced_by=self.id, **kw)
        self.datasets.append(dataset)
        return dataset

    def flush(self) -> None:
        """Append this run's buffered records now."""
        self.registry.flush()


def connect(
    db: str | None = None,
    *,
    project: str | None = None,
    actor: str | None = None,
    api_key: str | None = None,
    create: bool = True,
) -> Registry:
    """Open the ledger: a database URL or file (``db``, ``MLLEDGER_DB``, or
    ``./.mlledger/ledger.db``), or a server's ``http(s)://`` URL, with ``api_key``
    (or ``MLLEDGER_API_KEY``) sent as a bearer token. A database holding no ledger
    yet is created, unless ``create=False`` (then ``NoLedger``, a ``ConfigError``)."""
    settings = Settings()
    project = check_name(project or settings.project, "project")  # before touching a file
    target = db or settings.db
    if target.startswith(("http://", "https://")):
        from registry.client import HttpBackend

        backend: Backend = HttpBackend(target, api_key or settings.api_key)
    else:
        backend = LocalBackend(open_ledger(target, create=create))
    return Registry(backend, project, actor or default_actor())
