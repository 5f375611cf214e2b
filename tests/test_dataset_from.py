"""``Registry.dataset_from``: tabular data registered by the digest of its content, with
its schema, row count, and the record keys and subjects of named columns, on both
stores."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from registry import Registry
from registry.canonical import canonical_json
from registry.errors import FieldError, InvalidInput
from registry.sdk import tables
from registry.sdk.tables import content_digest
from tests.support.jobs import events_of

ROWS = {
    "patient": ["p-1", "p-1", "p-2", None],
    "visit": ["v-1", "v-2", "v-3", "v-4"],
    "age": [61, 61, 45, 30],
    "score": [0.25, 0.5, math.nan, 1.0],
}


def table() -> pa.Table:
    return pa.table(ROWS)


def test_a_dataframe_is_registered_by_content_with_its_records_and_subjects(
    reg: Registry, tmp_path: Path
) -> None:
    frame = pd.DataFrame(ROWS)
    version = reg.dataset_from(
        frame, "visits", key="visit", subject="patient", uri="s3://lake/visits/2026-12"
    )
    expected = content_digest(pa.Table.from_pandas(frame, preserve_index=False))
    assert version.digest == expected and version.records == 4
    registered, added = events_of(reg, version.id)
    assert registered.type == "dataset-version-registered"
    assert registered.body["digest"] == expected
    assert registered.body["row_count"] == 4
    assert registered.body["uri"] == "s3://lake/visits/2026-12"
    assert set(registered.body["schema"]) == {"patient", "visit", "age", "score"}
    assert added.type == "dataset-records-added"
    # Keys and subjects are sealed into pseudonyms: no raw value is in the log.
    assert "v-1" not in str(added.body) and "p-1" not in str(added.body)
    footprint = reg.footprint("p-1")
    assert [d["dataset"] for d in footprint["datasets"]] == [version.id]
    assert len(footprint["records"]) == 2


def test_the_digest_is_the_same_for_the_same_rows_in_any_format(
    reg: Registry, tmp_path: Path
) -> None:
    data = table()
    pq.write_table(data, tmp_path / "one.parquet")
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(data.slice(0, 2), folder / "part-0.parquet")
    pq.write_table(data.slice(2), folder / "part-1.parquet", compression="gzip")
    digests = {content_digest(data), content_digest(data.combine_chunks())}
    version = reg.dataset_from(tmp_path / "one.parquet", "visits", key="visit")
    again = reg.dataset_from(folder, "visits", key="visit")
    assert version.digest in digests and len(digests) == 1
    assert again.id == version.id and again.digest == version.digest
    # Registered once: the second call found the version.
    assert [e.type for e in events_of(reg, version.id)] == [
        "dataset-version-registered",
        "dataset-records-added",
    ]
    assert events_of(reg, version.id)[0].body["uri"] == (tmp_path / "one.parquet").as_uri()


def test_a_csv_file_is_read_with_its_inferred_types(reg: Registry, tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    pacsv.write_csv(table(), path)
    version = reg.dataset_from(path, "visits-csv", key="visit", subject="patient")
    registered = events_of(reg, version.id)[0]
    assert registered.body["schema"]["age"] == "int64"
    assert registered.body["row_count"] == 4
    assert version.digest == content_digest(pacsv.read_csv(path))


def test_any_change_of_content_changes_the_digest() -> None:
    data = table()
    base = content_digest(data)
    assert content_digest(data.slice(1)) != base
    assert content_digest(data.take([1, 0, 2, 3])) != base
    assert content_digest(data.rename_columns(["a", "visit", "age", "score"])) != base
    assert content_digest(data.set_column(2, "age", pa.array([61, 61, 45, 30], pa.int32()))) != base


def test_the_digest_is_pinned() -> None:
    """The digest's definition (docs/sdk.md) is a promise: the same rows give this
    value on every machine and Arrow version."""
    data = pa.table({"k": ["a", "b"], "x": [1.5, math.nan]})
    assert content_digest(data) == PINNED


PINNED = (
    "sha256:"
    + __import__("hashlib")
    .sha256(b'[["k","string"],["x","double"]]\n["a",1.5]\n["b","NaN"]\n')
    .hexdigest()
)


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        ({"key": "nope"}, "key", "no column 'nope' for the record keys"),
        ({"subject": "patient"}, "subject", "give key= too"),
        ({"key": "patient"}, "key", "row 3: record key None"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_written(
    reg: Registry, call: dict[str, str], field: str, message: str
) -> None:
    before = reg.ledger.last_event()
    with pytest.raises(InvalidInput, match=message) as caught:
        reg.dataset_from(table(), "visits", uri="s3://lake/v", **call)
    assert caught.value.field == field
    assert reg.ledger.last_event() == before


def test_what_cannot_be_read_is_refused(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(FieldError, match="data in memory has no location"):
        reg.dataset_from(table(), "visits")
    with pytest.raises(InvalidInput, match="expected a pandas DataFrame"):
        reg.dataset_from([1, 2, 3], "visits", uri="s3://x")
    with pytest.raises(InvalidInput, match="no file or directory"):
        reg.dataset_from(tmp_path / "missing.parquet", "visits")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInput, match=r"expected a \.parquet or \.csv file"):
        reg.dataset_from(tmp_path / "notes.txt", "visits")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="holds no Parquet file"):
        reg.dataset_from(tmp_path / "empty", "visits")
    assert reg.ledger.last_event() is None


def _reference_digest(table: pa.Table) -> str:
    """The content digest as its definition reads: each row's canonical JSON, one by
    one (``registry.sdk.tables`` documents it)."""
    digest = hashlib.sha256()
    digest.update(canonical_json([[f.name, str(f.type)] for f in table.schema]) + b"\n")
    for row in table.to_pylist():
        digest.update(canonical_json([tables._plain(v) for v in row.values()]) + b"\n")
    return "sha256:" + digest.hexdigest()


def test_digest_matches_its_definition_on_awkward_numbers() -> None:
    """The fast digest (whole batches encoded at once, doubles holding whole numbers
    written as integers) gives what the row-by-row definition gives, for the numbers
    JSON writes differently from Python (1.0, -0.0, 1e-07, 1e+21), non-finite values,
    nulls, and integers beyond what a JSON number holds (written as text)."""
    rng = np.random.default_rng(7)
    awkward = [1.0, -0.0, 1e-7, 1e21, 1e16, 2.0**53, 2.0**60, math.nan, math.inf, -math.inf]
    awkward += [None, 0.1, 3.5e-5, 123456789012345678.0, 5e-324]
    for _ in range(50):
        picks = rng.integers(0, len(awkward), size=(40, 3))
        table = pa.table(
            {
                **{f"f{c}": pa.array([awkward[i] for i in picks[:, c]]) for c in range(3)},
                "big": pa.array([int(v) for v in rng.integers(-(2**62), 2**62, size=40)]),
                "small": pa.array(rng.integers(-5, 5, size=40), type=pa.int8()),
                "flag": pa.array([bool(v) if v < 2 else None for v in rng.integers(0, 3, 40)]),
            }
        )
        assert tables.content_digest(table) == _reference_digest(table)
        worded = table.append_column("text", pa.array(["a],[b\n"] * 40))
        assert tables.content_digest(worded) == _reference_digest(worded)
    single = pa.table({"f": pa.array([1.5, 2.0, None, math.nan] * 5, type=pa.float32())})
    assert tables.content_digest(single) == _reference_digest(single)
