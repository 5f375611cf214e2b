"""The web interface's pages about people's data, over HTTP (in process), on SQLite and
PostgreSQL: who scored a record, a subject's footprint, the erasure flow (plan, typed
confirmation, retained model versions, certificate), the list of erasures.

Record keys and subject ids go in POST bodies only: never in a URL, the trail or a
redirect. Every test that changes something asserts the events and trail entries it
wrote."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import registry
from audit import checkpoints as cps
from audit.erasure.certificate import verify_certificate
from registry import erasures, services
from tests.support.worlds import personal_dataset
from tests.test_web import Site, _site, form_token

SUBJECT = "ann"  # two records, rec-0 and rec-1, in build_world
RECORD = "rec-0"


@pytest.fixture
def store_site(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(store_url, tmp_path, monkeypatch)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(f"sqlite:///{tmp_path}/ledger.db", tmp_path, monkeypatch)


def _head(site: Site) -> int:
    return site.ledger.head()


def _no_person_in(entries: list[dict[str, Any]], *secrets: str) -> None:
    for entry in entries:
        for secret in secrets:
            assert secret not in json.dumps(entry), entry


def _post(site: Site, path: str, page_with_form: Any, **fields: Any) -> Any:
    return site.client.post(
        path,
        data={"csrf": form_token(page_with_form), **fields},
        follow_redirects=False,
    )


# --- who scored a record ------------------------------------------------------------------


def test_who_scored_a_record_is_asked_in_the_body_and_answered_as_the_api(
    store_site: Site,
) -> None:
    site = store_site
    site.sign_in("viewer")
    before = site.seq()
    form = site.client.get("/records")
    assert form.status_code == 200
    assert 'name="record"' in form.text and 'method="post" action="/records"' in form.text
    answer = _post(site, "/records", form, record=RECORD)
    assert answer.status_code == 200, answer.text
    expected = services.scored(site.ledger, "test", record=RECORD)
    assert expected.times_scored == 3
    assert f"Scored {expected.times_scored} times" in answer.text
    rows = re.findall(r"<tr>\s*<td data-label=\"When\">", answer.text)
    assert len(rows) == len(expected.predictions)
    for prediction in expected.predictions:
        assert prediction["model"] in answer.text and prediction["deployment"] in answer.text
    assert RECORD not in answer.text  # the page shows the pseudonymous reference only
    entries = site.trail(before)
    assert [(e["action"], e["resource"], e["outcome"]) for e in entries] == [
        ("web.records", "/records", "allow"),
        ("web.records.scored", "/records", "allow"),
    ]
    _no_person_in(entries, RECORD)


def test_an_unknown_record_and_an_empty_key_are_said_so(site: Site) -> None:
    site.sign_in("viewer")
    form = site.client.get("/records")
    unknown = _post(site, "/records", form, record="never-seen")
    assert unknown.status_code == 404 and 'class="alert"' in unknown.text
    assert "never-seen" not in unknown.text
    empty = _post(site, "/records", form, record="  ")
    assert empty.status_code == 400 and "no record key was entered" in empty.text
    long = _post(site, "/records", form, record="x" * 2000)
    assert long.status_code == 400 and "expected at most 1024" in long.text


def test_a_form_without_the_sessions_csrf_token_is_refused_and_recorded(site: Site) -> None:
    site.sign_in("dpo")
    before, head = site.seq(), _head(site)
    for path, fields in (
        ("/records", {"record": RECORD}),
        ("/subjects", {"subject": SUBJECT}),
        ("/subjects/erase", {"subject": SUBJECT, "confirm": "x"}),
    ):
        missing = site.client.post(path, data=fields)
        wrong = site.client.post(path, data={**fields, "csrf": "0" * 64})
        assert missing.status_code == wrong.status_code == 403, path
        assert "CSRF token is missing or wrong" in wrong.text
    entries = site.trail(before)
    assert len(entries) == 6 and {e["outcome"] for e in entries} == {"deny"}
    assert {e["status"] for e in entries} == {403}
    _no_person_in(entries, RECORD, SUBJECT)
    assert _head(site) == head


def test_a_form_from_another_site_is_refused(site: Site) -> None:
    site.sign_in("dpo")
    form = site.client.get("/subjects")
    before = site.seq()
    answer = site.client.post(
        "/subjects",
        data={"csrf": form_token(form), "subject": SUBJECT},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403 and "posted from another site" in answer.text
    assert site.seq() == before


def test_without_a_session_a_post_goes_to_sign_in_and_writes_nothing(site: Site) -> None:
    before = site.seq()
    answer = site.client.post("/records", data={"record": RECORD}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/sign-in"
    assert site.seq() == before


# --- subjects: for dpo and admin only ----------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "writer", "auditor"])
def test_roles_without_personal_get_the_403_page_and_a_trail_entry(site: Site, role: str) -> None:
    site.sign_in(role)
    home = site.client.get("/")
    assert 'href="/subjects"' not in home.text  # not in their navigation
    before = site.seq()
    page = site.client.get("/subjects")
    assert page.status_code == 403 and "Not allowed" in page.text
    posted = site.client.post("/subjects", data={"csrf": form_token(home), "subject": SUBJECT})
    assert posted.status_code == 403
    entries = site.trail(before)
    assert [(e["action"], e["outcome"], e["status"]) for e in entries] == [
        ("web.subjects", "deny", 403),
        ("web.subjects.footprint", "deny", 403),
    ]
    _no_person_in(entries, SUBJECT)


def test_a_dpo_sees_a_footprint_plans_and_erases_with_a_typed_confirmation(
    store_site: Site,
) -> None:
    site = store_site
    site.sign_in("dpo")
    home = site.client.get("/")
    assert 'href="/subjects"' in home.text
    before, head = site.seq(), _head(site)
    form = site.client.get("/subjects")
    footprint = _post(site, "/subjects", form, subject=SUBJECT)
    assert footprint.status_code == 200, footprint.text
    expected = services.footprint(site.ledger, "test", subject=SUBJECT)
    assert expected.subject in footprint.text
    assert f"<dt>Records</dt><dd>{len(expected.records)}</dd>" in footprint.text
    for model in expected.models:
        assert model["model"] in footprint.text
    assert 'action="/subjects/plan"' in footprint.text

    plan = _post(site, "/subjects/plan", footprint, subject=SUBJECT)
    assert plan.status_code == 200, plan.text
    dry = erasures.erase(site.ledger, "test", SUBJECT, actor="tests", dry_run=True)
    assert f"<dt>Records</dt><dd>{dry['plan']['records']['count']}</dd>" in plan.text
    reference = dry["subject"].rsplit("/", 1)[-1][:8]
    assert f'id="reference">{reference}<' in plan.text
    assert _head(site) == head  # footprint and plan change nothing

    wrong = _post(site, "/subjects/erase", plan, subject=SUBJECT, confirm="nope")
    assert wrong.status_code == 400 and "does not match" in wrong.text
    assert _head(site) == head

    done = _post(site, "/subjects/erase", plan, subject=SUBJECT, confirm=reference)
    assert done.status_code == 200, done.text
    appended = site.ledger.read(head + 1)
    assert [e.type for e in appended][:1] == ["subject-erasure-requested"]
    assert "subject-erased" in [e.type for e in appended]
    erased = next(e for e in appended if e.type == "subject-erased")
    assert erased.actor == f"key:{site.key_id('dpo')}"
    erasure = re.search(r'id="erasure-id">([0-9a-f-]{36})<', done.text)
    assert erasure is not None
    flags = {f["model"]: f["status"] for f in erased.body["models"]}
    assert flags and set(flags.values()) == {"retrain-required"}

    certificate = site.client.get(f"/erasures/{erasure.group(1)}/certificate")
    assert certificate.status_code == 200
    assert certificate.headers["content-disposition"].startswith("attachment;")
    key, _, _ = cps.load_signing_key(site.store.url, None)
    verified = verify_certificate(certificate.json(), key.verifier())
    assert verified.erasure == erasure.group(1)
    assert verified.completed_position == erased.position

    listed = site.client.get("/erasures")
    assert erasure.group(1) in listed.text
    again = _post(site, "/subjects/plan", listed, subject=SUBJECT)
    assert again.status_code == 200 and 'id="already-erased"' in again.text

    entries = site.trail(before)
    assert [e["action"] for e in entries] == [
        "web.subjects",
        "web.subjects.footprint",
        "web.erasures.plan",
        "web.erasures.create",
        "web.erasures.create",
        "web.erasures.certificate",
        "web.erasures",
        "web.erasures.plan",
    ]
    assert all(e["outcome"] == "allow" for e in entries)
    _no_person_in(entries, SUBJECT)
    for answer in (footprint, plan, done, listed):
        assert answer.url.path in ("/subjects", "/subjects/plan", "/subjects/erase", "/erasures")
        assert SUBJECT not in str(answer.url)


def test_model_versions_kept_in_service_need_a_justification_and_an_approver(site: Site) -> None:
    site.sign_in("admin")
    page = site.client.get("/subjects")
    plan = _post(site, "/subjects/plan", page, subject=SUBJECT)
    dry = erasures.erase(site.ledger, "test", SUBJECT, actor="tests", dry_run=True)
    reference = dry["subject"].rsplit("/", 1)[-1][:8]
    kept = dry["plan"]["models"][0]
    head = _head(site)
    unjustified = _post(
        site, "/subjects/erase", plan, subject=SUBJECT, confirm=reference, keep=kept
    )
    assert unjustified.status_code == 400 and "need a justification and an approver" in (
        unjustified.text
    )
    assert f'value="{kept}" checked' in unjustified.text  # the choice is kept for the retry
    assert _head(site) == head
    done = _post(
        site,
        "/subjects/erase",
        plan,
        subject=SUBJECT,
        confirm=reference,
        keep=kept,
        justification="contractual obligation",
        approver="legal",
    )
    assert done.status_code == 200, done.text
    erased = next(e for e in site.ledger.read(head + 1) if e.type == "subject-erased")
    flags = {f["model"]: f for f in erased.body["models"]}
    assert flags[kept]["status"] == "retained-with-justification"
    assert flags[kept]["justification"] == "contractual obligation"
    assert flags[kept]["approver"] == "legal"
    others = [f for m, f in flags.items() if m != kept]
    assert all(f["status"] == "retrain-required" for f in others)


def test_bad_subject_forms_get_clear_errors_and_no_5xx(site: Site) -> None:
    site.sign_in("dpo")
    page = site.client.get("/subjects")
    head = _head(site)
    empty = _post(site, "/subjects", page, subject="")
    assert empty.status_code == 400 and "no subject id was entered" in empty.text
    long = _post(site, "/subjects/plan", page, subject="s" * 5000)
    assert long.status_code == 400 and "expected at most 1024" in long.text
    nul = _post(site, "/subjects", page, subject="a\x00b")
    assert nul.status_code == 404 and "no data subject with that id" in nul.text
    many = site.client.post(
        "/subjects",
        content="&".join(f"f{i}=1" for i in range(30)) + f"&csrf={form_token(page)}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert many.status_code == 400 and "at most 20 fields" in many.text
    for path, size in (("/subjects", 9_000), ("/subjects/erase", 70_000)):
        huge = site.client.post(
            path,
            content=b"subject=" + b"a" * size,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert huge.status_code == 413, path
    typed = site.client.post("/records", json={"record": RECORD})
    assert typed.status_code == 400 and "expected application/x-www-form-urlencoded" in typed.text
    assert _head(site) == head


# --- erasures and certificates ------------------------------------------------------------


def test_certificates_of_unknown_junk_and_other_projects_erasures_are_not_found(
    site: Site,
) -> None:
    with registry.connect(site.store.url, project="other", actor="tester") as reg:
        personal_dataset(reg, "people", ["r-9"], ["zed"])
    outcome = erasures.erase(site.ledger, "other", "zed", actor="tests")
    assert outcome["status"] == "erased"
    site.sign_in("viewer")
    listed = site.client.get("/erasures")
    assert listed.status_code == 200 and 'id="no-erasures"' in listed.text
    for erasure in (
        str(outcome["erasure"]),
        "00000000-0000-4000-8000-000000000000",
        "not-a-uuid",
        "%00",
        "A" * 36,
    ):
        answer = site.client.get(f"/erasures/{erasure}/certificate")
        # A control character in the path is the gate's to refuse (400).
        assert answer.status_code == (400 if erasure == "%00" else 404), erasure
        assert "content-disposition" not in answer.headers


def test_a_justification_of_two_thousand_characters_in_any_script_is_taken(site: Site) -> None:
    site.sign_in("dpo")
    page = site.client.get("/subjects")
    plan = _post(site, "/subjects/plan", page, subject=SUBJECT)
    dry = erasures.erase(site.ledger, "test", SUBJECT, actor="tests", dry_run=True)
    reference = dry["subject"].rsplit("/", 1)[-1][:8]
    kept = dry["plan"]["models"][0]
    justification = "保持" * 1000  # 2,000 characters, 6,000 bytes, 18,000 percent-encoded
    head = _head(site)
    done = _post(
        site,
        "/subjects/erase",
        plan,
        subject=SUBJECT,
        confirm=reference,
        keep=kept,
        justification=justification,
        approver="法務",
    )
    assert done.status_code == 200, done.text[:500]
    erased = next(e for e in site.ledger.read(head + 1) if e.type == "subject-erased")
    assert {f["model"]: f for f in erased.body["models"]}[kept]["justification"] == justification
