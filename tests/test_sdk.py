"""The SDK: what it appends for each call, and the errors it gives."""

from __future__ import annotations

import hashlib
import math
import platform
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import text

import registry
from registry import Conflict, EventRejected, InvalidInput, LedgerError, Registry
from registry.events import StoredEvent
from registry.payloads import decode_predictions
from registry.settings import Settings
from registry.writes import PREDICTION_CHUNK


def last(reg: Registry) -> StoredEvent:
    event = reg.ledger.last_event()
    assert event is not None
    return event


def events_of(reg: Registry, entity: str) -> list[StoredEvent]:
    return [e for e in reg.ledger.tail() if e.entity == entity]


def test_register_dataset_appends_metadata_and_membership(reg: Registry, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("id,x\n1,2\n")
    ds = reg.register_dataset(
        "d",
        uri=data.as_uri(),
        path=data,
        schema={"x": "int64"},
        records=["a", "b", "a"],
        subjects=["s1", None, "s1"],
    )
    expected = "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()
    assert ds.digest == expected and ds.version == expected[7:19] and ds.records == 2
    registered, members = events_of(reg, ds.id)
    assert registered.type == "dataset-version-registered"
    assert registered.body["digest"] == expected and registered.body["schema"] == {"x": "int64"}
    assert registered.body["row_count"] == 3 and registered.actor == "tester"
    assert members.type == "dataset-records-added" and len(members.body["records"]) == 3
    assert members.body["subjects"][1] is None
    assert members.body["subjects"][0] == members.body["subjects"][2]


def test_register_dataset_again_is_idempotent_or_a_conflict(reg: Registry) -> None:
    first = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:aa", records=["a"])
    head = reg.ledger.head()
    again = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:aa", records=["a"])
    assert again.id == first.id and reg.ledger.head() == head
    with pytest.raises(Conflict, match="already registered with digest sha256:aa"):
        reg.register_dataset("d", "1", uri="s3://d", digest="sha256:bb")
    assert reg.ledger.head() == head


def test_register_dataset_errors(reg: Registry) -> None:
    with pytest.raises(LedgerError, match="give digest= or path="):
        reg.register_dataset("d", "1", uri="s3://d")
    with pytest.raises(LedgerError, match="2 records but 1 subjects"):
        reg.register_dataset(
            "d", "1", uri="s3://d", digest="sha256:aa", records=["a", "b"], subjects=["s"]
        )
    with pytest.raises(LedgerError, match="dataset name"):
        reg.register_dataset("bad name!", "1", uri="s3://d", digest="sha256:aa")
    with pytest.raises(EventRejected) as info:
        reg.register_dataset(
            "d", "2", uri="s3://d", digest="sha256:aa", derived_from=["dataset:test/ghost@1"]
        )
    assert info.value.field == "body.derived_from.0" and "ghost" in str(info.value)
    assert reg.ledger.head() == -1


def test_run_records_code_environment_params_metrics_and_completion(reg: Registry) -> None:
    ds = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:aa")
    head = reg.ledger.head()
    with reg.run("train", params={"lr": 0.1}, inputs=[ds], tags={"team": "x"}) as run:
        run.log_params(epochs=3)
        run.log_metrics({"loss": 0.5}, step=1)
        assert reg.ledger.head() == head  # buffered: one batch when the run ends
    started = events_of(reg, run.id)[0]
    assert started.type == "run-started" and started.entity == run.id
    assert started.body["job"] == "train" and started.body["params"] == {"lr": 0.1}
    assert started.body["environment"]["python"] == platform.python_version()
    assert "git_commit" in started.body["code"] and "git_dirty" in started.body["code"]
    types = [e.type for e in events_of(reg, run.id)]
    assert types == [
        "run-started",
        "run-inputs-used",
        "run-params-logged",
        "run-metrics-logged",
        "run-completed",
    ]
    assert run.status == "completed"
    metrics = events_of(reg, run.id)[3]
    assert metrics.body["metrics"] == [{"key": "loss", "value": 0.5, "step": 1}]


def test_a_long_run_is_flushed_while_it_runs(
    reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import registry.sdk.session

    monkeypatch.setattr(registry.sdk.session, "FLUSH_AFTER_SECONDS", 0.0)
    with reg.run("train") as run:
        assert last(reg).type == "run-started" and last(reg).entity == run.id
        run.log_metrics({"loss": 0.5})
        assert last(reg).type == "run-metrics-logged"


def test_exception_in_run_marks_it_failed_and_reraises(reg: Registry) -> None:
    with pytest.raises(ZeroDivisionError), reg.run("train") as run:
        run.log_metrics({"loss": 1.0})
        _ = 1 / 0
    event = last(reg)
    assert event.type == "run-failed" and event.entity == run.id
    assert event.body == {"error_type": "builtins.ZeroDivisionError"}
    assert [e.type for e in events_of(reg, run.id)] == [
        "run-started",
        "run-metrics-logged",
        "run-failed",
    ]
    with pytest.raises(LedgerError, match="is failed"):
        run.log_metrics({"loss": 2.0})


def test_run_flush_and_writes_that_need_buffered_records(reg: Registry) -> None:
    with reg.run("train") as run:
        model = run.register_model("m", artifact_uri="s3://m", artifact_digest="sha256:m1")
        # Moving an alias needs the model in the log: the buffer goes first, in one batch.
        reg.set_alias(model, "candidate", moved_by="alice")
        moved = last(reg)
        assert moved.type == "model-alias-moved" and moved.entity == model.id
        assert moved.actor == "alice" and moved.body == {"alias": "candidate"}
        run.log_metrics({"auc": 0.9})
        run.flush()
        assert last(reg).type == "run-metrics-logged"
    assert last(reg).type == "run-completed"


def test_model_versions_number_themselves_and_digest_artifacts(
    reg: Registry, tmp_path: Path
) -> None:
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    with reg.run("train") as run:
        first = run.register_model("m", artifact_path=artifact, framework="torch")
        second = run.register_model("m", artifact_path=artifact)
    assert (first.version, second.version) == ("1", "2")
    assert first.artifact_digest == "sha256:" + hashlib.sha256(b"weights").hexdigest()
    registered = [e for e in reg.ledger.tail() if e.type == "model-version-registered"]
    assert [e.entity for e in registered] == [first.id, second.id]
    assert registered[0].body["run"] == run.id and registered[0].body["framework"] == "torch"
    assert registered[0].body["artifact_uri"] == artifact.resolve().as_uri()
    third = reg.register_model("m", artifact_uri="s3://m3", artifact_digest="sha256:33")
    assert third.version == "3" and last(reg).body["run"] is None


def test_dataset_written_by_a_run_is_its_output(reg: Registry) -> None:
    with reg.run("prepare") as run:
        out = run.register_dataset("features", "1", uri="s3://f", digest="sha256:ff")
    registered = [e for e in events_of(reg, out.id) if e.type == "dataset-version-registered"]
    assert registered[0].body["produced_by"] == run.id
    assert reg.lineage(out, direction="upstream")["edges"][0]["kind"] == "output"


def test_deploy_with_a_split_and_errors(reg: Registry) -> None:
    m1 = reg.register_model("m", artifact_uri="s3://1", artifact_digest="sha256:1")
    m2 = reg.register_model("m", artifact_uri="s3://2", artifact_digest="sha256:2")
    dep = reg.deploy("api", endpoint="http://api", served=[m1, m2])
    event = last(reg)
    assert event.type == "deployment-configured" and event.entity == dep.id
    assert event.body["served"] == [
        {"model": m1.id, "traffic": 50},
        {"model": m2.id, "traffic": 50},
    ]
    with pytest.raises(LedgerError, match="traffic adds up to 90, expected 100"):
        reg.deploy("api", endpoint="http://api", served={m1: 50, m2: 40})
    with pytest.raises(EventRejected) as info:
        reg.deploy("api", endpoint="http://api", served={"model:test/ghost@1": 100})
    assert info.value.field == "body.served.0.model"
    with pytest.raises(EventRejected, match="expected an active one"):
        reg.retire("ghost")


def test_log_predictions_writes_a_columnar_payload(reg: Registry) -> None:
    model = reg.register_model("m", artifact_uri="s3://1", artifact_digest="sha256:1")
    other = reg.register_model("m", artifact_uri="s3://2", artifact_digest="sha256:2")
    dep = reg.deploy("api", endpoint="http://api", served={model: 100})
    positions = reg.log_predictions(
        dep,
        model=model,
        records=["r1", 2, "r3"],
        outputs=[0.5, 1, {"label": "x", "p": [0.1, 0.9]}],
        trace_ids=["t1", None, "t3"],
        at="2026-05-01T10:00:00Z",
    )
    event = last(reg)
    assert positions == [event.position] and event.type == "predictions-logged"
    assert event.body["count"] == 3 and event.body["models"] == [model.id]
    rows = decode_predictions(event.payload or b"").to_pydict()
    assert rows["output"] == ["0.5", "1", '{"label":"x","p":[0.1,0.9]}']
    assert rows["at"] == ["2026-05-01T10:00:00.000000Z"] * 3
    assert rows["trace_id"] == ["t1", None, "t3"]
    assert reg.scored(2)["predictions"][0]["output"] == 1
    with pytest.raises(EventRejected, match="never served"):
        reg.log_predictions(dep, model=other, records=["r1"], outputs=[0.1])
    with pytest.raises(LedgerError, match="2 records but 1 outputs"):
        reg.log_predictions(dep, model=model, records=["a", "b"], outputs=[0.1])
    with pytest.raises(LedgerError, match=r"either model= .* or models="):
        reg.log_predictions(dep, records=["a"], outputs=[0.1])
    with pytest.raises(LedgerError, match="nan, which JSON cannot hold"):
        reg.log_predictions(dep, model=model, records=["a"], outputs=[math.nan])
    with pytest.raises(LedgerError, match="record key is empty"):
        reg.log_predictions(dep, model=model, records=[""], outputs=[0.1])
    assert last(reg).position == event.position


def test_log_predictions_with_a_batch_id_is_sent_once(reg: Registry) -> None:
    model = reg.register_model("m", artifact_uri="s3://1", artifact_digest="sha256:1")
    dep = reg.deploy("api", endpoint="http://api", served={model: 100})
    batch = uuid.uuid4()
    keys = [f"r{i}" for i in range(PREDICTION_CHUNK + 1)]
    at = "2026-05-01T10:00:00Z"
    first = reg.log_predictions(dep, model=model, records=keys, outputs=[0.5] * len(keys),
                                at=at, batch_id=batch)
    chunks = reg.ledger.read(first[0])
    assert [e.position for e in chunks] == first and len(first) == 2
    assert [e.event_id for e in chunks] == [str(uuid.uuid5(batch, str(i))) for i in (0, 1)]
    assert [e.body["count"] for e in chunks] == [PREDICTION_CHUNK, 1]
    head = reg.ledger.head()
    # Sent again (its text this time): the same positions, nothing written.
    again = reg.log_predictions(dep, model=model, records=keys, outputs=[0.5] * len(keys),
                                at=at, batch_id=str(batch))
    assert again == first and reg.ledger.head() == head
    assert len(reg.scored("r0")["predictions"]) == 1
    # Other content under the same batch id is refused, and writes nothing.
    with pytest.raises(Conflict, match="already in the log"):
        reg.log_predictions(dep, model=model, records=["r0"], outputs=[0.9], at=at, batch_id=batch)
    with pytest.raises(LedgerError, match=r"batch_id is str 'x'; expected a uuid.UUID"):
        reg.log_predictions(dep, model=model, records=["r0"], outputs=[0.9], batch_id="x")
    assert reg.ledger.head() == head


def test_log_predictions_from_an_arrow_table(reg: Registry) -> None:
    model = reg.register_model("m", artifact_uri="s3://1", artifact_digest="sha256:1")
    dep = reg.deploy("api", endpoint="http://api", served={model: 100})
    table = pa.table(
        {
            "record": ["a", "b"],
            "output": [0.25, 0.75],
            "model": [model.id] * 2,
            "at": ["2026-05-01T10:00:00Z", "2026-05-01T10:00:01Z"],
        }
    )
    reg.log_predictions(dep, table=table)
    rows = decode_predictions(last(reg).payload or b"").to_pydict()
    assert rows["output"] == ["0.25", "0.75"] and rows["at"][1] == "2026-05-01T10:00:01.000000Z"


def test_large_batches_are_split_into_several_events(reg: Registry) -> None:
    model = reg.register_model("m", artifact_uri="s3://1", artifact_digest="sha256:1")
    dep = reg.deploy("api", endpoint="http://api", served={model: 100})
    positions = reg.log_predictions(
        dep, model=model, records=[f"r{i}" for i in range(45_000)], outputs=[0.5] * 45_000
    )
    events = reg.ledger.read(positions[0], 10)
    assert [e.body["count"] for e in events] == [20_000, 20_000, 5_000]
    with reg.ledger.store.read() as conn:
        counts = conn.execute(text("SELECT n FROM prediction_counts")).scalars().all()
    assert counts == [45_000]
    assert reg.scored("r44999")["times_scored"] == 1


def test_subject_data_goes_to_the_vault_and_only_a_reference_to_the_log(reg: Registry) -> None:
    entry = reg.store_subject_data("patient-7", {"name": "Ada", "born": 1815})
    event = last(reg)
    assert event.type == "subject-data-stored" and event.personal_refs == (entry,)
    assert event.body == {"entry": entry, "fields": ["born", "name"]}
    assert "Ada" not in str(event.as_dict())
    stored = reg.subject_data("patient-7")
    assert [s["attributes"] for s in stored] == [{"name": "Ada", "born": 1815}]
    assert reg.subject_data("someone-else") == []
    with pytest.raises(LedgerError, match="attributes is empty"):
        reg.store_subject_data("patient-7", {})


def test_a_refused_buffered_record_does_not_block_later_writes(reg: Registry) -> None:
    ds = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:aa")
    with pytest.raises(EventRejected) as info, reg.run("train", inputs=[ds]) as run:
        run.use("dataset:test/ghost@1")
        run.flush()
    assert info.value.field == "body.inputs.0" and "ghost" in str(info.value)
    # The run's other records were kept and went in with its end.
    assert [e.type for e in events_of(reg, run.id)] == [
        "run-started",
        "run-inputs-used",
        "run-failed",
    ]
    assert last(reg).body == {"error_type": "registry.errors.EventRejected"}


def test_connect_reads_the_settings_it_is_given_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLLEDGER_DB", f"sqlite:///{tmp_path}/from-env.db")
    monkeypatch.setenv("MLLEDGER_PROJECT", "from-env")
    monkeypatch.setenv("MLLEDGER_ACTOR", "env-actor")
    given = Settings(db=f"sqlite:///{tmp_path}/given.db", project="given", actor="given-actor")
    with registry.connect(settings=given) as reg:
        assert (reg.project, reg.actor) == ("given", "given-actor")
        ds = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:aa")
        assert ds.id == "dataset:given/d@1" and last(reg).actor == "given-actor"
    assert (tmp_path / "given.db").exists() and not (tmp_path / "from-env.db").exists()
    with registry.connect(settings=given, project="named", actor="someone") as reg:
        assert (reg.project, reg.actor) == ("named", "someone")


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        (lambda r: r.register_dataset("d", uri="s3://d"), "digest", "give digest= or path="),
        (lambda r: r.register_dataset("d", uri="s3://d", path="/nowhere/x"), "path",
         "cannot digest /nowhere/x"),
        (lambda r: r.register_dataset("d", "1", uri="s3://d", digest="sha256:aa",
                                      records=["a", "b"], subjects=["s"]), "subjects",
         "2 records but 1 subjects"),
        (lambda r: r.register_model("m"), "artifact_digest", "give artifact_digest="),
        (lambda r: r.register_model("m", artifact_digest="sha256:aa"), "artifact_uri",
         "give artifact_uri= or artifact_path="),
        (lambda r: r.register_model("m", artifact_path="/nowhere/m.pkl"), "artifact_path",
         "cannot digest /nowhere/m.pkl"),
        (lambda r: r.log_predictions("api", model="m", records=["a"]), "outputs",
         "records= and outputs= (or table=) are required"),
        (lambda r: r.log_predictions("api", records=["a"], outputs=[1]), "model",
         "give either model="),
        (lambda r: r.log_predictions("api", models=["m"], records=["a", "b"], outputs=[1, 2]),
         "models", "2 records but 1 models"),
        (lambda r: r.log_predictions("api", model="m", records=["a"], outputs=[1], at=[1, 2]),
         "at", "1 records but 2 times"),
        (lambda r: r.log_predictions("api", model="m", records=["a"], outputs=[1],
                                     trace_ids=[]), "trace_ids", "1 records but 0 trace ids"),
        (lambda r: r.store_subject_data("s", {}), "attributes", "attributes is empty"),
    ],
)  # fmt: skip
def test_invalid_input_names_the_argument_at_fault(
    reg: Registry, call: Callable[[Registry], object], field: str, message: str
) -> None:
    head = reg.ledger.head()
    with pytest.raises(InvalidInput, match=re.escape(message)) as info:
        call(reg)
    assert info.value.field == field
    assert reg.ledger.head() == head


def test_recording_outside_the_run_block_is_refused(reg: Registry) -> None:
    with reg.run("train") as run:
        pass
    with pytest.raises(InvalidInput, match="is completed: record inside its 'with' block"):
        run.log_params(lr=0.1)
    with pytest.raises(InvalidInput, match="is completed: register its models inside"):
        run.register_model("m", artifact_uri="s3://m", artifact_digest="sha256:aa")
