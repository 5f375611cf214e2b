"""The lineage explorer as a person uses it: Debian's Chromium, driven by Playwright,
against a real ``mlledger serve`` (the fixtures of ``tests/test_web_browser.py``).

The drawn graph is read back from the page (cytoscape's own model of what it drew) and
compared with the ledger's answer (``registry.services.lineage``). No console error or
warning (a Content-Security-Policy violation is one), no page error, no failed request
and no request to anything but the server; in CI a missing browser fails.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest

import registry
from registry import services
from registry.timeutil import format_time
from tests.support.worlds import day
from tests.test_web_browser import (
    _STATUS_NOTE,
    Served,
    Watched,
    _sign_in,
    browser,
    served,
    watched,
)

__all__ = ["browser", "served", "watched"]  # the fixtures, shared with the pages' tests

WIDE = 45


@pytest.fixture(scope="module")
def wide(served: Served) -> str:
    """A dataset version read by more runs than a column shows ungrouped."""
    url = served.server.url
    with registry.connect(url, project="test", api_key=served.keys["writer"]) as reg:
        node = reg.register_dataset(
            "wide", "1", uri="s3://b/wide", digest="sha256:0b", records=["w"], occurred_at=day(1)
        )
        for i in range(WIDE):
            with reg.run(f"reader-{i:02d}", inputs=[node], occurred_at=day(2)):
                pass
    return str(node)


def _open(watch: Watched, served: Served, role: str, query: dict[str, str]) -> Any:
    path = "/lineage?" + urlencode(query)
    _sign_in(watch, served, role, path)
    _painted(watch)
    return watch.page


def _painted(watch: Watched) -> None:
    watch.page.wait_for_selector("#graph[data-painted='1']", state="attached")


def _wait_drawn(page: Any, count: int) -> None:
    """Wait until the graph shows ``count`` nodes (its script says so on the container;
    a string predicate would need eval, which the page's CSP refuses)."""
    page.locator(f"#graph[data-drawn-nodes='{count}']").wait_for(state="attached")


def _drawn(page: Any) -> tuple[set[str], set[tuple[str, str]]]:
    nodes = page.evaluate("window.mlledgerExplorer.cy.nodes().map(n => n.id())")
    edges = page.evaluate(
        "window.mlledgerExplorer.cy.edges().map(e => [e.source().id(), e.target().id()])"
    )
    return set(nodes), {(s, d) for s, d in edges}


def _expected(served: Served, **question: Any) -> tuple[set[str], set[tuple[str, str]]]:
    answer = services.lineage(served.ledger, "test", **question)
    return (
        {n["id"] for n in answer.nodes},
        {(e["src"], e["dst"]) for e in answer.edges},
    )


def test_the_explorer_draws_the_ledgers_answer(watched: Watched, served: Served) -> None:
    before = len(served.server.trail())
    page = _open(watched, served, "viewer", {"node": "dataset:test/raw@1", "depth": "3"})
    assert _drawn(page) == _expected(served, node="dataset:test/raw@1", depth=3)
    assert page.evaluate("performance.getEntriesByName('explorer-first-paint').length") == 1
    # cytoscape's stylesheet was not injected: the page holds no <style> at all.
    assert page.evaluate("document.querySelectorAll('style').length") == 0
    assert "As of now" in page.locator("#graph-time").inner_text()
    rows = page.locator("#nodes tbody tr").evaluate_all("rows => rows.map(r => r.dataset.node)")
    assert set(rows) == _expected(served, node="dataset:test/raw@1", depth=3)[0]
    actions = [e["action"] for e in served.server.trail(before)]
    assert actions[-1] == "web.lineage" and "web.sign_in" in actions


def test_pan_and_zoom(watched: Watched, served: Served) -> None:
    page = _open(watched, served, "viewer", {"node": "model:test/clf@2"})
    zoom = page.evaluate("window.mlledgerExplorer.cy.zoom()")
    page.get_by_role("button", name="Zoom in").click()
    zoomed = page.evaluate("window.mlledgerExplorer.cy.zoom()")
    assert zoomed == pytest.approx(zoom * 1.4)
    page.locator("#graph").scroll_into_view_if_needed()  # the wheel goes where the mouse is
    # cytoscape takes no wheel as a zoom for 250 ms after the page scrolled (the click
    # above, or the line before, may have scrolled it).
    page.wait_for_timeout(400)
    box = page.locator("#graph").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 300)
    for _ in range(50):
        if page.evaluate("window.mlledgerExplorer.cy.zoom()") < zoomed:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.mlledgerExplorer.cy.zoom()") < zoomed
    pan = page.evaluate("window.mlledgerExplorer.cy.pan()")
    # Drag from an empty corner of the canvas.
    page.mouse.move(box["x"] + 8, box["y"] + 8)
    page.mouse.down()
    page.mouse.move(box["x"] + 108, box["y"] + 58, steps=5)
    page.mouse.up()
    moved = page.evaluate("window.mlledgerExplorer.cy.pan()")
    assert moved["x"] == pytest.approx(pan["x"] + 100, abs=2)
    assert moved["y"] == pytest.approx(pan["y"] + 50, abs=2)
    page.get_by_role("button", name="Fit").click()
    assert _drawn(page) == _expected(served, node="model:test/clf@2", depth=2)


def _rendered_at(page: Any, node: str) -> tuple[float, float]:
    box = page.locator("#graph").bounding_box()
    at = page.evaluate(
        "id => window.mlledgerExplorer.cy.getElementById(id).renderedPosition()", node
    )
    return box["x"] + at["x"], box["y"] + at["y"]


def test_a_right_click_adds_a_nodes_neighbours(watched: Watched, served: Served) -> None:
    page = _open(
        watched,
        served,
        "viewer",
        {"node": "dataset:test/clean@1", "direction": "downstream", "depth": "1"},
    )
    start = _expected(served, node="dataset:test/clean@1", direction="downstream", depth=1)
    assert _drawn(page) == start
    run = next(n for n in start[0] if n.startswith("run:"))
    before = len(served.server.trail())
    x, y = _rendered_at(page, run)
    page.mouse.click(x, y, button="right")
    neighbours = _expected(served, node=run, direction="both", depth=1)
    _wait_drawn(page, len(start[0] | neighbours[0]))
    assert _drawn(page) == (start[0] | neighbours[0], start[1] | neighbours[1])
    assert "Added" in page.locator("#graph-status").inner_text()
    assert [e["action"] for e in served.server.trail(before)] == ["web.lineage_expand"]


def test_as_of_shows_the_graph_as_it_stood(watched: Watched, served: Served) -> None:
    node = "model:test/clf@1"
    page = _open(watched, served, "viewer", {"node": node, "direction": "downstream"})
    now = _drawn(page)
    assert now == _expected(served, node=node, direction="downstream", depth=2)
    # Before the deployment served it: the model alone.
    # Seconds other than :00, which the browser's time field would leave out.
    moment = day(2.5) + timedelta(seconds=7)
    field = moment.strftime("%Y-%m-%dT%H:%M:%S")
    page.get_by_label("As of (UTC, empty: now)").fill(field)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*as_of=" + re.escape(quote(field, safe=""))))
    _painted(watched)
    past = _drawn(page)
    assert past == _expected(served, node=node, direction="downstream", depth=2, as_of=moment)
    assert past != now and past[0] < now[0]
    shown = page.locator("#graph-time time").get_attribute("datetime")
    assert shown == format_time(moment)
    assert page.get_by_label("As of (UTC, empty: now)").input_value() == field


def test_a_crowded_column_is_grouped_and_opens(watched: Watched, served: Served, wide: str) -> None:
    page = _open(watched, served, "viewer", {"node": wide, "direction": "downstream", "depth": "1"})
    nodes, _ = _drawn(page)
    assert nodes == {wide, "group:1:run"}
    label = page.evaluate("window.mlledgerExplorer.cy.getElementById('group:1:run').data('label')")
    assert label == f"{WIDE} runs"
    x, y = _rendered_at(page, "group:1:run")
    page.mouse.click(x, y)
    _wait_drawn(page, WIDE + 1)
    assert _drawn(page) == _expected(served, node=wide, direction="downstream", depth=1)
    assert page.url.startswith(watched.base + "/lineage?")


def test_a_click_on_a_node_opens_its_page(watched: Watched, served: Served) -> None:
    node = "deployment:test/api"
    page = _open(watched, served, "viewer", {"node": node, "direction": "upstream", "depth": "1"})
    # The node pages are another part of the interface: only the address is asserted.
    watched.allowed.add(_STATUS_NOTE.format(status=404))
    x, y = _rendered_at(page, node)
    page.mouse.click(x, y)
    page.wait_for_url(watched.base + "/node?id=" + quote(node, safe=""))
    watched.settle()


def test_the_keyboard_alone_reaches_the_form_and_the_nodes(
    watched: Watched, served: Served
) -> None:
    page = _open(watched, served, "viewer", {"node": "dataset:test/extra@1", "depth": "1"})
    page.get_by_label("Node id").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "direction"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "depth"
    page.keyboard.press("ArrowUp")
    assert page.locator("#depth").input_value() == "2"
    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, button'))
            .filter(e => !(e.labels && e.labels.length) && !e.textContent.trim()
                         && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    page.get_by_label("Node id").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(
        re.compile(r".*/lineage\?node=dataset%3Atest%2Fextra%401&direction=both&depth=2")
    )
    _painted(watched)
    assert _drawn(page) == _expected(served, node="dataset:test/extra@1", depth=2)
    link = page.locator("#nodes a", has_text="Lineage from here").first
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/lineage\?node="))
    _painted(watched)


def test_the_keyboard_moves_between_the_graphs_nodes_and_opens_them(
    watched: Watched, served: Served
) -> None:
    root = "dataset:test/raw@1"
    page = _open(watched, served, "viewer", {"node": root, "direction": "downstream"})
    watched.allowed.add(_STATUS_NOTE.format(status=404))  # only the address is asserted
    page.locator("#zoom-fit").focus()
    page.keyboard.press("Tab")  # from the graph's tools to the graph
    assert page.evaluate("document.activeElement.id") == "graph"
    assert page.locator("#graph").get_attribute("data-focused") == root
    assert page.locator("#graph").get_attribute("role") == "application"

    def at(node: str) -> tuple[float, float]:
        spot = page.evaluate("id => window.mlledgerExplorer.cy.getElementById(id).position()", node)
        return spot["x"], spot["y"]

    page.keyboard.press("ArrowRight")
    moved = page.locator("#graph").get_attribute("data-focused")
    assert moved and moved != root and at(moved)[0] > at(root)[0]  # one column right
    label = page.evaluate(
        "id => window.mlledgerExplorer.cy.getElementById(id).data('label')", moved
    )
    assert label in page.locator("#graph-status").inner_text()
    page.keyboard.press("ArrowLeft")
    assert page.locator("#graph").get_attribute("data-focused") == root

    page.keyboard.press("ArrowRight")
    before = len(served.server.trail())
    shown = len(_drawn(page)[0])
    page.keyboard.press("e")  # its neighbours, as a right-click adds them
    page.locator("#graph-status").filter(has_text=re.compile("Added|no neighbours")).wait_for()
    neighbours = _expected(served, node=moved, direction="both", depth=1)[0]
    assert len(_drawn(page)[0]) >= shown and neighbours <= _drawn(page)[0]
    assert [e["action"] for e in served.server.trail(before)] == ["web.lineage_expand"]

    zoom = page.evaluate("window.mlledgerExplorer.cy.zoom()")
    page.keyboard.press("+")
    assert page.evaluate("window.mlledgerExplorer.cy.zoom()") > zoom
    page.keyboard.press("Enter")
    page.wait_for_url(watched.base + "/node?id=" + quote(moved, safe=""))
    watched.settle()


def test_a_narrow_window_needs_no_sideways_scrolling(watched: Watched, served: Served) -> None:
    page = _open(watched, served, "viewer", {"node": "dataset:test/raw@1"})
    page.set_viewport_size({"width": 390, "height": 844})
    watched.goto("/lineage?node=dataset%3Atest%2Fraw%401")
    _painted(watched)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#graph").bounding_box()["width"] <= 390
