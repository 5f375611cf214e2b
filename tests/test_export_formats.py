"""The three export formats, read back and checked against the ledger.

- Parquet: the schemas are pinned (``tests/fixtures/export_schemas.json``); every
  row equals what the ledger holds; the scope (project, window, checkpoint) is
  honoured; erased prediction rows are blank.
- OpenLineage: every line validates against the OpenLineage 2-0-2 JSON schema and
  mlledger's facet schemas; one START and one COMPLETE per run.
- PROV: the document round-trips through the ``prov`` package and holds the
  expected entities, activities, agents and relations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prov.model import ProvDocument

from audit.exports import Scope, openlineage, parquet, prov
from lineage.openlineage import validate
from registry.sdk import Registry
from tests.support.worlds import Scenario, build_world

FIXTURE = Path(__file__).parent / "fixtures" / "export_schemas.json"


def _pinned() -> dict[str, Any]:
    return {
        table: {
            "metadata": {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()},
            "fields": [
                {
                    "name": f.name,
                    "type": str(f.type),
                    "nullable": f.nullable,
                    "description": (f.metadata or {})[b"description"].decode(),
                }
                for f in schema
            ],
        }
        for table, schema in parquet.TABLES.items()
    }


def test_the_parquet_schemas_are_pinned() -> None:
    assert _pinned() == json.loads(FIXTURE.read_text()), (
        "a Parquet export schema changed: if deliberate, bump SCHEMA_VERSION, update "
        "tests/fixtures/export_schemas.json and docs/exports.md (parquet.schema_markdown())"
    )


@pytest.fixture
def world(reg: Registry) -> Scenario:
    scenario = build_world(reg)
    reg.set_alias(scenario.m2, "production", moved_by="dr.okafor")
    reg.flush()
    return scenario


def _size(reg: Registry) -> int:
    return reg.ledger.head() + 1


def _tables(directory: Path) -> dict[str, pa.Table]:
    return {p.stem: pq.read_table(p) for p in sorted(directory.glob("*.parquet"))}


def test_parquet_rows_are_what_the_ledger_holds(
    reg: Registry, world: Scenario, tmp_path: Path
) -> None:
    seen: list[int] = []
    scope = Scope.make(_size(reg))
    written = parquet.write(reg.ledger.store, tmp_path, scope, seen.append)
    tables = _tables(tmp_path)
    assert sorted(tables) == sorted(parquet.TABLES)
    for name, table in tables.items():
        assert table.schema.equals(parquet.TABLES[name], check_metadata=True), name
    assert {p.stem: n for p, n in written} == {n: t.num_rows for n, t in tables.items()}
    assert sum(seen) == sum(n for _, n in written) == parquet.count(reg.ledger.store, scope)

    events = tables["events"].to_pylist()
    stored = reg.ledger.read()
    assert [e["position"] for e in events] == [e.position for e in stored]
    for row, event in zip(events, stored, strict=True):
        assert row["event_id"] == str(event.event_id) and row["type"] == event.type
        assert json.loads(row["body"]) == event.body
        assert row["actor"] == event.actor and row["entity"] == event.entity
        assert row["recorded_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ") == event.recorded_at
        assert row["redacted_by"] is None

    predictions = tables["predictions"].to_pylist()
    assert len(predictions) == 5
    by_record = [(p["model"], json.loads(p["output"])) for p in predictions]
    assert (world.m1.id, 0.1) in by_record and (world.m2.id, {"label": "yes"}) in by_record
    pseudo = reg.ledger.pseudonymizer("test")
    assert {p["record"] for p in predictions} == set(pseudo.records(["rec-0", "rec-2", "x-1"]))
    assert {p["deployment"] for p in predictions} == {world.api.id}

    runs = {r["id"]: r for r in tables["runs"].to_pylist()}
    assert runs[world.run2]["job"] == "train-b" and runs[world.run2]["status"] == "completed"
    sets = {d["id"]: d for d in tables["dataset_versions"].to_pylist()}
    assert sets[str(world.raw)]["records"] == 10 and sets[str(world.raw)]["digest"] == "sha256:01"
    models = {m["id"]: m for m in tables["model_versions"].to_pylist()}
    assert models[world.m2.id]["artifact_digest"] == "sha256:a2"
    assert [a["moved_by"] for a in tables["alias_history"].to_pylist()] == ["dr.okafor"]
    assert len(tables["deployment_history"].to_pylist()) == 4
    assert tables["deployments"].num_rows == 1


def test_parquet_scope_is_honoured(reg: Registry, world: Scenario, tmp_path: Path) -> None:
    cut = _size(reg)
    other = reg.ledger
    from registry.sdk import Registry as Sdk

    elsewhere = Sdk(other, "other", "tester")
    elsewhere.register_dataset("o", "1", uri="s3://o", digest="sha256:0f", records=["z"])
    elsewhere.flush()
    # Only the events before the checkpoint size, only the project asked for.
    (tmp_path / "a").mkdir()
    parquet.write(reg.ledger.store, tmp_path / "a", Scope.make(cut, "test"))
    first = _tables(tmp_path / "a")
    assert first["events"].num_rows == cut
    assert set(first["events"].column("project").to_pylist()) == {"test"}
    full = Scope.make(_size(reg))
    (tmp_path / "b").mkdir()
    parquet.write(reg.ledger.store, tmp_path / "b", Scope.make(_size(reg), "other"))
    second = _tables(tmp_path / "b")
    assert second["events"].num_rows == 2 and second["predictions"].num_rows == 0
    assert second["dataset_versions"].column("id").to_pylist() == ["dataset:other/o@1"]
    # A window that ends before anything was recorded: every file empty, with its schema.
    (tmp_path / "c").mkdir()
    parquet.write(reg.ledger.store, tmp_path / "c", Scope.make(full.upto, until="2000-01-01"))
    assert all(t.num_rows == 0 for t in _tables(tmp_path / "c").values())
    # A window that starts after the world was recorded holds only the later events.
    since = reg.ledger.read()[cut - 1].recorded_at
    (tmp_path / "d").mkdir()
    parquet.write(reg.ledger.store, tmp_path / "d", Scope.make(full.upto, since=since))
    later = _tables(tmp_path / "d")["events"].column("position").to_pylist()
    assert later and min(later) >= cut - 1 and max(later) == full.upto - 1


def test_parquet_after_an_erasure_holds_blank_rows(
    reg: Registry, world: Scenario, tmp_path: Path
) -> None:
    pseudo = reg.ledger.pseudonymizer("test")
    hidden = [pseudo.subject("ann"), *pseudo.records(["rec-0", "rec-1", "x-2"])]
    assert reg.erase("ann")["status"] == "erased"
    last = reg.ledger.last_event()
    assert last is not None and last.type == "subject-erased"
    parquet.write(reg.ledger.store, tmp_path, Scope.make(_size(reg)))
    tables = _tables(tmp_path)
    blank = [p for p in tables["predictions"].to_pylist() if p["record"] is None]
    assert len(blank) == 3 and all(p["output"] is None for p in blank)
    assert tables["predictions"].num_rows == 5  # counts stand
    redacted = [e for e in tables["events"].to_pylist() if e["redacted_by"] is not None]
    assert redacted and {e["redacted_by"] for e in redacted} == {last.position}
    text = json.dumps({n: t.to_pylist() for n, t in tables.items()}, default=str)
    for needle in hidden:
        assert needle not in text


def test_openlineage_lines_validate(reg: Registry, world: Scenario, tmp_path: Path) -> None:
    scope = Scope.make(_size(reg), "test")
    [(path, lines)] = openlineage.write(reg.ledger, tmp_path, scope)
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(docs) == lines > 0
    kinds = [validate(doc) for doc in docs]
    assert set(kinds) <= {"RunEvent", "DatasetEvent", "JobEvent"}
    runs: dict[str, list[str]] = {}
    for doc in docs:
        if "run" in doc and "mlledger_run" in doc["run"]["facets"]:
            runs.setdefault(doc["run"]["facets"]["mlledger_run"]["id"], []).append(doc["eventType"])
    # One START and one COMPLETE for each of the three runs (train-a, train-b, fine-tune).
    assert len(runs) == 3 and {world.run1, world.run2} <= set(runs)
    assert all(states == ["START", "COMPLETE"] for states in runs.values())
    complete = next(
        d
        for d in docs
        if d.get("eventType") == "COMPLETE"
        and d["run"]["facets"].get("mlledger_run", {}).get("id") == world.run2
    )
    inputs = {i["facets"]["mlledger_dataset"]["id"] for i in complete["inputs"]}
    assert inputs == {str(world.clean), str(world.extra)}
    assert [o["facets"]["mlledger_model"]["id"] for o in complete["outputs"]] == [world.m2.id]
    assert openlineage.count(reg.ledger, scope) >= len(docs) - 3
    # The checkpoint bound: nothing after it.
    (tmp_path / "cut").mkdir()
    [(_, fewer)] = openlineage.write(reg.ledger, tmp_path / "cut", Scope.make(5, "test"))
    assert fewer < lines


def test_prov_round_trips_and_maps_the_lineage(
    reg: Registry, world: Scenario, tmp_path: Path
) -> None:
    [(path, records)] = prov.write(reg.ledger, tmp_path, Scope.make(_size(reg), "test"))
    text = path.read_text()
    document = ProvDocument.deserialize(content=text, format="json")
    built = prov.document(reg.ledger, Scope.make(_size(reg), "test"))
    assert document == built
    again = ProvDocument.deserialize(content=document.serialize(format="json"), format="json")
    assert again == document
    assert len(document.records) == records
    data = json.loads(text)

    def node(n: Any) -> str:
        kind, rest = str(n).split(":", 1)
        return f"node:{kind}/{rest}"

    assert {node(world.raw), node(world.clean), node(world.m1.id)} <= set(data["entity"])
    assert data["entity"][node(world.raw)]["mlledger:digest"] == "sha256:01"
    assert node(world.run1) in data["activity"]
    assert "actor:tester" in data["agent"]
    used = {(u["prov:activity"], u["prov:entity"]) for u in data["used"].values()}
    assert (node(world.run1), node(world.raw)) in used
    generated = {(g["prov:entity"], g["prov:activity"]) for g in data["wasGeneratedBy"].values()}
    assert (node(world.m1.id), node(world.run1)) in generated
    derived = {
        (d["prov:generatedEntity"], d["prov:usedEntity"]) for d in data["wasDerivedFrom"].values()
    }
    assert (node(world.clean), node(world.raw)) in derived
    assert (node(world.m3.id), node(world.m2.id)) in derived
    associated = {(a["prov:activity"], a["prov:agent"]) for a in data["wasAssociatedWith"].values()}
    assert (node(world.run2), "actor:tester") in associated
    serving = [a for a in data["activity"].values() if a["prov:type"]["$"] == "mlledger:Serving"]
    assert len(serving) == 4
    # Records and subjects never appear.
    assert "record:" not in text and "subject:" not in text
