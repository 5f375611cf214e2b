"""The model dossier (``mlledger report model``): every section checked against the
ledger, its proof bundles accepted by ``mlledger audit verify-proof`` (and a
tampered one refused), the page and the Markdown card inert for hostile text (the
card parsed by a CommonMark renderer), the erasure section after a real erasure,
the CLI and the HTTP route."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

import registry
from audit.proofs import ProofError, verify_bundle
from audit.reports import build_model_dossier
from audit.reports.render import md_code, md_text
from registry.errors import LedgerError, NotFound
from registry.sdk import Registry
from tests.support.apiserver import ApiServer
from tests.support.helpers import mlledger_process
from tests.support.helpers import signing_key as _key
from tests.support.worlds import Scenario, build_world

#: Text a writer may put in the log, each aimed at one way out of a Markdown card.
HOSTILE = (
    "<script>alert(1)</script>",
    "a|b",
    "two\nlines\r\nthree",
    "tick`s and ``runs``",
    "`edge`",
    "[x](javascript:alert(1))",
    "![i](http://evil/x.png)",
    "<img src=x onerror=alert(1)>",
    "# heading",
    "- item",
    "> quote",
    "1. first",
    "*em* _em_ ~~del~~ $x$ &amp; \\| \\",
)
#: What a CommonMark renderer may make of the card: text, code spans, headings,
#: paragraphs, tables and the one list of the predictions section. Never a link,
#: image, raw HTML, emphasis, quote, code block or line break.
CARD_TOKENS = {
    "inline",
    "text",
    "code_inline",
    *(
        f"{kind}_{edge}"
        for kind in ("heading", "paragraph", "table", "thead", "tbody", "tr", "th", "td")
        for edge in ("open", "close")
    ),
    "bullet_list_open",
    "bullet_list_close",
    "list_item_open",
    "list_item_close",
}


def _render(card: str) -> tuple[str, list[Token]]:
    """The card as a CommonMark renderer with GFM tables and raw HTML allowed shows it."""
    parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    return parser.render(card), parser.parse(card)


def _flat(tokens: list[Token]) -> list[Token]:
    return [t for token in tokens for t in (token, *(token.children or []))]


def _text(inline: Token) -> str:
    """The text an inline token shows: its text and code spans."""
    return "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))


def _tables(tokens: list[Token]) -> list[list[list[str]]]:
    """Every table, as rows of cell texts (the header row first)."""
    tables: list[list[list[str]]] = []
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type in ("th_open", "td_open"):
            tables[-1][-1].append(_text(tokens[index + 1]))
    return tables


def _shown(value: str) -> str:
    """``value`` as the card shows it: on one line."""
    return re.sub(r"[\r\n]", " ", value)


@pytest.fixture
def world(reg: Registry) -> Scenario:
    scenario = build_world(reg)
    reg.set_alias(scenario.m1, "production", moved_by="dr.lopez")
    reg.set_alias(scenario.m2, "production", moved_by="dr.okafor")
    reg.set_alias(scenario.m2, "staging", moved_by="ci-bot")
    reg.flush()
    return scenario


def test_each_section_says_what_the_ledger_holds(reg: Registry, world: Scenario) -> None:
    dossier = build_model_dossier(reg.ledger, "test", "clf@2", _key(reg))
    d = dossier.data
    assert d["model"]["id"] == world.m2.id
    assert d["model"]["artifact_digest"] == "sha256:a2" and d["model"]["artifact_uri"] == "s3://m/2"
    assert d["model"]["registered_by"] == "tester"
    # Training data: the same datasets trained_on finds, with digests and record counts.
    expected = {ds["dataset"]: ds for ds in reg.trained_on(world.m2)["datasets"]}
    shown = {ds["id"]: ds for ds in d["training"]["datasets"]}
    assert set(shown) == set(expected) == {str(world.clean), str(world.extra), str(world.raw)}
    for node, ds in shown.items():
        assert ds["digest"] == expected[node]["digest"]
        assert ds["records"] == expected[node]["records"]
    assert (
        shown[str(world.raw)]["records"] == 10 and shown[str(world.raw)]["relation"] == "upstream"
    )
    assert shown[str(world.clean)]["relation"] == "direct"
    assert d["run"]["id"] == world.run2 and d["run"]["job"] == "train-b"
    assert d["run"]["status"] == "completed"
    # Stages with their approvers, as the alias history has them.
    moves = [(a["alias"], a["moved_by"], a["to"] is None) for a in d["aliases"]]
    assert moves == [("production", "dr.okafor", True), ("staging", "ci-bot", True)]
    # Deployment intervals of this version.
    history = reg.history(world.api)["intervals"]
    mine = [(i["from"], i["traffic"]) for i in history if i["model"] == world.m2.id]
    assert [(x["from"], x["traffic"]) for x in d["deployments"]] == mine
    # Prediction volume: per day, summing to the ledger's counts.
    downstream = reg.downstream(world.clean)["predictions"]
    count = sum(p["count"] for p in downstream if p["model"] == world.m2.id)
    assert d["predictions"]["total"] == count == 2
    assert sum(x["count"] for x in d["predictions"]["daily"]) == count
    assert d["erasures"] == []
    # The pictures: the lineage drawn with its datasets, the chart with its bars.
    for name in ("clean 1", "extra 1", "raw 1", "train-b"):
        assert name in dossier.lineage_svg
    assert dossier.lineage_svg.count('class="node') == d["training"]["nodes"]
    assert "<svg" in dossier.volume_svg and "predictions per day" in dossier.volume_svg
    card = dossier.markdown
    for heading in (
        "## Identity",
        "## Training data",
        "## Training run",
        "## Stages and",
        "## Deployments",
        "## Predictions",
        "## Erasures",
        "## Integrity evidence",
    ):
        assert heading in card
    assert "dr.okafor" in card and "sha256:a2" in card


def test_every_proof_verifies_offline_and_a_tampered_one_does_not(
    reg: Registry, world: Scenario, tmp_path: Path
) -> None:
    key = _key(reg)
    dossier = build_model_dossier(reg.ledger, "test", "clf@production", key)
    assert dossier.data["model"]["id"] == world.m2.id
    types = {e["type"] for e in dossier.data["evidence"]["events"]}
    assert types == {
        "model-version-registered",
        "model-alias-moved",
        "deployment-configured",
        "run-started",
        "run-completed",
    }
    written = dossier.write(tmp_path / "dossier")
    bundles = sorted((tmp_path / "dossier" / "evidence").glob("*.json"))
    assert len(bundles) == len(dossier.evidence) == len(dossier.data["evidence"]["events"])
    assert {p.name for p in written} >= {"index.html", "model-card.md", "dossier.json"}
    for path in bundles:
        bundle = json.loads(path.read_text())
        verified = verify_bundle(bundle, key.verifier())
        assert verified.index == int(path.stem)
        event = json.loads(bundle["entry"])
        assert event["project"] == "test"
    public = tmp_path / "log.pub"
    public.write_text(key.verifier().to_string() + "\n")
    verify_proof = ("audit", "verify-proof", str(bundles[0]), "--public-key", str(public))
    done = mlledger_process(*verify_proof, timeout=60)
    assert done.returncode == 0, done.stderr
    forged = json.loads(bundles[0].read_text())
    forged["entry"] = forged["entry"].replace("tester", "mallory")
    bundles[0].write_text(json.dumps(forged))
    with pytest.raises(ProofError):
        verify_bundle(forged, key.verifier())
    refused = mlledger_process(*verify_proof, timeout=60)
    assert refused.returncode == 3


def test_the_page_is_self_contained_and_inert(reg: Registry, tmp_path: Path) -> None:
    hostile = "<script>alert('x')</script>"
    data = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:01", records=["a"])
    with reg.run("train", inputs=[data], params={"note": hostile}) as run:
        model = run.register_model(
            "m", artifact_uri="s3://m", artifact_digest="sha256:02", tags={"owner": hostile}
        )
    reg.flush()
    dossier = build_model_dossier(reg.ledger, "test", model.id, _key(reg))
    page = dossier.html
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    for attribute in ("src=", "href=", "<link", "@import", "url(http"):
        assert attribute not in page
    # The only URLs are XML namespace names, which are never fetched.
    urls = re.findall(r'(\S*)"(https?://[^"]*)"', page)
    assert urls and all(attribute.startswith("xmlns") for attribute, _ in urls), urls
    with pytest.raises(LedgerError, match="not empty"):
        dossier.write(tmp_path)


@pytest.mark.parametrize("value", (*HOSTILE, "", " ", "  a  ", "`", "``", "a`", " `a` ", "a\\"))
def test_a_value_renders_as_exactly_its_text(value: str) -> None:
    # As text and as a code span, in a paragraph, at the start of a line and in a
    # table cell, a CommonMark renderer shows the value itself, on one line.
    shown = _shown(value)
    cell = "| k | v |\n|---|---|\n| k | {} |\n"
    html, tokens = _render(f"Value: {md_text(value)}.\n")
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"], html
    assert {c.type for c in tokens[1].children or []} <= {"text"}, html
    assert _text(tokens[1]) == f"Value: {shown}."
    if shown.strip() and not shown.startswith(" "):
        _, alone = _render(md_text(value) + "\n")
        assert [t.type for t in alone] == ["paragraph_open", "inline", "paragraph_close"]
        assert _text(alone[1]) == shown.rstrip()
    _, tokens = _render(cell.format(md_text(value)))
    assert _tables(tokens) == [[["k", "v"], ["k", shown.strip()]]]
    if value:
        html, tokens = _render(f"Value: {md_code(value, table=False)}.\n")
        spans = [c.content for c in tokens[1].children or [] if c.type == "code_inline"]
        assert spans == [shown], html
        _, tokens = _render(cell.format(md_code(value)))
        assert _tables(tokens) == [[["k", "v"], ["k", shown]]]
        inline = [t for t in tokens if t.type == "inline"][-1]
        assert [c.type for c in inline.children or []] == ["code_inline"]
    else:
        assert md_code(value) == ""


#: All the ways out at once, within the 128 characters PostgreSQL keeps of a
#: framework or an alias.
ONE_HOSTILE = (
    "<script>alert(1)</script> a|b\nc\r\n``t` [x](javascript:alert(1)) ![i](http://evil/x.png)"
)


def _hostile_world(store_url: str, tmp_path: Path) -> tuple[Any, Any, Any, dict[str, Any]]:
    """A model whose every text is hostile, its dossier written to ``tmp_path/dossier``:
    (dossier, dataset, model, the erasure's outcome)."""
    one = ONE_HOSTILE
    with registry.connect(store_url, project="test", actor=one) as reg:
        data = reg.register_dataset("d", "1", uri=one, digest=one, records=["r1"], subjects=["ann"])
        with reg.run(one, inputs=[data], params={h: h for h in HOSTILE}) as run:
            run.log_metrics({h: i + 0.5 for i, h in enumerate(HOSTILE)})
            model = run.register_model(
                "m",
                artifact_uri=one,
                artifact_digest=one,
                framework=one,
                tags={h: h for h in HOSTILE},
            )
        reg.flush()
        last = reg.ledger.last_event()
        assert last is not None and last.type == "run-completed" and last.actor == one
        for h in HOSTILE:
            reg.set_alias(model, h, moved_by=h)
        reg.deploy("api_v-1.0", endpoint="http://serve", served=[model])
        reg.flush()
        last = reg.ledger.last_event()
        assert last is not None and last.type == "deployment-configured"
        outcome = reg.erase(
            "ann", retain=[{"model": model.id, "justification": one, "approver": one}]
        )
        last = reg.ledger.last_event()
        assert last is not None and last.type == "subject-erased"
        dossier = build_model_dossier(reg.ledger, "test", model.id, _key(reg))
        dossier.write(tmp_path / "dossier")
    return dossier, data, model, outcome


def _card_tables(card: str, tokens: list[Token], evidence: int) -> list[list[list[str]]]:
    """The card's eight tables as rendered, after checking that each row of each table
    in the source has as many cells as its header (a renderer would pad or cut it
    silently): no value added a cell with "|" or ended a row."""
    sources = [
        [len(re.split(r"(?<!\\)\|", row.strip()[1:-1])) for row in block.splitlines()]
        for block in re.findall(r"(?m)(?:^\|.*\n)+", card)
    ]
    assert len(sources) == 8 and all(len(set(widths)) == 1 for widths in sources), sources
    tables = _tables(tokens)
    assert len(tables) == 8
    assert [len(t) for t in tables] == [
        1 + 6 + len(HOSTILE),
        2,
        1 + len(HOSTILE),
        1 + len(HOSTILE),
        1 + len(HOSTILE),
        2,
        2,
        1 + evidence,
    ]
    assert [len(t[0]) for t in tables] == [widths[0] for widths in sources]
    return tables


def test_the_card_is_inert_for_hostile_text(store_url: str, tmp_path: Path) -> None:
    dossier, data, model, outcome = _hostile_world(store_url, tmp_path)
    run_id = dossier.data["run"]["id"]
    card = (tmp_path / "dossier" / "model-card.md").read_text(encoding="utf-8")
    html, tokens = _render(card)
    for forbidden in ("<script", "<img", "<a ", "href=", "<em>", "<del>"):
        assert forbidden not in html
    assert {t.type for t in _flat(tokens)} <= CARD_TOKENS
    tables = _card_tables(card, tokens, len(dossier.data["evidence"]["events"]))
    # The renderer shows each value as it is in the log, in its own cell.
    shown = _shown(ONE_HOSTILE)
    identity, datasets, params, metrics, aliases, deployments, erasures, _ = tables
    assert identity[1:7] == [
        ["Model version", model.id],
        ["Artifact", shown],
        ["Artifact digest", shown],
        ["Framework", shown],
        [
            "Registered",
            f"{dossier.data['model']['registered_at'][:19].replace('T', ' ')} by {shown}",
        ],
        ["Trained by run", f"{run_id} ({shown})"],
    ]
    assert identity[7:] == [[f"Tag {_shown(h)}", _shown(h)] for h in sorted(HOSTILE)]
    assert datasets[1][0] == str(data) and datasets[1][4] == shown
    assert params[1:] == [[_shown(h), json.dumps(h, ensure_ascii=False)] for h in sorted(HOSTILE)]
    assert metrics[1:] == [[_shown(h), str(HOSTILE.index(h) + 0.5)] for h in sorted(HOSTILE)]
    assert [(a[0], a[3]) for a in aliases[1:]] == [(_shown(h), _shown(h)) for h in HOSTILE]
    assert deployments[1][0] == "deployment:test/api_v-1.0"
    assert erasures[1][0] == outcome["erasure"] and erasures[1][3:5] == [shown, shown]
    paragraphs = [_text(t) for t in tokens if t.type == "inline"]
    assert f"Job {shown}, completed" in "\n".join(paragraphs)


def test_an_erasure_shows_with_its_remediation_and_no_subject(
    reg: Registry, world: Scenario, tmp_path: Path
) -> None:
    before = reg.footprint("ann")
    outcome = reg.erase(
        "ann",
        retain=[{"model": world.m1.id, "justification": "legal hold", "approver": "dpo@clinic"}],
    )
    assert outcome["status"] == "erased"
    last = reg.ledger.last_event()
    assert last is not None and last.type == "subject-erased"
    dossier = build_model_dossier(reg.ledger, "test", "clf@1", _key(reg))
    [erasure] = dossier.data["erasures"]
    assert erasure["erasure"] == outcome["erasure"]
    assert erasure["status"] == "retained-with-justification"
    assert erasure["justification"] == "legal hold" and erasure["approver"] == "dpo@clinic"
    assert "subject-erased" in {e["type"] for e in dossier.data["evidence"]["events"]}
    dossier.write(tmp_path / "d")
    text = "".join(p.read_text() for p in (tmp_path / "d").rglob("*") if p.is_file())
    # The subject's pseudonym is nowhere; the erasure names them by its reference alone.
    assert reg.ledger.pseudonymizer("test").subject("ann") not in text
    assert before["subject"] == outcome["subject"]
    for record in before["records"]:
        assert record["record"] not in text
    other = build_model_dossier(reg.ledger, "test", "clf@2", _key(reg))
    assert [e["status"] for e in other.data["erasures"]] == ["retrain-required"]


def test_unknown_models_are_refused(reg: Registry, world: Scenario) -> None:
    with pytest.raises(NotFound):
        build_model_dossier(reg.ledger, "test", "nope@1", _key(reg))
    with pytest.raises(LedgerError):
        build_model_dossier(reg.ledger, "test", "clf@no-such-alias", _key(reg))


def test_cli_writes_the_dossier(
    reg: Registry, world: Scenario, tmp_path: Path, store_url: str
) -> None:
    reg.close()
    env = {**os.environ, "MLLEDGER_DB": store_url}
    out = tmp_path / "dossier"
    report = ("report", "model", "clf@2", "--project", "test", "--out", str(out))
    done = mlledger_process(*report, "--json", env=env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["model"] == world.m2.id
    assert (out / "index.html").is_file() and (out / "evidence").is_dir()
    again = mlledger_process(*report, env=env)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_the_dossier_over_http(api_server: ApiServer) -> None:
    writer = api_server.key("dossier", "writer")
    with registry.connect(api_server.url, project="dossier", actor="etl", api_key=writer) as reg:
        data = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:01", records=["a"])
        with reg.run("train", inputs=[data]) as run:
            model = run.register_model("m", artifact_uri="s3://m", artifact_digest="sha256:02")
    viewer = api_server.key("dossier", "viewer")
    with api_server.client(viewer) as client:
        page = client.get("/projects/dossier/reports/models/m@1")
        card = client.get("/projects/dossier/reports/models/m@1", params={"format": "markdown"})
        data_answer = client.get("/projects/dossier/reports/models/m@1", params={"format": "json"})
        missing = client.get("/projects/dossier/reports/models/m@9")
        other = client.get("/projects/elsewhere/reports/models/m@1")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert model.id in page.text and 'id="lineage-picture"' in page.text
    assert card.status_code == 200 and card.text.startswith("# Model card: m 1")
    body = data_answer.json()
    assert body["data"]["model"]["id"] == model.id
    public = httpx.get(
        f"{api_server.url}/api/v1/projects/dossier/audit/public-key",
        headers={"Authorization": f"Bearer {viewer}"},
    ).text
    from audit.note import VerifierKey

    verifier = VerifierKey.load(public.strip())
    for bundle in body["evidence"].values():
        verify_bundle(bundle, verifier)
    assert missing.status_code == 404
    assert other.status_code == 403
