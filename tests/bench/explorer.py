"""The lineage explorer at 2,000 nodes: first paint in Chromium, the server's time.

Writes one JSON document (``--out``) and prints it. On a fresh embedded SQLite ledger
(WAL, synchronous=FULL), a dataset version whose downstream lineage, four hops deep,
holds ``--fan`` runs reading it (default 500), each writing a dataset version, each of
those read by a run registering a model version: ``1 + 4 x fan`` nodes (2,001). It
starts ``mlledger serve`` (one worker) on it, signs in with an admin key, and measures:

- ``first_paint``: ``--loads`` (default 10) navigations of Debian's headless Chromium
  (``/usr/bin/chromium``, the flags of ``registry.web.screenshots``; 1280x800) to
  ``/lineage?node=ROOT&direction=downstream&depth=4``: milliseconds from the start of
  navigation to the explorer's ``explorer-first-paint`` mark (its first frame drawn;
  crowded columns drawn as groups, as a person first sees them), median and max;
- ``all_visible``: after each first paint, every group opened at once: milliseconds
  from the start of navigation until the frame with all 2,001 nodes is drawn, and the
  milliseconds of a zoom step redrawn with them all (median and max);
- ``server``: ``--requests`` (default 50) sequential requests of the signed-in session
  to the page (``/lineage?...``, the graph in its data block) and to its JSON
  (``/lineage/graph?...``) and ``/lineage/expand`` of the root, as a client on the same
  machine sees them (each one's trail entry durable before it is answered): median,
  p95 and max in milliseconds. The server keeps its latest drawings until the ledger
  moves, so these are a question asked again; ``page_after_append`` and
  ``graph_after_append`` are the same calls each made just after an append to the
  ledger (a dataset version of the project, outside the graph; not timed), so each
  is answered afresh: walked, laid out and serialised.

Targets: first paint within 1,000 ms; each call's p95 within 100 ms. Not a test: the
numbers depend on the machine (its load average is written beside them).
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.bench.harness import arguments, fresh, load_average, machine, write_result

PROJECT = "bench"
FAN = 500
LOADS = 10
REQUESTS = 50
FIRST_PAINT_TARGET_MS = 1000.0
SERVER_P95_TARGET_MS = 100.0


def build(url: str, fan: int) -> str:
    """The world above in ``url``; returns the root dataset version's id."""
    import registry

    with registry.connect(url, project=PROJECT, actor="bench") as reg:
        root = reg.register_dataset("root", "1", uri="s3://bench/root", digest="sha256:00")
        for i in range(fan):
            with reg.run(f"prepare-{i:04d}", inputs=[root]) as prepare:
                middle = prepare.register_dataset(
                    f"prepared-{i:04d}", "1", uri=f"s3://bench/p{i}", digest=f"sha256:{i:04x}"
                )
            with reg.run(f"train-{i:04d}", inputs=[middle]) as train:
                train.register_model(
                    f"model-{i:04d}", artifact_uri=f"s3://bench/m{i}", artifact_digest="sha256:aa"
                )
        return str(root)


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p95 (nearest rank) and max of ``samples`` milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
        "n": len(ordered),
    }


def signed_in(url: str, key: str) -> httpx.Client:
    """An HTTP client holding a session of ``key``."""
    client = httpx.Client(base_url=url, timeout=60)
    form = client.get("/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post("/sign-in", data={"key": key, "csrf": token.group(1), "next": "/"})
    assert answer.status_code == 303, answer.status_code
    return client


def server_times(
    client: httpx.Client,
    paths: dict[str, str],
    n: int,
    before_each: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Each path's time, ``n`` sequential requests (after one warm-up), each after
    ``before_each`` when given (not timed)."""
    found = {}
    for name, path in paths.items():
        assert client.get(path).status_code == 200, path
        samples = []
        for _ in range(n):
            if before_each is not None:
                before_each()
            began = time.perf_counter()
            answer = client.get(path)
            samples.append((time.perf_counter() - began) * 1e3)
            assert answer.status_code == 200
        found[name] = {**summary(samples), "bytes": len(answer.content)}
    return found


_OPEN_ALL = """async () => {
  const x = window.mlledgerExplorer;
  // cytoscape draws in its own animation frame: two frames on, that drawing is done.
  const drawn = () =>
    new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  for (const id of x.cy.nodes("[kind = 'group']").map((n) => n.id())) { x.openGroup(id); }
  await drawn();
  const visible = performance.now();
  x.cy.zoom({ level: x.cy.zoom() * 1.25, renderedPosition: { x: 640, y: 300 } });
  await drawn();
  return { visible, zoom: performance.now() - visible, nodes: x.cy.nodes().length };
}"""


def browser_times(url: str, key: str, page_path: str, loads: int, nodes: int) -> dict[str, Any]:
    """First paint, and all nodes visible, of ``loads`` navigations to ``page_path``."""
    from playwright.sync_api import sync_playwright

    from registry.web.screenshots import CHROMIUM, LAUNCH_ARGS, WIDE

    paints, visible, zooms, problems = [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport=WIDE)
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url + "/sign-in")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(url + "/")
            for _ in range(loads):
                page.goto(url + page_path, wait_until="load")
                page.wait_for_selector("#graph[data-painted='1']", state="attached")
                paints.append(
                    page.evaluate(
                        "performance.getEntriesByName('explorer-first-paint')[0].startTime"
                    )
                )
                opened = page.evaluate(_OPEN_ALL)
                assert opened["nodes"] == nodes, opened
                visible.append(opened["visible"])
                zooms.append(opened["zoom"])
        finally:
            browser.close()
    if problems:
        raise RuntimeError(f"the page had errors: {problems}")
    return {
        "first_paint": summary(paints),
        "all_visible": {"from_navigation": summary(visible), "zoom_step": summary(zooms)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = arguments(
        __doc__, ".mlledger/bench-explorer.json", ".mlledger/bench-explorer", scale=False
    )
    parser.add_argument(
        "--fan", type=int, default=FAN, help="runs reading the root (nodes: 1 + 4 x fan)"
    )
    parser.add_argument("--loads", type=int, default=LOADS, help="navigations in Chromium")
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests of each call")
    args = parser.parse_args(argv)
    import registry
    from registry import auth
    from registry.store import open_store
    from registry.web.screenshots import _server

    work = Path(args.work)
    url = fresh(work, "ledger")
    began = time.perf_counter()
    root = build(url, args.fan)
    built = time.perf_counter() - began
    store = open_store(url)
    try:
        _, key = auth.create_key(store, project=PROJECT, role="admin", created_by="bench")
    finally:
        store.dispose()
    question = urlencode({"node": root, "direction": "downstream", "depth": "4"})
    nodes = 1 + 4 * args.fan
    print(f"built {nodes} nodes in {built:.1f} s", file=sys.stderr)
    with _server(url, work / "ledger") as served:
        client = signed_in(served, key)
        try:
            graph = client.get("/lineage/graph?" + question).json()
            assert len(graph["answer"]["nodes"]) == nodes, len(graph["answer"]["nodes"])
            server = server_times(
                client,
                {
                    "page": "/lineage?" + question,
                    "graph": "/lineage/graph?" + question,
                    "expand_root": "/lineage/expand?" + urlencode({"node": root}),
                },
                args.requests,
            )
            with registry.connect(url, project=PROJECT, actor="bench") as reg:
                ticks = iter(range(1_000_000))

                def append() -> None:
                    i = next(ticks)
                    reg.register_dataset(
                        f"tick-{i:06d}", "1", uri=f"s3://bench/t{i}", digest=f"sha256:{i:06x}"
                    )

                server |= server_times(
                    client,
                    {
                        "page_after_append": "/lineage?" + question,
                        "graph_after_append": "/lineage/graph?" + question,
                    },
                    args.requests,
                    before_each=append,
                )
        finally:
            client.close()
        browser = browser_times(served, key, "/lineage?" + question, args.loads, nodes)
    result = {
        "machine": machine(),
        "world": {
            "nodes": nodes,
            "edges": len(graph["answer"]["edges"]),
            "groups": [g["label"] for g in graph["layout"]["groups"]],
            "build_seconds": round(built, 1),
        },
        "browser": browser,
        "server": server,
        "targets_met": {
            "first_paint<=1000ms": browser["first_paint"]["max_ms"] <= FIRST_PAINT_TARGET_MS,
            **{
                f"{name}_p95<=100ms": figure["p95_ms"] <= SERVER_P95_TARGET_MS
                for name, figure in server.items()
            },
        },
        "load_average": load_average(),
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
