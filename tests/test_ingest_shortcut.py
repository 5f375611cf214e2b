"""The OpenLineage ingest route's short way (``registry.api.shortcut``): a well-formed
event is appended by it, and every answer, error or not, and every stored event are
those of the route itself; on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry import auth
from registry.api import shortcut
from registry.api.app import create_app
from registry.assembly import open_ledger
from registry.store import open_store

P = "shop"
OTHER = "warehouse"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python"
RUN_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def run_event(run_id: str, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": state,
        "eventTime": "2026-11-01T10:00:00Z" if state == "START" else "2026-11-01T10:05:00Z",
        "run": {"runId": run_id},
        "job": {"namespace": "airflow", "name": "dag.load"},
        "producer": PRODUCER,
        "schemaURL": RUN_SCHEMA,
        "inputs": [{"namespace": "postgres://db:5432", "name": "public.src"}],
        "outputs": [{"namespace": "postgres://db:5432", "name": "public.dst"}],
        **extra,
    }


def facet(**fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": "https://example.com/facet.json", **fields}


@contextmanager
def served(url: str) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    """The app on ``url``, with a writer key of ``P`` and one of ``OTHER``."""
    ledger = open_ledger(url)  # creates the schema
    ledger.close()
    store = open_store(url)
    try:
        _, mine = auth.create_key(store, project=P, role="writer", created_by="tests")
        _, theirs = auth.create_key(store, project=OTHER, role="writer", created_by="tests")
    finally:
        store.dispose()
    with TestClient(create_app(url)) as client:
        yield client, {"Authorization": f"Bearer {mine}"}, {"Authorization": f"Bearer {theirs}"}


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the short way answered for each request it saw (None: left to the route)."""
    seen: list[Any] = []
    real = shortcut._ingest

    def spy(*args: Any) -> Any:
        result = real(*args)
        seen.append(result)
        return result

    monkeypatch.setattr(shortcut, "_ingest", spy)
    return seen


def stored(url: str, start: int = 0) -> list[tuple[str, str, str, dict[str, Any]]]:
    ledger = open_ledger(url)
    try:
        return [(e.type, e.entity, e.event_id, e.body) for e in ledger.read(start)]
    finally:
        ledger.close()


def head(url: str) -> int:
    ledger = open_ledger(url)
    try:
        return ledger.head()
    finally:
        ledger.close()


def test_a_well_formed_event_is_appended_the_short_way(store_url: str, taken: list[Any]) -> None:
    run = str(uuid.uuid4())
    with served(store_url) as (client, headers, _):
        start = head(store_url) + 1
        answer = client.post("/api/v1/lineage", json=run_event(run, "START"), headers=headers)
        assert answer.status_code == 201, answer.text
        assert answer.headers["content-type"] == "application/json"
        positions = answer.json()["positions"]
        assert taken == [positions]
        events = stored(store_url, start)
        assert [e[1] for e in events if e[0] == "run-started"] == [f"run:{run}"]
        assert positions == list(range(start, start + len(events)))
        # Sent again: nothing appended, the positions of what it recorded the first time.
        again = client.post("/api/v1/lineage", json=run_event(run, "START"), headers=headers)
        assert again.status_code == 201, again.text
        assert again.json()["positions"] and set(again.json()["positions"]) <= set(positions)
        assert head(store_url) == positions[-1]
        ended = client.post("/api/v1/lineage", json=run_event(run, "COMPLETE"), headers=headers)
        assert ended.status_code == 201, ended.text
        assert "run-completed" in [e[0] for e in stored(store_url, positions[-1] + 1)]
    assert len(taken) == 3 and all(isinstance(t, list) for t in taken)


def test_a_compressed_event_is_taken_the_short_way_once_the_gate_decoded_it(
    store_url: str, taken: list[Any]
) -> None:
    run = str(uuid.uuid4())
    body = gzip.compress(json.dumps(run_event(run, "START")).encode())
    with served(store_url) as (client, headers, _):
        start = head(store_url) + 1
        answer = client.post(
            "/api/v1/lineage",
            content=body,
            headers={**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert answer.status_code == 201, answer.text
        assert taken == [answer.json()["positions"]]
        assert f"run:{run}" in [e[1] for e in stored(store_url, start) if e[0] == "run-started"]


def test_a_failure_after_the_commit_is_answered_by_the_route_without_appending_twice(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shortcut._ingest
    calls: list[Any] = []

    def committed_then_failed(*args: Any) -> Any:
        calls.append(real(*args))
        raise RuntimeError("the connection was lost after the commit")

    monkeypatch.setattr(shortcut, "_ingest", committed_then_failed)
    run = str(uuid.uuid4())
    with served(store_url) as (client, headers, _):
        start = head(store_url) + 1
        answer = client.post("/api/v1/lineage", json=run_event(run, "START"), headers=headers)
        assert answer.status_code == 201, answer.text
        # Answered as a retry is: positions of what the first attempt appended.
        assert answer.json()["positions"] and set(answer.json()["positions"]) <= set(calls[0])
        events = stored(store_url, start)
        assert len(events) == len(calls[0]) and len({e[2] for e in events}) == len(events)


# --- the same answers and the same events as the route ------------------------------------------

BIG = 10**30


def fixed(n: int) -> str:
    """A run id the same on both ways."""
    return f"0190d3a4-0000-7000-8000-{n:012x}"


def _bodies(run: str, other_run: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """(name, body, extra headers): the documents compared on both ways."""
    good = run_event(
        run,
        "START",
        run={"runId": run, "facets": {"custom": facet(count=BIG, label="naïve ☃", ratio=0.1)}},
    )
    dataset_event = {
        "eventTime": "2026-11-01T11:00:00Z",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {
            "namespace": "postgres://db:5432",
            "name": "public.dst",
            "facets": {
                "schema": {
                    "_producer": PRODUCER,
                    "_schemaURL": "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json",
                    "fields": [{"name": "z", "type": "int"}, {"name": "a", "type": "text"}],
                }
            },
        },
    }
    json_ = {"Content-Type": "application/json"}
    return [
        ("run start with a custom facet", json.dumps(good).encode(), json_),
        ("run complete", json.dumps(run_event(run, "COMPLETE")).encode(), json_),
        ("dataset event", json.dumps(dataset_event).encode(), json_),
        (
            "charset parameter",
            json.dumps(run_event(other_run, "START")).encode(),
            {"Content-Type": "application/json; charset=utf-8"},
        ),
        ("not JSON", b'{"eventType": ', json_),
        ("empty", b"", json_),
        ("an array", b"[1, 2]", json_),
        (
            "NaN",
            json.dumps(run_event(fixed(2), "START")).encode()[:-1] + b', "x": NaN}',
            json_,
        ),
        ("a lone surrogate", b'{"eventType": "START", "producer": "\\ud800"}', json_),
        (
            "schema refuses it",
            json.dumps({**run_event(run, "START"), "eventTime": "yesterday"}).encode(),
            json_,
        ),
        ("not UTF-8", b'{"producer": "\xff"}', json_),
        ("deeply nested", b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", json_),
        (
            "text/plain",
            json.dumps(run_event(fixed(3), "START")).encode(),
            {"Content-Type": "text/plain"},
        ),
        ("no content type", json.dumps(run_event(fixed(4), "START")).encode(), {}),
    ]


def _exchange(
    url: str, force_route: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[str, int, Any]], list[tuple[str, str, str, dict[str, Any]]]]:
    """Every body posted in turn, then a run of ``OTHER`` claimed by ``P``: the answers,
    and the events stored."""
    with monkeypatch.context() as patch:
        if force_route:
            patch.setattr(shortcut, "_ingest", lambda *args: None)
        run, other_run = fixed(1), fixed(15)
        answers = []
        with served(url) as (client, headers, theirs):
            taken = client.post("/api/v1/lineage", json=run_event(other_run, "START"),
                                headers=theirs)  # fmt: skip
            assert taken.status_code == 201, taken.text
            for name, body, extra in _bodies(run, other_run):
                got = client.post("/api/v1/lineage", content=body, headers={**headers, **extra})
                shown = got.json() if got.content else None
                answers.append((name, got.status_code, shown))
        return answers, stored(url)


def test_every_answer_and_event_is_the_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: list[Any]
) -> None:
    short_url = f"sqlite:///{tmp_path}/short.db"
    route_url = f"sqlite:///{tmp_path}/route.db"
    short, short_events = _exchange(short_url, False, monkeypatch)
    assert any(isinstance(t, list) for t in taken), "the short way took none"
    route, route_events = _exchange(route_url, True, monkeypatch)
    assert short == route, [(a, b) for a, b in zip(short, route, strict=True) if a != b]
    assert short_events == route_events
    statuses = {name: status for name, status, _ in short}
    assert statuses["run start with a custom facet"] == 201
    assert statuses["dataset event"] == 201
    assert statuses["charset parameter"] == 409  # another project's run
    assert {statuses[n] for n in ("not JSON", "empty", "an array", "text/plain")} == {422}
    assert {statuses[n] for n in ("schema refuses it", "a lone surrogate", "not UTF-8")} == {400}
    # Integers past 64 bits are kept whole, as text (a float would lose them).
    custom = next(
        body
        for type_, entity, _, body in short_events
        if type_ == "openlineage-run-event" and entity == f"run:{fixed(1)}"
    )
    assert custom["run_facets"]["custom"]["count"] == str(BIG)
    assert custom["stringified"] == ["run.facets.custom.count"]


def test_requests_it_does_not_take_reach_the_route_unchanged(
    store_url: str, taken: list[Any]
) -> None:
    with served(store_url) as (client, headers, _):
        before = head(store_url)
        # Another method, a key that may not write, no key: the gate or the route answer.
        assert client.get("/api/v1/lineage", headers=headers).status_code == 422  # nodeId missing
        assert client.post("/api/v1/lineage", json=run_event(str(uuid.uuid4()), "START")) \
            .status_code == 401  # fmt: skip
        assert head(store_url) == before
    assert taken == []


def test_an_oversized_body_is_refused_by_the_gate_before_the_short_way_parses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: list[Any]
) -> None:
    monkeypatch.setenv("MLLEDGER_MAX_BODY_BYTES", "4096")
    url = f"sqlite:///{tmp_path}/ledger.db"
    document = run_event(str(uuid.uuid4()), "START")
    document["run"]["facets"] = {"custom": facet(padding="x" * 10_000)}
    compressed = gzip.compress(json.dumps(document).encode())
    assert len(compressed) < 4096
    with served(url) as (client, headers, _):
        before = head(url)
        plain = client.post("/api/v1/lineage", json=document, headers=headers)
        bomb = client.post(
            "/api/v1/lineage",
            content=compressed,
            headers={**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert plain.status_code == 413 and bomb.status_code == 413
        assert head(url) == before
    assert taken == []
