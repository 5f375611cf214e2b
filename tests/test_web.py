"""The web interface over HTTP (in process): sessions, CSRF, headers, roles, the trail.

Every test that changes something asserts what it wrote: the ``web_sessions`` rows
and the access-trail entries. The session store itself is tested on both stores.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import registry
from lineage import overview
from registry import auth, sessions
from registry.api.app import create_app as create_api_app
from registry.ledger import Ledger
from registry.store import Store
from registry.web import entities, explorer, pages, security
from registry.web.app import create_app
from registry.web.security import CSP, SESSION_COOKIE, SIGN_IN_COOKIE, local_path
from tests.support.helpers import opened_ledger
from tests.support.worlds import build_world

LIMITS = sessions.Limits(idle=8 * 3600, absolute=24 * 3600)


# --- the session store, on both stores ------------------------------------------------


def _key(store: Store, project: str = "p", role: str = "viewer") -> tuple[auth.ApiKey, str]:
    return auth.create_key(store, project=project, role=role, created_by="tests")


def _rows(store: Store) -> list[sessions.WebSession]:
    return sessions.live(store)


def test_a_session_keeps_only_its_tokens_hash(ledger: Ledger) -> None:
    key, _ = _key(ledger.store)
    session, token = sessions.start(ledger.store, key, LIMITS)
    assert [s.token_hash for s in _rows(ledger.store)] == [sessions.token_hash(token)]
    assert session.token_hash != token and len(token) == 43
    with ledger.store.read() as conn:
        stored = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM web_sessions")]
    assert stored and all(token not in str(value) for value in stored[0])
    checked = sessions.check(ledger.store, token, LIMITS)
    assert checked.session is not None and checked.session.key == key
    assert (
        sessions.check(
            ledger.store, token[:-1] + ("B" if token[-1] == "A" else "A"), LIMITS
        ).session
        is None
    )


def test_a_session_ends_when_unused_for_the_idle_limit(ledger: Ledger) -> None:
    key, _ = _key(ledger.store)
    start = datetime.now(UTC)
    _, token = sessions.start(ledger.store, key, LIMITS, at=start)
    later = start + timedelta(seconds=LIMITS.idle - 1)
    assert sessions.check(ledger.store, token, LIMITS, at=later).session is not None
    # Used just now (seen_at renewed), it lasts another idle period from there.
    still = later + timedelta(seconds=LIMITS.idle - 1)
    assert sessions.check(ledger.store, token, LIMITS, at=still).session is not None
    ended = sessions.check(ledger.store, token, LIMITS, at=still + timedelta(seconds=LIMITS.idle))
    assert ended.session is None
    assert ended.reason == "the session was unused for 8 hours: sign in again"
    assert ended.key_id == key.key_id
    assert _rows(ledger.store) == []


def test_a_session_ends_at_its_absolute_limit_however_used(ledger: Ledger) -> None:
    key, _ = _key(ledger.store)
    start = datetime.now(UTC)
    _, token = sessions.start(ledger.store, key, LIMITS, at=start)
    moment = start
    while moment + timedelta(hours=4) < start + timedelta(seconds=LIMITS.absolute):
        moment += timedelta(hours=4)
        assert sessions.check(ledger.store, token, LIMITS, at=moment).session is not None
    ended = sessions.check(ledger.store, token, LIMITS, at=start + timedelta(hours=24))
    assert ended.session is None
    assert ended.reason == "the session reached its limit of 24 hours: sign in again"
    assert _rows(ledger.store) == []


def test_a_session_ends_when_its_key_is_revoked(ledger: Ledger) -> None:
    key, _ = _key(ledger.store)
    _, token = sessions.start(ledger.store, key, LIMITS)
    auth.revoke_key(ledger.store, key_id=key.key_id, revoked_by="tests")
    checked = sessions.check(ledger.store, token, LIMITS)
    assert checked.session is None
    assert checked.reason.startswith(f"API key {key.key_id} was revoked at ")
    assert _rows(ledger.store) == []


def test_ending_a_session_deletes_it_and_starting_one_purges_the_expired(ledger: Ledger) -> None:
    key, _ = _key(ledger.store)
    long_ago = datetime.now(UTC) - timedelta(days=2)
    _, old = sessions.start(ledger.store, key, LIMITS, at=long_ago)
    _, token = sessions.start(ledger.store, key, LIMITS)
    assert [s.token_hash for s in _rows(ledger.store)] == [sessions.token_hash(token)]
    assert sessions.end(ledger.store, token) is True
    assert sessions.end(ledger.store, token) is False
    assert sessions.end(ledger.store, old) is False
    assert _rows(ledger.store) == []
    assert sessions.check(ledger.store, token, LIMITS).reason == (
        "unknown or ended session: sign in again"
    )


def test_a_session_is_renewed_at_most_once_a_minute(ledger: Ledger) -> None:
    key, _ = _key(ledger.store)
    start = datetime.now(UTC)
    _, token = sessions.start(ledger.store, key, LIMITS, at=start)
    sessions.check(ledger.store, token, LIMITS, at=start + timedelta(seconds=30))
    assert _rows(ledger.store)[0].seen_at == _rows(ledger.store)[0].created_at
    sessions.check(ledger.store, token, LIMITS, at=start + timedelta(seconds=61))
    seen = datetime.strptime(_rows(ledger.store)[0].seen_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert seen.replace(tzinfo=UTC) == start + timedelta(seconds=61)


def test_the_csrf_token_is_the_sessions_own() -> None:
    token, other = "a" * 43, "b" * 43
    csrf = sessions.csrf_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", csrf)
    assert sessions.csrf_matches(token, csrf)
    assert not sessions.csrf_matches(other, csrf)
    assert not sessions.csrf_matches(token, None)
    assert not sessions.csrf_matches(token, "")
    assert not sessions.csrf_matches(token, csrf[:-1] + "é")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("/search?q=clf", "/search?q=clf"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("/a b", "/"),
        ("/\x00", "/"),
        ("/" + "a" * 600, "/"),
    ],
)
def test_after_sign_in_only_a_local_path(sent: str | None, kept: str) -> None:
    assert local_path(sent) == kept


# --- HTTP ------------------------------------------------------------------------------


@dataclass
class Site:
    """The app on a ledger of two projects, its keys, and reads of what it wrote."""

    client: TestClient
    ledger: Ledger
    keys: dict[str, str]

    @property
    def store(self) -> Store:
        return self.ledger.store

    def trail(self, since: int) -> list[dict[str, Any]]:
        return auth.read_trail(self.store, since=since, limit=10_000)

    def seq(self) -> int:
        entries = auth.read_trail(self.store, since=0, limit=1_000_000)
        return len(entries)

    def sign_in(self, role: str, *, client: TestClient | None = None) -> TestClient:
        client = client or self.client
        form = client.get("/sign-in")
        answer = client.post(
            "/sign-in",
            data={"key": self.keys[role], "csrf": form_token(form), "next": "/"},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        return client

    def key_id(self, role: str) -> str:
        claimed = auth.claimed_key_id(self.keys[role])
        assert claimed is not None
        return claimed


def _dataset(reg: registry.Registry, name: str) -> None:
    reg.register_dataset(name, "1", uri=f"s3://b/{name}", digest="sha256:01", records=["r-1"])


def form_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def _site(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("MLLEDGER_AUTH_FAILURES_PER_MINUTE", "3")
    monkeypatch.setenv("MLLEDGER_CHECKPOINT_EVERY", "0")
    with registry.connect(db, project="test", actor="tester") as reg:
        build_world(reg)
    with registry.connect(db, project="other", actor="tester") as reg:
        _dataset(reg, "secret-other-data")
    keys = {}
    with registry.connect(db, project="test", actor="tester") as reg:
        for role in auth.ROLES:
            keys[role] = _key(reg.ledger.store, "test", role)[1]
        keys["other"] = _key(reg.ledger.store, "other", "admin")[1]
    for ledger in opened_ledger(db):
        with TestClient(create_app(db), base_url="http://mlledger.test") as client:
            yield Site(client, ledger, keys)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(f"sqlite:///{tmp_path}/ledger.db", tmp_path, monkeypatch)


@pytest.fixture
def store_site(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(store_url, tmp_path, monkeypatch)


def _cookie_attributes(answer: httpx.Response, name: str) -> dict[str, str]:
    for header in answer.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            parts = [p.strip() for p in header.split(";")]
            found = {"value": parts[0].split("=", 1)[1]}
            for part in parts[1:]:
                key, _, value = part.partition("=")
                found[key.lower()] = value
            return found
    raise AssertionError(f"no Set-Cookie for {name}: {answer.headers.get_list('set-cookie')}")


def test_without_a_session_a_page_sends_to_sign_in_and_writes_nothing(site: Site) -> None:
    before = site.seq()
    answer = site.client.get("/search?q=clf", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Fsearch%3Fq%3Dclf"
    page = site.client.get("/sign-in?next=%2Fsearch%3Fq%3Dclf")
    assert page.status_code == 200
    assert 'name="next" value="/search?q=clf"' in page.text
    assert site.seq() == before
    assert _rows(site.store) == []


def test_sign_in_sets_a_strict_session_cookie_and_records_it(store_site: Site) -> None:
    site = store_site
    before = site.seq()
    form = site.client.get("/sign-in")
    pre = _cookie_attributes(form, SIGN_IN_COOKIE)
    assert {"httponly", "path", "samesite"} <= set(pre) and pre["samesite"] == "strict"
    answer = site.client.post(
        "/sign-in",
        data={"key": site.keys["viewer"], "csrf": form_token(form), "next": "/search?q=clf"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/search?q=clf"
    cookie = _cookie_attributes(answer, SESSION_COOKIE)
    assert cookie["path"] == "/" and cookie["samesite"] == "strict" and "httponly" in cookie
    assert "secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert int(cookie["max-age"]) == 24 * 3600
    assert site.keys["viewer"] not in answer.text and site.keys["viewer"] not in str(answer.headers)
    [row] = _rows(site.store)
    assert row.token_hash == sessions.token_hash(cookie["value"])
    assert row.key.key_id == site.key_id("viewer") and row.project == "test"
    [entry] = site.trail(before)
    assert entry["action"] == "web.sign_in" and entry["outcome"] == "allow"
    assert entry["actor"] == site.key_id("viewer") and entry["project"] == "test"
    assert entry["resource"] == "/sign-in" and entry["reason"] == "role viewer signed in"


def test_over_tls_the_cookie_is_secure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for site in _site(f"sqlite:///{tmp_path}/ledger.db", tmp_path, monkeypatch):
        with TestClient(site.client.app, base_url="https://mlledger.test") as tls:
            form = tls.get("/sign-in")
            assert "secure" in _cookie_attributes(form, SIGN_IN_COOKIE)
            answer = tls.post(
                "/sign-in",
                data={"key": site.keys["viewer"], "csrf": form_token(form)},
                follow_redirects=False,
            )
            assert "secure" in _cookie_attributes(answer, SESSION_COOKIE)


def test_a_bad_key_is_refused_saying_what_was_expected(site: Site) -> None:
    before = site.seq()
    form = site.client.get("/sign-in")
    wrong = site.keys["viewer"][:-4] + "AAAA"
    answer = site.client.post("/sign-in", data={"key": wrong, "csrf": form_token(form)})
    assert answer.status_code == 401
    assert "unknown or malformed API key: expected a key mll_&lt;key id&gt;_&lt;secret&gt;" in (
        answer.text
    )
    assert wrong not in answer.text
    assert _rows(site.store) == []
    [entry] = site.trail(before)
    assert (entry["action"], entry["actor"], entry["outcome"], entry["status"]) == (
        "web.sign_in",
        "anonymous",
        "deny",
        401,
    )
    assert wrong not in str(entry)
    empty = site.client.post("/sign-in", data={"key": " ", "csrf": form_token(answer)})
    assert empty.status_code == 401 and "no API key was entered" in empty.text


def test_a_revoked_key_cannot_sign_in(site: Site) -> None:
    auth.revoke_key(site.store, key_id=site.key_id("writer"), revoked_by="tests")
    before = site.seq()
    form = site.client.get("/sign-in")
    answer = site.client.post(
        "/sign-in", data={"key": site.keys["writer"], "csrf": form_token(form)}
    )
    assert answer.status_code == 401
    assert f"API key {site.key_id('writer')} was revoked at" in answer.text
    [entry] = site.trail(before)
    assert entry["actor"] == site.key_id("writer") and entry["status"] == 401
    assert _rows(site.store) == []


def test_login_csrf_a_sign_in_without_the_forms_token_is_refused(site: Site) -> None:
    before = site.seq()
    site.client.get("/sign-in")
    no_token = site.client.post("/sign-in", data={"key": site.keys["viewer"]})
    assert no_token.status_code == 403 and "sign-in form had expired" in no_token.text
    wrong = site.client.post("/sign-in", data={"key": site.keys["viewer"], "csrf": "x" * 43})
    assert wrong.status_code == 403
    site.client.cookies.clear()
    no_cookie = site.client.post("/sign-in", data={"key": site.keys["viewer"], "csrf": "x" * 43})
    assert no_cookie.status_code == 403
    form = site.client.get("/sign-in")
    foreign = site.client.post(
        "/sign-in",
        data={"key": site.keys["viewer"], "csrf": form_token(form)},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and "posted from another site" in foreign.text
    referred = site.client.post(
        "/sign-in",
        data={"key": site.keys["viewer"], "csrf": form_token(form)},
        headers={"Referer": "https://evil.example/page"},
    )
    assert referred.status_code == 403
    assert _rows(site.store) == []
    assert site.trail(before) == []


def test_failed_sign_ins_are_bounded_in_the_trail(site: Site) -> None:
    before = site.seq()
    form = site.client.get("/sign-in")
    token = form_token(form)
    statuses = []
    for _ in range(6):
        answer = site.client.post("/sign-in", data={"key": "mll_nonsense", "csrf": token})
        statuses.append(answer.status_code)
        if answer.status_code == 401:
            token = form_token(answer)
    # MLLEDGER_AUTH_FAILURES_PER_MINUTE=3: three recorded, then 429 without an entry.
    assert statuses == [401, 401, 401, 429, 429, 429]
    entries = site.trail(before)
    assert [e["status"] for e in entries] == [401, 401, 401]
    assert _rows(site.store) == []
    # A valid key is never limited.
    answer = site.client.post(
        "/sign-in", data={"key": site.keys["viewer"], "csrf": token}, follow_redirects=False
    )
    assert answer.status_code == 303


def test_sign_out_needs_the_csrf_token_then_ends_the_session(store_site: Site) -> None:
    site = store_site
    site.sign_in("auditor")
    token = site.client.cookies[SESSION_COOKIE]
    home = site.client.get("/")
    before = site.seq()
    refused = site.client.post("/sign-out", data={"csrf": "0" * 64})
    assert refused.status_code == 403 and "CSRF token is missing or wrong" in refused.text
    assert len(_rows(site.store)) == 1
    [denied] = site.trail(before)
    assert (denied["action"], denied["status"], denied["actor"]) == (
        "web.sign_out",
        403,
        site.key_id("auditor"),
    )
    foreign = site.client.post(
        "/sign-out", data={"csrf": form_token(home)}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403 and len(_rows(site.store)) == 1
    before = site.seq()
    answer = site.client.post("/sign-out", data={"csrf": form_token(home)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/sign-in"
    assert _cookie_attributes(answer, SESSION_COOKIE)["max-age"] == "0"
    assert _rows(site.store) == []
    [signed_out] = site.trail(before)
    assert (signed_out["action"], signed_out["outcome"]) == ("web.sign_out", "allow")
    # The old cookie opens nothing: the sign-in page says why, and that is recorded.
    before = site.seq()
    site.client.cookies.set(SESSION_COOKIE, token)
    again = site.client.get("/", follow_redirects=False)
    assert again.status_code == 401 and "unknown or ended session" in again.text
    [entry] = site.trail(before)
    assert (entry["action"], entry["actor"], entry["status"]) == ("web.home", "anonymous", 401)


def test_revoking_the_key_ends_its_sessions_at_once(site: Site) -> None:
    site.sign_in("viewer")
    assert site.client.get("/").status_code == 200
    auth.revoke_key(site.store, key_id=site.key_id("viewer"), revoked_by="tests")
    before = site.seq()
    answer = site.client.get("/search?q=clf", follow_redirects=False)
    assert answer.status_code == 401 and "was revoked at" in answer.text
    assert _cookie_attributes(answer, SESSION_COOKIE)["max-age"] == "0"
    assert _rows(site.store) == []
    [entry] = site.trail(before)
    assert (entry["actor"], entry["action"], entry["status"]) == (
        site.key_id("viewer"),
        "web.search",
        401,
    )


def test_signing_in_again_ends_the_old_session(site: Site) -> None:
    site.sign_in("viewer")
    first = site.client.cookies[SESSION_COOKIE]
    site.sign_in("auditor")
    second = site.client.cookies[SESSION_COOKIE]
    assert first != second
    assert [s.token_hash for s in _rows(site.store)] == [sessions.token_hash(second)]


def test_every_page_view_is_in_the_trail(site: Site) -> None:
    site.sign_in("admin")
    before = site.seq()
    assert site.client.get("/").status_code == 200
    assert site.client.get("/search?q=clf&type=model").status_code == 200
    assert site.client.get("/feed?after=3").status_code == 200
    entries = site.trail(before)
    assert [(e["action"], e["resource"], e["outcome"], e["status"]) for e in entries] == [
        ("web.home", "/", "allow", 200),
        ("web.search", "/search?q=clf&type=model", "allow", 200),
        ("web.feed", "/feed?after=3", "allow", 200),
    ]
    assert {e["actor"] for e in entries} == {site.key_id("admin")}
    assert {e["project"] for e in entries} == {"test"}
    # Static assets and the sign-in form show no data: not recorded.
    assert site.client.get("/static/mlledger.css").status_code == 200
    assert site.client.get("/sign-in").status_code == 200
    assert len(site.trail(before)) == 3


def test_home_shows_the_ledgers_answers(site: Site) -> None:
    site.sign_in("auditor")
    page = site.client.get("/")
    counts = {
        name: int(value)
        for name, value in re.findall(r'<dd id="count-(\w+)">(\d+)</dd>', page.text)
    }
    with site.store.read() as conn:
        events = conn.exec_driver_sql("SELECT COUNT(*) FROM events WHERE project = 'test'")
        expected_events = events.scalar()
    assert counts == {
        "datasets": 3,
        "runs": 3,
        "models": 3,
        "deployments": 1,
        "events": expected_events,
    }
    feed = registry.services.feed(site.ledger, "test", limit=20)
    shown = [int(p) for p in re.findall(r'<tr data-position="(\d+)">', page.text)]
    assert shown == [e["position"] for e in feed.events]
    assert "No checkpoint of the log has been signed yet." in page.text
    assert '<script src="/static/feed.js"></script>' in page.text
    assert "secret-other-data" not in page.text


def test_a_viewer_sees_no_event_log_and_gets_the_403_page_for_the_feed(site: Site) -> None:
    site.sign_in("viewer")
    page = site.client.get("/")
    assert page.status_code == 200
    assert 'id="feed"' not in page.text and "feed.js" not in page.text
    assert "shown to keys that may audit" in page.text
    before = site.seq()
    refused = site.client.get("/feed?after=0")
    assert refused.status_code == 403
    assert "role &#39;viewer&#39; does not allow &#39;audit&#39;" in refused.text
    assert '<nav aria-label="Main">' in refused.text  # the UI's layout, not a problem
    [entry] = site.trail(before)
    assert (entry["action"], entry["outcome"], entry["status"], entry["actor"]) == (
        "web.feed",
        "deny",
        403,
        site.key_id("viewer"),
    )


def test_another_projects_data_is_never_shown(site: Site) -> None:
    site.sign_in("admin")
    found = site.client.get("/search?q=secret")
    assert found.status_code == 200 and "0 names holding" in found.text
    assert "secret-other-data" not in found.text
    home = site.client.get("/")
    assert "secret-other-data" not in home.text and "other" not in re.findall(
        r"<li>(\w+) — granted", home.text
    )
    site.sign_in("other")
    home = site.client.get("/")
    assert 'id="count-datasets">1<' in home.text
    assert "dataset:test/" not in home.text and "deployment:test/" not in home.text
    found = site.client.get("/search?q=c")
    assert "clf" not in found.text and "clean" not in found.text


NAME_AND_TYPE = (
    r'<td data-label="Name"><a href="[^"]+">([\w-]+)</a></td>\s*'
    r'<td data-label="Type">(\w[\w ]*)</td>'
)


def test_search_filters_by_type_and_pages(site: Site) -> None:
    with registry.connect(site.store.url, project="test", actor="tester") as reg:
        for i in range(30):
            _dataset(reg, f"many-{i:02d}")
    site.sign_in("viewer")
    first = site.client.get("/search?q=many&type=dataset")
    assert "30 names holding" in first.text
    names = re.findall(r'<td data-label="Name"><a href="[^"]+">(many-\d\d)</a></td>', first.text)
    assert names == [f"many-{i:02d}" for i in range(25)]
    assert 'href="/search?q=many&amp;type=dataset&amp;page=2"' in first.text
    second = site.client.get("/search?q=many&type=dataset&page=2")
    assert re.findall(
        r'<td data-label="Name"><a href="[^"]+">(many-\d\d)</a></td>', second.text
    ) == [f"many-{i:02d}" for i in range(25, 30)]
    assert "page=1" in second.text and "Page 2 of 2" in second.text
    models = site.client.get("/search?q=cl&type=model")
    assert re.findall(
        NAME_AND_TYPE,
        models.text,
    ) == [
        ("clf", "Models"),
        ("clf-tuned", "Models"),
    ]
    both = site.client.get("/search?q=cl")
    kinds = re.findall(
        NAME_AND_TYPE,
        both.text,
    )
    assert ("clean", "Datasets") in kinds and ("clf", "Models") in kinds
    assert site.client.get("/search?q=many&type=run").text.count('">many-') == 0
    # Run names are their jobs'; deployments by name.
    runs = site.client.get("/search?q=train&type=run")
    assert re.findall(r'<td data-label="Name"><a href="[^"]+">(train-\w)</a></td>', runs.text) == [
        "train-a",
        "train-b",
    ]
    assert (
        '<td data-label="Name"><a href="/node?id=deployment%3Atest%2Fapi">api</a></td>'
        in site.client.get("/search?q=ap&type=deployment").text
    )
    answer = registry.services.search(site.ledger, "test", "many", kinds=("dataset",))
    assert answer.total == 30


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("q=clf&type=table", "type &#39;table&#39; is not searched: expected any of dataset,"),
        ("q=clf&page=0", "page &#39;0&#39; is not a page: expected 1, 2, ..."),
        ("q=clf&page=x", "page &#39;x&#39; is not a page"),
        ("q=" + "a" * 129, "the search text is 129 characters long: expected at most 128"),
        ("q=clf&page=99999", "offset 2499950 is out of range: expected 0 to 10000"),
    ],
)
def test_bad_search_input_is_refused_saying_why(site: Site, query: str, message: str) -> None:
    site.sign_in("viewer")
    answer = site.client.get("/search?" + query)
    assert answer.status_code == 400
    assert message in answer.text


def test_search_treats_wildcards_and_markup_as_text(site: Site) -> None:
    site.sign_in("viewer")
    wild = site.client.get("/search?q=%25")
    assert wild.status_code == 200 and "0 names holding" in wild.text
    under = site.client.get("/search?q=c_f")
    assert "0 names holding" in under.text
    markup = site.client.get("/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)</script>" not in markup.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup.text


def test_the_feed_answers_the_events_after_a_position(site: Site) -> None:
    site.sign_in("auditor")
    head = site.ledger.head()
    empty = site.client.get(f"/feed?after={head}")
    assert empty.status_code == 200 and "<tr" not in empty.text
    with registry.connect(site.store.url, project="test", actor="tester") as reg:
        _dataset(reg, "fresh")
    rows = site.client.get(f"/feed?after={head}")
    appended = registry.services.feed(site.ledger, "test", after=head).events
    assert appended and appended[-1]["position"] == head + 1
    assert re.findall(r'<tr data-position="(\d+)">', rows.text) == [
        str(e["position"]) for e in appended
    ]
    assert "dataset-version-registered" in rows.text and "dataset:test/fresh@" in rows.text
    bad = site.client.get("/feed?after=x")
    assert bad.status_code == 400 and "is not a position" in bad.text
    low = site.client.get("/feed?after=-5")
    assert low.status_code == 400 and "after -5 is out of range" in low.text
    huge = site.client.get(f"/feed?after={10**30}")
    assert huge.status_code == 400 and "expected a position (at most 2**62)" in huge.text


PAGES = ["/", "/search", "/search?q=clf", "/feed", "/sign-in", "/nowhere", "/static/feed.js"]


def test_every_web_answer_carries_the_security_headers(site: Site) -> None:
    site.sign_in("admin")
    answers = [site.client.get(path, follow_redirects=False) for path in PAGES]
    answers.append(site.client.post("/sign-out", data={"csrf": "bad"}))
    answers.append(site.client.get("/?token=x"))  # refused by the gate, before any page
    for answer in answers:
        assert answer.headers["content-security-policy"] == CSP, answer.url
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert answer.headers["x-frame-options"] == "DENY"
        static = answer.url.path.startswith("/static/")
        assert answer.headers["cache-control"] == ("no-cache" if static else "no-store")
    for answer in answers[:-1]:
        assert "<script>" not in answer.text and " style=" not in answer.text
        assert "<style" not in answer.text and " on" + "click" not in answer.text
    api = site.client.get("/api/v1/health")
    assert "content-security-policy" not in api.headers


def test_pages_that_do_not_exist_answer_404_in_the_layout(site: Site) -> None:
    anonymous = site.client.get("/nowhere")
    assert anonymous.status_code == 404 and "There is no page at this address." in anonymous.text
    assert anonymous.headers["content-type"].startswith("text/html")
    assert '<nav aria-label="Main">' not in anonymous.text
    site.sign_in("viewer")
    signed = site.client.get("/nowhere")
    assert signed.status_code == 404 and '<nav aria-label="Main">' in signed.text
    assert site.client.post("/").status_code == 405
    assert site.client.get("/static/nothing.js").status_code == 404
    # The API answers as before: problem details.
    api = site.client.get("/api/v1/nowhere")
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"


def test_forms_that_are_not_forms_are_refused(site: Site) -> None:
    site.client.get("/sign-in")
    as_json = site.client.post("/sign-in", json={"key": site.keys["viewer"]})
    assert as_json.status_code == 400
    assert "expected application/x-www-form-urlencoded" in as_json.text
    huge = site.client.post(
        "/sign-in",
        content=b"key=" + b"a" * 9000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413 and "larger than 8192 bytes" in huge.text
    assert _rows(site.store) == []


def test_the_web_interface_is_not_in_the_openapi_document() -> None:
    paths = create_app().openapi()["paths"]
    assert paths == create_api_app().openapi()["paths"]
    assert not any(not p.startswith("/api/") for p in paths)


def test_web_paths_are_told_from_the_apis() -> None:
    assert security.is_web_path("/") and security.is_web_path("/search")
    assert security.is_web_path("/static/feed.js") and security.is_web_path("/apis")
    for path in ("/api/v1/health", "/openapi.json", "/docs", "/redoc", "/api"):
        assert not security.is_web_path(path)


UI_PAGE = Path(__file__).resolve().parents[1] / "docs" / "ui.md"


def test_the_ui_page_lists_every_route_with_its_permission_and_action() -> None:
    text = UI_PAGE.read_text(encoding="utf-8")
    rows = {
        (m.group(1), m.group(2)): (m.group(3), m.group(4))
        for m in re.finditer(
            r"^\| `([A-Z]+)` \| `([^`]+)` \| (\w+) \| ([^|]+?) \|", text, re.MULTILINE
        )
    }
    routes = {
        (method, route.path)
        for router in (pages.router, explorer.router, entities.router)
        for route in router.routes
        for method in getattr(route, "methods", ())
        if method != "HEAD"
    }
    assert set(pages.ACCESS) == routes
    assert rows == {
        where: (permission, "—" if action == "—" else f"`{action}`")
        for where, (permission, action) in pages.ACCESS.items()
    }


def test_the_ui_pages_pictures_exist() -> None:
    pictures = re.findall(r"!\[[^\]]*\]\((ui/[\w-]+\.png)\)", UI_PAGE.read_text("utf-8"))
    assert len(pictures) == 21
    for picture in pictures:
        assert (UI_PAGE.parent / picture).stat().st_size > 10_000, picture


@pytest.mark.parametrize(("window", "lookback"), [(3, 10_000), (1, 10_000), (2_000, 10_000)])
def test_the_feed_reads_back_by_ranges_as_one_query_would(
    site: Site, monkeypatch: pytest.MonkeyPatch, window: int, lookback: int
) -> None:
    with registry.connect(site.store.url, project="other", actor="tester") as reg:
        for i in range(4):
            _dataset(reg, f"between-{i}")
    monkeypatch.setattr(overview, "FEED_WINDOW", window)
    monkeypatch.setattr(overview, "FEED_LOOKBACK", lookback)
    with site.store.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT position, type, entity, actor, recorded_at FROM events "
            "WHERE project = 'test' ORDER BY position DESC"
        ).all()
    naive = [
        {"position": p, "type": t, "entity": e, "actor": a, "recorded_at": r}
        for p, t, e, a, r in rows
    ]
    for after in (-1, 0, 5, naive[0]["position"] - 1, naive[0]["position"]):
        for limit in (1, 7, 20):
            answer = registry.services.feed(site.ledger, "test", after=after, limit=limit)
            expected = [e for e in naive if e["position"] > after][:limit]
            assert answer.events == expected, (after, limit)
    assert answer.head == site.ledger.head()


def test_the_feed_looks_back_a_bounded_number_of_positions(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    with registry.connect(site.store.url, project="other", actor="tester") as reg:
        for i in range(6):
            _dataset(reg, f"later-{i}")
    head = site.ledger.head()
    newest_test = registry.services.feed(site.ledger, "test", limit=1).events[0]["position"]
    gap = head - newest_test
    monkeypatch.setattr(overview, "FEED_LOOKBACK", gap)
    assert registry.services.feed(site.ledger, "test").events == []
    monkeypatch.setattr(overview, "FEED_LOOKBACK", gap + 1)
    [event] = registry.services.feed(site.ledger, "test").events
    assert event["position"] == newest_test


def test_the_home_of_a_project_without_events_says_so(site: Site) -> None:
    _, token = _key(site.store, "fresh", "auditor")
    site.keys["fresh"] = token
    site.sign_in("fresh")
    page = site.client.get("/")
    assert page.status_code == 200
    assert re.findall(r'<dd id="count-\w+">(\d+)</dd>', page.text) == ["0"] * 5
    assert "No events yet." in page.text
    assert "clf" not in page.text and "dataset:test/" not in page.text


def test_the_overview_answers_hold_to_their_models(site: Site) -> None:
    """Built without validation (``Shape.built``): each answer is valid as its model."""
    answers = [
        registry.services.counts(site.ledger, "test"),
        registry.services.feed(site.ledger, "test", limit=5),
        registry.services.search(site.ledger, "test", "c", limit=2, offset=1),
    ]
    for answer in answers:
        again = type(answer).model_validate(answer.model_dump(mode="json"))
        assert again.model_dump(mode="json") == answer.model_dump(mode="json")


def test_the_feeds_polling_does_not_keep_a_session_alive(site: Site) -> None:
    site.sign_in("auditor")

    def seen() -> str:
        [row] = _rows(site.store)
        return row.seen_at

    # Last used two minutes ago: alive, and due a renewal when used.
    recent = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with site.store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE web_sessions SET seen_at = ?", (recent,))
    before = site.seq()
    assert site.client.get("/feed?after=0").status_code == 200
    assert seen() == recent  # the poll is recorded, not counted as use
    assert [e["action"] for e in site.trail(before)] == ["web.feed"]
    assert site.client.get("/").status_code == 200
    assert seen() > recent


def test_an_ended_session_signs_in_again_to_the_page_it_asked_for(site: Site) -> None:
    site.client.cookies.set(SESSION_COOKIE, "A" * 43)
    answer = site.client.get("/search?q=abc&type=model")
    assert answer.status_code == 401
    assert 'name="next" value="/search?q=abc&amp;type=model"' in answer.text


def test_the_sign_in_forms_of_several_tabs_all_work(site: Site) -> None:
    first = site.client.get("/sign-in")
    second = site.client.get("/sign-in")
    assert form_token(first) == form_token(second)
    answer = site.client.post(
        "/sign-in",
        data={"key": site.keys["viewer"], "csrf": form_token(first)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    [row] = _rows(site.store)
    assert row.key.key_id == site.key_id("viewer")
