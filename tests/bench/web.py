"""Web interface benchmark (part of ``make bench``): each page's server time on a ledger
of 10,000 runs and 1,000,000 predictions (``--scale`` shrinks both).

The ledger: 10,000 runs (four events each: started, params, metrics, completed), one
of them reading a dataset version and producing the model version that a deployment
serves, and the predictions of that deployment spread over the last 60 days. The app
(``registry.web.app.create_app``) answers in this process, through Starlette's test
client, one signed-in session, requests one after another: the time is the server's
(page, queries, and the durable trail entry of each view), without a network between.
Each page is asked ``--repeat`` times after two warm-up requests; the result gives the
median and the 95th percentile per page, and whether each p95 is within 100 ms.

The audit pages are measured on the same ledger with an access trail of 200,000
entries of the project (one in a hundred denied, by 50 keys) and a checkpoint of each
tree: the checkpoints page, a proof bundle, the trail's first page, and the trail
filtered by a key id, by denials, and by a key and day no entry matches (the filter
that reads the most).
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from audit.checkpoints import load_signing_key, write_checkpoint
from registry import auth
from registry.sdk import connect
from registry.web.app import create_app
from registry.web.pages import node_href
from tests.bench.harness import (
    append_run_events,
    arguments,
    fresh,
    machine,
    settle,
    store_option,
    use_postgres,
    write_result,
)

PROJECT = "bench"
TARGET_MS = 100.0
#: Access-trail entries of the project at scale 1.
TRAIL = 200_000


def populate(db: str, runs: int, predictions: int) -> dict[str, str]:
    """The ledger, and the nodes whose pages are measured."""
    with connect(db, project=PROJECT, actor="bench") as reg:
        built = append_run_events(reg, runs * 4)
        keys = [f"rec-{i}" for i in range(10_000)]
        data = reg.register_dataset(
            "orders", "1", uri="s3://b/orders", digest="sha256:00", records=keys
        )
        with reg.run("train", inputs=[data]) as run:
            run.log_params({"lr": 0.01, "depth": 6})
            for step in range(200):
                run.log_metrics({"loss": 1 / (step + 1), "auc": 0.5 + step / 500}, step=step)
            model = run.register_model("clf", artifact_uri="s3://m/1", artifact_digest="sha256:m")
            trained = run.id
        reg.set_alias(model, "production")
        api = reg.deploy("api", endpoint="https://api", served={model: 100})
        start = datetime.now(UTC) - timedelta(days=60)
        batch = 20_000
        for done in range(0, predictions, batch):
            n = min(batch, predictions - done)
            at = [
                start + timedelta(seconds=(done + i) * 60 * 86400 / predictions) for i in range(n)
            ]
            reg.log_predictions(
                api, model=model, records=[keys[(done + i) % len(keys)] for i in range(n)],
                outputs=[0.5] * n, at=at,
            )  # fmt: skip
    settle(db)
    trail = int(TRAIL * runs / 10_000)
    with connect(db, project=PROJECT, actor="bench") as reg:
        store = reg.ledger.store
        for done in range(0, trail, 10_000):
            auth.record_access(
                store,
                [
                    auth.AccessEntry(
                        f"key-{i % 50:02d}", PROJECT, "events.read", "/api/v1/events",
                        "127.0.0.1", "deny" if i % 100 == 0 else "allow",
                        403 if i % 100 == 0 else 200, "bench",
                    )
                    for i in range(done, min(done + 10_000, trail))
                ],
            )  # fmt: skip
        key, _, _ = load_signing_key(store.url, create=True, store=store)
        write_checkpoint(store, key, "events")
        write_checkpoint(store, key, "access")
        position = reg.ledger.head()  # the newest event, of the project
    return {
        "runs_appended": str(built["events"] // 4),
        "run": trained,
        "dataset": str(data.id),
        "model": str(model.id),
        "deployment": str(api.id),
        "position": str(position),
    }


def _signed_in(client: TestClient, token: str) -> None:
    form = client.get("/sign-in")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    answer = client.post(
        "/sign-in",
        data={"key": token, "csrf": found.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def bench_pages(work: Path, scale: float, repeat: int) -> dict[str, Any]:
    db = fresh(work, "web")
    runs, predictions = int(10_000 * scale), int(1_000_000 * scale)
    began = time.perf_counter()
    nodes = populate(db, runs, predictions)
    built_s = time.perf_counter() - began
    with connect(db, project=PROJECT, actor="bench") as reg:
        _, token = auth.create_key(reg.ledger.store, project=PROJECT, role="admin", created_by="b")
    pages = {
        "home": "/",
        "search": "/search?q=train",
        "run": node_href(nodes["run"]),
        "dataset": node_href(nodes["dataset"]),
        "model": node_href(nodes["model"]),
        "deployment": node_href(nodes["deployment"]),
        "audit": "/audit",
        "proof": f"/audit/proof?tree=events&index={nodes['position']}",
        "trail": "/audit/trail",
        "trail_by_key": "/audit/trail?actor=key-07",
        "trail_denied": "/audit/trail?outcome=deny",
        "trail_no_match": "/audit/trail?actor=key-07&from=1999-01-01&to=1999-01-01",
    }
    figures: dict[str, Any] = {}
    with TestClient(create_app(db), base_url="http://mlledger.test") as client:
        _signed_in(client, token)
        for name, path in pages.items():
            for _ in range(2):
                assert client.get(path).status_code == 200, path
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                answer = client.get(path)
                samples.append(time.perf_counter() - t0)
                assert answer.status_code == 200, (path, answer.status_code)
            figures[name] = {
                "path": path,
                "median_ms": round(statistics.median(samples) * 1e3, 2),
                "p95_ms": round(_p95(samples) * 1e3, 2),
                "n": len(samples),
            }
    return {
        "web_pages": {
            "runs": runs,
            "predictions": predictions,
            "build_seconds": round(built_s, 1),
            "pages": figures,
        },
        "targets_met": {
            f"{name}_p95<=100ms": f["p95_ms"] <= TARGET_MS for name, f in figures.items()
        },
    }


def main() -> None:
    parser = arguments(__doc__, ".mlledger/bench-web.json", ".mlledger/bench-web")
    parser.add_argument("--repeat", type=int, default=40, help="requests per page")
    store_option(parser)
    args = parser.parse_args()
    if args.store == "postgresql":
        use_postgres()
    results = {
        "machine": machine(sqlite=args.store == "sqlite"),
        "scale": args.scale,
        **bench_pages(Path(args.work), args.scale, args.repeat),
    }
    write_result(args.out, results)


if __name__ == "__main__":
    main()
