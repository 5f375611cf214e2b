"""The ``mlledger`` command line: each question in text and JSON, and errors without tracebacks.

One small ledger is recorded through the SDK for the whole module (two dataset
versions, two training runs, two model versions, a deployment that switches
from one to the other, predictions, an alias and a vault entry), then every
command is run in-process through ``registry.cli.main`` and a few through the
installed console script, as a user would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import registry
from registry.assembly import open_ledger
from registry.cli import main
from registry.timeutil import to_timestamp
from tests.support.helpers import assert_one_error_line

PROJECT = "p"
ENDPOINT = "https://api.example/score"
START = datetime(2024, 1, 1, tzinfo=UTC)
CLOSED_PORT_URL = "postgresql://nobody@127.0.0.1:1/x"
RECORDS = [f"r-{i}" for i in range(6)]
SUBJECTS: list[str | None] = ["s-1", "s-2", "s-1", "s-3", None, "s-4"]
REPO = Path(__file__).resolve().parents[1]


def day(n: float) -> datetime:
    """``n`` days after the scenario's start."""
    return START + timedelta(days=n)


def stamp(n: float) -> str:
    """The ledger's timestamp text for ``day(n)``."""
    return to_timestamp(day(n))


@dataclass(frozen=True)
class Scenario:
    """The module's ledger and the ids the questions are about."""

    url: str
    key_file: Path
    raw: str
    clean: str
    run_a: str
    run_b: str
    m1: str
    m2: str
    deployment: str
    head: int


def record(url: str) -> dict[str, str]:
    """Record the scenario through the SDK; return the ids it created."""
    with registry.connect(url, project=PROJECT, actor="alice") as reg:
        raw = reg.register_dataset("raw", "1", uri="file:///data/raw.csv",
                                   digest="sha256:" + "a" * 64, records=RECORDS,
                                   subjects=SUBJECTS, occurred_at=day(0))
        clean = reg.register_dataset("clean", "1", uri="file:///data/clean.csv",
                                     digest="sha256:" + "b" * 64, records=RECORDS[:4],
                                     subjects=SUBJECTS[:4], derived_from=[raw],
                                     occurred_at=day(1))
        with reg.run("train-a", params={"C": 1.0}, inputs=[raw], occurred_at=day(2),
                     ended_at=day(2.1)) as run_a:
            m1 = run_a.register_model("clf", artifact_uri="file:///models/1.pkl",
                                      artifact_digest="sha256:" + "c" * 64, framework="sklearn")
        deployment = reg.deploy("api", endpoint=ENDPOINT, served={m1: 100}, occurred_at=day(3))
        reg.set_alias(m1, "production", occurred_at=day(3))
        reg.log_predictions(deployment, records=["r-1", "r-2"], outputs=[0.1, 0.9], model=m1,
                            at=day(4))
        with reg.run("train-b", params={"depth": 3}, inputs=[clean], occurred_at=day(5),
                     ended_at=day(5.1)) as run_b:
            m2 = run_b.register_model("clf", artifact_uri="file:///models/2.pkl",
                                      artifact_digest="sha256:" + "d" * 64, framework="sklearn")
        reg.deploy("api", endpoint=ENDPOINT, served={m2: 100}, occurred_at=day(6))
        reg.set_alias(m2, "production", occurred_at=day(6))
        reg.log_predictions(deployment, records=["r-1"], outputs=[0.3], model=m2, at=day(7))
        entry = reg.store_subject_data("s-1", {"name": "Ann Example", "year_of_birth": 1970})
    return {"raw": raw.id, "clean": clean.id, "run_a": run_a.id, "run_b": run_b.id,
            "m1": m1.id, "m2": m2.id, "deployment": deployment.id, "entry": entry}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """The recorded ledger, shared by the module's read-only tests."""
    base = tmp_path_factory.mktemp("cli")
    key_file = base / "keys" / "master.key"
    url = f"sqlite:///{base}/l.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLLEDGER_KEY_FILE", str(key_file))
        for name in ("MLLEDGER_DB", "MLLEDGER_MASTER_KEY", "MLLEDGER_PROJECT", "MLLEDGER_ACTOR"):
            mp.delenv(name, raising=False)
        ids = record(url)
        ledger = open_ledger(url)
        try:
            events = ledger.read()
            last = ledger.last_event()
        finally:
            ledger.close()
    assert Counter(e.type for e in events) == {
        "dataset-version-registered": 2, "dataset-records-added": 2, "run-started": 2,
        "run-inputs-used": 2, "model-version-registered": 2,
        "run-completed": 2, "deployment-configured": 2, "model-alias-moved": 2,
        "predictions-logged": 2, "subject-data-stored": 1,
    }
    assert last is not None and last.type == "subject-data-stored"
    assert last.entity.startswith(f"subject:{PROJECT}/") and "s-1" not in last.entity
    assert last.body["fields"] == ["name", "year_of_birth"]
    assert last.personal_refs == (ids["entry"],)
    switches = [e for e in events if e.type == "deployment-configured"]
    assert [(e.entity, e.occurred_at, e.body["served"]) for e in switches] == [
        (ids["deployment"], stamp(3), [{"model": ids["m1"], "traffic": 100.0}]),
        (ids["deployment"], stamp(6), [{"model": ids["m2"], "traffic": 100.0}]),
    ]
    yield Scenario(url=url, key_file=key_file, head=events[-1].position,
                   **{k: v for k, v in ids.items() if k != "entry"})


@pytest.fixture(autouse=True)
def scenario_key(scenario: Scenario, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every test at the scenario's master key (pseudonyms depend on it)."""
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(scenario.key_file))


@pytest.fixture
def cli(scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``mlledger ARGS --db URL --project p`` in-process; return (status, stdout, stderr)."""

    def run(*args: str, db: str | None = None) -> tuple[int, str, str]:
        status = main([*args, "--db", db or scenario.url, "--project", PROJECT])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def console_script() -> list[str]:
    """The installed ``mlledger`` script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("mlledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "registry.cli"]


def run_process(command: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line in a child process with this test's environment."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120, check=False)


# --- scored ---------------------------------------------------------------------------------


def test_scored_text_names_each_model_version_and_deployment(cli: Any) -> None:
    """``scored`` prints one line per scoring, with model version and deployment."""
    status, out, err = cli("scored", "r-1")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].endswith("was scored 2 times:")
    assert "r-1" not in out  # the key the user typed is shown only as its pseudonym
    assert ["clf@1" in lines[1], "clf@2" in lines[2]] == [True, True]
    assert all(" in api " in line for line in lines[1:])
    assert "2024-01-05 00:00:00" in lines[1] and "2024-01-08 00:00:00" in lines[2]


def test_scored_json_lists_predictions_in_time_order(cli_json: Any, scenario: Scenario) -> None:
    """``scored --json`` gives model, deployment, time and output of each scoring."""
    data = cli_json("scored", "r-1")
    assert data["record"].startswith(f"record:{PROJECT}/")
    assert data["times_scored"] == 2
    assert [(p["model"], p["deployment"], p["at"], p["output"]) for p in data["predictions"]] == [
        (scenario.m1, scenario.deployment, stamp(4), 0.1),
        (scenario.m2, scenario.deployment, stamp(7), 0.3),
    ]


def test_scored_record_that_was_never_scored(cli_json: Any) -> None:
    """A record held by a dataset but never scored is an empty answer, not an error."""
    data = cli_json("scored", "r-5")
    assert (data["times_scored"], data["predictions"]) == (0, [])


# --- trained-on -----------------------------------------------------------------------------


def test_trained_on_text_lists_both_dataset_versions(cli: Any) -> None:
    """``trained-on`` prints the direct and the upstream dataset with record counts."""
    status, out, err = cli("trained-on", "clf@2")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "clf@2 was trained on 2 dataset versions through 1 run:"
    assert "clean@1" in lines[1] and "direct" in lines[1] and "4 records" in lines[1]
    assert "raw@1" in lines[2] and "upstream" in lines[2] and "6 records" in lines[2]
    assert "sha256:" + "b" * 64 in lines[1]


def test_trained_on_json_has_relations_depths_and_record_counts(
        cli_json: Any, scenario: Scenario) -> None:
    """``trained-on --json`` lists each dataset version with relation, depth and counts."""
    data = cli_json("trained-on", "clf@2")
    assert data["model"] == scenario.m2
    assert data["runs"] == [{"run": scenario.run_b, "job": "train-b"}]
    assert [(d["dataset"], d["relation"], d["depth"], d["records"], d["row_count"])
            for d in data["datasets"]] == [
        (scenario.clean, "direct", 1, 4, 4),
        (scenario.raw, "upstream", 2, 6, 6),
    ]


@pytest.mark.parametrize(("model", "expected"), [
    ("clf@production", "m2"),
    ("model:p/clf@1", "m1"),
    ("clf@1", "m1"),
])
def test_trained_on_accepts_aliases_and_full_ids(
        cli_json: Any, scenario: Scenario, model: str, expected: str) -> None:
    """An alias resolves to the version it points at now; a full id is taken as is."""
    data = cli_json("trained-on", model)
    assert data["model"] == getattr(scenario, expected)
    if expected == "m1":
        assert [(d["dataset"], d["relation"], d["records"]) for d in data["datasets"]] == [
            (scenario.raw, "direct", 6)]


# --- downstream -----------------------------------------------------------------------------


def test_downstream_text_summarises_runs_models_and_predictions(cli: Any) -> None:
    """``downstream`` prints the runs, datasets, models, deployment and prediction counts."""
    status, out, err = cli("downstream", "raw@1")
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == "downstream of raw@1:"
    for expected in ("train-a", "train-b", "datasets: clean@1", "models: clf@1, clf@2",
                     "deployment api served clf@1, clf@2", "2 predictions by clf@1 in api",
                     "1 prediction by clf@2 in api", "total predictions: 3"):
        assert expected in out, expected


def test_downstream_json_of_raw_and_of_clean(cli_json: Any, scenario: Scenario) -> None:
    """Everything depends on the raw version; only the second model on the clean one."""
    raw = cli_json("downstream", "raw@1")
    assert raw["dataset"] == scenario.raw
    assert [r["run"] for r in raw["runs"]] == sorted([scenario.run_a, scenario.run_b])
    assert [d["dataset"] for d in raw["datasets"]] == [scenario.clean]
    assert [m["model"] for m in raw["models"]] == [scenario.m1, scenario.m2]
    assert raw["deployments"] == [{"deployment": scenario.deployment,
                                   "serves_from_here": [scenario.m1, scenario.m2]}]
    assert {p["model"]: p["count"] for p in raw["predictions"]} == {scenario.m1: 2,
                                                                   scenario.m2: 1}
    assert raw["total_predictions"] == 3

    clean = cli_json("downstream", f"dataset:{PROJECT}/clean@1")
    assert [r["run"] for r in clean["runs"]] == [scenario.run_b]
    assert [m["model"] for m in clean["models"]] == [scenario.m2]
    assert clean["deployments"] == [{"deployment": scenario.deployment,
                                     "serves_from_here": [scenario.m2]}]
    assert clean["total_predictions"] == 1


# --- lineage --------------------------------------------------------------------------------


def serving(data: dict[str, Any]) -> dict[str, str | None]:
    """Model -> valid_to of each ``serves`` edge in a lineage answer."""
    return {e["src"]: e["valid_to"] for e in data["edges"] if e["kind"] == "serves"}


def test_lineage_as_of_shows_the_old_model_then_and_the_new_one_now(
        cli: Any, cli_json: Any, scenario: Scenario) -> None:
    """On day 4 the deployment was fed by v1 alone; now v2 serves and v1's edge is closed."""
    then = cli_json("lineage", scenario.deployment, "--direction", "upstream",
                    "--as-of", day(4).isoformat())
    assert then["as_of"] == stamp(4)
    assert {n["id"] for n in then["nodes"]} == {scenario.deployment, scenario.m1, scenario.run_a,
                                                scenario.raw}
    assert list(serving(then)) == [scenario.m1]

    now = cli_json("lineage", scenario.deployment, "--direction", "upstream")
    assert now["as_of"] is None
    assert serving(now) == {scenario.m1: stamp(6), scenario.m2: None}
    assert {scenario.m2, scenario.run_b, scenario.clean} <= {n["id"] for n in now["nodes"]}

    status, out, err = cli("lineage", scenario.deployment, "--direction", "upstream",
                           "--as-of", "2024-01-05T00:00:00Z")
    assert (status, err) == (0, "")
    assert "as of 2024-01-05T00:00:00.000000Z" in out.splitlines()[0]
    assert f"{scenario.m1}  -[serves]->  {scenario.deployment}" in out
    assert scenario.m2 not in out


def test_lineage_text_marks_closed_edges(cli: Any, scenario: Scenario) -> None:
    """Without ``--as-of`` every edge is shown, a closed one with its end time."""
    status, out, err = cli("lineage", scenario.deployment)
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == (f"lineage of {scenario.deployment} (both, up to 3 hops): "
                                   "7 nodes, 7 edges")
    assert (f"{scenario.m1}  -[serves]->  {scenario.deployment}  (until 2024-01-07 00:00:00)"
            in out)
    assert f"{scenario.m2}  -[serves]->  {scenario.deployment}\n" in out + "\n"


def test_lineage_direction_and_depth_bound_the_subgraph(cli_json: Any, scenario: Scenario) -> None:
    """``--direction`` picks the side and ``--depth`` the number of hops."""
    down = cli_json("lineage", scenario.raw, "--direction", "downstream", "--depth", "1")
    assert {n["id"]: n["distance"] for n in down["nodes"]} == {
        scenario.raw: 0, scenario.clean: 1, scenario.run_a: 1}
    assert (down["direction"], down["depth"]) == ("downstream", 1)

    up = cli_json("lineage", scenario.m2, "--direction", "upstream", "--depth", "2")
    assert {n["id"]: n["distance"] for n in up["nodes"]} == {
        scenario.m2: 0, scenario.run_b: 1, scenario.clean: 2}
    assert {(e["src"], e["kind"], e["dst"]) for e in up["edges"]} == {
        (scenario.run_b, "output", scenario.m2), (scenario.clean, "input", scenario.run_b)}

    alone = cli_json("lineage", scenario.m2, "--depth", "0")
    assert ([n["id"] for n in alone["nodes"]], alone["edges"]) == ([scenario.m2], [])


# --- footprint ------------------------------------------------------------------------------


def test_footprint_of_a_subject(cli: Any, cli_json: Any, scenario: Scenario) -> None:
    """``footprint`` finds the subject's records, datasets, models, predictions and vault entry."""
    data = cli_json("footprint", "s-1")
    assert data["subject"].startswith(f"subject:{PROJECT}/")
    assert len(data["records"]) == 2
    assert all(r["datasets"] == [scenario.clean, scenario.raw] for r in data["records"])
    assert data["datasets"] == [{"dataset": scenario.clean, "label": "clean@1"},
                                {"dataset": scenario.raw, "label": "raw@1"}]
    assert [m["model"] for m in data["models"]] == [scenario.m1, scenario.m2]
    assert [(p["model"], p["deployment"], p["at"]) for p in data["predictions"]] == [
        (scenario.m1, scenario.deployment, stamp(4))]
    assert data["vault_entries"] == 1

    status, out, err = cli("footprint", "s-1")
    assert (status, err) == (0, "")
    assert out.splitlines()[0].endswith(
        ": 2 records, 2 dataset versions, 1 prediction, 1 vault entry")
    assert "s-1" not in out
    assert "scored 2024-01-05 00:00:00 by clf@1 in api" in out


# --- history --------------------------------------------------------------------------------


def test_history_intervals_in_order(cli: Any, cli_json: Any, scenario: Scenario) -> None:
    """``history`` gives each served interval with traffic, oldest first."""
    data = cli_json("history", "api")
    assert (data["deployment"], data["status"], data["endpoint"]) == (
        scenario.deployment, "active", ENDPOINT)
    assert [(i["model"], i["traffic"], i["from"], i["to"]) for i in data["intervals"]] == [
        (scenario.m1, 100.0, stamp(3), stamp(6)),
        (scenario.m2, 100.0, stamp(6), None),
    ]
    assert cli_json("history", scenario.deployment) == data

    status, out, err = cli("history", "api")
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"api (active, {ENDPOINT}):",
        "  2024-01-04 00:00:00 .. 2024-01-07 00:00:00  clf@1                  100% traffic",
        "  2024-01-07 00:00:00 .. now                  clf@2                  100% traffic",
    ]


# --- rebuild and log ------------------------------------------------------------------------


def test_rebuild_reproduces_the_projection_digest(
        cli: Any, cli_json: Any, scenario: Scenario, tmp_path: Path) -> None:
    """``rebuild`` replays every event, appends none, and lands on the same digest."""
    copy = tmp_path / "copy.db"  # rebuild a copy: the module's ledger stays untouched
    with sqlite3.connect(scenario.url.removeprefix("sqlite:///")) as src, \
            sqlite3.connect(copy) as dst:
        src.backup(dst)
    url = f"sqlite:///{copy}"
    with registry.connect(url, project=PROJECT) as reg:
        before = reg.ledger.projection_digest()
        newest = reg.ledger.last_event()

    data = cli_json("rebuild", db=url)
    assert data["events"] == scenario.head + 1
    assert data["digest"] == before
    assert isinstance(data["seconds"], float)

    status, out, err = cli("rebuild", db=url)
    assert (status, err) == (0, "")
    assert out.startswith(f"replayed {scenario.head + 1} events in ")
    assert out.strip().endswith(f"projection digest {before}")

    ledger = open_ledger(url)
    try:
        assert ledger.last_event() == newest  # a rebuild appends nothing
        assert ledger.projection_digest() == before
    finally:
        ledger.close()


def test_log_prints_events_in_position_order(cli: Any, cli_json: Any, scenario: Scenario) -> None:
    """``log`` pages through the log; ``--json`` gives whole events."""
    status, out, err = cli("log")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == min(20, scenario.head + 1)
    assert lines[0].split()[:4] == ["0", stamp(0), "dataset-version-registered", scenario.raw]
    assert lines[0].endswith("by alice")

    page = cli_json("log", "--start", "2", "--limit", "3")
    assert [e["position"] for e in page] == [2, 3, 4]
    assert [(e["type"], e["entity"]) for e in page] == [
        ("dataset-version-registered", scenario.clean),
        ("dataset-records-added", scenario.clean),
        ("run-started", scenario.run_a),
    ]
    assert page[0]["body"]["derived_from"] == [scenario.raw]
    assert all(len(e["leaf_hash"]) == 64 for e in page)

    last = cli_json("log", "--start", str(scenario.head))
    assert [(e["position"], e["type"]) for e in last] == [(scenario.head, "subject-data-stored")]
    assert "s-1" not in json.dumps(last) and "Ann Example" not in json.dumps(last)

    status, out, _ = cli("log", "--start", str(scenario.head + 1))
    assert (status, out) == (0, "(no events)\n")


# --- settings -------------------------------------------------------------------------------


def test_database_and_project_from_the_environment(
        scenario: Scenario, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without ``--db`` and ``--project``, MLLEDGER_DB and MLLEDGER_PROJECT are used."""
    monkeypatch.setenv("MLLEDGER_DB", scenario.url)
    monkeypatch.setenv("MLLEDGER_PROJECT", PROJECT)
    assert main(["history", "api", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out)["deployment"] == scenario.deployment

    monkeypatch.delenv("MLLEDGER_PROJECT")
    assert main(["history", "api", "--project", PROJECT]) == 0
    assert capsys.readouterr().out.startswith(f"api (active, {ENDPOINT})")


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "names"), [
    (["scored", "nope"], ["no record with that key", "'p'"]),
    (["trained-on", "nope@1"], ["'nope@1'"]),
    (["trained-on", "clf@staging"], ["'clf@staging'"]),
    (["trained-on", "clf"], ["'clf'", "<name>@<version>"]),
    (["trained-on", "dataset:p/raw@1"], ["is a dataset id, expected a model id"]),
    (["downstream", "nope@1"], ["dataset:p/nope@1"]),
    (["downstream", "model:p/clf@1"], ["is a model id, expected a dataset id"]),
    (["footprint", "nobody"], ["no data subject with that id", "'p'"]),
    (["history", "nope"], ["deployment:p/nope"]),
    (["history", "no such"], ["'deployment:p/no such'"]),
    (["lineage", "model:p/nope@1"], ["model:p/nope@1"]),
    (["lineage", "not-a-node"], ["'not-a-node'", "has no kind"]),
    (["lineage", "run:not-a-uuid"], ["'run:not-a-uuid'"]),
    (["lineage", "model:p/clf@1", "--as-of", "yesterday"], ["'yesterday'", "ISO 8601"]),
    (["lineage", "model:p/clf@1", "--as-of", "2024-13-01"], ["'2024-13-01'"]),
    (["lineage", "model:p/clf@2", "--as-of", "2024-01-02"], ["model:p/clf@2",
                                                             "did not exist yet"]),
    (["lineage", "model:p/clf@1", "--depth", "-1"], ["depth -1"]),
])
def test_bad_input_is_one_error_line_and_status_2(cli: Any, args: list[str],
                                                  names: list[str]) -> None:
    """An unknown node or malformed argument exits 2 with one line naming it."""
    status, out, err = cli(*args)
    assert (status, out) == (2, "")
    assert_one_error_line(err, args[0], *names)


def test_invalid_project_name_and_url_scheme_are_status_2(
        cli: Any, scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid project or an unsupported database URL is bad input, not a crash."""
    status, _, err = cli("history", "api", db="mysql://someone@host/db")
    assert status == 2
    assert_one_error_line(err, "history", "'mysql://someone@host/db'", "not supported")

    assert main(["history", "api", "--db", scenario.url, "--project", "no good"]) == 2
    assert_one_error_line(capsys.readouterr().err, "history", "project 'no good'")


@pytest.mark.parametrize("args", [
    ["lineage", "model:p/clf@1", "--depth", "two"],
    ["lineage", "model:p/clf@1", "--direction", "sideways"],
    ["log", "--limit", "many"],
    ["scored"],
    ["no-such-command"],
    [],
])
def test_argument_errors_exit_2_through_argparse(
        args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed arguments are refused by argparse with status 2 and its usage line."""
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mlledger")
    assert "error:" in err and "Traceback" not in err


def test_unreachable_postgresql_is_status_1(cli: Any) -> None:
    """A server that cannot be reached: one 'cannot use the database' line, status 1."""
    status, out, err = cli("scored", "r-1", db=CLOSED_PORT_URL)
    assert (status, out) == (1, "")
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mlledger scored: cannot use the database: "), lines[0]


def test_an_uncreatable_database_directory_is_one_error_line(cli: Any, tmp_path: Path) -> None:
    """A database path under a regular file is reported in one line, without a traceback."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    status, _, err = cli("history", "api", db=f"sqlite:///{blocker}/l.db")
    assert status in (1, 2)
    assert err.startswith("mlledger history: ") and "Traceback" not in err


def test_a_negative_log_limit_is_bad_input(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``log --limit -1`` is refused as bad input, by argparse (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        cli("log", "--limit", "-1")
    assert exit_info.value.code == 2
    assert "--limit: -1 is negative" in capsys.readouterr().err


# --- the installed console script -------------------------------------------------------------


def test_console_script_answers_a_question(scenario: Scenario) -> None:
    """The installed ``mlledger`` script prints JSON and nothing on stderr."""
    done = run_process(console_script(), "history", "api", "--db", scenario.url,
                       "--project", PROJECT, "--json")
    assert (done.returncode, done.stderr) == (0, "")
    assert [i["model"] for i in json.loads(done.stdout)["intervals"]] == [scenario.m1, scenario.m2]


@pytest.mark.parametrize(("command", "args", "status", "start"), [
    ("script", ["scored", "nope"], 2, "mlledger scored: error: no record with that key"),
    ("module", ["downstream", "nope@1"], 2, "mlledger downstream: error: "),
    ("script", ["scored", "r-1", "--db", CLOSED_PORT_URL], 1,
     "mlledger scored: cannot use the database: "),
])
def test_console_script_errors_never_show_a_traceback(
        scenario: Scenario, command: str, args: list[str], status: int, start: str) -> None:
    """Errors from a real process: the status, one stderr line, no traceback."""
    program = console_script() if command == "script" else [sys.executable, "-m", "registry.cli"]
    if "--db" not in args:
        args = [*args, "--db", scenario.url]
    done = run_process(program, *args, "--project", PROJECT)
    assert (done.returncode, done.stdout) == (status, "")
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(start), lines[0]


def test_aliases_command(cli: Any, cli_json: Any) -> None:
    """``aliases`` lists where each alias pointed and who moved it; unknown names fail."""
    answer = cli_json("aliases", "clf")
    assert answer["model"] == "clf" and answer["history"]
    status, out, err = cli("aliases", "ghost")
    assert (status, out) == (2, "") and err.startswith("mlledger aliases: error:")


def test_settings_are_read_once_and_handed_to_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main`` reads ``MLLEDGER_*`` once and hands the settings down: neither the
    commands, the SDK they connect with, nor the settings helpers (here: the actor that
    creates a key, from ``MLLEDGER_ACTOR``) read the environment again."""
    from registry import settings as settings_module

    readers: list[str] = []
    real = settings_module.Settings

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, **values: Any) -> None:
            super().__init__(**values)
            caller = sys._getframe(1)  # through registry.settings' helpers to their caller
            while (
                caller.f_back is not None
                and caller.f_globals["__name__"] == settings_module.__name__
            ):
                caller = caller.f_back
            readers.append(caller.f_globals["__name__"])

    monkeypatch.setattr(settings_module, "Settings", Counted)
    monkeypatch.setenv("MLLEDGER_ACTOR", "ops@example")
    db = str(tmp_path / "ledger.db")
    interface = ("registry.cli", "registry.commands", "registry.sdk")
    for argv in (
        ["keys", "create", "--db", db, "--project", "p", "--role", "viewer", "--json"],
        ["log", "--db", db, "--json"],
        ["audit", "checkpoints", "--db", db, "--json"],
    ):
        readers.clear()
        assert main(argv) == 0
        assert [r for r in readers if r.startswith(interface)] == ["registry.cli"], argv
        out = capsys.readouterr().out
    assert json.loads(out) == []
    assert len(made_by := [r for r in readers if r == "registry.cli"]) == 1, made_by


def test_every_command_has_a_summary_and_a_description() -> None:
    """Each command's help is the docstring of the function that runs it: a one-line
    summary for ``mlledger --help`` and a description for ``mlledger COMMAND --help``."""
    import argparse

    from registry.cli import build_parser

    def groups(parser: argparse.ArgumentParser) -> list[Any]:
        return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]

    pending = [("mlledger", build_parser())]
    seen = 0
    while pending:
        path, parser = pending.pop()
        for group in groups(parser):
            summaries = {a.dest: a.help for a in group._choices_actions}
            for name, sub in group.choices.items():
                assert summaries[name] and "\n" not in summaries[name], (path, name)
                assert sub.description, (path, name)
                pending.append((f"{path} {name}", sub))
                seen += 1
    assert seen > 30


def test_settings_helpers_take_the_settings_they_are_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The helpers of ``registry.settings`` use the settings a caller holds; the
    environment only stands in when none are given."""
    from registry.settings import (
        Settings,
        default_actor,
        default_signing_key_file,
        normalise_url,
    )

    monkeypatch.setenv("MLLEDGER_ACTOR", "from-env@example")
    monkeypatch.setenv("MLLEDGER_DB", str(tmp_path / "env.db"))
    held = Settings(actor="held@example", db=str(tmp_path / "held.db"), signing_key="k.key")
    assert default_actor(held) == "held@example"
    assert default_actor() == "from-env@example"
    assert normalise_url(None, held) == f"sqlite:///{tmp_path / 'held.db'}"
    assert normalise_url(None) == f"sqlite:///{tmp_path / 'env.db'}"
    url = normalise_url(None, held)
    assert default_signing_key_file(url, held) == tmp_path / "k.key"
