"""What the ``mlledger`` commands print as text says what their ``--json`` says.

Each test runs the real command line (``registry.cli.main``, in-process) on a small
SQLite ledger recorded through the SDK, once as text and once with ``--json``, and
checks that the text carries what the JSON holds: erasures, ids, depths, counts in
proper singular or plural, and that every subcommand's ``--help`` documents it.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import registry
from registry.assembly import open_ledger
from registry.cli import build_parser, main
from registry.events import StoredEvent

PROJECT = "p"
OTHER = "q"
# Record r-i belongs to SUBJECTS[i]: s-1 holds r-0 and r-2, s-2 holds r-1.
RECORDS = [f"r-{i}" for i in range(6)]
SUBJECTS: list[str | None] = ["s-1", "s-2", "s-1", "s-3", None, "s-4"]
# What counted text may never show again.
HEDGED = re.compile(r"\((s|ies|es)\)")


@dataclass(frozen=True)
class World:
    """The recorded ledger and the ids the commands are asked about."""

    url: str
    raw: str
    clean: str
    features: str
    m1: str
    m2: str
    tuned: str
    deployment: str


@pytest.fixture
def world(tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """raw -> clean -> features (derived); train-a fits clf@1 on raw, train-b clf@2 on
    clean, tune fits tuned@1 from clf@2; api serves clf@1, which scored r-0 and r-1;
    clf@2 is production; s-1 has a vault entry; project q holds one dataset version.
    Recorded outside any git working tree, so the runs report no commit."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/ledger.db"
    with registry.connect(url, project=PROJECT, actor="alice") as reg:
        raw = reg.register_dataset("raw", "1", uri="file:///raw.csv", digest="sha256:" + "a" * 64,
                                   records=RECORDS, subjects=SUBJECTS)  # fmt: skip
        clean = reg.register_dataset("clean", "1", uri="file:///clean.csv",
                                     digest="sha256:" + "b" * 64, records=RECORDS[:4],
                                     subjects=SUBJECTS[:4], derived_from=[raw])  # fmt: skip
        features = reg.register_dataset("features", "1", uri="file:///f.csv",
                                        digest="sha256:" + "c" * 64, records=["f-1"],
                                        derived_from=[clean])  # fmt: skip
        with reg.run("train-a", params={"C": 1.0}, inputs=[raw]) as run_a:
            m1 = run_a.register_model("clf", artifact_uri="file:///1.pkl",
                                      artifact_digest="sha256:" + "d" * 64)  # fmt: skip
        with reg.run("train-b", inputs=[clean]) as run_b:
            m2 = run_b.register_model("clf", artifact_uri="file:///2.pkl",
                                      artifact_digest="sha256:" + "e" * 64)  # fmt: skip
        with reg.run("tune", inputs=[m2]) as tune:
            tuned = tune.register_model("tuned", artifact_uri="file:///3.pkl",
                                        artifact_digest="sha256:" + "f" * 64)  # fmt: skip
        api = reg.deploy("api", endpoint="https://api.example/score", served={m1: 100})
        reg.log_predictions(api, model=m1, records=["r-0", "r-1"], outputs=[0.1, 0.9])
        reg.set_alias(m2, "production")
        reg.store_subject_data("s-1", {"name": "Ann Example"})
    with registry.connect(url, project=OTHER, actor="bob") as reg:
        reg.register_dataset("other", "1", uri="file:///o.csv", digest="sha256:" + "0" * 64,
                             records=["o-1"])  # fmt: skip
    return World(url=url, raw=raw.id, clean=clean.id, features=features.id, m1=m1.id,
                 m2=m2.id, tuned=tuned.id, deployment=api.id)  # fmt: skip


@pytest.fixture
def cli(world: World, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``mlledger ARGS --db URL --project p``; return (status, stdout, stderr)."""

    def run(*args: str, project: str | None = PROJECT) -> tuple[int, str, str]:
        scope = ["--project", project] if project else []
        status = main([*args, "--db", world.url, *scope])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def both(cli: Any) -> Any:
    """Run a command as text and with ``--json``; return (text, parsed JSON)."""

    def run(*args: str, project: str | None = PROJECT) -> tuple[str, Any]:
        status, text, err = cli(*args, project=project)
        assert (status, err) == (0, ""), err
        status, out, err = cli(*args, "--json", project=project)
        assert (status, err) == (0, ""), err
        return text, json.loads(out)

    return run


def events_after(url: str, head: int) -> list[StoredEvent]:
    """The events appended after position ``head``."""
    ledger = open_ledger(url)
    try:
        return ledger.read(head + 1)
    finally:
        ledger.close()


def head_of(url: str) -> int:
    ledger = open_ledger(url)
    try:
        return ledger.head()
    finally:
        ledger.close()


@pytest.fixture
def erase(world: World, cli: Any) -> Any:
    """Erase a subject through ``mlledger erase --json``; check the two events it
    appended and return the outcome."""

    def run(subject: str) -> dict[str, Any]:
        head = head_of(world.url)
        status, out, err = cli("erase", subject, "--json")
        assert status == 0, err
        outcome = json.loads(out)
        appended = events_after(world.url, head)
        assert [e.type for e in appended] == ["subject-erasure-requested", "subject-erased"]
        assert [e.entity for e in appended] == [outcome["subject"]] * 2
        assert outcome["erased_position"] == appended[-1].position
        return dict(outcome)

    return run


def plural(n: int, singular: str, many: str | None = None) -> str:
    return f"{n} {singular if n == 1 else many or singular + 's'}"


def erasure_words(erased: dict[str, Any]) -> str:
    """How the text names an answer's ``erased`` member."""
    when = erased["erased_at"][:19].replace("T", " ")
    return (
        f"erased at position {erased['position']} (erasure {erased['erasure']}, requested at "
        f"position {erased['requested_position']}, erased {when})"
    )


def flat(text: str) -> str:
    """``text`` with every run of whitespace as one space (pages and help wrap lines)."""
    return " ".join(text.split())


# --- erased subjects and records answer "erased" in text too -----------------------------------


def test_after_an_erasure_scored_footprint_and_lineage_say_erased(both: Any, erase: Any) -> None:
    outcome = erase("s-1")

    text, data = both("scored", "r-0")
    assert (data["record"], data["times_scored"]) == (None, 0)
    assert data["erased"]["position"] == outcome["erased_position"]
    assert text.strip() == (
        f"this record was {erasure_words(data['erased'])}: its predictions are kept without "
        "the record, their output or trace id, so none is shown"
    )
    assert "None" not in text

    text, data = both("footprint", "s-1")
    assert data["erased"]["erasure"] == outcome["erasure"] and data["records"] == []
    assert text.strip() == (
        f"{data['subject']} was {erasure_words(data['erased'])}: no record, dataset version, "
        "prediction or vault entry of this subject is held"
    )

    text, data = both("lineage", outcome["subject"])
    assert (data["nodes"], data["edges"]) == ([], [])
    assert data["erased"]["position"] == outcome["erased_position"]
    assert text.strip() == (
        f"{outcome['subject']} was {erasure_words(data['erased'])}: it has no lineage "
        "(0 nodes, 0 edges)"
    )


# --- one subject, one id -------------------------------------------------------------------------


def test_a_subject_has_one_id_before_and_after_the_erasure(
    both: Any, cli: Any, erase: Any, world: World
) -> None:
    text, footprint = both("footprint", "s-1")
    subject = footprint["subject"]
    assert text.splitlines()[0].startswith(f"{subject}: ")
    text, planned = both("erase", "s-1", "--dry-run")
    assert planned["subject"] == subject
    assert text.splitlines()[0] == f"plan for {subject} (nothing changed):"

    # Not a node of the lineage graph: refused, saying what to ask instead, the id unsaid.
    status, out, err = cli("lineage", subject)
    assert (status, out) == (2, "")
    assert err.startswith(
        f"mlledger lineage: error: subject:{PROJECT}/… is a data subject, not a node of the "
        "lineage graph"
    )
    assert "mlledger footprint SUBJECT_ID" in err and subject.split("/")[1] not in err

    outcome = erase("s-1")
    assert outcome["subject"] == subject
    text, after = both("footprint", "s-1")
    assert after["subject"] == subject and text.startswith(f"{subject} was erased")
    text, lineage = both("lineage", subject)
    assert lineage["root"] == subject and text.startswith(f"{subject} was erased at position ")
    text, log = both("log", "--limit", "100")
    [stored] = [e for e in log if e["type"] == "subject-data-stored"]
    assert stored["entity"] == subject and f" {subject}  by alice" in text


def test_a_record_id_is_no_lineage_node_either(cli: Any, both: Any) -> None:
    _, scored = both("scored", "r-0")
    status, out, err = cli("lineage", scored["record"])
    assert (status, out) == (2, "")
    assert "is a record, not a node of the lineage graph" in err
    assert "mlledger scored RECORD_KEY" in err and scored["record"].split("/")[1] not in err


# --- depth is counted one way ---------------------------------------------------------------------


def test_trained_on_and_the_dossier_count_depth_the_same_way(
    both: Any, cli: Any, world: World, tmp_path: Path
) -> None:
    for model, expected in (
        ("clf@2", {world.clean: ("direct", 1), world.raw: ("upstream", 2)}),
        ("tuned@1", {world.clean: ("upstream", 2), world.raw: ("upstream", 3)}),
    ):
        text, answer = both("trained-on", model)
        depths = {d["dataset"]: (d["relation"], d["depth"]) for d in answer["datasets"]}
        assert depths == expected
        lines = text.splitlines()
        assert lines[0] == (
            f"{model} was trained on {plural(len(answer['datasets']), 'dataset version')} "
            f"through {plural(len(answer['runs']), 'run')}:"
        )
        for line, d in zip(lines[1:-1], answer["datasets"], strict=True):
            assert line.split()[:4] == [d["label"], d["relation"], "depth", str(d["depth"])]
        assert lines[-1] == "  runs: " + ", ".join(
            f"{r['job']} (…{r['run'][-8:]})" for r in answer["runs"]
        )

        head = head_of(world.url)
        out = tmp_path / f"dossier-{model}"
        status, written, err = cli("report", "model", model, "--out", str(out), "--json")
        assert status == 0, err
        assert json.loads(written)["model"] == answer["model"]
        assert events_after(world.url, head) == []  # a dossier appends nothing
        dossier = json.loads((out / "dossier.json").read_text())
        assert {
            d["id"]: (d["relation"], d["depth"]) for d in dossier["training"]["datasets"]
        } == expected
        page = flat((out / "index.html").read_text())
        assert "<th>Depth</th>" in page and "Steps upstream" not in page
        assert "item(s)" not in page
        training = dossier["training"]
        assert (
            f"Upstream of this version: {plural(len(expected), 'dataset version')}, "
            f"{plural(len(training['runs']), 'run')} and "
            f"{plural(len(training['models']), 'base model version')}." in page
        )


def test_lineage_says_its_depth_is_in_hops(both: Any, world: World) -> None:
    text, data = both("lineage", world.m2, "--direction", "upstream", "--depth", "1")
    assert data["depth"] == 1 and {n["distance"] for n in data["nodes"]} == {0, 1}
    assert text.splitlines()[0] == (
        f"lineage of {world.m2} (upstream, up to 1 hop): "
        f"{plural(len(data['nodes']), 'node')}, {plural(len(data['edges']), 'edge')}"
    )


# --- a footprint's lists have one shape -----------------------------------------------------------


def test_every_node_list_of_a_footprint_has_one_shape(both: Any, world: World) -> None:
    text, data = both("footprint", "s-1")
    assert data["datasets"] == [
        {"dataset": world.clean, "label": "clean@1"},
        {"dataset": world.raw, "label": "raw@1"},
    ]
    assert data["derived_datasets"] == [{"dataset": world.features, "label": "features@1"}]
    assert [m["model"] for m in data["models"]] == [world.m1, world.m2, world.tuned]
    assert all(set(m) == {"model", "label"} for m in data["models"])
    assert [set(r) for r in data["runs"]] == [{"run", "job"}] * 3
    # The same shapes as downstream's, which is built the same way.
    _, down = both("downstream", "raw@1")
    for key in ("datasets", "runs", "models"):
        assert {frozenset(x) for x in down[key]} == {frozenset(x) for x in data[key]}
    lines = text.splitlines()
    assert "  derived datasets: features@1" in lines
    assert "  models: clf@1, clf@2, tuned@1" in lines
    assert any(line.startswith("  runs: train-a (…") for line in lines)


# --- every question's text carries what its JSON holds -------------------------------------------


def label(node: str) -> str:
    """How the text names a dataset, model or deployment id: its name (and version)."""
    return node.split("/", 1)[1]


def when(stamp: str | None) -> str:
    return "now" if stamp is None else stamp[:19].replace("T", " ")


def test_scored_text_gives_each_prediction_with_its_position(both: Any) -> None:
    text, data = both("scored", "r-0")
    lines = text.splitlines()
    assert lines[0] == f"{data['record']} was scored 1 time:"
    for line, p in zip(lines[1:], data["predictions"], strict=True):
        assert line.split()[:3] == [*when(p["at"]).split(), label(p["model"])]
        assert f" in {label(p['deployment'])} " in line
        assert f"output={json.dumps(p['output'])}" in line
        assert line.endswith(f"(position {p['position']})")  # no trace id was logged


def test_downstream_text_names_every_node_and_prediction_count(both: Any, world: World) -> None:
    text, data = both("downstream", "raw@1")
    lines = text.splitlines()
    assert lines[0] == "downstream of raw@1:"
    assert "  runs: " + ", ".join(f"{r['job']} (…{r['run'][-8:]})" for r in data["runs"]) in lines
    assert "  datasets: " + ", ".join(d["label"] for d in data["datasets"]) in lines
    assert "  models: " + ", ".join(m["label"] for m in data["models"]) in lines
    for dep in data["deployments"]:
        served = ", ".join(label(m) for m in dep["serves_from_here"])
        assert f"  deployment {label(dep['deployment'])} served {served}" in lines
    for p in data["predictions"]:
        assert any(
            line.split()[:2] == [str(p["count"]), "predictions"]
            and f"by {label(p['model'])} in {label(p['deployment'])}" in line
            for line in lines
        )
    assert lines[-1] == f"  total predictions: {data['total_predictions']}"


def test_lineage_text_lists_every_node_with_its_distance_and_every_edge(
    both: Any, world: World
) -> None:
    text, data = both("lineage", world.m2, "--depth", "2")
    lines = text.splitlines()
    nodes, edges = lines[1 : 1 + len(data["nodes"])], lines[1 + len(data["nodes"]) :]
    for line, n in zip(nodes, data["nodes"], strict=True):
        assert line.startswith(f"  node {n['id']}  ({n['kind']} {n['label']}, ")
        assert f"{plural(n['distance'], 'hop')} away, created {when(n['created_at'])})" in line
    for line, e in zip(edges, data["edges"], strict=True):
        assert line == f"  {e['src']}  -[{e['kind']}]->  {e['dst']}"  # every edge still open
    assert data["nodes"][0] == {**data["nodes"][0], "id": world.m2, "distance": 0}


def test_footprint_text_gives_each_record_and_prediction(both: Any) -> None:
    text, data = both("footprint", "s-1")
    lines = text.splitlines()
    for r in data["records"]:
        held = ", ".join(label(d) for d in r["datasets"])
        assert f"  {label(r['record'])} in {held}" in lines
    [prediction] = data["predictions"]
    assert (
        f"  scored {when(prediction['at'])} by {label(prediction['model'])} in "
        f"{label(prediction['deployment'])}: {label(prediction['record'])} "
        f"(position {prediction['position']})"
    ) in lines


def test_history_text_gives_every_interval(both: Any) -> None:
    text, data = both("history", "api")
    lines = text.splitlines()
    assert lines[0] == f"api ({data['status']}, {data['endpoint']}):"
    for line, i in zip(lines[1:], data["intervals"], strict=True):
        assert line.startswith(f"  {when(i['from'])} .. {when(i['to'])}")
        assert line.endswith(f"{label(i['model'])}                  {i['traffic']:g}% traffic")
    assert [m["model"] for m in data["models"]] == [i["model"] for i in data["intervals"]]


def test_aliases_text_says_where_each_alias_points_now(both: Any, world: World) -> None:
    text, data = both("aliases", "clf")
    assert data["current"] == {"production": world.m2}
    lines = text.splitlines()
    assert lines[0] == "aliases of clf (now production -> clf@2):"
    spans = [(alias, s) for alias, moves in sorted(data["history"].items()) for s in moves]
    for line, (alias, s) in zip(lines[1:], spans, strict=True):
        assert line.split()[:3] == [alias, label(s["model"]), *when(s["from"]).split()[:1]]
        assert line.endswith(f"moved by {s['moved_by']}")


# --- log --project ------------------------------------------------------------------------------


def test_log_shows_only_the_project_asked_for(both: Any, world: World) -> None:
    text, theirs = both("log", "--limit", "100", project=OTHER)
    assert theirs and {e["project"] for e in theirs} == {OTHER}
    assert [line.split()[0] for line in text.splitlines()] == [str(e["position"]) for e in theirs]
    text, ours = both("log", "--limit", "100", project=PROJECT)
    assert ours and {e["project"] for e in ours} == {PROJECT}
    assert "dataset:q/other@1" not in text
    _, everything = both("log", "--limit", "100", project=None)
    assert len(everything) == len(ours) + len(theirs)
    _, first = both("log", "--limit", "1", "--start", str(ours[-1]["position"]), project=OTHER)
    assert first == [e for e in theirs if e["position"] > ours[-1]["position"]][:1]


# --- counts, colons, empty answers, progress ----------------------------------------------------


def test_counts_are_singular_or_plural_as_the_json_says(both: Any, world: World) -> None:
    for subject in ("s-1", "s-2"):
        text, data = both("footprint", subject)
        assert text.splitlines()[0] == (
            f"{data['subject']}: {plural(len(data['records']), 'record')}, "
            f"{plural(len(data['datasets']), 'dataset version')}, "
            f"{plural(len(data['predictions']), 'prediction')}, "
            f"{plural(data['vault_entries'], 'vault entry', 'vault entries')}"
        )
    text, plan = both("erase", "s-1", "--dry-run")
    p = plan["plan"]
    assert text.splitlines()[1] == (
        f"  {plural(p['records']['count'], 'record')} in "
        f"{plural(len(p['datasets']), 'dataset version')}; "
        f"{plural(p['vault_entries'], 'vault entry', 'vault entries')}; "
        f"{plural(p['predictions']['count'], 'prediction')}"
    )
    text, down = both("downstream", "raw@1")
    for prediction in down["predictions"]:
        assert f"{plural(prediction['count'], 'prediction')} by " in text
    text, scored = both("scored", "r-0")
    assert text.splitlines()[0] == f"{scored['record']} was scored 1 time:"
    texts = [text]
    for args in (
        ("trained-on", "clf@2"),
        ("lineage", world.deployment),
        ("history", "api"),
        ("aliases", "clf"),
        ("footprint", "s-3"),
    ):
        texts.append(both(*args)[0])
    assert not [t for t in texts if HEDGED.search(t)]


def test_a_record_never_scored_says_so_without_a_dangling_colon(both: Any) -> None:
    text, data = both("scored", "r-5")
    assert (data["times_scored"], data["predictions"]) == (0, [])
    assert text == f"{data['record']} was never scored\n"


def test_a_model_without_aliases_says_it_has_none(both: Any) -> None:
    text, data = both("aliases", "tuned")
    assert (data["current"], data["history"]) == ({}, {})
    assert text == ("model tuned has no aliases: none was ever pointed at one of its versions\n")


def test_the_export_progress_counts_whole_rows(cli: Any, world: World, tmp_path: Path) -> None:
    head = head_of(world.url)
    status, out, err = cli("export", "--format", "parquet", "--out", str(tmp_path / "x"), "--json")
    assert status == 0, err
    assert events_after(world.url, head) == []  # an export appends nothing
    rows = json.loads(out)["rows"]
    bar = err.replace("\r", "\n")
    assert re.search(rf"\b{rows}/{rows} \[", bar), bar
    assert not re.search(r"\d\.\d+/|/\d+\.\d", bar), bar
    status, out, err = cli("export", "--format", "parquet", "--out", str(tmp_path / "y"))
    assert status == 0, err
    assert out.startswith(f"exported {plural(rows, 'row')} in ")


# --- the reports -------------------------------------------------------------------------------


def test_the_dossier_shows_no_null_and_one_hash_encoding(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "dossier"
    status, _, err = cli("report", "model", "clf@1", "--out", str(out))
    assert status == 0, err
    dossier = json.loads((out / "dossier.json").read_text())
    assert set(dossier["run"]["code"].values()) == {None}  # recorded outside git
    page, card = (out / "index.html").read_text(), (out / "model-card.md").read_text()
    assert "Code git_commit" not in page and "Not recorded: the run reported no git commit" in page
    code = next(line for line in card.splitlines() if line.startswith("Code:"))
    assert "null" not in code and "not recorded" in code
    # Root and leaf hashes in base64, as the signed note and the proof files write them.
    checkpoint = dossier["evidence"]["checkpoint"]
    root = checkpoint["note"].splitlines()[2]
    assert checkpoint["root_hash"] == root and len(base64.b64decode(root)) == 32
    assert f"<code>{root}</code>" in page and f"root `{root}`" in card
    for event in dossier["evidence"]["events"]:
        bundle = json.loads((out / event["file"]).read_text())
        assert event["leaf_hash"] == bundle["leaf_hash"] and event["leaf_hash"] in page
    assert "written in base64" in page and "written in base64" in card
    # The summary's tiles: each noun agrees with its number.
    proofs = len(dossier["evidence"]["events"])
    assert re.findall(r"<div><b>(\d+)</b>([^<]+)</div>", page) == [
        ("1", "training dataset version"),
        ("0", "stage moves"),
        ("1", "deployment period"),
        ("2", "predictions made"),
        ("0", "erasures touching it"),
        (str(proofs), f"{'event' if proofs == 1 else 'events'} with proofs"),
    ]


def test_the_subject_access_report_shows_readable_utc_times(
    cli: Any, both: Any, tmp_path: Path
) -> None:
    _, footprint = both("footprint", "s-1")
    out = tmp_path / "sar"
    status, text, err = cli("report", "subject", "s-1", "--out", str(out))
    assert status == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["subject"] == footprint["subject"]
    counts = report["counts"]
    assert text.strip() == (
        f"wrote the subject-access report of {report['subject']} to {out}: "
        f"{plural(counts['records'], 'record')}, "
        f"{plural(counts['vault_entries'], 'personal-data entry', 'personal-data entries')}, "
        f"{plural(counts['models'], 'model')}, {plural(counts['predictions'], 'prediction')}"
    )
    page = (out / "index.html").read_text()
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{6}Z", page)
    stamps = [p["at"] for p in report["predictions"]] + [
        e["stored_at"] for e in report["personal_data"]
    ]
    assert stamps
    for stamp in stamps:
        assert f"{stamp[:10]} {stamp[11:19]} UTC" in page


# --- --help ----------------------------------------------------------------------------------


def commands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, Any]]:
    """Every (sub)command of ``parser``, with its path (``mlledger keys create``)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, f"{path} {name}")


def test_every_subcommand_and_option_is_described_in_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = list(commands(build_parser(), "mlledger"))
    assert len(found) > 30
    for path, parser in found:
        with pytest.raises(SystemExit) as done:
            main([*path.split()[1:], "--help"])
        assert done.value.code == 0
        # argparse wraps lines, at spaces and after hyphens: compare without whitespace.
        shown = "".join(capsys.readouterr().out.split())
        assert parser.description, f"{path}: no description"
        assert "".join(parser.description.split()) in shown, path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help, f"{path} {name}: no help text"
            assert "".join(action.help.split()) in shown, (path, name)
