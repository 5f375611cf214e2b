"""Tabular data as the ledger sees a dataset version: its rows as an Arrow table, the
digest of its content, its schema, and the record keys and subjects of named columns.

``table_of`` reads a pandas DataFrame, a pyarrow Table or Dataset, a Hugging Face
``datasets.Dataset`` (its rows in the order it presents them: the indices a ``select``,
``shuffle`` or ``filter`` made are applied), or a Parquet or CSV file or directory
(``*.parquet``, ``*.csv``; a directory: every Parquet file in it, as one dataset).
Nothing is copied to the ledger: only the digest, the schema, the row count and the
(pseudonymised) record keys and subjects.

**The content digest** (``content_digest``) is ``sha256:`` over, in order: the RFC 8785
canonical JSON of the schema (``[[column, Arrow type], ...]`` in column order), a
newline, then each row as the canonical JSON of its list of values, each followed by a
newline. Values are written as JSON: numbers, text, booleans and null as themselves
(an integer beyond ±(2**53 - 1), which a JSON number cannot hold exactly, as its
decimal text; a double holding a whole number, as that integer, as JSON writes it);
NaN and infinities as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; dates
and times in ISO 8601; bytes in lowercase hex; decimals as their text; nested lists and
structs as JSON arrays and objects. The same rows in the same order with the same
column names and types give the same digest on every machine and Arrow version,
whatever the file format, compression or chunking; reordering rows or columns,
renaming or retyping a column, changes it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.canonical import canonical_json, canonical_lines
from registry.errors import InvalidInput
from registry.lazy import lazy_import

if TYPE_CHECKING:
    import pyarrow as pa
else:
    pa = lazy_import("pyarrow")

#: Rows converted to Python values at a time while digesting.
BATCH_ROWS = 65_536


def table_of(data: Any) -> pa.Table:
    """``data`` as one Arrow table; InvalidInput for anything else."""
    if isinstance(data, str | Path):
        return _read(Path(data))
    if isinstance(data, pa.Table):
        return data
    kind = type(data)
    if kind.__module__.startswith("pyarrow") and hasattr(data, "to_table"):
        return data.to_table()  # a pyarrow Dataset
    if kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame":
        return pa.Table.from_pandas(data, preserve_index=False)
    hugging_face = _hugging_face_table(data)
    if hugging_face is not None:
        return hugging_face
    raise InvalidInput(
        f"cannot read a dataset from a {kind.__module__}.{kind.__qualname__}: expected a "
        "pandas DataFrame, a pyarrow Table or Dataset, a Hugging Face datasets.Dataset, "
        "or the path of a Parquet or CSV file or of a directory of Parquet files",
        field="data",
    )


def is_table(data: Any) -> bool:
    """Whether ``table_of`` reads ``data`` as it is in memory (a DataFrame, a pyarrow
    Table or Dataset, a Hugging Face dataset), without converting it."""
    kind = type(data)
    if isinstance(data, pa.Table):
        return True
    if kind.__module__.startswith("pyarrow") and hasattr(data, "to_table"):
        return True
    if kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame":
        return True
    module = sys.modules.get("datasets")
    return module is not None and isinstance(data, getattr(module, "Dataset", ()))


def _hugging_face_table(data: Any) -> pa.Table | None:
    """The rows of a Hugging Face ``datasets.Dataset`` as one Arrow table, in the order
    the dataset presents them (``[:]`` of its Arrow format applies the indices mapping
    that ``select``, ``shuffle``, ``filter`` or ``sort`` left over the stored table);
    None when ``data`` is none of the library's objects. ``datasets`` is never imported
    here: an object of it exists only when the program imported it."""
    module = sys.modules.get("datasets")
    if module is None or not type(data).__module__.startswith("datasets."):
        return None
    if isinstance(data, module.Dataset):
        table: pa.Table = data.with_format("arrow")[:]
        return table
    if isinstance(data, module.DatasetDict):
        raise InvalidInput(
            f"a DatasetDict holds several splits ({', '.join(data)}): register each split, "
            "a datasets.Dataset, on its own",
            field="data",
        )
    if isinstance(data, module.IterableDataset):
        raise InvalidInput(
            "an IterableDataset streams its rows and cannot be digested in full: "
            "materialise it as a datasets.Dataset first",
            field="data",
        )
    return None


def _read(path: Path) -> pa.Table:
    if not path.exists():
        raise InvalidInput(
            f"no file or directory {str(path)!r} to read a dataset from", field="data"
        )
    if path.is_dir() or path.suffix == ".parquet":
        import pyarrow.dataset as ds

        if path.is_dir() and not any(path.rglob("*.parquet")):
            raise InvalidInput(f"directory {str(path)!r} holds no Parquet file", field="data")
        return ds.dataset(path, format="parquet").to_table()
    if path.suffix == ".csv":
        import pyarrow.csv as csv

        return csv.read_csv(path)
    raise InvalidInput(
        f"{str(path)!r}: expected a .parquet or .csv file, or a directory of Parquet files",
        field="data",
    )


def schema_of(table: pa.Table) -> dict[str, str]:
    """Each column's name and Arrow type, as ``dataset-version-registered`` records it."""
    return {field.name: str(field.type) for field in table.schema}


def content_digest(table: pa.Table) -> str:
    """The digest of ``table``'s content (the module's documentation says over what)."""
    digest = hashlib.sha256()
    digest.update(canonical_json([[f.name, str(f.type)] for f in table.schema]) + b"\n")
    numeric = all(_numeric(f.type) for f in table.schema)
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        columns = [_plain_values(column) for column in batch.columns]
        rows = list(zip(*columns, strict=True))
        digest.update(canonical_lines(rows, numeric_rows=numeric))
    return "sha256:" + digest.hexdigest()


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


#: The largest magnitude below which every integral double is an exact integer.
_EXACT = 2.0**53
#: The largest integer a JSON number holds exactly (RFC 8785): larger ones are text.
_SAFE_INT = 2**53 - 1


def _plain_values(column: pa.Array) -> list[Any]:
    """A column's values as the digest writes them (``_plain``), read faster for the
    common types: integers, text and booleans are JSON as they are, and a double that
    holds a whole number below 2**53 is written as that integer, as canonical JSON
    writes it anyway."""
    kind = column.type
    if pa.types.is_integer(kind):
        values = column.to_pylist()
        if pa.types.is_int64(kind) or pa.types.is_uint64(kind):
            return [_plain(v) for v in values]  # may exceed what JSON numbers hold
        return values
    if pa.types.is_boolean(kind) or pa.types.is_string(kind):
        return column.to_pylist()
    if not pa.types.is_floating(kind):
        return [_plain(v) for v in column.to_pylist()]
    import numpy as np

    array = column.to_numpy(zero_copy_only=False).astype("float64")
    finite = np.isfinite(array)
    whole = finite & (np.floor(array) == array) & (np.abs(array) < _EXACT)
    values = column.to_pylist()
    if finite.all() and not whole.any():
        return values
    return [
        v if v is None else int(v) if is_whole else _plain(v)
        for v, is_whole in zip(values, whole.tolist(), strict=True)
    ]


def _plain(value: Any) -> Any:
    """A value as the digest writes it (JSON)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_SAFE_INT <= value <= _SAFE_INT else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def column(table: pa.Table, name: str, what: str) -> list[Any]:
    """The values of column ``name`` (the ``what``: record keys, subjects)."""
    if name not in table.column_names:
        raise InvalidInput(
            f"no column {name!r} for the {what}: the data has {', '.join(table.column_names)}",
            field="key" if what == "record keys" else "subject",
        )
    return table.column(name).to_pylist()
