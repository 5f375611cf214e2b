"""Predictions: logging a batch of a deployment's predictions, given as columns or as a
pyarrow table, in events of at most ``registry.writes.PREDICTION_CHUNK`` rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from registry import intake, writes
from registry.errors import ConfigError, FieldError
from registry.events import NewEvent
from registry.intake import Item
from registry.sdk.handles import Deployment, NodeLike, node_of
from registry.sdk.session import Session
from registry.sdk.values import plain
from registry.timeutil import timestamps, to_timestamp


def _columns(table: Any, models: Any, at: Any, trace_ids: Any) -> tuple[Any, ...]:
    """``(records, outputs, models, at, trace_ids)`` from a pyarrow table; the optional
    columns it lacks keep the values given."""
    names = set(table.column_names)
    return (
        table.column("record"),
        table.column("output"),
        plain(table.column("model")) if "model" in names else models,
        plain(table.column("at")) if "at" in names else at,
        plain(table.column("trace_id")) if "trace_id" in names else trace_ids,
    )


def _models_per_row(n: int, model: NodeLike | None, models: Any) -> list[str]:
    """The model version id of each of ``n`` rows, from ``model`` or ``models``."""
    if (model is None) == (models is None):
        raise FieldError(
            "model", "log_predictions: give either model= (whole batch) or models= (per row)"
        )
    per_row = [node_of(model)] * n if model is not None else [node_of(m) for m in models or []]
    if len(per_row) != n:
        raise FieldError("models", f"log_predictions: {n} records but {len(per_row)} models")
    return per_row


def _times(n: int, at: Any) -> list[str]:
    """The stored time of each of ``n`` rows: one time for all, or one per row."""
    if at is None or (not isinstance(at, list | tuple) and not hasattr(at, "tolist")):
        return [to_timestamp(at, "at")] * n
    times = timestamps(plain(at), "at[{}]")
    if len(times) != n:
        raise FieldError("at", f"log_predictions: {n} records but {len(times)} times")
    return times


def _traces(n: int, trace_ids: Sequence[Any] | None) -> list[str | None] | None:
    """The trace id (or None) of each of ``n`` rows, or None when none were given."""
    if trace_ids is None:
        return None
    traces = [None if t is None else str(t) for t in trace_ids]
    if len(traces) != n:
        raise FieldError("trace_ids", f"log_predictions: {n} records but {len(traces)} trace ids")
    return traces


def _batch_namespace(batch_id: str | uuid.UUID | None) -> uuid.UUID | None:
    """The UUID a batch's event ids are derived from, or None for fresh ids."""
    if batch_id is None or isinstance(batch_id, uuid.UUID):
        return batch_id
    if isinstance(batch_id, str):
        try:
            return uuid.UUID(batch_id)
        except ValueError:
            pass
    raise FieldError(
        "batch_id",
        f"log_predictions: batch_id is {type(batch_id).__name__} {str(batch_id)[:40]!r}; "
        "expected a uuid.UUID or its text (8-4-4-4-12 hex digits)",
    )


class PredictionLog(Session):
    """The prediction calls of a ``Registry``."""

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
        batch_id: str | uuid.UUID | None = None,
    ) -> list[int]:
        """Log a batch of predictions; return the positions of the events written.

        Give ``model`` for the whole batch or ``models`` row by row; ``at`` is one
        time for all rows, or one per row (default: now). A pyarrow ``table``
        with columns record, output and optionally model, at, trace_id may stand
        in for the keyword columns.

        With a ``batch_id`` (a UUID, or its text) the events' ids are derived from it
        (chunk i: ``uuid5(batch_id, str(i))``): sending the same batch again, with the
        same ``at``, writes nothing and returns the same positions.
        """
        events = self._prediction_items(
            deployment, records, outputs, model, models, at, trace_ids, table, batch_id
        )
        return self._append(events) if events else []

    def _seal_predictions(
        self,
        deployment: Deployment | str,
        *,
        records: Any = None,
        outputs: Any = None,
        model: NodeLike | None = None,
        models: Sequence[NodeLike] | None = None,
        at: Any = None,
        trace_ids: Sequence[str | None] | None = None,
        batch_id: str | uuid.UUID | None = None,
    ) -> list[NewEvent]:
        """The events ``log_predictions`` would append for the same arguments, sealed
        (record keys pseudonymised, the payload made) but not appended: a prediction
        logger's sender seals the next batch in one process while another appends
        the last (``Ledger.append`` takes them as they are). A local ledger only."""
        items = self._prediction_items(
            deployment, records, outputs, model, models, at, trace_ids, None, batch_id
        )
        events, vault_writes = intake.seal(self.ledger, items)
        if vault_writes is not None:  # predictions write nothing to the vault
            raise ConfigError("sealing predictions asked for vault writes; expected none")
        return events

    def _prediction_items(
        self,
        deployment: Deployment | str,
        records: Any,
        outputs: Any,
        model: NodeLike | None,
        models: Sequence[NodeLike] | None,
        at: Any,
        trace_ids: Sequence[str | None] | None,
        table: Any,
        batch_id: str | uuid.UUID | None,
    ) -> list[Item]:
        """The items of a batch of predictions, checked as ``log_predictions`` checks them."""
        namespace = _batch_namespace(batch_id)
        if table is not None:
            records, outputs, models, at, trace_ids = _columns(table, models, at, trace_ids)
        if records is None or outputs is None:
            raise FieldError(
                "records" if records is None else "outputs",
                "log_predictions: records= and outputs= (or table=) are required",
            )
        keys, outs = plain(records), plain(outputs)
        n = len(keys)
        if len(outs) != n:
            raise FieldError(
                "outputs",
                f"log_predictions: {n} records but {len(outs)} outputs; "
                "expected one output per record",
            )
        per_row = _models_per_row(n, model, models)
        times = _times(n, at)
        traces = _traces(n, trace_ids)
        node = self._deployment(deployment)
        rows = {"records": keys, "outputs": outs, "models": per_row, "times": times}
        return writes.prediction_items(self, node, rows, traces, batch=namespace)
