"""The web interface's audit pages, over HTTP (in process), on SQLite and PostgreSQL:
the checkpoints, verifying the log now (progress, then the report; a changed event
found), the public key and proof bundles to download (checked offline as the CLI
checks them), and the access trail with its filters.

Every page view is asserted in the trail with its action; none of these pages
appends an event."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.requests import Request
from starlette.testclient import TestClient

import registry.web.integrity as integrity
from audit import checkpoints as cps
from audit.note import SigningKey
from audit.proofs import verify_bundle
from audit.tree import EVENTS, TRAIL, leaf_count
from registry import auth
from registry.events import make_event
from tests.support.events import bypass
from tests.test_web import Site, _site, form_token


@pytest.fixture
def store_site(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(store_url, tmp_path, monkeypatch)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(f"sqlite:///{tmp_path}/ledger.db", tmp_path, monkeypatch)


def _sign(site: Site, *trees: str) -> SigningKey:
    key, _, _ = cps.load_signing_key(site.store.url, None, create=True)
    for tree in trees or ("events", "access"):
        cps.write_checkpoint(site.store, key, tree)
    return key


def _grow(site: Site, count: int = 1) -> None:
    site.ledger.append(
        [
            make_event(
                "run-started",
                project="test",
                entity=f"run:{uuid.uuid4()}",
                actor="tester",
                body={"job": "audited", "params": {"i": i}},
            )
            for i in range(count)
        ]
    )


def _sizes(site: Site) -> tuple[int, int]:
    with site.store.read() as conn:
        return leaf_count(conn, EVENTS), leaf_count(conn, TRAIL)


def _actions(site: Site, since: int) -> list[tuple[str, str, str]]:
    return [(e["action"], e["resource"], e["outcome"]) for e in site.trail(since)]


# --- checkpoints ---------------------------------------------------------------------------


def test_the_audit_page_shows_both_trees_checkpoints_as_stored(store_site: Site) -> None:
    site = store_site
    site.sign_in("auditor")
    _sign(site)
    _grow(site, 3)
    key = _sign(site, "events")
    head, before = site.ledger.head(), site.seq()
    page = site.client.get("/audit")
    assert page.status_code == 200, page.text
    events, _ = _sizes(site)
    with site.store.read() as conn:
        stored = cps.stored_checkpoints(conn, "events")
        latest_access = cps.latest_checkpoint(conn, "access")
    assert latest_access is not None
    row = re.search(r'<tr id="tree-events">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert f">{events}<" in row.group(1) and f"#{stored[-1].seq}" in row.group(1)
    assert f"{stored[-1].size} of {events} (all)" in row.group(1)
    access_row = re.search(r'<tr id="tree-access">(.*?)</tr>', page.text, re.S)
    assert access_row is not None and f"#{latest_access.seq}" in access_row.group(1)
    listed = re.findall(r'data-label="Number">#(\d+)<', page.text)
    assert listed == [str(c.seq) for c in reversed(stored)]  # newest first
    for checkpoint in stored:
        assert checkpoint.as_dict()["root_hash"] in page.text
    assert key.verifier().name in page.text and 'href="/audit/public-key"' in page.text
    assert f'name="csrf" value="{form_token(page)}"' in page.text
    assert _actions(site, before) == [("web.audit", "/audit", "allow")]
    assert site.ledger.head() == head  # a page view appends no event

    trail_list = site.client.get("/audit?tree=access")
    assert trail_list.status_code == 200
    assert re.findall(r'data-label="Number">#(\d+)<', trail_list.text) == [str(latest_access.seq)]


def test_checkpoints_are_listed_a_page_at_a_time(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrity, "CHECKPOINTS_SHOWN", 2)
    site.sign_in("admin")
    key, _, _ = cps.load_signing_key(site.store.url, None, create=True)
    for _ in range(5):
        _grow(site)
        cps.write_checkpoint(site.store, key)
    first = site.client.get("/audit")
    assert re.findall(r'data-label="Number">#(\d+)<', first.text) == ["4", "3"]
    older = re.search(r'href="(/audit\?tree=events&amp;before=\d+)"', first.text)
    assert older is not None
    second = site.client.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-label="Number">#(\d+)<', second.text) == ["2", "1"]
    last = site.client.get("/audit?tree=events&before=1")
    assert re.findall(r'data-label="Number">#(\d+)<', last.text) == ["0"]
    assert "Older checkpoints" not in last.text


def test_before_any_checkpoint_or_key_the_page_says_so(site: Site) -> None:
    site.sign_in("auditor")
    page = site.client.get("/audit")
    assert page.status_code == 200
    assert 'id="no-key"' in page.text and 'id="no-checkpoints"' in page.text
    assert page.text.count("none signed yet") == 2
    missing = site.client.get("/audit/public-key")
    assert missing.status_code == 404 and "no signing key yet" in missing.text


@pytest.mark.parametrize(
    "query",
    ["tree=nodes", "before=-1", "before=x", "before=99999999999999999999", "before=%EF%BC%91"],
)
def test_a_bad_query_gets_the_400_page(site: Site, query: str) -> None:
    site.sign_in("auditor")
    answer = site.client.get(f"/audit?{query}")
    assert answer.status_code == 400
    assert (
        "expected events or access" in answer.text or "a whole number of 0 or more" in answer.text
    )


# --- who may -------------------------------------------------------------------------------


def test_roles_without_audit_get_the_403_page_and_a_trail_entry(site: Site) -> None:
    for role in ("viewer", "writer", "dpo"):
        client = site.sign_in(role)
        home = client.get("/")
        assert 'href="/audit"' not in home.text and 'href="/audit/trail"' not in home.text
        before = site.seq()
        for path in ("/audit", "/audit/trail", "/audit/proof?index=0"):
            refused = client.get(path)
            assert refused.status_code == 403, (role, path)
            assert "Not allowed" in refused.text
        verify = client.post("/audit/verify", data={"csrf": form_token(home)})
        assert verify.status_code == 403
        entries = site.trail(before)
        assert [(e["action"], e["outcome"], e["status"]) for e in entries] == [
            ("web.audit", "deny", 403),
            ("web.audit.trail", "deny", 403),
            ("web.audit.proof", "deny", 403),
            ("web.audit.verify", "deny", 403),
        ]
        assert {e["actor"] for e in entries} == {site.key_id(role)}
    site.sign_in("auditor")
    home = site.client.get("/")
    assert 'href="/audit"' in home.text and 'href="/audit/trail"' in home.text


def test_any_role_downloads_the_public_key_the_api_serves(site: Site) -> None:
    _sign(site)
    for role in ("viewer", "auditor"):
        site.sign_in(role)
        before = site.seq()
        answer = site.client.get("/audit/public-key")
        assert answer.status_code == 200
        assert answer.headers["content-disposition"].startswith("attachment;")
        api = site.client.get(
            "/api/v1/projects/test/audit/public-key",
            headers={"Authorization": f"Bearer {site.keys[role]}"},
        )
        assert answer.text == api.text
        assert _actions(site, before)[0] == (
            "web.audit.public_key",
            "/audit/public-key",
            "allow",
        )


# --- proofs --------------------------------------------------------------------------------


def test_a_proof_bundle_downloads_and_verifies_offline(store_site: Site) -> None:
    site = store_site
    key = _sign(site)
    site.sign_in("auditor")
    with site.store.read() as conn:
        position = conn.execute(
            text("SELECT MAX(position) FROM events WHERE project = 'test'")
        ).scalar_one()
    before = site.seq()
    answer = site.client.get(f"/audit/proof?tree=events&index={position}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="proof-events-{position}.json"'
    )
    verified = verify_bundle(answer.json(), key.verifier())
    assert (verified.tree, verified.index) == ("events", position)
    api = site.client.get(
        f"/api/v1/projects/test/audit/proofs/{position}",
        headers={"Authorization": f"Bearer {site.keys['auditor']}"},
    )
    assert api.json() == answer.json()
    assert _actions(site, before)[0] == (
        "web.audit.proof",
        f"/audit/proof?tree=events&index={position}",
        "allow",
    )

    # An access-trail entry of the project, by seq, once a checkpoint covers it.
    entry = site.trail(0)[-1]
    assert entry["project"] == "test"
    _sign(site, "access")
    trail_proof = site.client.get(f"/audit/proof?tree=access&index={entry['seq']}")
    assert trail_proof.status_code == 200, trail_proof.text
    assert verify_bundle(trail_proof.json(), key.verifier()).index == entry["seq"]


def test_proofs_of_other_projects_missing_or_uncovered_entries_are_refused(site: Site) -> None:
    _sign(site)
    site.sign_in("auditor")
    with site.store.read() as conn:
        other = conn.execute(
            text("SELECT MIN(position) FROM events WHERE project = 'other'")
        ).scalar_one()
    foreign = site.client.get(f"/audit/proof?index={other}")
    assert foreign.status_code == 404 and "secret-other-data" not in foreign.text
    absent = site.client.get(f"/audit/proof?index={other}00000")
    assert absent.status_code == 404
    said = re.compile(r'<h1 id="error-title">Not found</h1>\s*<p>([^<]*)<')

    def message(page: Any) -> str:
        found = said.search(page.text)
        assert found is not None, page.text
        return found.group(1).replace(str(other) + "00000", str(other))

    assert message(foreign) == message(absent)  # the same answer, missing or another's
    _grow(site)
    uncovered = site.client.get(f"/audit/proof?index={site.ledger.head()}")
    assert uncovered.status_code == 409 and "not covered by a signed checkpoint" in uncovered.text
    for query in ("", "index=", "index=-3", "index=1.5", "tree=x&index=1"):
        bad = site.client.get(f"/audit/proof?{query}")
        assert bad.status_code == 400, query


# --- verify now ----------------------------------------------------------------------------


def _verify(site: Site) -> str:
    page = site.client.get("/audit")
    answer = site.client.post("/audit/verify", data={"csrf": form_token(page)})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text


def test_verify_now_shows_its_progress_then_the_report(
    store_site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = store_site
    monkeypatch.setattr(integrity, "STEP_SECONDS", 0.0)  # every step the verification tells
    monkeypatch.setattr("audit.verify.CHUNK", 10)
    key = _sign(site)
    _grow(site, 25)
    site.sign_in("auditor")
    head, before = site.ledger.head(), site.seq()
    page = _verify(site)
    events, access = _sizes(site)
    steps = re.findall(r'<progress max="(\d+)" value="(\d+)"', page)
    event_steps = [(int(t), int(d)) for t, d in steps if int(t) == events]
    assert event_steps[0] == (events, 0) and event_steps[-1] == (events, events)
    assert len(event_steps) >= 3  # every 10 entries
    assert "entries checked" in page
    assert 'data-ok="true"' in page and "Verified: the event log and the access trail" in page
    assert f"checked with {key.name}+{key.key_id:08x}" in page
    report = re.search(r'id="report-events">(.*?)</dl>', page, re.S)
    assert report is not None and f"<dd>{events}</dd>" in report.group(1)
    assert access > 0
    assert page.rstrip().endswith("</html>")
    assert page.index('id="verify-steps"') < page.index('id="verify-report"')
    assert _actions(site, before) == [
        ("web.audit", "/audit", "allow"),
        ("web.audit.verify", "/audit/verify", "allow"),
    ]
    assert site.ledger.head() == head
    assert not integrity._busy(site.store)


def test_verify_now_finds_a_changed_event(store_site: Site) -> None:
    site = store_site
    _sign(site)
    site.sign_in("auditor")
    changed = site.ledger.head() - 2
    with bypass(site.store) as conn:
        conn.execute(
            text("UPDATE events SET actor = 'mallory' WHERE position = :p"), {"p": changed}
        )
    page = _verify(site)
    assert 'data-ok="false"' in page and "Not as signed" in page
    assert f'id="first-bad-position">{changed}<' in page
    assert "leaf-mismatch" in page


def test_a_second_verification_meanwhile_is_told_to_wait(site: Site) -> None:
    site.sign_in("admin")
    page = site.client.get("/audit")
    before = site.seq()
    turn = integrity._take_turn(site.store)  # as another server process would hold it
    assert turn is not None
    try:
        busy = site.client.post("/audit/verify", data={"csrf": form_token(page)})
    finally:
        integrity._end_turn(turn)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "10"
    assert "already running" in busy.text
    assert _actions(site, before) == [("web.audit.verify", "/audit/verify", "allow")]
    missing = site.client.post("/audit/verify", data={"csrf": "0" * 64})
    assert missing.status_code == 403 and "CSRF" in missing.text


def test_a_verification_whose_page_closed_stops_and_frees_the_lock(site: Site) -> None:
    import queue

    from registry.settings import Settings

    news: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
    stop = threading.Event()
    stop.set()
    turn = integrity._take_turn(site.store)
    assert turn is not None and integrity._busy(site.store)
    integrity._verify_in_thread(site.store, Settings(), news, stop, turn)
    assert news.get_nowait() == ("failed", "The verification was stopped: its page was closed.")
    assert not integrity._busy(site.store)


def test_a_verification_that_fails_unexpectedly_says_so_and_frees_its_turn(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **options: Any) -> Any:
        raise OSError("the database went away")

    monkeypatch.setattr(integrity, "verify", broken)
    site.sign_in("auditor")
    page = _verify(site)
    assert 'id="verify-failed"' in page and "could not run to its end" in page
    assert "the database went away" not in page
    assert page.rstrip().endswith("</html>")
    assert not integrity._busy(site.store)


def test_closing_the_verifications_page_stops_it(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("audit.verify.CHUNK", 1)  # a step after every entry
    monkeypatch.setattr(integrity, "STEP_SECONDS", 0.0)
    _grow(site, 100)
    outcomes: list[str] = []
    real = integrity.verify

    def slowly(*args: Any, progress: Any, **options: Any) -> Any:
        def step(tree: str, done: int, total: int) -> None:
            time.sleep(0.01)  # 100 entries: a second at least, to be stopped in
            progress(tree, done, total)

        try:
            report = real(*args, progress=step, **options)
        except integrity._Stopped:
            outcomes.append("stopped")
            raise
        outcomes.append("finished")
        return report

    monkeypatch.setattr(integrity, "verify", slowly)
    request = Request({"type": "http", "app": site.client.app, "method": "POST", "headers": []})

    async def close_after_the_first_step() -> None:
        page = integrity._verification(request, "HEAD", "TAIL")
        assert await anext(page) == "HEAD"
        assert "0 of" in await anext(page)
        await page.aclose()  # what the server does when the browser goes away

    asyncio.run(close_after_the_first_step())
    deadline = time.monotonic() + 30
    while integrity._busy(site.store) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcomes == ["stopped"]
    assert not integrity._busy(site.store)


# --- the access trail ----------------------------------------------------------------------


def _seqs(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-label="Seq">(\d+)<', page)]


def test_the_trail_lists_the_projects_entries_newest_first_with_filters(
    store_site: Site,
) -> None:
    site = store_site
    site.sign_in("viewer")
    site.client.get("/audit")  # a denied page view
    viewer_key = site.key_id("viewer")
    site.sign_in("auditor")
    auth.record_access(
        site.store,
        [
            auth.AccessEntry(
                "key-o", "other", "events.read", "/x", "127.0.0.1", "allow", 200, "ok"
            ),
        ],
    )
    page = site.client.get("/audit/trail")
    assert page.status_code == 200
    expected = [e for e in site.trail(0) if e["project"] == "test"]
    shown = _seqs(page.text)
    assert shown == [e["seq"] for e in reversed(expected)][: integrity.TRAIL_SHOWN]
    assert "key-o" not in page.text  # another project's entry

    denied = site.client.get("/audit/trail?outcome=deny")
    want = [e["seq"] for e in reversed(expected) if e["outcome"] == "deny"]
    assert want and _seqs(denied.text) == want

    by_key = site.client.get(f"/audit/trail?actor={viewer_key}")
    assert _seqs(by_key.text) == [e["seq"] for e in reversed(expected) if e["actor"] == viewer_key]

    views = site.client.get("/audit/trail?action=web.audit")
    assert _seqs(views.text) and all(
        e["action"].startswith("web.audit") for e in site.trail(0) if e["seq"] in _seqs(views.text)
    )
    assert 'value="web.audit"' in views.text  # the form keeps the filter

    assert 'href="/audit/proof?tree=access' not in page.text  # no checkpoint covers them yet
    _sign(site, "access")
    covered = site.client.get("/audit/trail")
    links = [
        int(s)
        for s in re.findall(r'href="/audit/proof\?tree=access&amp;index=(\d+)"', covered.text)
    ]
    assert links and set(links) <= set(_seqs(covered.text))
    proof = site.client.get(f"/audit/proof?tree=access&index={links[0]}")
    assert proof.status_code == 200 and proof.json()["index"] == links[0]

    today = expected[-1]["at"][:10]
    dated = site.client.get(f"/audit/trail?from={today}&to={today}")
    assert _seqs(dated.text)
    empty = site.client.get("/audit/trail?from=1999-01-01&to=1999-01-02")
    assert _seqs(empty.text) == [] and 'id="no-entries"' in empty.text


def test_the_trail_pages_back_with_its_filters_kept(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrity, "TRAIL_SHOWN", 3)
    site.sign_in("auditor")
    for _ in range(4):
        site.client.get("/audit")
    first = site.client.get("/audit/trail?action=web.audit")
    shown = _seqs(first.text)
    assert len(shown) == 3
    older = re.search(r'href="(/audit/trail\?[^"]+)" rel="next"', first.text)
    assert older is not None
    link = older.group(1).replace("&amp;", "&")
    assert "action=web.audit" in link and f"before={shown[-1]}" in link
    second = site.client.get(link)
    assert _seqs(second.text) and max(_seqs(second.text)) < shown[-1]


@pytest.mark.parametrize("window", [1, 4, 7])
def test_each_trail_page_looks_through_a_window_and_the_next_goes_on(
    site: Site, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    monkeypatch.setattr(integrity, "TRAIL_WINDOW", window)
    monkeypatch.setattr(integrity, "TRAIL_SHOWN", 2)
    site.sign_in("viewer")
    for _ in range(3):
        site.client.get("/audit")  # denied: rare among the entries
    site.sign_in("auditor")
    for _ in range(6):
        site.client.get("/")
    wanted = [e["seq"] for e in reversed(site.trail(0)) if e["project"] == "test"]
    denied = [s for s in wanted if site.trail(s)[0]["outcome"] == "deny"]
    assert len(denied) >= 3
    seen: list[int] = []
    link: str | None = "/audit/trail?outcome=deny"
    pages = 0
    while link is not None:
        page = site.client.get(link)
        assert page.status_code == 200
        shown = _seqs(page.text)
        assert len(shown) <= 2
        seen += shown
        found = re.search(r'href="(/audit/trail\?[^"]+)" rel="next"', page.text)
        link = None if found is None else found.group(1).replace("&amp;", "&")
        if link is not None and len(shown) < 2:
            assert 'id="search-stopped"' in page.text  # it says why it stopped
        pages += 1
        assert pages < 100
    assert seen == denied  # every denial, once, newest first


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("outcome=maybe", "expected allow or deny"),
        ("from=yesterday", "is not a date: expected YYYY-MM-DD"),
        ("from=20261206", "is not a date: expected YYYY-MM-DD"),
        ("to=2026-W49-1", "is not a date: expected YYYY-MM-DD"),
        ("to=2026-02-30", "is not a date: expected YYYY-MM-DD"),
        ("from=2026-02-03&to=2026-02-01", "expected from on or before to"),
        ("actor=" + "k" * 301, "expected at most 300"),
        ("action=" + "a" * 65, "expected at most 64"),
        ("before=x", "a whole number of 0 or more"),
    ],
)
def test_a_bad_trail_filter_gets_the_form_saying_what_was_wrong(
    site: Site, query: str, says: str
) -> None:
    site.sign_in("auditor")
    answer = site.client.get(f"/audit/trail?{query}")
    assert answer.status_code == 400
    assert says in answer.text and 'id="trail-form"' in answer.text


def test_the_last_day_of_the_calendar_is_a_valid_to(site: Site) -> None:
    site.sign_in("auditor")
    answer = site.client.get("/audit/trail?to=9999-12-31")
    assert answer.status_code == 200 and _seqs(answer.text)


def test_an_unexpected_error_on_a_page_answers_the_500_page_with_its_headers(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.sign_in("auditor")

    def broken(*args: Any, **options: Any) -> Any:
        raise RuntimeError("a bug with a secret: rec-0")

    monkeypatch.setattr(integrity, "search_trail", broken)
    client = TestClient(
        site.client.app, base_url="http://mlledger.test", raise_server_exceptions=False
    )
    client.cookies = site.client.cookies
    answer = client.get("/audit/trail")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("text/html")
    assert "Server error" in answer.text and "rec-0" not in answer.text
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.headers["cache-control"] == "no-store"
    monkeypatch.setattr(auth, "read_trail", broken)  # the API's still answers a problem
    api = client.get(
        "/api/v1/projects/test/access-trail",
        headers={"Authorization": f"Bearer {site.keys['auditor']}"},
    )
    assert api.status_code == 500
    assert api.headers["content-type"] == "application/problem+json"
    assert api.json()["detail"] == "unexpected RuntimeError; see the server log"


@pytest.mark.parametrize("query", ["actor=%00", "action=web.%01", "api_key=mll_x", "token=abc"])
def test_a_refused_url_on_a_page_gets_the_400_page_and_writes_nothing(
    site: Site, query: str
) -> None:
    site.sign_in("auditor")
    before = site.seq()
    answer = site.client.get(f"/audit/trail?{query}")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert "control character" in answer.text or "credential in the URL" in answer.text
    assert "mll_x" not in answer.text and "abc" not in answer.text
    assert site.seq() == before
