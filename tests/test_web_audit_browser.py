"""The audit pages as an auditor uses them: Debian's Chromium, driven by Playwright,
against a real ``mlledger serve``: the checkpoints compared with the stored ones, the
log verified now (the progress, then the report), a changed event found by the next
verification, the public key and a proof bundle downloaded and checked offline, the
access trail filtered; a viewer refused the audit pages.

Every page loads with no console error, page error, failed request or request
leaving the server (the fixtures of ``tests/test_web_browser.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from audit import checkpoints as cps
from audit.proofs import verify_bundle
from audit.tree import EVENTS, TRAIL, leaf_count
from tests import test_web_browser as shared
from tests.support.events import bypass
from tests.test_web_browser import Served, Watched, _sign_in, _text

# The browser, the server and the watched page of the web interface's browser tests.
browser = shared.browser
served = shared.served
watched = shared.watched


def _signing_key(served: Served) -> cps.SigningKey:
    key, _, _ = cps.load_signing_key(
        served.ledger.store.url, str(served.server.directory / "signing.key"), create=True
    )
    return key


def _sizes(served: Served) -> tuple[int, int]:
    with served.ledger.store.read() as conn:
        return leaf_count(conn, EVENTS), leaf_count(conn, TRAIL)


def test_an_auditor_verifies_the_log_downloads_proofs_and_reads_the_trail(
    watched: Watched, served: Served, tmp_path: Path
) -> None:
    key = _signing_key(served)
    cps.write_checkpoint(served.ledger.store, key, "events")
    cps.write_checkpoint(served.ledger.store, key, "access")
    page = watched.page
    before = len(served.server.trail())
    head = served.ledger.head()
    _sign_in(watched, served, "auditor", "/audit")

    with served.ledger.store.read() as conn:
        latest = cps.latest_checkpoint(conn, "events")
        listed = cps.stored_checkpoints(conn, "events")
    assert latest is not None
    events, _ = _sizes(served)
    row = page.locator("#tree-events td").all_inner_texts()
    assert row[:3] == ["event log", str(events), f"#{latest.seq}"]
    assert page.locator("#checkpoints tbody tr").count() == len(listed)
    assert latest.as_dict()["root_hash"] in _text(page, "#checkpoints")

    page.get_by_role("button", name="Verify now").click()
    page.wait_for_url(watched.base + "/audit/verify")
    page.wait_for_selector("#verify-report")
    watched.settle()
    assert page.locator("#verify-report").get_attribute("data-ok") == "true"
    assert "are as signed" in page.get_by_role("heading", level=2).first.inner_text()
    events, _ = _sizes(served)
    assert f"Entries\n{events}" in _text(page, "#report-events")
    assert f"checked with {key.verifier().name}" in _text(page, "#verify-report")
    bars = page.locator(".steps progress")
    shown = [b for b in bars.all() if b.is_visible()]
    assert len(shown) == 1  # only the newest step is shown: the access trail's last
    assert shown[0].get_attribute("value") == shown[0].get_attribute("max")

    page.get_by_role("link", name="Back to the audit page").click()
    page.wait_for_url(watched.base + "/audit")
    watched.settle()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the public key").click()
    saved_key = tmp_path / "key.txt"
    download.value.save_as(saved_key)
    assert saved_key.read_text().strip() == key.verifier().to_string()

    with served.ledger.store.read() as conn:
        position = conn.execute(
            text("SELECT MAX(position) FROM events WHERE project = 'test'")
        ).scalar_one()
    page.get_by_label("Entry in", exact=True).select_option("events")
    page.get_by_label("Position or seq").fill(str(position))
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the proof").click()
    saved = tmp_path / "proof.json"
    download.value.save_as(saved)
    # A form answered with a file: Chromium ends its navigation as the download begins,
    # which it reports as a failed request of that URL (the only one allowed here).
    aborted = f"request failed: {watched.base}/audit/proof?tree=events&index={position}"
    assert watched.problems.count(aborted) == 1
    watched.problems.remove(aborted)
    verified = verify_bundle(json.loads(saved.read_text()), key.verifier())
    assert (verified.tree, verified.index) == ("events", position)

    page.get_by_role("link", name="Access trail", exact=True).click()
    page.wait_for_url(watched.base + "/audit/trail")
    watched.settle()
    page.get_by_label("Outcome").select_option("allow")
    page.get_by_label("Action starts with").fill("web.audit")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit/trail?**")
    watched.settle()
    seqs = [int(s) for s in page.locator("#trail tbody td:first-child").all_inner_texts()]
    expected = [
        e["seq"]
        for e in served.server.trail(0)
        if e["project"] == "test"
        and e["action"].startswith("web.audit")
        and e["outcome"] == "allow"
    ]
    assert seqs == sorted(expected, reverse=True)[:50]

    entries = served.server.trail(before)
    assert [e["action"] for e in entries] == [
        "web.sign_in",
        "web.audit",
        "web.audit.verify",
        "web.audit",
        "web.audit.public_key",
        "web.audit.proof",
        "web.audit.trail",
        "web.audit.trail",
    ]
    assert {e["outcome"] for e in entries} == {"allow"}
    assert served.ledger.head() == head  # the audit pages append no event


def test_the_next_verification_finds_a_changed_event(watched: Watched, served: Served) -> None:
    key = _signing_key(served)
    cps.write_checkpoint(served.ledger.store, key, "events")
    with served.ledger.store.read() as conn:
        changed = conn.execute(
            text("SELECT MIN(position) FROM events WHERE project = 'test'")
        ).scalar_one()
        original = conn.execute(
            text("SELECT actor FROM events WHERE position = :p"), {"p": changed}
        ).scalar_one()
    _sign_in(watched, served, "admin", "/audit")
    page = watched.page
    with bypass(served.ledger.store) as conn:
        conn.execute(
            text("UPDATE events SET actor = 'mallory' WHERE position = :p"), {"p": changed}
        )
    try:
        page.get_by_role("button", name="Verify now").click()
        page.wait_for_selector("#verify-report")
        watched.settle()
        assert page.locator("#verify-report").get_attribute("data-ok") == "false"
        assert _text(page, "#first-bad-position") == str(changed)
        assert "leaf-mismatch" in _text(page, "#verify-report")
    finally:
        with bypass(served.ledger.store) as conn:
            conn.execute(
                text("UPDATE events SET actor = :a WHERE position = :p"),
                {"a": original, "p": changed},
            )


def test_a_viewer_cannot_reach_the_audit_pages(watched: Watched, served: Served) -> None:
    _sign_in(watched, served, "viewer")
    page = watched.page
    assert page.get_by_role("link", name="Audit").count() == 0
    assert page.get_by_role("link", name="Access trail", exact=True).count() == 0
    before = len(served.server.trail())
    watched.goto("/audit/trail", status=403)
    assert page.get_by_role("heading", level=1).inner_text() == "Not allowed"
    assert "role 'viewer' does not allow 'audit'" in _text(page, "main")
    [entry] = served.server.trail(before)
    assert (entry["action"], entry["outcome"], entry["status"]) == ("web.audit.trail", "deny", 403)
