"""``docs/api.md`` is run as written: every ``bash`` block, in order, against a real server.

Each ``bash`` block is one curl command followed by the response it prints, as a
``json`` block (the body) or an ``http`` block (status line, the headers that
matter, a blank line, the body). In expected output ``"..."`` is a wildcard:
alone it matches any value; inside a string, any text; as a list item, any
number of items; as an object key, members left out. Everything else must be
equal. Each block must also exit 0 and append exactly the events listed in
``BLOCKS`` (none for reads and refusals), so a write that silently does nothing,
or a refusal that writes, fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from registry import intake
from registry.api.app import ROUTERS, create_app
from registry.api.problems import KINDS
from registry.events import StoredEvent
from registry.ledger import Ledger
from tests.support.apiserver import ApiServer

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "api.md"
FENCE = re.compile(r"^```([a-z]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
PROJECT = "fraud"
ROLES = {"KEY": "writer", "VIEWER_KEY": "viewer", "DPO_KEY": "dpo", "AUDITOR_KEY": "auditor"}
WILDCARD = "..."
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
RAW_KEYS = ("tx-1001", "tx-1003", "tx-2001", "alice", "dave", "alice@example.com")

#: Every bash block of the page, in order: a text its command contains, and the types
#: of the events it appends (in log order). A block missing, added or moved fails.
BLOCKS: list[tuple[str, tuple[str, ...]]] = [
    ("/api/v1/health", ()),
    ("questions/aliases?name=fraud-clf", ()),  # 401, no key
    ("$VIEWER_KEY", ()),  # 403, a viewer writing
    ("projects/payments", ()),  # 403, another project
    ("/datasets", ("dataset-version-registered", "dataset-records-added")),
    ("/runs", ("run-started", "run-inputs-used")),
    ("/params", ("run-params-logged",)),
    ("/metrics", ("run-metrics-logged",)),
    ("/models", ("model-version-registered",)),
    ("/end", ("run-completed",)),
    ("/aliases/production", ("model-alias-moved",)),
    ("/deployments/fraud-api", ("deployment-configured",)),
    ("/predictions", ("predictions-logged",)),
    ("/subjects/data", ("subject-data-stored",)),
    (
        "/events",
        (
            "dataset-version-registered",
            "dataset-records-added",
            "predictions-logged",
            "subject-data-stored",
        ),
    ),
    ("/events", ()),  # the same batch again
    ("/questions/scored", ()),
    ("/questions/trained-on", ()),
    ("/questions/downstream", ()),
    ("/questions/lineage", ()),
    ("as_of=", ()),
    ("/questions/history", ()),
    ("/questions/aliases", ()),
    ("/questions/footprint", ()),
    ("/subjects/data/search", ()),
    ("/questions/footprint", ()),  # 403, a viewer
    ("/datasets/transactions/versions/2026-01", ()),
    ("/top-version", ()),
    ("/models/resolve", ()),
    ("/events?since=0", ()),
    ("/access-trail", ()),
    ("/openlineage", ()),
    ("row_count", ()),  # 422 invalid-request
    ("run-metrics-logged", ()),  # 422 event-rejected: nothing of the batch written
    ("batch-scoring", ()),  # 404
    ("sha256:0000ff", ()),  # 409
    ("traceparent", ("predictions-logged",)),
    ("/events?since=", ()),
    ("/openapi.json", ()),
]


# --- reading the page -----------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    line: int
    command: str
    kind: str  # "json" or "http"
    expected: str

    def __str__(self) -> str:
        return f"docs/api.md, bash block at line {self.line}"


def examples(text: str) -> list[Example]:
    """Each bash block with the expected-output block right after it."""
    fences = [
        (text.count("\n", 0, m.start(2)) + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)
    ]
    found = []
    for i, (line, lang, body) in enumerate(fences):
        if lang != "bash":
            continue
        follow = fences[i + 1] if i + 1 < len(fences) else None
        assert follow is not None and follow[1] in ("json", "http"), (
            f"docs/api.md, bash block at line {line}: expected a json or http block after it"
        )
        found.append(Example(line, body, follow[1], follow[2]))
    return found


# --- comparing --------------------------------------------------------------------------


def mismatches(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected`` (with its wildcards); empty if it matches."""
    if expected == WILDCARD:
        return []
    if isinstance(expected, str) and WILDCARD in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split(WILDCARD))
        ok = isinstance(actual, str) and re.fullmatch(pattern, actual, re.DOTALL) is not None
        return [] if ok else [f"{where}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        shown = {k: v for k, v in expected.items() if k != WILDCARD}
        found = [f"{where}.{k}: missing" for k in shown if k not in actual]
        if WILDCARD not in expected:
            found += [f"{where}.{k}: not shown in the docs" for k in actual if k not in shown]
        for key, value in shown.items():
            if key in actual:
                found += mismatches(value, actual[key], f"{where}.{key}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list, got {actual!r}"]
        if WILDCARD not in expected:
            if len(expected) != len(actual):
                return [f"{where}: expected {len(expected)} items, got {len(actual)}: {actual!r}"]
            return [
                m
                for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for m in mismatches(e, a, f"{where}[{i}]")
            ]
        if _glob(expected, actual):
            return []
        return [f"{where}: no part of the list matches the items shown: {actual!r}"]
    if type(expected) is not type(actual) and not (
        isinstance(expected, int | float)
        and isinstance(actual, int | float)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    ):
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def _glob(expected: list[Any], actual: list[Any]) -> bool:
    """Whether ``actual`` matches ``expected``, where a ``"..."`` item is any run of items."""
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(expected):
                memo[i, j] = j == len(actual)
            elif expected[i] == WILDCARD:
                memo[i, j] = match(i + 1, j) or (j < len(actual) and match(i, j + 1))
            else:
                memo[i, j] = (
                    j < len(actual)
                    and not mismatches(expected[i], actual[j])
                    and match(i + 1, j + 1)
                )
        return memo[i, j]

    return match(0, 0)


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AssertionError(f"{what} is not JSON ({exc}):\n{text}") from None


def check_output(example: Example, stdout: str) -> None:
    """Assert that what the command printed is what the page shows after it."""
    if example.kind == "json":
        expected = _json(example.expected, f"{example}: the json block after it")
        actual = _json(stdout, f"{example}: the output")
        problems = mismatches(expected, actual)
        assert not problems, f"{example}:\n" + "\n".join(problems) + f"\noutput:\n{stdout}"
        return
    head, _, body = stdout.replace("\r\n", "\n").partition("\n\n")
    want_head, _, want_body = example.expected.partition("\n\n")
    status, *headers = head.splitlines()
    want_status, *want_headers = want_head.splitlines()
    assert status.split() == want_status.split(), f"{example}: status {status!r}\n{stdout}"
    got = dict(_header(h) for h in headers)
    for name, value in map(_header, want_headers):
        assert got.get(name) == value, f"{example}: header {name}: {got.get(name)!r}\n{stdout}"
    if got.get("content-type") == "application/x-ndjson":
        expected = [
            WILDCARD if line == WILDCARD else _json(line, f"{example}: expected line")
            for line in want_body.splitlines()
        ]
        actual = [_json(line, f"{example}: output line") for line in body.splitlines()]
    else:
        expected = _json(want_body, f"{example}: the body of the http block after it")
        actual = _json(body, f"{example}: the output's body")
    problems = mismatches(expected, actual)
    assert not problems, f"{example}:\n" + "\n".join(problems) + f"\noutput:\n{stdout}"


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


# --- the server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server of its own (``server_ledger`` of conftest opens its ledger): the page's
    positions and answers assume an empty ledger."""
    started = ApiServer(tmp_path_factory.mktemp("api-docs")).start()
    yield started
    started.stop()


def run_block(example: Example, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example.command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (
        f"{example} exited {done.returncode}:\n{done.stderr}\n{done.stdout}"
    )
    return done.stdout


def check_events(example: Example, appended: list[StoredEvent]) -> None:
    """What the page's writes stored, beyond their types."""
    for event in appended:
        assert event.project == PROJECT
        text = json.dumps(event.body)
        leaked = [key for key in RAW_KEYS if f'"{key}"' in text]
        assert not leaked, f"{example}: {event.type} stores {leaked} unpseudonymised"
    if "/datasets" in example.command and appended:
        assert len(appended[1].body["records"]) == 4
        assert appended[1].body["subjects"][3] is None
    if "traceparent" in example.command:
        assert [e.trace_id for e in appended] == [TRACE_ID]
    if "/aliases/production" in example.command:
        assert re.fullmatch(r"carol \(key:[0-9a-f]{16}\)", appended[0].actor)
    if "/events" in example.command and appended:
        assert appended[0].actor == appended[1].actor
        assert re.fullmatch(r"etl \(key:[0-9a-f]{16}\)", appended[0].actor)
        assert re.fullmatch(r"fraud-api \(key:[0-9a-f]{16}\)", appended[2].actor)
        assert appended[2].body["count"] == 2
        assert appended[3].entity.startswith(f"subject:{PROJECT}/")


# --- the tests ------------------------------------------------------------------------------


def test_every_bash_block_is_followed_by_its_output() -> None:
    text = PAGE.read_text(encoding="utf-8")
    found = examples(text)
    assert len(found) == text.count("```bash") == len(BLOCKS)
    for example, (marker, _types) in zip(found, BLOCKS, strict=True):
        assert marker in example.command, f"{example}: expected the block containing {marker!r}"


def test_the_page_runs_against_a_real_server(api_server: ApiServer, server_ledger: Ledger) -> None:
    server = api_server
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    env["MLLEDGER_URL"] = server.url
    env.update({name: server.key(PROJECT, role, name=role) for name, role in ROLES.items()})
    found = examples(PAGE.read_text(encoding="utf-8"))
    assert len(found) == len(BLOCKS), "the page's bash blocks and BLOCKS differ: update both"
    executed = 0
    for example, (marker, types) in zip(found, BLOCKS, strict=True):
        assert marker in example.command, f"{example}: expected the block containing {marker!r}"
        head = server_ledger.head()
        check_output(example, run_block(example, env))
        appended = server_ledger.read(head + 1)
        assert tuple(e.type for e in appended) == types, (
            f"{example}: appended {[e.type for e in appended]}, expected {list(types)}"
        )
        check_events(example, appended)
        executed += 1
    assert executed == len(BLOCKS) == 39


# --- the reference tables ---------------------------------------------------------------------


def _gate(route: Any) -> tuple[str, str]:
    """The permission a route's gate checks and the action it records."""
    for dependency in route.dependant.dependencies:
        need = getattr(dependency.call, "requirement", None)
        if need is not None:
            return need.permission, f"`{need.action}`"
    raise AssertionError(f"{route.path}: no gate")


def test_the_route_table_lists_every_route_with_its_permission_and_action() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rows = {
        (m.group(1), m.group(2)): (m.group(3), m.group(4))
        for m in re.finditer(
            r"^\| `([A-Z]+)` \| `([^`]+)` \| (\w+) \| ([^|]+?) \|", text, re.MULTILINE
        )
    }
    gated = {
        (method, route.path.replace("{project}", "{p}")): _gate(route)
        for router in ROUTERS
        for route in router.routes
        for method in route.methods
    }
    served = {
        (method.upper(), path.removeprefix("/api/v1").replace("{project}", "{p}"))
        for path, operations in create_app().openapi()["paths"].items()
        for method in operations
    }
    assert set(gated) | {("GET", "/health")} == served
    assert rows == {**gated, ("GET", "/health"): ("none", "—")}


def test_the_error_table_lists_every_problem_type() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rows = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\| `([a-z-]+)` \| (\d{3}) \|", text, re.MULTILINE)
    }
    assert rows == {slug: status for slug, (status, _title) in KINDS.items()}


def test_the_wire_bodies_shown_are_accepted() -> None:
    """The three bodies with raw keys, as the page shows them, parse and pass the checks
    made before sealing."""
    text = PAGE.read_text(encoding="utf-8")
    bodies = re.findall(r"^  ```json\n(.*?)^  ```$", text, re.MULTILINE | re.DOTALL)
    types = ["dataset-records-added", "predictions-logged", "subject-data-stored"]
    assert len(bodies) == len(types)
    entities = [f"dataset:{PROJECT}/d@1", f"deployment:{PROJECT}/api", "subject:pending"]
    for index, (type_, entity, body) in enumerate(zip(types, entities, bodies, strict=True)):
        wire = {"event_id": str(uuid.uuid4()), "type": type_, "entity": entity}
        item = intake.from_wire(
            {**wire, "body": json.loads(body)}, index, project=PROJECT, actor="docs"
        )
        assert isinstance(item, intake.PERSONAL_TYPES[type_])
        intake.check([item])


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ({"a": 1, "b": "..."}, {"a": 1, "b": [2]}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": 1, "...": "..."}, {"a": 1, "b": 2}, True),
        ({"a": 1, "...": "..."}, {"b": 2}, False),
        ("key:...", "key:0123", True),
        ("key:...", "ke:0123", False),
        ([1, "..."], [1, 2, 3], True),
        (["...", {"x": 2}, "..."], [{"x": 1}, {"x": 2}, {"x": 3}], True),
        (["...", {"x": 4}, "..."], [{"x": 1}, {"x": 2}], False),
        ([1, 2], [1], False),
        (100, 100.0, True),
        (1, True, False),
        (None, 0, False),
    ],
)
def test_the_comparison_is_strict_outside_wildcards(expected: Any, actual: Any, ok: bool) -> None:
    assert (not mismatches(expected, actual)) is ok
