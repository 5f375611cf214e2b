"""Columnar payloads: prediction batches as Arrow IPC streams beside their event.

A ``predictions-logged`` event's body holds the batch's size, its model
versions and the SHA-256 digest of an Arrow IPC stream stored in the
append-only ``event_payloads`` table under the same position. The digest is in
the hashed leaf, so the payload is as tamper-evident as the body, while the
rows stay columnar: cheap to write, to replay and to export (pyarrow).

The stream's buffers are LZ4-compressed. Columns: ``record`` (pseudonym,
string), ``model`` (int32 index into the body's ``models``), ``output`` (JSON
text), ``at`` (timestamp string) and ``trace_id`` (string, nullable).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from registry.limits import MAX_TRACE_ID

FORMAT = "arrow-ipc-stream/1"
SCHEMA = pa.schema(
    [
        pa.field("record", pa.string(), nullable=False),
        pa.field("model", pa.int32(), nullable=False),
        pa.field("output", pa.string(), nullable=False),
        pa.field("at", pa.string(), nullable=False),
        pa.field("trace_id", pa.string(), nullable=True),
    ]
)
COLUMNS = tuple(SCHEMA.names)
# A batch after an erasure: the erased rows keep their model and time (prediction
# counts stand) but lose their record, output and trace id.
REDACTED_SCHEMA = pa.schema(
    [f.with_nullable(True) if f.name in ("record", "output") else f for f in SCHEMA]
)
# LZ4-frame buffers halve a batch (pseudonyms are hex, times repeat) for ~1 µs a row;
# any Arrow reader decompresses them transparently.
_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"


def digest(payload: bytes) -> str:
    """``sha256:<hex>`` of a payload's bytes."""
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def encode_predictions(
    record: list[str],
    model: list[int],
    output: list[str],
    at: list[str],
    trace_id: list[str | None] | None,
) -> bytes:
    """Columns (equal lengths, outputs already JSON text) to an Arrow IPC stream."""
    n = len(record)
    table = pa.Table.from_arrays(
        [
            pa.array(record, pa.string()),
            pa.array(model, pa.int32()),
            pa.array(output, pa.string()),
            pa.array(at, pa.string()),
            pa.array(trace_id if trace_id is not None else [None] * n, pa.string()),
        ],
        schema=SCHEMA,
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA, options=_WRITE_OPTIONS) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def redact_predictions(payload: bytes, records: set[str]) -> tuple[bytes, int]:
    """The payload with every row about one of ``records`` redacted (record, output and
    trace id set to null), and how many rows that was (0: the payload is unchanged)."""
    table = decode_predictions(payload)
    erased = pc.is_in(table.column("record"), value_set=pa.array(sorted(records), pa.string()))
    hits = int(pc.sum(erased).as_py() or 0)
    if not hits:
        return payload, 0
    keep = pc.invert(pc.fill_null(erased, False))
    empty = pa.scalar("", pa.string())
    null = pa.scalar(None, pa.string())

    def blank(name: str) -> pa.ChunkedArray:
        # Selecting "" first builds a new data buffer holding only the kept strings;
        # masking with null alone would keep the erased bytes in the old one.
        column = table.column(name)
        return pc.if_else(keep, pc.if_else(keep, column, empty), null)

    redacted = pa.Table.from_arrays(
        [blank("record"), table.column("model"), blank("output"), table.column("at"),
         blank("trace_id")],
        schema=REDACTED_SCHEMA,
    )  # fmt: skip
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, REDACTED_SCHEMA, options=_WRITE_OPTIONS) as writer:
        writer.write_table(redacted)
    return bytes(sink.getvalue()), hits


def decode_predictions(payload: bytes) -> pa.Table:
    """An Arrow IPC stream back to a table (raises pyarrow errors when malformed)."""
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


def check_predictions(body: dict[str, Any], payload: bytes | None) -> tuple[str, str] | None:
    """Whether ``payload`` is the batch ``body`` describes; ``(field, message)`` if not."""
    if payload is None:
        return "payload", "missing: a predictions-logged event carries its rows as a payload"
    if digest(payload) != body["payload_digest"]:
        return "body.payload_digest", "does not match the payload's SHA-256"
    try:
        table = decode_predictions(payload)
    except (pa.ArrowInvalid, OSError) as exc:
        return "payload", f"not an Arrow IPC stream ({exc})"
    if not table.schema.equals(SCHEMA):
        return "payload", f"columns {table.schema.names} with other types; expected {list(COLUMNS)}"
    if table.num_rows != body["count"]:
        return "body.count", f"says {body['count']} but the payload holds {table.num_rows} rows"
    return _rows_problem(table, len(body["models"]))


def _rows_problem(table: pa.Table, models: int) -> tuple[str, str] | None:
    """``(field, message)`` for the first row value of a decoded batch that the ledger
    refuses (``models``: how many model versions its body lists), or None."""
    for name in ("record", "model", "output", "at"):
        if table.column(name).null_count:
            return f"payload.{name}", "has nulls; expected a value in every row"
    lengths = pc.utf8_length(table.column("record"))
    hex_only = pc.match_substring_regex(table.column("record"), r"^[0-9a-f]{32}$")
    if not pc.all(hex_only).as_py() or pc.min(lengths).as_py() != 32:
        return "payload.record", "expected 32-character lowercase hex pseudonyms, never raw keys"
    bounds = pc.min_max(table.column("model")).as_py()
    if bounds["min"] < 0 or bounds["max"] >= models:
        return "payload.model", f"index outside models (0..{models - 1})"
    times = pc.match_substring_regex(table.column("at"), TIMESTAMP)
    if not pc.all(times).as_py():
        return "payload.at", "expected timestamps like 2026-01-31T12:00:00.000000Z"
    traces = table.column("trace_id")
    if traces.null_count < table.num_rows:
        why = _traces_problem(traces)
        if why is not None:
            return "payload.trace_id", why
    for row, text in enumerate(table.column("output").to_pylist()):
        try:
            json.loads(text)
        except ValueError:
            return f"payload.output.{row}", "is not JSON text"
    return None


def _traces_problem(traces: pa.ChunkedArray) -> str | None:
    """Why a batch's trace ids (not all null) cannot be stored, or None."""
    longest = pc.max(pc.utf8_length(traces)).as_py()
    if longest > MAX_TRACE_ID:
        return f"holds a {longest}-character id; expected at most {MAX_TRACE_ID}"
    if pc.any(pc.match_substring(traces, "\x00")).as_py():
        return "holds the NUL character (U+0000); expected text without it"
    return None
