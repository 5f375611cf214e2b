"""``python -m registry.web.screenshots [DIRECTORY]``: the pictures of ``docs/ui.md``.

Records the ``mlledger demo`` scenario in a new ledger in a temporary directory,
starts ``mlledger serve`` on it (127.0.0.1, a free port), creates an admin and a
viewer key, signs in with Playwright in Debian's Chromium (``/usr/bin/chromium``) and
saves PNGs of the main pages (the lineage explorer among them) at 1280x800 and on a
narrow window (390x844) into ``DIRECTORY`` (default ``docs/ui``). Nothing outside the
temporary directory and ``DIRECTORY`` is written; the server and the browser are
stopped when it ends.
Needs the development dependencies (``pip install -e '.[dev]'``: Playwright).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: How the browser is started: headless, no network of its own beyond the server.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}
PROJECT = "demo"
#: The explorer's picture: what the demo's deployment serves, four hops upstream.
EXPLORED = "/lineage?node=deployment%3Ademo%2Fscreening-api&direction=upstream&depth=4"
#: The pictures of whole pages (the others: the window, 1280x800 or 390x844).
ENTITY_SHOTS = ("model", "run", "dataset", "deployment", "job", "model-narrow")
STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(work: Path) -> dict[str, str]:
    """The environment of the demo and the server: keys in ``work``, nothing of the
    caller's ``MLLEDGER_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLLEDGER_")}
    env["MLLEDGER_KEY_FILE"] = str(work / "master.key")
    env["MLLEDGER_SIGNING_KEY"] = str(work / "signing.key")
    return env


@contextlib.contextmanager
def _server(db: str, work: Path) -> Iterator[str]:
    """``mlledger serve`` on ``db`` until the block ends; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / "server.log").open("wb")
    command = [sys.executable, "-m", "registry.cli", "serve", "--db", db, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, env=_environment(work)
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {(work / 'server.log').read_text()}")
            try:
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer in {STARTUP_SECONDS} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _ledger(work: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    """A ledger holding the demo scenario, an admin and a viewer key of it, and the
    names the demo's questions use (its example record and that record's patient)."""
    from registry import auth
    from registry.demo import names_of, run_demo
    from registry.settings import Settings
    from registry.store import open_store

    db = f"sqlite:///{work}/ledger.db"
    previous = dict(os.environ)
    os.environ.clear()
    os.environ.update(_environment(work))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            run_demo(db, project=PROJECT, settings=Settings())
    finally:
        os.environ.clear()
        os.environ.update(previous)
    store = open_store(db)
    try:
        keys = {
            role: auth.create_key(store, project=PROJECT, role=role, created_by="screenshots")[1]
            for role in ("admin", "viewer")
        }
    finally:
        store.dispose()
    return db, keys, names_of(db, PROJECT)


def _painted(page: Any) -> None:
    """Wait until the lineage explorer has drawn its graph."""
    page.wait_for_selector("#graph[data-painted='1']", state="attached")


def _to_graph(page: Any) -> None:
    """Scroll the explorer's graph (its heading first) to the top of the window."""
    page.evaluate(
        "window.scrollBy(0, document.getElementById('graph-title').getBoundingClientRect().top - 8)"
    )


def _sign_in(page: Any, url: str, key: str) -> None:
    page.goto(url + "/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")


def take(directory: Path) -> list[Path]:
    """Save the screenshots into ``directory``; return their paths."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit("Debian's chromium is not installed: apt-get install chromium")
    directory.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="mlledger-screenshots-") as temporary:
        work = Path(temporary)
        db, keys, names = _ledger(work)
        with _server(db, work) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            try:
                saved += _pages(browser, url, keys, names, directory)
            finally:
                browser.close()
    return saved


def _pages(
    browser: Any, url: str, keys: dict[str, str], names: dict[str, str], directory: Path
) -> list[Path]:
    saved = []

    def shot(page: Any, name: str) -> None:
        path = directory / f"{name}.png"
        # The entity pages whole: their charts and lists are below the first screen.
        page.screenshot(path=str(path), full_page=name in ENTITY_SHOTS)
        saved.append(path)

    wide = browser.new_context(viewport=WIDE)
    page = wide.new_page()
    page.goto(url + "/sign-in")
    shot(page, "sign-in")
    _sign_in(page, url, keys["admin"])
    shot(page, "home")
    page.goto(url + "/search?q=cancer")
    shot(page, "search")
    page.goto(url + "/search?q=screening&type=deployment&type=job")
    shot(page, "search-filtered")
    page.goto(url + "/records")
    page.get_by_label("Record key").fill(names["record"])
    page.get_by_role("button", name="Look up").click()
    page.wait_for_load_state("networkidle")
    shot(page, "records")
    page.goto(url + "/subjects")
    page.get_by_label("Subject id").fill(names["subject"])
    page.get_by_role("button", name="Show the footprint").click()
    page.wait_for_load_state("networkidle")
    shot(page, "subject")
    page.get_by_role("button", name="Plan the erasure of this subject").click()
    page.wait_for_load_state("networkidle")
    shot(page, "erasure-plan")
    page.goto(url + EXPLORED)
    _painted(page)
    _to_graph(page)
    shot(page, "explorer")
    model = _entity_pages(page, url, shot)

    viewer = browser.new_context(viewport=WIDE)
    denied = viewer.new_page()
    _sign_in(denied, url, keys["viewer"])
    denied.goto(url + "/feed")
    shot(denied, "forbidden")
    viewer.close()

    page.goto(url + "/node?id=job%3Ademo%3Atrain-logreg")
    shot(page, "job")
    page.goto(url + "/audit")
    shot(page, "audit")
    page.get_by_role("button", name="Verify now").click()
    page.wait_for_selector("#verify-report")
    shot(page, "verify")
    page.goto(url + "/audit/trail?outcome=deny")
    shot(page, "trail")
    wide.close()

    narrow = browser.new_context(viewport=NARROW, device_scale_factor=1)
    page = narrow.new_page()
    _sign_in(page, url, keys["admin"])
    shot(page, "home-narrow")
    page.goto(url + "/search?q=cancer")
    shot(page, "search-narrow")
    page.goto(url + EXPLORED)
    _painted(page)
    _to_graph(page)
    shot(page, "explorer-narrow")
    page.goto(model)
    shot(page, "model-narrow")
    narrow.close()
    return saved


def _entity_pages(page: Any, url: str, shot: Any) -> str:
    """The entity pages, each reached by following links from a search; the model
    version page's URL."""
    page.goto(url + "/search?q=cancer&type=model")
    page.locator("#results a").first.click()
    page.wait_for_url(url + "/node?id=model*")
    model: str = page.url
    shot(page, "model")
    page.locator("#facts a").first.click()  # its training run
    page.wait_for_url(url + "/node?id=run*")
    shot(page, "run")
    page.locator("#inputs a").first.click()
    page.wait_for_url(url + "/node?id=dataset*")
    shot(page, "dataset")
    page.goto(model)
    page.locator("#deployments a").first.click()
    page.wait_for_url(url + "/node?id=deployment*")
    shot(page, "deployment")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m registry.web.screenshots",
        description="Save screenshots of the web interface's main pages (docs/ui.md).",
    )
    parser.add_argument(
        "directory", nargs="?", default="docs/ui", help="where the PNGs go (default docs/ui)"
    )
    args = parser.parse_args(argv)
    for path in take(Path(args.directory)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
