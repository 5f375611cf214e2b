"""The subject-access report (GDPR Art. 15): what the ledger holds on one data subject,
where it went, and which models and predictions used it; locally, through the CLI
and over HTTP, where only a data-protection officer may ask."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import registry
from audit.reports.subject import render_subject_html, write_subject_report
from registry.errors import Forbidden, LedgerError, NotFound
from registry.sdk import Registry
from tests.support.apiserver import ApiServer
from tests.support.helpers import mlledger_process
from tests.support.worlds import build_world, personal_dataset


def test_the_report_lists_what_is_held_and_where_it_went(reg: Registry) -> None:
    world = build_world(reg)
    reg.store_subject_data("ann", {"email": "ann@example.com", "city": "Lyon"})
    reg.flush()
    report = reg.subject_report("ann")
    footprint = reg.footprint("ann")
    assert report["subject"] == footprint["subject"]
    assert [e["attributes"] for e in report["personal_data"]] == [
        {"email": "ann@example.com", "city": "Lyon"}
    ]
    assert report["records"] == footprint["records"]
    assert [d["id"] for d in report["datasets"]] == [d["dataset"] for d in footprint["datasets"]]
    by_id = {d["id"]: d for d in report["datasets"]}
    assert by_id[str(world.raw)]["uri"] == "s3://b/raw"
    assert by_id[str(world.raw)]["digest"] == "sha256:01"
    assert [m["id"] for m in report["models"]] == [m["model"] for m in footprint["models"]]
    assert [r["run"] for r in report["runs"]] == [r["run"] for r in footprint["runs"]]
    assert [d["id"] for d in report["deployments"]] == [
        d["deployment"] for d in footprint["deployments"]
    ]
    # Every prediction about the subject's records, with what the model answered.
    assert [(p["record"], p["model"], p["at"]) for p in report["predictions"]] == [
        (p["record"], p["model"], p["at"]) for p in footprint["predictions"]
    ]
    scored = {
        (s["model"], s["at"]): s["output"]
        for key in ("rec-0", "rec-1", "x-2")  # ann's records in build_world
        for s in reg.scored(key)["predictions"]
    }
    assert len(scored) == len(report["predictions"]) > 0
    for p in report["predictions"]:
        assert p["output"] == scored[(p["model"], p["at"])]
    assert report["counts"] == {
        "vault_entries": 1,
        "records": len(footprint["records"]),
        "datasets": len(footprint["datasets"]),
        "derived_datasets": len(footprint["derived_datasets"]),
        "runs": len(footprint["runs"]),
        "models": len(footprint["models"]),
        "deployments": len(footprint["deployments"]),
        "predictions": len(footprint["predictions"]),
    }
    assert report["erased"] is None
    # Nothing of another subject.
    bob = reg.footprint("bob")
    text = json.dumps(report)
    assert bob["subject"] not in text
    assert all(r["record"] not in text for r in bob["records"])

    with pytest.raises(NotFound):
        reg.subject_report("nobody")


def test_the_page_is_self_contained_and_escapes_what_it_shows(
    reg: Registry, tmp_path: Path
) -> None:
    build_world(reg)
    reg.store_subject_data("ann", {"note": "<script>alert(1)</script>"})
    reg.flush()
    report = reg.subject_report("ann")
    written = write_subject_report(report, tmp_path / "sar")
    assert [p.name for p in written] == ["index.html", "report.json"]
    page = (tmp_path / "sar" / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Nothing to fetch: no scripts, images, stylesheets or links to anywhere.
    assert "src=" not in page and "<link" not in page and "href=" not in page
    assert "url(" not in page
    assert json.loads((tmp_path / "sar" / "report.json").read_text()) == report
    assert "Subject-access report" in render_subject_html(report)
    with pytest.raises(LedgerError, match="not empty"):
        write_subject_report(report, tmp_path / "sar")


def test_an_erased_subject_is_reported_as_erased_and_nothing_else(
    reg: Registry, tmp_path: Path
) -> None:
    build_world(reg)
    reg.flush()
    before = reg.subject_report("ann")
    outcome = reg.erase("ann")
    assert outcome["status"] == "erased"
    last = reg.ledger.last_event()
    assert last is not None and last.type == "subject-erased"
    report = reg.subject_report("ann")
    assert report["erased"]["erasure"] == outcome["erasure"]
    assert report["counts"]["records"] == 0 and report["predictions"] == []
    assert report["personal_data"] == []
    write_subject_report(report, tmp_path / "erased")
    content = "".join(p.read_text() for p in (tmp_path / "erased").iterdir())
    for record in before["records"]:
        assert record["record"] not in content
    # The pseudonym is gone; the report names the subject as before, by erasure reference.
    assert reg.ledger.pseudonymizer("test").subject("ann") not in content
    assert report["subject"] == before["subject"] == outcome["subject"]
    assert "Erased." in content


def test_cli_writes_the_report(reg: Registry, tmp_path: Path, store_url: str) -> None:
    build_world(reg)
    reg.close()
    env = {**os.environ, "MLLEDGER_DB": store_url}
    out = tmp_path / "sar"
    done = mlledger_process(
        "report", "subject", "ann", "--project", "test", "--out", str(out), env=env
    )
    assert done.returncode == 0, done.stderr
    assert "wrote the subject-access report" in done.stdout
    assert json.loads((out / "report.json").read_text())["counts"]["records"] == 3
    missing = mlledger_process(
        "report", "subject", "nobody", "--project", "test", "--out", str(tmp_path / "x"), env=env
    )
    assert missing.returncode == 2 and "no data subject" in missing.stderr
    assert not (tmp_path / "x").exists()


def test_over_http_only_a_data_protection_officer_may_ask(api_server: ApiServer) -> None:
    writer = api_server.key("sar", "writer")
    with registry.connect(api_server.url, project="sar", actor="etl", api_key=writer) as reg:
        raw = personal_dataset(reg, "raw", ["r1", "r2"], ["s1", "s2"], uri="s3://raw")
        reg.store_subject_data("s1", {"email": "s1@example.com"})
        with pytest.raises(Forbidden):
            reg.subject_report("s1")
    auditor = api_server.key("sar", "auditor")
    with (
        registry.connect(api_server.url, project="sar", api_key=auditor) as reg,
        pytest.raises(Forbidden),
    ):
        reg.subject_report("s1")
    dpo = api_server.key("sar", "dpo")
    with registry.connect(api_server.url, project="sar", api_key=dpo) as reg:
        report = reg.subject_report("s1")
    assert report["counts"]["records"] == 1 and report["datasets"][0]["id"] == str(raw)
    assert report["personal_data"][0]["attributes"] == {"email": "s1@example.com"}
    # The subject's id went in the body: the access trail does not hold it.
    with api_server.client(auditor) as client:
        trail = client.get("/projects/sar/access-trail").json()
    asked = [t for t in trail if t["action"] == "reports.subject"]
    assert [t["outcome"] for t in asked] == ["deny", "deny", "allow"]
    assert "s1" not in json.dumps(trail)
