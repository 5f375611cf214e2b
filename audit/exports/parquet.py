"""The Parquet export: one file per table, with stable, documented schemas.

``TABLES`` pins each file's schema (column names, Arrow types, nullability and a
description per column; the schema's metadata names the table and its schema
version). ``write`` streams: rows are read through a server-side cursor (a plain
cursor on SQLite, which reads lazily) in chunks and written a row group at a
time, so memory stays bounded whatever the log's size. Predictions are decoded
from their Arrow payloads a batch at a time, never through the prediction index.

Timestamps are UTC microseconds; hashes are lowercase hex. Every JSON column
(``JSON_COLUMNS``) holds RFC 8785 (JCS, canonical) text, whichever version of
mlledger stored the value: catalogue JSON and prediction outputs stored before they
were canonical are encoded again on the way out. Only values that may differ from
their canonical form are decoded: vectorised regular expressions pick them (an
object's key order is checked without decoding it when it is flat), and each distinct
value is decoded once. ``events.body`` is exported as stored: the ledger stores it
canonical, and the event's leaf hash covers that very text.

The stored text of a timestamp is read in today's fixed-width form or
the one earlier versions wrote (years before 1000 with fewer than four digits); a
value that is neither stops the export with an error naming the table, the column
and the row (nothing is left behind).
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audit.exports.scope import Progress, Scope
from audit.outdir import export_dir
from registry.canonical import canonical_text, loads, printable
from registry.errors import LedgerError
from registry.store import Store
from registry.store.raw import Raw
from registry.timeutil import stored_form

SCHEMA_VERSION = "1"
ROWS_PER_CHUNK = 20_000
# Page cache of the export's SQLite connection (KiB); restored afterwards.
EXPORT_CACHE_KIB = 8_192
COMPRESSION = "zstd"
# Prediction batches hold up to 1,000,000 rows each; a few at a time bound memory.
PAYLOADS_PER_CHUNK = 4
TIME = pa.timestamp("us", tz="UTC")
_cursors = itertools.count()


def _field(name: str, kind: pa.DataType, description: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, kind, nullable=nullable, metadata={"description": description})


def _schema(table: str, description: str, *fields: pa.Field) -> pa.Schema:
    return pa.schema(
        fields,
        metadata={
            "mlledger.table": table,
            "mlledger.schema_version": SCHEMA_VERSION,
            "description": description,
        },
    )


_POSITION = "Log position of the event that registered it."
TABLES: dict[str, pa.Schema] = {
    "events": _schema(
        "events",
        "Every event of the log in scope, in log order, as the log holds it now.",
        _field("position", pa.int64(), "Log position: 0, 1, 2, ... with no gaps."),
        _field("event_id", pa.string(), "The event's UUID (idempotency key)."),
        _field("type", pa.string(), "Event type, e.g. model-version-registered."),
        _field("schema_version", pa.int32(), "Version of the type's body schema."),
        _field("project", pa.string(), "Project."),
        _field("entity", pa.string(), "Node id of the entity the event is about."),
        _field("actor", pa.string(), "Who appended it."),
        _field("occurred_at", TIME, "When it happened, as the client said."),
        _field("recorded_at", TIME, "When the log recorded it."),
        _field("body", pa.string(), "The body, canonical JSON."),
        _field("personal_refs", pa.string(), "Pseudonyms the event refers to, JSON."),
        _field("trace_id", pa.string(), "OpenTelemetry trace id.", nullable=True),
        _field("leaf_hash", pa.string(), "RFC 9162 leaf hash in the Merkle tree, hex."),
        _field(
            "redacted_by",
            pa.int64(),
            "Position of the subject-erased event that rewrote it, if one did.",
            nullable=True,
        ),
    ),
    "runs": _schema(
        "runs",
        "Training and other runs.",
        _field("id", pa.string(), "Run id (run:<uuid>)."),
        _field("project", pa.string(), "Project."),
        _field("job", pa.string(), "Job name."),
        _field("status", pa.string(), "running, completed or failed."),
        _field("params", pa.string(), "Parameters, JSON object."),
        _field("metrics", pa.string(), "Final metric values, JSON object."),
        _field("code", pa.string(), "Code version (repository, commit, ...), JSON object."),
        _field("environment", pa.string(), "Environment (packages, image, ...), JSON object."),
        _field("tags", pa.string(), "Tags, JSON object."),
        _field("parent_run", pa.string(), "Parent run id.", nullable=True),
        _field("actor", pa.string(), "Who started it."),
        _field("started_at", TIME, "Start time."),
        _field("ended_at", TIME, "End time.", nullable=True),
        _field("error_type", pa.string(), "Error type of a failed run.", nullable=True),
        _field("position", pa.int64(), _POSITION),
    ),
    "dataset_versions": _schema(
        "dataset_versions",
        "Dataset versions, with their digests and record counts.",
        _field("id", pa.string(), "Dataset version id (dataset:<project>/<name>@<version>)."),
        _field("project", pa.string(), "Project."),
        _field("name", pa.string(), "Dataset name."),
        _field("version", pa.string(), "Version."),
        _field("digest", pa.string(), "Content digest, e.g. sha256:<hex>."),
        _field("uri", pa.string(), "Where the data lives."),
        _field("schema", pa.string(), "Column names and types, JSON object.", nullable=True),
        _field("row_count", pa.int64(), "Rows, as declared.", nullable=True),
        _field("records", pa.int64(), "Distinct records listed in the registry."),
        _field("produced_by", pa.string(), "Run that wrote it.", nullable=True),
        _field("derived_from", pa.string(), "Dataset versions it derives from, JSON list."),
        _field("tags", pa.string(), "Tags, JSON object."),
        _field("registered_at", TIME, "Registration time."),
        _field("position", pa.int64(), _POSITION),
    ),
    "model_versions": _schema(
        "model_versions",
        "Model versions.",
        _field("id", pa.string(), "Model version id (model:<project>/<name>@<version>)."),
        _field("project", pa.string(), "Project."),
        _field("name", pa.string(), "Model name."),
        _field("version", pa.string(), "Version."),
        _field("run", pa.string(), "Run that trained it.", nullable=True),
        _field("artifact_uri", pa.string(), "Where the artifact lives."),
        _field("artifact_digest", pa.string(), "Artifact digest, e.g. sha256:<hex>."),
        _field("framework", pa.string(), "Framework.", nullable=True),
        _field("tags", pa.string(), "Tags, JSON object."),
        _field("registered_at", TIME, "Registration time."),
        _field("position", pa.int64(), _POSITION),
    ),
    "deployments": _schema(
        "deployments",
        "Deployments, as configured last.",
        _field("id", pa.string(), "Deployment id (deployment:<project>/<name>)."),
        _field("project", pa.string(), "Project."),
        _field("name", pa.string(), "Deployment name."),
        _field("endpoint", pa.string(), "Endpoint."),
        _field("status", pa.string(), "active or retired."),
        _field("served", pa.string(), "Model versions served and traffic shares, JSON."),
        _field("created_at", TIME, "Creation time."),
        _field("updated_at", TIME, "Last change."),
        _field("position", pa.int64(), _POSITION),
    ),
    "alias_history": _schema(
        "alias_history",
        "Where each alias (stage) of a model pointed, from when to when, moved by whom.",
        _field("project", pa.string(), "Project."),
        _field("name", pa.string(), "Model name."),
        _field("alias", pa.string(), "Alias, e.g. production."),
        _field("model", pa.string(), "Model version id it pointed at."),
        _field("moved_by", pa.string(), "Who moved it there (the approver)."),
        _field("valid_from", TIME, "From."),
        _field("valid_to", TIME, "To; null while it still points there.", nullable=True),
        _field("opened_pos", pa.int64(), "Position of the move."),
        _field("closed_pos", pa.int64(), "Position of the next move.", nullable=True),
    ),
    "deployment_history": _schema(
        "deployment_history",
        "Which model version a deployment served, with what traffic, from when to when.",
        _field("deployment", pa.string(), "Deployment id."),
        _field("model", pa.string(), "Model version id."),
        _field("traffic", pa.float64(), "Share of traffic, percent."),
        _field("endpoint", pa.string(), "Endpoint."),
        _field("valid_from", TIME, "From."),
        _field("valid_to", TIME, "To; null while still served.", nullable=True),
        _field("opened_pos", pa.int64(), "Position of the configuration."),
        _field("closed_pos", pa.int64(), "Position that ended it.", nullable=True),
    ),
    "predictions": _schema(
        "predictions",
        "Every prediction: which model version, in which deployment, scored which record.",
        _field("position", pa.int64(), "Position of its predictions-logged event."),
        _field("seq", pa.int32(), "Row within the batch."),
        _field("project", pa.string(), "Project."),
        _field("deployment", pa.string(), "Deployment id."),
        _field("model", pa.string(), "Model version id."),
        _field("record", pa.string(), "Record pseudonym; null once erased.", nullable=True),
        _field("output", pa.string(), "The output, JSON; null once erased.", nullable=True),
        _field("at", TIME, "When it was made."),
        _field("trace_id", pa.string(), "OpenTelemetry trace id.", nullable=True),
    ),
    "access_trail": _schema(
        "access_trail",
        "Every access decision of the API: who asked what, allowed or denied.",
        _field("seq", pa.int64(), "Sequence number: 0, 1, 2, ... with no gaps."),
        _field("at", TIME, "When."),
        _field("actor", pa.string(), "Who asked (the key's name and id)."),
        _field("project", pa.string(), "Project asked about.", nullable=True),
        _field("action", pa.string(), "Action, e.g. questions.scored."),
        _field("resource", pa.string(), "The request's path and query."),
        _field("source", pa.string(), "Client address."),
        _field("outcome", pa.string(), "allow or deny."),
        _field("status", pa.int32(), "HTTP status answered."),
        _field("reason", pa.string(), "Why."),
        _field("trace_id", pa.string(), "OpenTelemetry trace id.", nullable=True),
        _field("leaf_hash", pa.string(), "Leaf hash in the trail's Merkle tree, hex."),
    ),
}


#: The columns of each table that hold JSON text, all of it RFC 8785 (canonical) text.
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("body", "personal_refs"),
    "runs": ("params", "metrics", "code", "environment", "tags"),
    "dataset_versions": ("schema", "derived_from", "tags"),
    "model_versions": ("tags",),
    "deployments": ("served",),
    "predictions": ("output",),
}
# Exported as stored: the ledger writes it canonical, and the leaf hash covers this text.
_AS_STORED = {("events", "body")}

# Where JSON text written by this or an earlier version may differ from RFC 8785, as
# RE2 patterns (false alarms only cost a re-encoding). A number starts the text or
# follows ':', ',' or '['. Earlier versions wrote the catalogue with Python's encoder
# (keys sorted by code point, non-ASCII escaped), an event's personal_refs with ', '
# between items, and prediction outputs with repr() and unsorted keys.
_START = r"(?:^|[:,\[])-?"
_STORED = "|".join(
    (
        _START + r"[0-9]+\.0(?:[,\]}]|$)",  # an integral float: 1.0 (JCS: 1)
        _START + r"[0-9]+(?:\.[0-9]+)?[eE]",  # an exponent: 1e-07, 1e+20 (JCS: 1e-7, 1000...)
        _START + r"[0-9]{16}",  # an integer past a double's exact range
        r"\\u(?:[^0]|0[^0]|00[^01])",  # an escaped printable character (JCS writes it)
        r"[,:] ",  # a separator with a space
    )
)
# Prediction outputs: an earlier version did not sort keys, so an object of two or
# more keys may be out of order. A flat one (values scalars or arrays of numbers; keys
# and strings without '"', '\\', ',' or control characters, keys without characters
# beyond U+FFFF) is split at ',"' into its members, which are put in order without
# decoding them; any other object is decoded.
_OBJECT = r"\{.*,"
_NUMBER = r"-?[0-9][0-9.eE+-]*|true|false|null"
_SCALAR = rf'"[^"\\,\x00-\x1f]*"|{_NUMBER}'
_VALUE = rf"(?:{_SCALAR}|\[(?:(?:{_NUMBER})(?:,(?:{_NUMBER}))*)?\])"
_KEY = r'"[^"\\,\x00-\x1f\x{10000}-\x{10FFFF}]*"'
_FLAT = rf"^\{{{_KEY}:{_VALUE}(?:,{_KEY}:{_VALUE})*\}}$"


class UnreadableJson(LedgerError):
    """A stored JSON value that cannot be read or written canonical: the export stops."""


def _misplaced(members: pa.ListArray, keys: pa.Array, row: pa.Array) -> pa.Array:
    """Per object (``members``: its members; ``keys`` and ``row``: each member's key and
    object): whether a key is not strictly below the next, in UTF-16 code units, which
    for keys without characters beyond U+FFFF is the order of their UTF-8 bytes,
    Arrow's order of strings."""
    pairs = len(keys) - 1
    if pairs < 1:
        return pc.less(pc.list_value_length(members), 0)  # False for each
    before_next = pc.and_(
        pc.equal(row.slice(0, pairs), row.slice(1)),
        pc.invert(pc.less(keys.slice(0, pairs), keys.slice(1))),
    )
    member = pc.is_in(row, value_set=row.slice(0, pairs).filter(before_next))
    return member.take(members.offsets.slice(0, len(members)))  # each object's first


def _in_order(texts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Flat objects (``_FLAT``) with their members in RFC 8785 order, and whether each
    is (False: a key repeats, which only decoding settles)."""
    members = pc.split_pattern(pc.utf8_slice_codeunits(texts, 2, -1), ',"')  # no '{"', '}'
    row = pc.list_parent_indices(members)
    keys = pc.list_element(pc.split_pattern(pc.list_flatten(members), '":', max_splits=1), 0)
    misplaced = _misplaced(members, keys, row)
    if not pc.any(misplaced).as_py():
        return texts, pc.invert(misplaced)
    # Sorted by object, then key: each object's members stay within its offsets.
    order = pc.sort_indices(
        pa.table({"row": row, "key": keys}), sort_keys=[("row", "ascending"), ("key", "ascending")]
    )
    ordered = pa.ListArray.from_arrays(members.offsets, pc.list_flatten(members).take(order))
    rebuilt = pc.binary_join_element_wise('{"', pc.binary_join(ordered, ',"'), "}", "")
    return rebuilt, pc.invert(_misplaced(ordered, keys.take(order), row))


def _canonical(
    values: pa.Array | pa.ChunkedArray, unsorted: bool, where: Callable[[int], str], hint: str
) -> pa.Array | pa.ChunkedArray:
    """``values`` (JSON text; nulls stay null) as RFC 8785 text. The values that may not
    be canonical (``_STORED``; with ``unsorted``, objects whose keys may be out of
    order) are decoded and encoded again, each distinct one once, but for flat objects
    put in order as they stand; the others are canonical already. ``where(i)`` names
    row ``i`` in an error."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    mask = pc.fill_null(pc.match_substring_regex(values, _STORED), False)
    if unsorted:
        objects = pc.and_not(pc.fill_null(pc.match_substring_regex(values, _OBJECT), False), mask)
        if pc.any(objects).as_py():
            candidates = values.filter(objects)
            flat = pc.match_substring_regex(candidates, _FLAT)
            if pc.any(flat).as_py():
                ordered, settled = _in_order(candidates.filter(flat))
                candidates = pc.replace_with_mask(candidates, flat, ordered)
                flat = pc.replace_with_mask(flat, flat, settled)
                values = pc.replace_with_mask(values, objects, candidates)
            mask = pc.or_(mask, pc.replace_with_mask(objects, objects, pc.invert(flat)))
    if not pc.any(mask).as_py():
        return values
    distinct = values.filter(mask).dictionary_encode()
    fixed = []
    for text in distinct.dictionary.to_pylist():
        try:
            fixed.append(canonical_text(loads(text))[0])
        except (ValueError, RecursionError) as exc:
            row = values.to_pylist().index(text)
            shown = printable(text if len(text) <= 80 else text[:77] + "...")
            raise UnreadableJson(
                f"{where(row)} holds {shown!r}, which is not JSON that RFC 8785 can write "
                f"({exc}); expected a JSON value of finite numbers, strings, booleans, null, "
                f"lists and objects. Nothing was exported. {hint}"
            ) from None
    return pc.replace_with_mask(values, mask, pa.array(fixed, pa.string()).take(distinct.indices))


_CATALOGUE_HINT = (
    "The ledger never writes such a value: 'mlledger audit verify' checks the log, and "
    "'mlledger rebuild' rewrites the catalogue tables from it"
)
_PAYLOAD_HINT = (
    "The ledger never writes such a value: 'mlledger audit verify' checks every "
    "prediction payload against the digest its event holds"
)


def _in_scope(scope: Scope, column: str) -> tuple[str, list[Any]]:
    """Rows whose registering event (at ``column``) is in scope."""
    where, params = scope.events_where("e")
    return f"EXISTS (SELECT 1 FROM events e WHERE e.position = {column} AND {where})", params


def _queries(scope: Scope, postgres: bool) -> dict[str, tuple[str, list[Any]]]:
    """SELECT statement and parameters of each table but predictions. Hashes are
    turned to hex by the database; an event's ``redacted_by`` is added afterwards."""

    def hexed(column: str) -> str:
        return f"encode({column}, 'hex')" if postgres else f"lower(hex({column}))"

    events, event_params = scope.events_where("e")
    trail, trail_params = scope.trail_where("t")
    runs, runs_params = _in_scope(scope, "r.position")
    sets, sets_params = _in_scope(scope, "d.position")
    models, models_params = _in_scope(scope, "m.position")
    deps, deps_params = _in_scope(scope, "d.position")
    aliases, aliases_params = _in_scope(scope, "a.opened_pos")
    served, served_params = _in_scope(scope, "h.opened_pos")
    return {
        "events": (
            "SELECT e.position, e.event_id, e.type, e.schema_version, e.project, e.entity, "
            "e.actor, e.occurred_at, e.recorded_at, e.body, e.personal_refs, e.trace_id, "
            f"{hexed('e.leaf_hash')} FROM events e WHERE {events} ORDER BY e.position",
            event_params,
        ),
        "runs": (
            "SELECT r.id, r.project, r.job, r.status, r.params, r.metrics, r.code, "
            "r.environment, r.tags, r.parent_run, r.actor, r.started_at, r.ended_at, "
            f"r.error_type, r.position FROM cat_runs r WHERE {runs} ORDER BY r.position",
            runs_params,
        ),
        "dataset_versions": (
            "SELECT d.id, d.project, d.name, d.version, d.digest, d.uri, d.schema, "
            "d.row_count, COALESCE(c.records, 0), d.produced_by, d.derived_from, d.tags, "
            "d.registered_at, d.position FROM cat_datasets d LEFT JOIN dataset_record_counts c "
            f"ON c.dataset = d.id WHERE {sets} ORDER BY d.position",
            sets_params,
        ),
        "model_versions": (
            "SELECT m.id, m.project, m.name, m.version, m.run, m.artifact_uri, "
            "m.artifact_digest, m.framework, m.tags, m.registered_at, m.position "
            f"FROM cat_models m WHERE {models} ORDER BY m.position",
            models_params,
        ),
        "deployments": (
            "SELECT d.id, d.project, d.name, d.endpoint, d.status, d.served, d.created_at, "
            f"d.updated_at, d.position FROM cat_deployments d WHERE {deps} ORDER BY d.position",
            deps_params,
        ),
        "alias_history": (
            "SELECT a.project, a.name, a.alias, a.model, a.moved_by, a.valid_from, a.valid_to, "
            "a.opened_pos, CASE WHEN a.closed_pos < ? THEN a.closed_pos END "
            f"FROM alias_history a WHERE {aliases} ORDER BY a.opened_pos",
            [scope.upto, *aliases_params],
        ),
        "deployment_history": (
            "SELECT h.deployment, h.model, h.traffic, h.endpoint, h.valid_from, h.valid_to, "
            "h.opened_pos, CASE WHEN h.closed_pos < ? THEN h.closed_pos END "
            f"FROM deployment_history h WHERE {served} "
            "ORDER BY h.opened_pos, h.deployment, h.model",
            [scope.upto, *served_params],
        ),
        "access_trail": (
            "SELECT t.seq, t.at, t.actor, t.project, t.action, t.resource, t.source, "
            f"t.outcome, t.status, t.reason, t.trace_id, {hexed('t.leaf_hash')} "
            "FROM access_trail t "
            f"WHERE {trail} ORDER BY t.seq",
            trail_params,
        ),
    }


def _stream(conn: Any, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Chunks of rows of a query, read lazily: a named (server-side) cursor on
    PostgreSQL, a plain one on SQLite (which steps through the result as fetched)."""
    raw = Raw(conn)
    dbapi = conn.connection.dbapi_connection
    if raw.postgres:
        cursor = dbapi.cursor(name=f"mlledger_export_{next(_cursors)}")
        cursor.itersize = size
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(raw._prepare(sql), list(params))
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


# Columns that name a row in an error, besides each table's first.
_ROW_NAMES = ("position", "opened_pos")


class UnreadableTime(LedgerError):
    """A stored timestamp that is not one: the export stops rather than guess."""


def _times(
    values: Sequence[str | None] | pa.Array | pa.ChunkedArray, where: Callable[[int], str]
) -> pa.Array | pa.ChunkedArray:
    """Stored timestamps as Arrow timestamps; ``where(i)`` names row ``i`` in an error."""
    strings = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    try:
        return strings.cast(pa.string()).cast(TIME)
    except pa.ArrowInvalid:
        pass  # an older version's form, or worse: value by value
    fixed: list[str | None] = []
    for i, text in enumerate(strings.to_pylist()):
        form = None if text is None else stored_form(text)
        if text is not None and form is None:
            raise UnreadableTime(
                f"{where(i)} holds {text!r}, which is not a timestamp (expected "
                "YYYY-MM-DDTHH:MM:SS.ffffffZ); nothing was exported. The ledger never writes "
                "such a value: 'mlledger audit verify' checks the log, and 'mlledger rebuild' "
                "rewrites the catalogue tables from it"
            )
        fixed.append(form)
    return pa.array(fixed, pa.string()).cast(TIME)


def _batch(
    schema: pa.Schema, rows: list[Any], redacted: dict[int, int] | None = None
) -> pa.RecordBatch:
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    if redacted is not None:  # the events' last column, from their positions
        columns.append([redacted.get(p) for p in columns[0]] if redacted else [None] * len(rows))
    table = (schema.metadata or {}).get(b"mlledger.table", b"?").decode()
    names = list(dict.fromkeys(n for n in (schema.names[0], *_ROW_NAMES) if n in schema.names))
    keys = [columns[schema.names.index(n)] for n in names]

    def where(column: str) -> Callable[[int], str]:
        def name(i: int) -> str:
            row = ", ".join(f"{n}={k[i]!r}" for n, k in zip(names, keys, strict=True))
            return f"{table}.{column} of the row with {row}"

        return name

    arrays = []
    json_columns = JSON_COLUMNS.get(table, ())
    for field, values in zip(schema, columns, strict=True):
        if field.type == TIME:
            arrays.append(_times(values, where(field.name)))
        elif field.name in json_columns and (table, field.name) not in _AS_STORED:
            array = pa.array(values, field.type)
            arrays.append(_canonical(array, False, where(field.name), _CATALOGUE_HINT))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _predictions(
    conn: Any, scope: Scope, writer: pq.ParquetWriter, progress: Progress | None
) -> int:
    schema = TABLES["predictions"]
    where, params = scope.events_where("e")
    sql = (
        "SELECT e.position, e.project, e.entity, e.body, p.payload FROM events e "
        f"JOIN event_payloads p ON p.position = e.position WHERE {where} "
        "AND e.type = 'predictions-logged' ORDER BY e.position"
    )
    written = 0
    for chunk in _stream(conn, sql, params, PAYLOADS_PER_CHUNK):
        for position, project, deployment, body, payload in chunk:
            table = pa.ipc.open_stream(bytes(payload)).read_all()
            n = table.num_rows
            models = pa.array(json.loads(body)["models"], pa.string())
            batch = pa.Table.from_arrays(
                [
                    pa.array([position] * n, pa.int64()),
                    pa.array(range(n), pa.int32()),
                    pa.array([project] * n, pa.string()),
                    pa.array([deployment] * n, pa.string()),
                    models.take(table.column("model")),
                    table.column("record").cast(pa.string()),
                    _canonical(
                        table.column("output").cast(pa.string()),
                        True,
                        _batch_row(position, "output"),
                        _PAYLOAD_HINT,
                    ),
                    _times(table.column("at"), _batch_row(position, "at")),
                    table.column("trace_id").cast(pa.string()),
                ],
                schema=schema,
            )
            writer.write_table(batch, row_group_size=ROWS_PER_CHUNK * 4)
            written += n
            if progress is not None:
                progress(n)
    return written


def _batch_row(position: int, column: str) -> Callable[[int], str]:
    return lambda i: f"predictions.{column} of row {i} of the batch at position {position}"


def _redactions(raw: Raw, scope: Scope) -> dict[int, int]:
    """Redacted event -> position of the (first) erasure that rewrote it."""
    return {
        int(position): int(erased)
        for position, erased in raw.all(
            "SELECT position, MIN(erased_pos) FROM redactions WHERE position < ? GROUP BY position",
            (scope.upto,),
        )
    }


def _prefetched(chunks: Iterator[list[Any]], depth: int = 2) -> Iterator[list[Any]]:
    """``chunks``, read ahead by a thread (the database steps through rows while the
    caller converts and compresses the previous chunk); at most ``depth`` chunks wait."""
    pending: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        pending.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item: Any = done
        except BaseException as exc:  # handed to the consumer, raised there
            item = exc
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="export-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = pending.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def write(
    store: Store, out: Path, scope: Scope, progress: Progress | None = None
) -> list[tuple[Path, int]]:
    """Write ``<table>.parquet`` for every table of ``TABLES`` into ``out``; returns each
    file with its row count."""
    target = export_dir(out)
    written: list[tuple[Path, int]] = []
    with store.read() as conn:
        raw = Raw(conn)
        queries = _queries(scope, raw.postgres)
        redacted = _redactions(raw, scope)
        if not raw.postgres:  # a small page cache: the export reads each page once
            cache = raw.scalar("PRAGMA cache_size")
            raw.run(f"PRAGMA cache_size=-{EXPORT_CACHE_KIB}")
        try:
            for table, schema in TABLES.items():
                path = target / f"{table}.parquet"
                rows = 0
                with pq.ParquetWriter(path, schema, compression=COMPRESSION) as writer:
                    if table == "predictions":
                        rows = _predictions(conn, scope, writer, progress)
                    else:
                        sql, params = queries[table]
                        extra = redacted if table == "events" else None
                        for chunk in _prefetched(_stream(conn, sql, params, ROWS_PER_CHUNK)):
                            writer.write_batch(_batch(schema, chunk, extra))
                            rows += len(chunk)
                            if progress is not None:
                                progress(len(chunk))
                written.append((path, rows))
        finally:
            if not raw.postgres:
                raw.run(f"PRAGMA cache_size={int(cache)}")
    return written


def count(store: Store, scope: Scope) -> int:
    """How many rows ``write`` will write (the total of a progress bar)."""
    total = 0
    with store.read() as conn:
        raw = Raw(conn)
        for sql, params in _queries(scope, raw.postgres).values():
            inner = sql.rsplit(" ORDER BY ", 1)[0]
            total += int(raw.scalar(f"SELECT COUNT(*) FROM ({inner}) q", params) or 0)
        where, params = scope.events_where("e")
        total += _prediction_rows(raw, where, params)
    return total


def _prediction_rows(raw: Raw, where: str, params: list[Any]) -> int:
    rows = 0
    for (body,) in raw.all(
        f"SELECT e.body FROM events e WHERE {where} AND e.type = 'predictions-logged'", params
    ):
        rows += int(json.loads(body)["count"])
    return rows


def schema_markdown() -> str:
    """The schemas as Markdown tables, one per file (docs/exports.md shows them)."""
    parts = []
    for table, schema in TABLES.items():
        meta = schema.metadata or {}
        parts.append(f"### `{table}.parquet`\n")
        parts.append(meta.get(b"description", b"").decode() + "\n")
        parts.append("| column | type | null | description |")
        parts.append("|---|---|---|---|")
        for field in schema:
            description = (field.metadata or {}).get(b"description", b"").decode()
            kind = "timestamp[us, UTC]" if field.type == TIME else str(field.type)
            null = "yes" if field.nullable else "no"
            parts.append(f"| `{field.name}` | {kind} | {null} | {description} |")
        parts.append("")
    return "\n".join(parts)
