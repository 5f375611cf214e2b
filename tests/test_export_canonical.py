"""Every JSON column of every Parquet table is RFC 8785 (JCS) text, checked with an
independent implementation (``jcs``, the reference implementation of RFC 8785's
author), never with the encoder the ledger itself uses.

Values are chosen where a plain JSON encoder and JCS disagree: integral floats
(``1.0``: JCS writes ``1``), exponents (``1e-07``, ``1e+20``: JCS writes ``1e-7``,
``100000000000000000000``), non-ASCII text (JCS writes ``✓``, not ``\\u2713``) and
keys out of order, in nested objects too. A ledger written the way earlier versions
wrote (catalogue JSON with Python's encoder, prediction outputs with ``repr`` and
unsorted keys, a catalogue row changed in SQLite) must export canonical text as well,
and erased prediction outputs stay null.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jcs
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.checkpoints import load_signing_key
from audit.exports import export
from audit.exports.parquet import JSON_COLUMNS, TABLES, UnreadableJson, _canonical
from lineage import projections
from registry import intake
from registry.sdk import Registry, connect

PARAMS = {
    "zeta": 1.0,
    "lr": 1e-7,
    "big": 1e20,
    "mark": "✓",
    "nested": {"z": 2.0, "a": [1e-7, 1.5, {"y": 1e16, "b": "ü"}]},
}
METRICS = {"loss": 1.0, "tiny": 1e-7, "huge": 1e20, "auc": 0.5}
TAGS = {"zeta": "last", "check": "✓", "alpha": "first"}
OUTPUTS: list[Any] = [
    1.0,
    1e-7,
    1e20,
    {"score": 1.0, "label": "✓", "detail": {"z": 2, "a": 1e-7}},
    [1.0, "ü", {"b": 1, "a": 2.0}],
    "✓",
    {"zeta": 0.5, "alpha": "yes", "é": True, "a b": None, "a": [1, 2.5], "\uffff": 3},
    {"😀": 1, "\uffff": 2, "b": "x,y"},
]
RECORDS = [f"rec-{i}" for i in range(len(OUTPUTS))]
SUBJECTS = ["ann", "bob", "ann", "bob", "cid", "cid", "ann", "cid"]
EXPECTED_TYPES = {
    "dataset-version-registered",
    "dataset-records-added",
    "run-started",
    "run-params-logged",
    "run-metrics-logged",
    "model-version-registered",
    "run-completed",
    "deployment-configured",
    "predictions-logged",
    "subject-data-stored",
}


def _jcs(text: str) -> str:
    return jcs.canonicalize(json.loads(text)).decode("utf-8")


def _build(reg: Registry) -> None:
    """A ledger whose every JSON column holds values a plain encoder writes otherwise."""
    data = reg.register_dataset(
        "scores",
        "1",
        uri="s3://b/scores",
        digest="sha256:01",
        schema={"größe": "float", "id": "int", "a": "str"},
        records=RECORDS,
        subjects=SUBJECTS,
        tags=TAGS,
    )
    clean = reg.register_dataset(
        "clean", "1", uri="s3://b/clean", digest="sha256:02", derived_from=[data], tags=TAGS
    )
    with reg.run("train", inputs=[clean], params=PARAMS, tags=TAGS) as run:
        run.log_params({"extra": {"b": 1.0, "a": 1e-7}})
        run.log_metrics(METRICS)
        model = run.register_model(
            "clf", artifact_uri="s3://m/1", artifact_digest="sha256:a1", tags=TAGS
        )
    api = reg.deploy("api", endpoint="https://api/score", served={model: 100})
    reg.log_predictions(api, model=model, records=RECORDS, outputs=OUTPUTS)
    reg.store_subject_data("ann", {"email": "ann@example.com", "name": "Änn"})
    reg.flush()
    appended = [e.type for e in reg.ledger.read()]
    assert set(appended) >= EXPECTED_TYPES, f"expected every type appended, got {appended}"
    assert appended[-1] == "subject-data-stored"


def _export(reg: Registry, out: Path) -> dict[str, list[dict[str, Any]]]:
    key, _, _ = load_signing_key(reg.ledger.store.url, None, create=True)
    export(reg.ledger, "parquet", out, key)
    return {table: pq.read_table(out / f"{table}.parquet").to_pylist() for table in TABLES}


def _require_canonical(tables: dict[str, list[dict[str, Any]]]) -> int:
    """Every non-null value of every JSON column equals its JCS form; returns how many."""
    checked = 0
    for table, columns in JSON_COLUMNS.items():
        for row in tables[table]:
            for column in columns:
                value = row[column]
                if value is None:
                    continue
                assert value == _jcs(value), f"{table}.{column}: {value!r} is not JCS"
                checked += 1
    return checked


def test_every_json_column_is_listed() -> None:
    """``JSON_COLUMNS`` names exactly the columns whose description says JSON."""
    for table, schema in TABLES.items():
        described = {
            f.name for f in schema if b"JSON" in (f.metadata or {}).get(b"description", b"")
        }
        assert described == set(JSON_COLUMNS.get(table, ())), table


def test_every_json_column_of_every_table_is_rfc8785(reg: Registry, tmp_path: Path) -> None:
    _build(reg)
    tables = _export(reg, tmp_path / "out")
    assert _require_canonical(tables) > 40

    [run] = tables["runs"]
    assert json.loads(run["params"]) == {**PARAMS, "extra": {"b": 1.0, "a": 1e-7}}
    assert '"big":100000000000000000000' in run["params"] and '"lr":1e-7' in run["params"]
    assert run["params"].endswith('"zeta":1}') and '"mark":"✓"' in run["params"]
    assert run["metrics"] == '{"auc":0.5,"huge":100000000000000000000,"loss":1,"tiny":1e-7}'
    assert run["tags"] == '{"alpha":"first","check":"✓","zeta":"last"}'
    scores = next(d for d in tables["dataset_versions"] if d["name"] == "scores")
    assert scores["schema"] == '{"a":"str","größe":"float","id":"int"}'
    outputs = [p["output"] for p in sorted(tables["predictions"], key=lambda p: p["seq"])]
    assert outputs == [
        "1",
        "1e-7",
        "100000000000000000000",
        '{"detail":{"a":1e-7,"z":2},"label":"✓","score":1}',
        '[1,"ü",{"a":2,"b":1}]',
        '"✓"',
        '{"a":[1,2.5],"a b":null,"alpha":"yes","zeta":0.5,"é":true,"\uffff":3}',
        '{"b":"x,y","😀":1,"\uffff":2}',
    ]
    [stored] = [e for e in tables["events"] if e["type"] == "subject-data-stored"]
    assert len(json.loads(stored["personal_refs"])) >= 1


def test_erased_outputs_stay_null_and_the_rest_canonical(reg: Registry, tmp_path: Path) -> None:
    _build(reg)
    outcome = reg.erase("bob")
    assert outcome["status"] == "erased"
    last = reg.ledger.last_event()
    assert last is not None and last.type == "subject-erased"
    assert last.body["erasure"] == outcome["erasure"]
    tables = _export(reg, tmp_path / "out")
    _require_canonical(tables)
    rows = sorted(tables["predictions"], key=lambda p: p["seq"])
    erased = [i for i, s in enumerate(SUBJECTS) if s == "bob"]
    assert [rows[i]["output"] for i in erased] == [None, None]
    assert [rows[i]["record"] for i in erased] == [None, None]
    kept = [rows[i]["output"] for i in range(len(rows)) if i not in erased]
    assert kept == [jcs.canonicalize(v).decode() for i, v in enumerate(OUTPUTS) if i not in erased]


# --- what earlier versions stored --------------------------------------------------------

_OLD_CATALOGUE = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_OLD_OUTPUT_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _old_output(value: Any) -> str:
    if type(value) in (int, float):
        return repr(value)
    return _OLD_OUTPUT_ENCODER(value)


@pytest.fixture
def old_reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A SQLite ledger whose catalogue and outputs were written as earlier versions did."""
    reg = connect(f"sqlite:///{tmp_path}/old.db", project="test", actor="tester")
    with monkeypatch.context() as patched:
        patched.setattr(projections, "_dumps", _OLD_CATALOGUE)
        patched.setattr(intake, "output_json", _old_output)
        _build(reg)
    yield reg
    reg.close()


@contextmanager
def _sqlite(reg: Registry) -> Iterator[sqlite3.Connection]:
    """The ledger's SQLite file, opened beside it; what is changed is committed."""
    db = sqlite3.connect(reg.ledger.store.url.split("///", 1)[1])
    try:
        with db:
            yield db
    finally:
        db.close()


def test_a_ledger_of_an_earlier_version_exports_canonical(
    old_reg: Registry, tmp_path: Path
) -> None:
    with _sqlite(old_reg) as db:
        (params,) = db.execute("SELECT params FROM cat_runs").fetchone()
        (tags,) = db.execute("SELECT tags FROM cat_models").fetchone()
    # What the earlier version stored is not canonical (or this test proves nothing).
    assert "1e-07" in params and "1e+20" in params and "\\u2713" in params
    assert tags == '{"alpha":"first","check":"\\u2713","zeta":"last"}'
    tables = _export(old_reg, tmp_path / "out")
    assert _require_canonical(tables) > 40
    [run] = tables["runs"]
    assert run["params"] == jcs.canonicalize({**PARAMS, "extra": {"b": 1.0, "a": 1e-7}}).decode()
    outputs = [p["output"] for p in sorted(tables["predictions"], key=lambda p: p["seq"])]
    assert outputs == [jcs.canonicalize(v).decode() for v in OUTPUTS]


def test_a_catalogue_row_changed_in_sqlite_exports_canonical(
    old_reg: Registry, tmp_path: Path
) -> None:
    stored = '{"a":"\\u2713","b":1.0,"c":1e+20,"d":{"e":[1e-07,2.50]}}'
    with _sqlite(old_reg) as db:
        changed = db.execute("UPDATE cat_runs SET params = ?", (stored,)).rowcount
    assert changed == 1
    tables = _export(old_reg, tmp_path / "out")
    [run] = tables["runs"]
    assert run["params"] == '{"a":"✓","b":1,"c":100000000000000000000,"d":{"e":[1e-7,2.5]}}'
    assert run["params"] == _jcs(stored)


def test_a_stored_value_that_is_not_json_stops_the_export(
    old_reg: Registry, tmp_path: Path
) -> None:
    with _sqlite(old_reg) as db:
        db.execute("UPDATE cat_models SET tags = ?", ('{"a": NaN}',))
        (model, position) = db.execute("SELECT id, position FROM cat_models").fetchone()
    out = tmp_path / "out"
    with pytest.raises(UnreadableJson) as raised:
        _export(old_reg, out)
    message = str(raised.value)
    assert f"model_versions.tags of the row with id={model!r}, position={position}" in message
    assert "'{\"a\": NaN}'" in message and "expected a JSON value" in message
    assert not out.exists(), "a failed export leaves nothing behind"


def test_canonical_text_is_written_where_it_is_stored(reg: Registry) -> None:
    """New catalogue rows and prediction outputs are stored canonical already."""
    _build(reg)
    with reg.ledger.store.read() as conn:
        params = conn.exec_driver_sql("SELECT params, metrics FROM cat_runs").one()
        served = conn.exec_driver_sql("SELECT served FROM cat_deployments").scalar_one()
    assert [_jcs(text) for text in params] == list(params)
    assert served == _jcs(served)
    for value in OUTPUTS:
        assert intake.output_json(value) == jcs.canonicalize(value).decode()


@pytest.mark.parametrize(
    "value", [0.5, -0.0, 1e16, 1e21, 1e-6, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, 2**53 - 1]
)
def test_plain_number_outputs_are_jcs(value: float) -> None:
    assert intake.output_json(value) == jcs.canonicalize(value).decode()


@pytest.mark.parametrize("value", [2**53, -(2**53), {"a": 2**60}])
def test_an_output_integer_beyond_a_double_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="exceeds safe integer domain"):
        intake.output_json(value)


def test_outputs_of_every_shape_come_out_as_jcs() -> None:
    """Outputs as an earlier version stored them (``repr``, keys unsorted) and as this
    one does, flat objects (put in order without decoding) and nested ones (decoded),
    keys that sort differently by code point and by UTF-16 code unit, repeated keys."""
    rng = random.Random(8785)
    letters = ["a", "b", "A", " ", "!", ",", '"', "\\", "é", "\ue000", "\uffff", "😀", "0", ":"]

    def key() -> str:
        return "".join(rng.choice(letters) for _ in range(rng.randint(0, 3)))

    def value(depth: int = 0) -> Any:
        if depth < 2 and rng.random() < 0.15:
            return {key(): value(depth + 1) for _ in range(rng.randint(0, 3))}
        choices = [rng.random(), 1.0, 1e-7, 1e20, rng.randint(-9, 9), key(), None, True, [0.5, 2]]
        return rng.choice(choices)

    texts: list[str | None] = [None, '{"b":1,"a":2,"b":3}', '{"a":1,"a":2}']
    for _ in range(3000):
        item = {key(): value() for _ in range(rng.randint(1, 5))} if rng.random() < 0.8 else value()
        shuffled = (
            dict(rng.sample(list(item.items()), len(item))) if isinstance(item, dict) else item
        )
        texts.append(rng.choice([_old_output(shuffled), jcs.canonicalize(item).decode()]))
    out = _canonical(pa.array(texts, pa.string()), True, str, "").to_pylist()
    assert out[0] is None
    assert out[1:3] == ['{"a":2,"b":3}', '{"a":2}']
    for text, written in zip(texts[3:], out[3:], strict=True):
        assert written == _jcs(str(text)), text
