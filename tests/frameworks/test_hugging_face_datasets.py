"""``Registry.dataset_from`` with a Hugging Face ``datasets.Dataset``: digested over its
rows in the order it presents them (after ``select``, ``shuffle``, ``filter``), the
same digest as the same rows in a pyarrow Table or a pandas DataFrame, its record keys
and subjects sealed."""

from __future__ import annotations

import datasets
import pandas as pd
import pyarrow as pa
import pytest

from registry import Registry
from registry.errors import InvalidInput
from registry.sdk.tables import content_digest
from tests.support.jobs import events_of

ROWS = {
    "visit": [f"v-{i}" for i in range(12)],
    "patient": [f"p-{i % 5}" if i % 4 else None for i in range(12)],
    "age": [30 + i for i in range(12)],
    "score": [i / 4 for i in range(12)],
}


def rows_at(order: list[int]) -> pa.Table:
    """The rows of ``ROWS`` in ``order``, as a pyarrow Table."""
    return pa.table({name: [values[i] for i in order] for name, values in ROWS.items()})


def test_a_dataset_is_registered_by_content_with_its_records_and_subjects(
    reg: Registry,
) -> None:
    data = datasets.Dataset.from_dict(ROWS)
    version = reg.dataset_from(data, "visits", key="visit", subject="patient", uri="hf:visits")
    assert version.digest == content_digest(pa.table(ROWS))
    assert version.records == 12
    registered, added = events_of(reg, version.id)
    assert registered.type == "dataset-version-registered"
    assert registered.body["row_count"] == 12 and registered.body["uri"] == "hf:visits"
    assert registered.body["schema"] == {
        "visit": "string",
        "patient": "string",
        "age": "int64",
        "score": "double",
    }
    assert added.type == "dataset-records-added"
    # Keys and subjects are sealed into pseudonyms: no raw value is in the log.
    assert "v-1" not in str(added.body) and "p-1" not in str(added.body)
    assert [d["dataset"] for d in reg.footprint("p-1")["datasets"]] == [version.id]


def test_a_shuffled_or_selected_dataset_is_digested_in_its_own_order(reg: Registry) -> None:
    data = datasets.Dataset.from_dict(ROWS)
    shuffled = data.shuffle(seed=4)
    order = [int(v.removeprefix("v-")) for v in shuffled["visit"]]
    assert order != sorted(order)
    mixed = reg.dataset_from(shuffled, "visits", uri="hf:visits/shuffled")
    assert mixed.digest == content_digest(rows_at(order))
    assert mixed.digest != content_digest(pa.table(ROWS))

    picked = data.select([7, 2, 9]).filter(lambda row: row["age"] > 32)
    chosen = reg.dataset_from(picked, "visits", uri="hf:visits/picked")
    assert chosen.digest == content_digest(rows_at([7, 9]))
    assert [e.body["row_count"] for e in events_of(reg, chosen.id)[:1]] == [2]


def test_the_same_rows_give_the_digest_of_a_dataframe(reg: Registry) -> None:
    numbers = {"age": ROWS["age"], "score": ROWS["score"]}
    from_hub = reg.dataset_from(datasets.Dataset.from_dict(numbers), "n", uri="hf:n")
    from_frame = reg.dataset_from(pd.DataFrame(numbers), "n", uri="s3://n")
    assert from_hub.digest == from_frame.digest
    assert from_hub.id == from_frame.id  # registering it again finds the version there
    assert len(events_of(reg, from_hub.id)) == 1


def test_a_dataset_dict_is_refused(reg: Registry) -> None:
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict(ROWS)})
    with pytest.raises(InvalidInput, match="register each split"):
        reg.dataset_from(splits, "visits", uri="hf:visits")
    assert reg.ledger.head() == -1
