"""The model dossier as a person sees it: rendered in headless Chromium (Debian's
``chromium``, driven by Playwright) with the network closed. The page must load with
no console error, no page error and no request but itself, and show the lineage
picture and the prediction chart. A screenshot is kept in the test's own temporary
directory, never in the repository.

Chromium is installed by ``make test`` and ``.ci/run`` (``.ci/chromium``). In CI a
missing browser fails the test; elsewhere it is skipped, saying how to install it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from audit.checkpoints import load_signing_key
from audit.reports import build_model_dossier
from audit.reports.subject import write_subject_report
from registry.sdk import Registry
from tests.support.worlds import build_world

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Any:
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (apt-get install chromium, or make test)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def _render(browser: Any, page_file: Path, screenshot: Path) -> tuple[Any, list[str]]:
    """Open ``page_file``; return the page and every problem seen: console errors and
    warnings, page errors, failed requests and any request other than the file."""
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    url = page_file.as_uri()
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if r.url != url else None)
    response = page.goto(url, wait_until="load")
    assert response is None or response.ok
    page.screenshot(path=str(screenshot), full_page=True)
    return page, problems


def test_the_dossier_renders_with_its_lineage_picture(
    browser: Any, reg: Registry, tmp_path: Path
) -> None:
    world = build_world(reg)
    reg.set_alias(world.m2, "production", moved_by="dr.okafor")
    reg.flush()
    key, _, _ = load_signing_key(reg.ledger.store.url, None, create=True)
    build_model_dossier(reg.ledger, "test", "clf-tuned@1", key).write(tmp_path / "dossier")
    shot = tmp_path / "dossier.png"
    page, problems = _render(browser, tmp_path / "dossier" / "index.html", shot)
    assert problems == []
    assert page.title() == "Model dossier: clf-tuned 1"
    picture = page.locator("#lineage-picture svg")
    box = picture.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 50
    assert picture.is_visible()
    labels = picture.locator("text").all_text_contents()
    for label in ("raw 1", "clean 1", "extra 1", "clf 2", "clf-tuned 1"):
        assert label in labels
    # The model, the fine-tuning run, clf 2, its run and its three dataset versions.
    assert page.locator("#lineage-picture svg g.node").count() == 7
    chart = page.locator("#volume-chart svg")
    assert chart.is_visible() and (chart.bounding_box() or {"height": 0})["height"] > 50
    assert page.locator("h2").count() == 8
    assert shot.stat().st_size > 10_000


def test_the_subject_access_report_renders(browser: Any, reg: Registry, tmp_path: Path) -> None:
    build_world(reg)
    reg.store_subject_data("ann", {"email": "ann@example.com"})
    reg.flush()
    write_subject_report(reg.subject_report("ann"), tmp_path / "sar")
    page, problems = _render(browser, tmp_path / "sar" / "index.html", tmp_path / "sar.png")
    assert problems == []
    assert page.locator("h1").inner_text() == "Subject-access report"
    assert "ann@example.com" in page.locator("body").inner_text()
