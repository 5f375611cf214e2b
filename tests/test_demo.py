"""``mlledger demo``: the breast-cancer scenario is recorded once and the six questions answered.

The scenario is recorded once for the module (600 predictions, to keep it
quick); later runs on the same database must find it and append nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry.assembly import open_ledger
from registry.cli import main
from registry.demo import run_demo
from registry.events import StoredEvent
from registry.timeutil import to_timestamp

pytest.importorskip("sklearn", reason="the demo needs scikit-learn (pip install 'mlledger[demo]')")

PROJECT = "demo"
PREDICTIONS = 600
RAW_ROWS = 569
SECTIONS = (
    "1. scored:",
    "2. trained-on:",
    "3. downstream:",
    "4. lineage:",
    "5. footprint:",
    "6. history:",
)


@dataclass(frozen=True)
class Demo:
    """The recorded demo: its database, key, first JSON answer and the events it appended."""

    url: str
    db: Path
    key_file: Path
    first: dict[str, Any]
    events: list[StoredEvent]

    @property
    def names(self) -> dict[str, str]:
        """The ids and keys the demo's questions are about."""
        return self.first["names"]

    @property
    def answers(self) -> dict[str, Any]:
        """The first run's answers to the six questions."""
        return self.first["answers"]

    def day(self, n: float) -> str:
        """The timestamp ``n`` days after the scenario's start (as-of time is day 5)."""
        start = datetime.fromisoformat(self.names["as_of"]) - timedelta(days=5)
        return to_timestamp(start + timedelta(days=n))


def read_log(url: str) -> list[StoredEvent]:
    """Every event in the ledger at ``url``."""
    ledger = open_ledger(url)
    try:
        return ledger.read()
    finally:
        ledger.close()


def sha256(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Run the demo once on a new SQLite file, as JSON."""
    base = tmp_path_factory.mktemp("demo")
    key_file = base / "keys" / "master.key"
    db = base / "ledger.db"
    url = f"sqlite:///{db}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLLEDGER_KEY_FILE", str(key_file))
        for name in (
            "MLLEDGER_DB",
            "MLLEDGER_MASTER_KEY",
            "MLLEDGER_PROJECT",
            "MLLEDGER_ACTOR",
            "MLLEDGER_SIGNING_KEY",
        ):
            mp.delenv(name, raising=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert run_demo(url, project=PROJECT, predictions=PREDICTIONS, as_json=True) == 0
        events = read_log(url)
    yield Demo(url=url, db=db, key_file=key_file, first=json.loads(out.getvalue()), events=events)


@pytest.fixture(autouse=True)
def demo_key(demo: Demo, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the demo's master key (its pseudonyms depend on it) and signing key in every
    test."""
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(demo.key_file))
    monkeypatch.setenv("MLLEDGER_SIGNING_KEY", str(demo.db.parent / "signing.key"))


def test_the_demo_signs_verifies_and_proves_its_log(demo: Demo) -> None:
    """The integrity section: a checkpoint over every event, signed by the key made beside
    the database on first use, a passing verification and a proof that checks offline."""
    from audit.note import VerifierKey, verify_checkpoint
    from audit.proofs import make_bundle, verify_bundle
    from registry.store import open_store

    integrity = demo.first["integrity"]
    assert integrity["verified"] is True
    assert integrity["signing_key_file"] == str(demo.db.parent / "signing.key")
    key = VerifierKey.from_string(integrity["public_key"])
    checkpoint = verify_checkpoint(key, integrity["checkpoint"]["note"])
    assert checkpoint.size == len(demo.events) == integrity["checkpoint"]["tree_size"]
    proved = integrity["proved_position"]
    assert demo.events[proved].type == "predictions-logged"
    assert proved == max(e.position for e in demo.events if e.type == "predictions-logged")
    store = open_store(demo.url)
    try:
        assert verify_bundle(make_bundle(store, proved), key).index == proved
    finally:
        store.dispose()


def test_first_run_records_the_scenario(demo: Demo) -> None:
    """The first run records the whole scenario and says so."""
    assert demo.first["recorded"] is True
    assert demo.first["events"] == len(demo.events) > 0
    assert [e.position for e in demo.events] == list(range(len(demo.events)))
    assert Counter(e.type for e in demo.events) == {
        "dataset-version-registered": 2,
        "dataset-records-added": 2,
        # Two training runs, and the retraining job the local executor ran.
        "run-started": 3,
        "run-inputs-used": 3,
        "run-params-logged": 1,
        "run-metrics-logged": 3,
        "model-version-registered": 3,
        "run-completed": 3,
        "job-submitted": 1,
        "job-scheduled": 1,
        "job-started": 1,
        "job-succeeded": 1,
        "deployment-configured": 3,
        "model-alias-moved": 2,
        "predictions-logged": 2,
        "subject-data-stored": 1,
        "subject-erasure-requested": 1,
        "subject-erased": 1,
    }


def test_the_retraining_job_ran_through_the_local_executor(demo: Demo) -> None:
    """The job's SDK recorded into the run the executor started, on the clean data, and
    the ledger says where it ran and how it ended."""
    job = demo.first["job"]
    assert (job["executor"], job["status"], job["exit_code"]) == ("local", "succeeded", 0)
    assert job["node"] and job["attempts"] == 1
    run = job["run"]
    assert job["run"] == demo.names["job"]
    ours = [e for e in demo.events if e.entity == run]
    assert [e.type for e in ours][:2] == ["run-started", "job-submitted"]
    assert [e.type for e in ours][-2:] == ["job-succeeded", "run-completed"]
    used = next(e for e in ours if e.type == "run-inputs-used")
    assert used.body["inputs"] == [demo.names["clean"]]
    model = next(
        e for e in demo.events if e.type == "model-version-registered" and e.body.get("run") == run
    )
    assert model.body["name"] == "cancer-screening-retrain"
    assert {e.project for e in demo.events} == {PROJECT}
    assert {e.actor for e in demo.events if e.type != "model-alias-moved"} == {"demo@mlledger"}


def test_appended_events_carry_the_scenario(demo: Demo) -> None:
    """Deployments, aliases and predictions in the log match the story the demo tells."""
    n = demo.names
    configured = [e for e in demo.events if e.type == "deployment-configured"]
    assert [(e.entity, e.occurred_at) for e in configured] == [
        (n["deployment"], demo.day(3)),
        (n["deployment"], demo.day(10)),
        (n["deployment"], demo.day(11)),
    ]
    assert [[(s["model"], s["traffic"]) for s in e.body["served"]] for e in configured] == [
        [(n["m1"], 100.0)],
        [(n["m1"], 90.0), (n["m2"], 10.0)],
        [(n["m2"], 100.0)],
    ]

    moved = [e for e in demo.events if e.type == "model-alias-moved"]
    assert [(e.entity, e.body["alias"], e.actor, e.occurred_at) for e in moved] == [
        (n["m1"], "production", "dr.lopez", demo.day(3)),
        (n["m2"], "production", "dr.okafor", demo.day(11)),
    ]

    scored = [e for e in demo.events if e.type == "predictions-logged"]
    assert [e.entity for e in scored] == [n["deployment"]] * 2
    assert sum(e.body["count"] for e in scored) == PREDICTIONS
    assert all(e.payload is not None for e in scored)

    last = [e for e in demo.events if e.type == "subject-data-stored"][-1]
    assert (last.type, last.entity.split("/")[0]) == ("subject-data-stored", "subject:demo")
    assert last.body["fields"] == ["name", "year_of_birth"]
    assert len(last.personal_refs) == 1
    assert "Jane Example" not in json.dumps([e.as_dict() for e in demo.events])


def test_scored_by_two_model_versions_in_one_deployment(demo: Demo) -> None:
    """The example record was scored by v1 and by v2, both in screening-api."""
    answer = demo.answers["scored"]
    assert answer["times_scored"] == len(answer["predictions"]) >= 2
    assert {p["deployment"] for p in answer["predictions"]} == {demo.names["deployment"]}
    assert {p["model"] for p in answer["predictions"]} == {demo.names["m1"], demo.names["m2"]}
    times = [p["at"] for p in answer["predictions"]]
    assert times == sorted(times)
    assert all(
        set(p["output"]) == {"malignant_probability", "label"} for p in answer["predictions"]
    )


def test_trained_on_has_the_clean_and_the_raw_dataset(demo: Demo) -> None:
    """v2 was trained on the clean version directly and on the raw one upstream."""
    answer = demo.answers["trained_on"]
    assert answer["model"] == demo.names["m2"]
    by_id = {d["dataset"]: d for d in answer["datasets"]}
    assert list(by_id) == [demo.names["clean"], demo.names["raw"]]
    clean, raw = by_id[demo.names["clean"]], by_id[demo.names["raw"]]
    assert (clean["relation"], clean["depth"]) == ("direct", 1)
    erased = demo.first["erasure"]["plan"]["records"]["count"]  # one patient was erased
    assert (raw["relation"], raw["depth"], raw["records"], raw["row_count"]) == (
        "upstream",
        2,
        RAW_ROWS - erased,
        RAW_ROWS,
    )
    assert 0 < clean["row_count"] - erased <= clean["records"] <= clean["row_count"] < RAW_ROWS


def test_downstream_of_the_raw_extract_counts_every_prediction(demo: Demo) -> None:
    """Every prediction the demo logged is downstream of the raw extract."""
    answer = demo.answers["downstream"]
    assert answer["total_predictions"] == PREDICTIONS
    assert {p["model"] for p in answer["predictions"]} == {demo.names["m1"], demo.names["m2"]}
    assert all(p["count"] > 0 for p in answer["predictions"])
    assert [d["dataset"] for d in answer["datasets"]] == [demo.names["clean"]]
    assert [d["deployment"] for d in answer["deployments"]] == [demo.names["deployment"]]


def test_lineage_as_of_day_5_shows_v1_serving_and_not_v2(demo: Demo) -> None:
    """On day 5 the deployment was fed by v1 alone; now v2 serves it."""
    then = demo.answers["lineage_then"]
    assert then["as_of"] == demo.day(5)
    nodes = {n["id"] for n in then["nodes"]}
    assert demo.names["m1"] in nodes and demo.names["m2"] not in nodes
    assert demo.names["clean"] not in nodes
    assert [e["src"] for e in then["edges"] if e["kind"] == "serves"] == [demo.names["m1"]]

    now = demo.answers["lineage_now"]
    serving = {e["src"]: e["valid_to"] for e in now["edges"] if e["kind"] == "serves"}
    assert serving == {demo.names["m1"]: demo.day(11), demo.names["m2"]: None}


def test_footprint_of_the_example_patient(demo: Demo) -> None:
    """The example patient has two records, both in both dataset versions, and a vault entry."""
    answer = demo.answers["footprint"]
    assert len(answer["records"]) == 2
    assert [d["dataset"] for d in answer["datasets"]] == sorted(
        [demo.names["clean"], demo.names["raw"]]
    )
    assert answer["vault_entries"] == 1
    assert len(answer["predictions"]) >= 2
    assert demo.names["subject"] not in json.dumps(answer)


def test_history_has_four_intervals(demo: Demo) -> None:
    """v1 alone, then a 90/10 canary, then v2 alone."""
    intervals = demo.answers["history"]["intervals"]
    m1, m2 = demo.names["m1"], demo.names["m2"]
    assert [(i["model"], i["traffic"], i["from"], i["to"]) for i in intervals] == [
        (m1, 100.0, demo.day(3), demo.day(10)),
        (m1, 90.0, demo.day(10), demo.day(11)),
        (m2, 10.0, demo.day(10), demo.day(11)),
        (m2, 100.0, demo.day(11), None),
    ]


def test_files_beside_the_database_match_the_ledger_digests(demo: Demo) -> None:
    """The CSVs and model pickles are written beside the database with the digests recorded."""
    work = demo.db.parent / "demo"
    datasets = {e.entity: e.body for e in demo.events if e.type == "dataset-version-registered"}
    files = {
        demo.names["raw"]: work / "breast_cancer_raw.csv",
        demo.names["clean"]: work / "breast_cancer_clean.csv",
    }
    for node, path in files.items():
        assert datasets[node]["digest"] == sha256(path), path
        assert datasets[node]["uri"] == path.resolve().as_uri()
        rows = path.read_text().splitlines()
        assert len(rows) - 1 == datasets[node]["row_count"]
    assert datasets[demo.names["raw"]]["row_count"] == RAW_ROWS

    models = {e.entity: e.body for e in demo.events if e.type == "model-version-registered"}
    for node, name in ((demo.names["m1"], "model_v1.pkl"), (demo.names["m2"], "model_v2.pkl")):
        path = work / name
        assert models[node]["artifact_digest"] == sha256(path), path
        assert models[node]["artifact_uri"] == path.resolve().as_uri()
        assert hasattr(pickle.loads(path.read_bytes()), "predict_proba")
    assert json.loads((work / f"{PROJECT}.json").read_text()) == demo.names


def test_a_second_run_finds_the_scenario_and_appends_nothing(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run again (through the CLI), the demo prints all six answers and writes no event."""
    assert main(["demo", "--db", demo.url, "--predictions", str(PREDICTIONS)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        f"mlledger demo: found the scenario in {demo.url} "
        f"({len(demo.events)} events, project '{PROJECT}')"
    )
    headings = [line for line in lines if line[:2] in {f"{i}." for i in range(1, 7)}]
    assert [" ".join(h.split()[:2]) for h in headings] == list(SECTIONS)
    assert f"who scored record {demo.names['record']}?" in out
    assert "total predictions: 600" in out
    assert "90% traffic" in out and "10% traffic" in out
    proved = demo.first["integrity"]["proved_position"]
    assert out.rstrip().endswith(
        f"mlledger scored {demo.names['record']} --project {PROJECT} --json\n"
        f"     mlledger audit prove {proved} --out proof.json\n"
        f"     open {demo.first['reports']['dossier']}/index.html in a browser"
    )
    assert "9. reports and exports: what a regulator is handed" in out
    assert "signed manifest verifies" in out
    assert "7. integrity: is the log as it was written?" in out
    assert "audit verify: OK" in out
    assert read_log(demo.url) == demo.events


def test_a_second_json_run_gives_the_same_answers(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """A later JSON run reports nothing recorded, the same event count and the same answers."""
    assert run_demo(demo.url, project=PROJECT, predictions=PREDICTIONS, as_json=True) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["recorded"] is False
    assert again["events"] == demo.first["events"]
    assert again["names"] == demo.names
    assert again["answers"] == demo.answers
    assert again["erasure"]["status"] == "already-erased"
    assert again["erasure"]["erasure"] == demo.first["erasure"]["erasure"]
    assert read_log(demo.url) == demo.events


def test_the_demo_erases_a_patient_and_certifies_it(demo: Demo) -> None:
    """The erasure section: a patient erased, the certificate checked with the public key,
    their footprint answering "erased", and the log still verifying."""
    erasure = demo.first["erasure"]
    assert erasure["status"] == "erased"
    erased = demo.events[erasure["erased_position"]]
    assert erased.type == "subject-erased" and erased.body["erasure"] == erasure["erasure"]
    assert erasure["certificate"]["erasure"] == erasure["erasure"]
    affected = erasure["certificate"]["affected"]
    assert affected["records"] == erasure["plan"]["records"]["count"] > 0
    assert erasure["footprint"]["erased"]["position"] == erasure["erased_position"]
    assert {m["status"] for m in erasure["certificate"]["remediation"]} == {"retrain-required"}
    assert demo.first["integrity"]["verified"] is True
    shown = {k: v for k, v in erasure.items() if k != "patient"}
    assert erasure["patient"] not in json.dumps(shown)


def test_the_demo_writes_both_reports_and_a_verified_export(demo: Demo) -> None:
    """The reports section: the current model's dossier with proof bundles that verify,
    the subject-access report of the patient the questions follow, and a Parquet
    export whose signed manifest verifies against the checkpoint it reflects."""
    reports = demo.first["reports"]
    dossier = Path(reports["dossier"])
    assert (dossier / "index.html").is_file() and (dossier / "model-card.md").is_file()
    bundles = sorted((dossier / "evidence").glob("*.json"))
    assert len(bundles) == reports["evidence_verified"] > 0
    assert demo.names["m2"] in (dossier / "index.html").read_text()
    sar = json.loads((Path(reports["subject_access"]) / "report.json").read_text())
    assert sar["subject"] == demo.answers["footprint"]["subject"]
    assert sar["counts"] == reports["subject_counts"]
    assert sar["counts"]["predictions"] == len(demo.answers["footprint"]["predictions"])
    assert reports["export_verified"] is True
    assert reports["export_checkpoint"] == len(demo.events)
    manifest = json.loads((Path(reports["export"]) / "manifest.json").read_text())
    assert manifest["payloadType"] == "application/vnd.in-toto+json"
