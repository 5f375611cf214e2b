"""The web interface as a person uses it: Debian's Chromium, driven by Playwright,
against a real ``mlledger serve`` on a SQLite file.

Every page must load with no console error or warning, no page error, no failed
request and no request to anything but the server; the content is checked against
the ledger's own answers (``registry.services``). The one console error allowed is
the browser's own note of a page answered with an error status (the 401 sign-in page,
the 403 page), which Chromium logs for every such navigation.

Chromium is installed by ``make test`` and ``.ci/run`` (``.ci/chromium``). In CI a
missing browser fails these tests; elsewhere they are skipped, saying how to install it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import registry
from registry import auth, services, sessions
from registry.ledger import Ledger
from registry.web.pages import node_href
from registry.web.screenshots import CHROMIUM, LAUNCH_ARGS
from registry.web.security import SESSION_COOKIE
from tests.support.apiserver import ApiServer
from tests.support.helpers import opened_ledger
from tests.support.worlds import build_world

#: The console error Chromium logs for a page answered with this status, and only that.
_STATUS_NOTE = "Failed to load resource: the server responded with a status of {status}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (apt-get install chromium, or make test)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@dataclass
class Served:
    server: ApiServer
    keys: dict[str, str]
    ledger: Ledger

    def key_id(self, role: str) -> str:
        found = auth.claimed_key_id(self.keys[role])
        assert found is not None
        return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server on a SQLite file holding the query tests' world, its keys of every role,
    and its ledger opened here to ask the expected answers."""
    server = ApiServer(
        tmp_path_factory.mktemp("web"),
        env={"MLLEDGER_WEB_FEED_SECONDS": "1", "MLLEDGER_CHECKPOINT_EVERY": "0"},
    )
    for running in server.serving():
        keys = {role: running.key("test", role) for role in auth.ROLES}
        with registry.connect(running.url, project="test", api_key=keys["writer"]) as reg:
            build_world(reg)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLLEDGER_KEY_FILE", str(running.key_file))
            patch.setenv("MLLEDGER_SIGNING_KEY", str(running.directory / "signing.key"))
            for ledger in opened_ledger(running.db):
                yield Served(running, keys, ledger)


@dataclass
class Watched:
    """A browser page and what went wrong on it."""

    page: Any
    base: str
    problems: list[str] = field(default_factory=list)
    allowed: set[str] = field(default_factory=set)

    def goto(self, path: str, status: int = 200) -> Any:
        if status >= 400:
            self.allowed.add(_STATUS_NOTE.format(status=status))
        response = self.page.goto(self.base + path, wait_until="load")
        assert response is not None and response.status == status, (path, response.status)
        self.settle()
        return response

    def settle(self) -> None:
        """Wait until the page has fetched what it loads (its icon): leaving it sooner
        aborts those requests, which would read as failures."""
        self.page.wait_for_load_state("networkidle")

    def unexplained(self) -> list[str]:
        return [
            p
            for p in self.problems
            if not any(p.startswith(f"console error: {note}") for note in self.allowed)
        ]


@pytest.fixture
def watched(browser: Any, served: Served) -> Iterator[Watched]:
    """A fresh browser context (no cookies) at 1280x800, watched for console errors, page
    errors, failed requests and requests leaving the server; none may happen."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    watch = Watched(page, served.server.url)

    def console(message: Any) -> None:
        if message.type in ("error", "warning"):
            watch.problems.append(f"console {message.type}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda e: watch.problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: watch.problems.append(f"request failed: {r.url}"))
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith(served.server.url + "/")
            else watch.problems.append(f"request left the server: {r.url}")
        ),
    )
    yield watch
    context.close()
    assert watch.unexplained() == []


def _sign_in(watch: Watched, served: Served, role: str, path: str = "/") -> None:
    watch.goto(path)  # sent to the sign-in page, which answers 200
    assert watch.page.url.startswith(watch.base + "/sign-in?next=")
    watch.page.get_by_label("API key").fill(served.keys[role])
    watch.page.get_by_role("button", name="Sign in").click()
    watch.page.wait_for_url(watch.base + path)
    watch.settle()


def _text(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text()).strip()


def test_sign_in_then_home_shows_the_ledgers_answers(watched: Watched, served: Served) -> None:
    before = len(served.server.trail())
    _sign_in(watched, served, "auditor")
    page = watched.page
    counts = services.counts(served.ledger, "test")
    for name in ("datasets", "runs", "models", "deployments", "events"):
        assert _text(page, f"#count-{name}") == str(getattr(counts, name))
    feed = services.feed(served.ledger, "test", limit=20)
    rows = page.locator("#feed tbody tr[data-position]")
    assert rows.evaluate_all("rows => rows.map(r => Number(r.dataset.position))") == [
        e["position"] for e in feed.events
    ]
    assert _text(page, "#feed tbody tr:first-child td:nth-child(2)") == feed.events[0]["type"]
    assert "No checkpoint of the log has been signed yet." in _text(page, "#checkpoint")
    assert page.locator("nav[aria-label=Main] a[aria-current=page]").inner_text() == "Home"
    assert page.title() == "Home · mlledger"
    cookie = next(c for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
    # The page's feed polls every second here: its requests are recorded too.
    actions = [
        (e["action"], e["actor"]) for e in served.server.trail(before) if e["action"] != "web.feed"
    ]
    assert actions == [
        ("web.sign_in", served.key_id("auditor")),
        ("web.home", served.key_id("auditor")),
    ]


def test_the_feed_shows_an_append_without_a_reload(watched: Watched, served: Served) -> None:
    _sign_in(watched, served, "auditor")
    page = watched.page
    head = served.ledger.head()
    with registry.connect(served.server.url, project="test", api_key=served.keys["writer"]) as reg:
        reg.register_dataset(
            "arrived", "1", uri="s3://b/arrived", digest="sha256:0a", records=["a"]
        )
    appended = services.feed(served.ledger, "test", after=head).events
    newest = appended[0]["position"]
    page.locator(f'#feed tbody tr[data-position="{newest}"]').wait_for(timeout=15_000)
    shown = page.locator("#feed tbody tr[data-position]").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.position))"
    )
    assert shown[: len(appended)] == [e["position"] for e in appended]
    assert "dataset:test/arrived@1" in _text(page, "#feed tbody")
    assert re.search(r"\d+ new events? at", _text(page, "#feed-status")) or "Up to date" in _text(
        page, "#feed-status"
    )


def test_search_with_type_filters(watched: Watched, served: Served) -> None:
    _sign_in(watched, served, "viewer", "/search")
    page = watched.page
    page.get_by_label("Name holds").fill("cl")
    page.get_by_label("Models").check()
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/search\?q=cl&type=model$"))
    expected = services.search(served.ledger, "test", "cl", kinds=("model",))
    names = page.locator("#results tbody tr td:first-child").all_inner_texts()
    assert names == [h["name"] for h in expected.hits] == ["clf", "clf-tuned"]
    assert _text(page, "#results-title") == f"{expected.total} names holding “cl”"
    assert page.get_by_label("Models").is_checked()
    # Every type: datasets too.
    page.get_by_label("Models").uncheck()
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/search\?q=cl$"))
    everything = services.search(served.ledger, "test", "cl")
    assert page.locator("#results tbody tr td:first-child").all_inner_texts() == [
        h["name"] for h in everything.hits
    ]


def test_a_viewer_gets_the_403_page_and_it_is_recorded(watched: Watched, served: Served) -> None:
    _sign_in(watched, served, "viewer")
    page = watched.page
    assert page.locator("#feed").count() == 0
    before = len(served.server.trail())
    watched.goto("/feed", status=403)
    assert page.get_by_role("heading", level=1).inner_text() == "Not allowed"
    assert "role 'viewer' does not allow 'audit'" in _text(page, "main")
    [entry] = served.server.trail(before)
    assert (entry["action"], entry["outcome"], entry["status"], entry["actor"]) == (
        "web.feed",
        "deny",
        403,
        served.key_id("viewer"),
    )


def test_sign_out_removes_the_cookie_and_the_old_one_is_refused(
    watched: Watched, served: Served
) -> None:
    _sign_in(watched, served, "writer")
    page = watched.page
    context = page.context
    old = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(watched.base + "/sign-in")
    watched.settle()  # its icon loaded before the next navigation
    assert [c for c in context.cookies() if c["name"] == SESSION_COOKIE] == []
    assert sessions.live(served.ledger.store, key_id=served.key_id("writer")) == []
    context.add_cookies([old])
    watched.goto("/", status=401)
    assert "unknown or ended session" in _text(page, "[role=alert]")
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in"


def test_the_keyboard_alone_signs_in_and_reaches_every_page(
    watched: Watched, served: Served
) -> None:
    page = watched.page
    watched.goto("/sign-in")
    # The key field has the focus on arrival: type, then Enter.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'key'")
    page.keyboard.type(served.keys["viewer"])
    page.keyboard.press("Enter")
    page.wait_for_url(watched.base + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "/"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "/search"
    page.keyboard.press("Enter")
    page.wait_for_url(watched.base + "/search")
    # Every control is labelled.
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll('input:not([type=hidden]), button'))
            .filter(e => !(e.labels && e.labels.length) && !e.textContent.trim()
                         && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)"""
    )
    assert unlabelled == []


def test_a_narrow_window_needs_no_sideways_scrolling(
    browser: Any, served: Served, watched: Watched
) -> None:
    _sign_in(watched, served, "admin")
    page = watched.page
    for path in ("/", "/search?q=c", "/records", "/subjects", "/erasures"):
        page.set_viewport_size({"width": 390, "height": 844})
        watched.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)


# --- the entity pages ---------------------------------------------------------------


def _hrefs(page: Any, selector: str) -> list[str]:
    found: list[str] = page.locator(selector).evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    return found


def _follow(watch: Watched, selector: str, prefix: str) -> None:
    watch.page.locator(selector).first.click()
    watch.page.wait_for_url(watch.base + "/node?id=" + prefix + "*")
    watch.settle()


def test_from_search_through_every_entity_page(watched: Watched, served: Served) -> None:
    before = len(served.server.trail())
    _sign_in(watched, served, "viewer", "/search?q=clf&type=model")
    page, ledger = watched.page, served.ledger
    hits = services.search(ledger, "test", "clf", kinds=("model",)).hits
    # Each row links its name to the node's page (and "explore" to the lineage explorer).
    names = "#results td[data-label=Name] a"
    assert _hrefs(page, names) == [node_href(h["newest"]) for h in hits]

    _follow(watched, names, "model%3A")
    model = services.model_details(ledger, "test", model=hits[0]["newest"])
    assert page.locator("h1").inner_text() == f"{model.name}@{model.version}"
    assert _hrefs(page, "#training a") == [node_href(d["dataset"]) for d in model.training]
    assert _hrefs(page, "#deployments a") == [node_href(d.deployment) for d in model.deployments]
    assert page.locator("#volume").get_attribute("role") == "img"
    model_url = page.url

    assert model.run is not None
    _follow(watched, "#facts a", "run%3A")
    run = services.run_details(ledger, "test", run=model.run)
    assert page.locator("h1").inner_text() == run.job
    assert _hrefs(page, "#inputs a") == [node_href(n["id"]) for n in run.inputs.nodes]
    assert _hrefs(page, "#outputs a") == [node_href(n["id"]) for n in run.outputs.nodes]

    _follow(watched, "#inputs a", "dataset%3A")
    data = services.dataset_details(ledger, "test", dataset=run.inputs.nodes[0]["id"])
    assert page.locator("#records").inner_text() == str(data.records)
    assert _hrefs(page, "#downstream a") == [node_href(n["id"]) for n in data.downstream.nodes]

    watched.page.goto(model_url)
    watched.settle()
    _follow(watched, "#deployments a", "deployment%3A")
    deployment = services.deployment_details(
        ledger, "test", deployment=model.deployments[0].deployment
    )
    assert page.locator("#timeline tbody tr").count() == len(deployment.intervals)
    assert page.locator("#total").inner_text() == str(deployment.predictions.total)
    # The chart's numbers open from the keyboard alone.
    summary = page.locator("#volume ~ details summary")
    summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("#volume ~ details").get_attribute("open") is not None

    actions = [e["action"] for e in served.server.trail(before)]
    assert actions == [
        "web.sign_in",
        "web.search",
        "web.node",
        "web.node",
        "web.node",
        "web.node",
        "web.node",
    ]


def test_an_entity_page_fits_a_narrow_window(watched: Watched, served: Served) -> None:
    watched.page.set_viewport_size({"width": 390, "height": 844})
    model = services.resolve_model(served.ledger, "test", "clf@2")
    _sign_in(watched, served, "viewer", node_href(model))
    width = watched.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    watched.goto(node_href("model:test/clf@99"), status=404)
    assert "There is no such node" in watched.page.locator("main").inner_text()
