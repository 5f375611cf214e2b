"""What Marquez's read routes keep between requests (``lineage.openlineage.cache``):
reused while the log's head stands still, never stale after an append by another
ledger object or another process on the same store, never one project's for
another's, dropped by a rebuild (on SQLite and PostgreSQL); a server's two workers
each answering with what was just posted (SQLite).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from lineage import openlineage as ol
from lineage.openlineage import marquez
from registry.assembly import open_ledger
from registry.ledger import Ledger
from tests.support.apiserver import ApiServer

P = "cached"
OTHER = "elsewhere"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACET_URL = "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json"
LAKE = "s3://lake"


def _event(
    run: str, event_type: str, at: str, job: str, output: str, fields: list[str]
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventTime": at,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run},
        "job": {"namespace": "etl", "name": job},
        "inputs": [{"namespace": LAKE, "name": "raw"}],
        "outputs": [
            {
                "namespace": LAKE,
                "name": output,
                "facets": {
                    "schema": {
                        "_producer": PRODUCER,
                        "_schemaURL": FACET_URL,
                        "fields": [{"name": f, "type": "text"} for f in fields],
                    }
                },
            }
        ],
    }


def _send(ledger: Ledger, project: str, *documents: dict[str, Any]) -> None:
    """Append each document's events; assert they were appended."""
    for document in documents:
        head = ledger.head()
        ledger.append(ol.to_events(ledger, project, "tester", document), first_wins=True)
        appended = ledger.read(head + 1)
        assert [e.type for e in appended if e.type == "openlineage-run-event"] == [
            "openlineage-run-event"
        ]
        assert {e.project for e in appended} == {project}


def _run(ledger: Ledger, project: str, job: str, output: str, fields: list[str]) -> str:
    run = str(uuid.uuid4())
    _send(
        ledger,
        project,
        _event(run, "START", "2026-11-01T10:00:00Z", job, output, fields),
        _event(run, "COMPLETE", "2026-11-01T10:05:00Z", job, output, fields),
    )
    return run


def _names(answer: dict[str, Any], key: str) -> list[str]:
    return [item["name"] for item in answer[key]]


def test_reused_while_the_head_stands_still_and_fresh_after_another_ledgers_append(
    store_url: str, isolated_env: Path
) -> None:
    with closing(open_ledger(store_url)) as reader, closing(open_ledger(store_url)) as writer:
        first = _run(writer, P, "load", "orders", ["id"])
        world = marquez.project_graph(reader, P)
        assert marquez.project_graph(reader, P) is world  # nothing appended: kept
        assert _names(marquez.jobs(reader, P, "etl", limit=100, offset=0), "jobs") == ["load"]
        dataset = marquez.dataset(reader, P, LAKE, "orders")
        assert [f["name"] for f in dataset["fields"]] == ["id"]
        feed = marquez.lineage_events(reader, P)
        assert feed["totalCount"] == 2

        # Another ledger object on the same store appends: the next read sees it.
        second = _run(writer, P, "clean", "orders", ["id", "amount"])
        assert marquez.project_graph(reader, P) is not world
        jobs = marquez.jobs(reader, P, "etl", limit=100, offset=0)
        assert _names(jobs, "jobs") == ["clean", "load"]
        dataset = marquez.dataset(reader, P, LAKE, "orders")
        assert [f["name"] for f in dataset["fields"]] == ["id", "amount"]
        assert dataset["mlledger"]["versions"] == 2
        feed = marquez.lineage_events(reader, P, sort_direction="asc")
        assert feed["totalCount"] == 4
        assert [e["run"]["runId"] for e in feed["events"]] == [first, second, first, second]
        assert [e["eventType"] for e in feed["events"]] == ["START", "START"] + ["COMPLETE"] * 2
        assert marquez.run(reader, P, second)["id"] == second
        namespaces = marquez.namespaces(reader, P, limit=100, offset=0)
        assert _names(namespaces, "namespaces") == ["etl", LAKE]


def test_fresh_after_another_process_appends(store_url: str, isolated_env: Path) -> None:
    with closing(open_ledger(store_url)) as reader:
        _run(reader, P, "load", "orders", ["id"])
        assert _names(marquez.datasets(reader, P, LAKE, limit=100, offset=0), "datasets") == [
            "orders",
            "raw",
        ]
        run = str(uuid.uuid4())
        documents = [
            _event(run, kind, at, "report", "summary", ["total"])
            for kind, at in (
                ("START", "2026-11-02T10:00:00Z"),
                ("COMPLETE", "2026-11-02T10:05:00Z"),
            )
        ]
        script = (
            "import json, sys\n"
            "from contextlib import closing\n"
            "from lineage import openlineage as ol\n"
            "from registry.assembly import open_ledger\n"
            "with closing(open_ledger(sys.argv[1])) as ledger:\n"
            "    for doc in json.loads(sys.argv[2]):\n"
            "        events = ol.to_events(ledger, sys.argv[3], 'other', doc)\n"
            "        ledger.append(events, first_wins=True)\n"
            "    print(ledger.head())\n"
        )
        head = reader.head()
        done = subprocess.run(
            [sys.executable, "-c", script, store_url, json.dumps(documents), P],
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(done.stdout.strip()) == reader.head() > head
        appended = reader.read(head + 1)
        assert [e.entity for e in appended if e.type == "openlineage-run-event"] == [
            f"run:{run}",
            f"run:{run}",
        ]
        datasets = marquez.datasets(reader, P, LAKE, limit=100, offset=0)
        assert _names(datasets, "datasets") == ["orders", "raw", "summary"]
        summary = next(d for d in datasets["datasets"] if d["name"] == "summary")
        assert [f["name"] for f in summary["fields"]] == ["total"]
        assert marquez.run(reader, P, run)["state"] == "COMPLETED"
        assert marquez.lineage_events(reader, P)["totalCount"] == 4
        graph = ol.marquez_graph(reader, P, f"dataset:{LAKE}:summary")
        assert "job:etl:report" in {n["id"] for n in graph["graph"]}


def test_never_one_projects_for_another(store_url: str, isolated_env: Path) -> None:
    with closing(open_ledger(store_url)) as ledger:
        _run(ledger, P, "load", "orders", ["id", "secret_column"])
        _run(ledger, OTHER, "load", "orders", ["id"])
        mine = marquez.dataset(ledger, P, LAKE, "orders")
        theirs = marquez.dataset(ledger, OTHER, LAKE, "orders")
        assert [f["name"] for f in mine["fields"]] == ["id", "secret_column"]
        assert [f["name"] for f in theirs["fields"]] == ["id"]
        assert marquez.project_graph(ledger, P) is not marquez.project_graph(ledger, OTHER)
        assert marquez.lineage_events(ledger, OTHER)["totalCount"] == 2
        # Read in turn, both kept: each still answers with its own.
        assert [f["name"] for f in marquez.dataset(ledger, P, LAKE, "orders")["fields"]] == [
            "id",
            "secret_column",
        ]
        _run(ledger, OTHER, "clean", "other_only", ["x"])
        assert _names(marquez.jobs(ledger, P, "etl", limit=100, offset=0), "jobs") == ["load"]
        assert _names(marquez.jobs(ledger, OTHER, "etl", limit=100, offset=0), "jobs") == [
            "clean",
            "load",
        ]
        search = marquez.search(ledger, P, "other_only")
        assert search["results"] == []


def test_dropped_by_a_rebuild(store_url: str, isolated_env: Path) -> None:
    with closing(open_ledger(store_url)) as ledger:
        _run(ledger, P, "load", "orders", ["id"])
        world = marquez.project_graph(ledger, P)
        before = marquez.job(ledger, P, "etl", "load")
        ledger.rebuild(digest=False)
        assert marquez.project_graph(ledger, P) is not world
        assert marquez.job(ledger, P, "etl", "load") == before


def test_every_worker_of_a_server_answers_with_what_was_just_posted(
    tmp_path: Path, isolated_env: Path
) -> None:
    """Two worker processes, each keeping its own: a read right after a post, on a new
    connection each time (so either worker may answer), lists what was posted."""
    server = ApiServer(tmp_path / "server", workers=2)
    with closing(_Serving(server)):
        writer, viewer = server.key(P, "writer"), server.key(P, "viewer")
        fresh = httpx.Limits(max_keepalive_connections=0)
        with (
            httpx.Client(
                base_url=server.url + "/api/v1",
                headers={"Authorization": f"Bearer {writer}"},
                limits=fresh,
            ) as posting,
            httpx.Client(
                base_url=server.url + "/api/v1",
                headers={"Authorization": f"Bearer {viewer}"},
                limits=fresh,
            ) as reading,
        ):
            expected: list[str] = []
            for i in range(3):
                for _ in range(4):  # both workers keep the project as it stands
                    listed = reading.get("/namespaces/etl/jobs").json()
                    assert _names(listed, "jobs") == expected
                run, job = str(uuid.uuid4()), f"job_{i}"
                with closing(open_ledger(server.db)) as ledger:
                    head = ledger.head()
                    for kind in ("START", "COMPLETE"):
                        document = _event(run, kind, "2026-11-03T10:00:00Z", job, job, ["id"])
                        assert posting.post("/lineage", json=document).status_code == 201
                    appended = ledger.read(head + 1)
                    assert [e.entity for e in appended if e.type == "openlineage-run-event"] == [
                        f"run:{run}",
                        f"run:{run}",
                    ]
                expected = sorted([*expected, job])
                for _ in range(4):
                    listed = reading.get("/namespaces/etl/jobs").json()
                    assert _names(listed, "jobs") == expected
                    answer = reading.get(f"/jobs/runs/{run}").json()
                    assert answer["state"] == "COMPLETED"


class _Serving:
    """``server`` started, and stopped by ``close``."""

    def __init__(self, server: ApiServer):
        self.server = server.start()

    def close(self) -> None:
        self.server.stop()


def _tagged(run: str, tag: str) -> dict[str, Any]:
    """A COMPLETE of job ``tagged`` whose run carries the tag ``tag``."""
    document = _event(run, "COMPLETE", "2026-11-02T10:00:00Z", "tagged", "out", ["a"])
    document["run"]["facets"] = {
        "tags": {
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-0/TagsRunFacet.json",
            "tags": [{"key": tag, "value": "true", "source": "USER"}],
        }
    }
    return document


def test_tags_are_read_in_batches_and_fresh_after_an_append(
    store_url: str, isolated_env: Path, monkeypatch: Any
) -> None:
    """The tag list reads the events it has not read yet, a few at a time (memory stays
    bounded however many there are), and names a tag appended by another ledger
    object at once; another project's tags never show."""
    monkeypatch.setattr("lineage.openlineage.cache.TAG_BATCH", 2)
    with closing(open_ledger(store_url)) as reader, closing(open_ledger(store_url)) as writer:
        _send(writer, P, *(_tagged(str(uuid.uuid4()), f"t{i}") for i in range(5)))
        _send(writer, OTHER, _tagged(str(uuid.uuid4()), "secret"))

        def names() -> list[str]:
            return [t["name"] for t in marquez.tags(reader, P, limit=100, offset=0)["tags"]]

        assert names() == ["t0", "t1", "t2", "t3", "t4"]
        _send(writer, P, _tagged(str(uuid.uuid4()), "t5"))
        assert names() == ["t0", "t1", "t2", "t3", "t4", "t5"]
        assert [t["name"] for t in marquez.tags(reader, OTHER, limit=9, offset=0)["tags"]] == [
            "secret"
        ]
