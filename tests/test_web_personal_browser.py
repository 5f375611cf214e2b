"""People's data in the web interface as a data-protection officer uses it: Debian's
Chromium, driven by Playwright, against a real ``mlledger serve``: who scored a
record, a subject's footprint, an erasure planned, confirmed by typing and done, its
certificate downloaded and verified offline; a viewer refused the subject pages.

No record key or subject id may appear in any URL the browser requests or in the
access trail; every page loads with no console error, page error, failed request or
request leaving the server (the fixtures of ``tests/test_web_browser.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from audit import checkpoints as cps
from audit.erasure.certificate import verify_certificate
from registry import erasures, services
from tests import test_web_browser as shared
from tests.test_web_browser import Served, Watched, _sign_in, _text

# The browser, the server and the watched page of the web interface's browser tests.
browser = shared.browser
served = shared.served
watched = shared.watched

SUBJECT = "ann"
RECORD = "rec-0"


def _urls(watch: Watched) -> list[str]:
    seen: list[str] = []
    watch.page.on("request", lambda r: seen.append(r.url))
    return seen


def test_a_dpo_looks_up_a_record_then_erases_a_subject_and_verifies_the_certificate(
    watched: Watched, served: Served, tmp_path: Path
) -> None:
    requested = _urls(watched)
    page = watched.page
    before = len(served.server.trail())
    head = served.ledger.head()
    _sign_in(watched, served, "dpo", "/records")
    page.get_by_label("Record key").fill(RECORD)
    page.get_by_role("button", name="Look up").click()
    page.wait_for_url(watched.base + "/records")
    watched.settle()
    scored = services.scored(served.ledger, "test", record=RECORD)
    assert _text(page, "#scored-title") == f"Scored {scored.times_scored} times"
    shown = page.locator("#scored tbody tr td:nth-child(3)").all_inner_texts()
    assert shown == [p["model"] for p in scored.predictions]

    page.get_by_role("link", name="Subjects").click()
    page.wait_for_url(watched.base + "/subjects")
    page.get_by_label("Subject id").fill(SUBJECT)
    page.get_by_role("button", name="Show the footprint").click()
    page.wait_for_url(watched.base + "/subjects")
    watched.settle()
    footprint = services.footprint(served.ledger, "test", subject=SUBJECT)
    assert footprint.subject in _text(page, "#footprint-title")
    assert page.locator("#footprint-models li").all_inner_texts() == [
        m["model"] for m in footprint.models
    ]

    page.get_by_role("button", name="Plan the erasure of this subject").click()
    page.wait_for_url(watched.base + "/subjects/plan")
    watched.settle()
    plan = erasures.erase(served.ledger, "test", SUBJECT, actor="tests", dry_run=True)
    reference = _text(page, "#reference")
    assert reference == plan["subject"].rsplit("/", 1)[-1][:8]
    assert served.ledger.head() == head  # looking and planning change nothing

    page.get_by_label("To erase, type").fill(reference)
    page.get_by_role("button", name="Erase this subject").click()
    page.wait_for_url(watched.base + "/subjects/erase")
    watched.settle()
    assert page.get_by_role("heading", level=1).inner_text() == "Erasure erased"
    erasure = _text(page, "#erasure-id")
    appended = [e.type for e in served.ledger.read(head + 1)]
    assert appended[0] == "subject-erasure-requested" and "subject-erased" in appended

    with page.expect_download() as download:
        page.locator("#certificate").click()
    saved = tmp_path / "certificate.json"
    download.value.save_as(saved)
    envelope = json.loads(saved.read_text(encoding="utf-8"))
    key, _, _ = cps.load_signing_key(
        served.ledger.store.url, str(served.server.directory / "signing.key")
    )
    verified = verify_certificate(envelope, key.verifier())
    assert verified.erasure == erasure

    entries = served.server.trail(before)
    assert [e["action"] for e in entries] == [
        "web.sign_in",
        "web.records",
        "web.records.scored",
        "web.subjects",
        "web.subjects.footprint",
        "web.erasures.plan",
        "web.erasures.create",
        "web.erasures.certificate",
    ]
    for text in (SUBJECT, RECORD):
        assert not any(text in json.dumps(e) for e in entries), text
        assert not any(text in url for url in requested), (text, requested)


def test_a_viewer_cannot_reach_the_subject_pages(watched: Watched, served: Served) -> None:
    _sign_in(watched, served, "viewer")
    page = watched.page
    assert page.get_by_role("link", name="Subjects").count() == 0
    before = len(served.server.trail())
    watched.goto("/subjects", status=403)
    assert page.get_by_role("heading", level=1).inner_text() == "Not allowed"
    assert "role 'viewer' does not allow 'personal'" in _text(page, "main")
    [entry] = served.server.trail(before)
    assert (entry["action"], entry["outcome"], entry["status"]) == ("web.subjects", "deny", 403)
