"""The server against its own OpenAPI document: Schemathesis, every phase and every
check, on each store.

Generated requests, valid and invalid, go to every operation (the examples, coverage,
fuzzing and stateful phases); every answer must be one the document declares, with the
status, media type, headers and schema it declares; invalid requests must be refused,
and valid ones accepted unless something the document cannot state refuses them.

JSON Schema cannot state what the ledger holds, nor a rule between two fields, nor
tell ``1`` from ``1.0``. So a request the document accepts may still be refused, each
refusal a documented problem: 404 and 409 (something absent, or contradicted), 422
``event-rejected`` (an event the ledger's rules refuse, e.g. for an unknown run), 400
``invalid-input`` on the operations of ``CROSS_FIELD``, and 422 ``invalid-request``
for a whole number written with a decimal point where an integer is expected, or an
integer beyond ±(2^53-1) written without an exponent in a free-form JSON value (JSON
Schema's integers include ``1e300``, a double the ledger stores, so no bound on them
refuses only the digits a double would round). The
check ``refusals_are_documented`` holds every other refusal of a valid request to be
a failure: the document would be looser than the server.

This module is also the Schemathesis hooks file of the run (``SCHEMATHESIS_HOOKS``):
that is how the run gets that check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest
import schemathesis
from schemathesis.core.jsonschema import make_validator

if TYPE_CHECKING:
    from schemathesis import Case, CheckContext, Response

    from tests.support.apiserver import ApiServer

# Fuzzing without a key must not be answered 429 (the rate limit of failed authentication).
SERVER_ENV = {"MLLEDGER_AUTH_FAILURES_PER_MINUTE": "100000"}
SEED = 20261205
#: Test cases per operation and phase: the run takes about a minute per store on 2 cores.
EXAMPLES = 10
EXAMPLES_WITHOUT_KEY = 3
PROJECT = "fuzz"
PREFIX = "urn:mlledger:problem:"
#: Operations that refuse some requests the document accepts with ``invalid-input``
#: (400), for a rule between fields or with what the ledger holds; each operation's
#: description states its rule.
CROSS_FIELD = frozenset(
    {
        # size1 <= size2
        "GET /api/v1/projects/{project}/audit/consistency",
        # one subject per record
        "POST /api/v1/projects/{project}/datasets",
        # one output (and model, time, trace id when listed) per record
        "POST /api/v1/projects/{project}/deployments/{name}/predictions",
        # traffic adds up to 100
        "PUT /api/v1/projects/{project}/deployments/{name}",
        # a retained model version is one the erasure affects
        "POST /api/v1/projects/{project}/erasures",
    }
)


def _problem(response: Response) -> dict[str, Any]:
    try:
        found = json.loads(response.content)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _at(value: Any, field: str) -> Any:
    """The part of a request body at a problem's dotted ``field`` (None when absent)."""
    for part in field.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _whole_float(value: Any) -> bool:
    return type(value) is float and value.is_integer()


def _inexact_integer(value: Any) -> bool:
    return type(value) is int and not -(2**53 - 1) <= value <= 2**53 - 1


def _holds_inexact_integer(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_inexact_integer(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_inexact_integer(v) for v in value)
    return _inexact_integer(value)


def _undocumentable(body: Any, error: dict[str, Any]) -> bool:
    """A refusal for what the document cannot state: a whole float where an integer is
    expected, or an integer a double would round. A path whose keys the problem had to
    escape is not followed: the body holding such an integer is taken instead."""
    value = _at(body, str(error.get("field", "")))
    if _whole_float(value) or _inexact_integer(value):
        return True
    return "beyond ±(2^53-1)" in str(error.get("message", "")) and _holds_inexact_integer(body)


def _valid_as_sent(case: Case) -> bool:
    """Whether the request as sent matches the document: a stateful step may fill a
    parameter with a value taken from an earlier answer (say, a null id), which need not."""
    operation = case.operation
    validator_cls = operation.schema.adapter.jsonschema_validator_cls
    path = {k: unquote(str(v)) for k, v in (case.path_parameters or {}).items()}
    query = {k: str(v) for k, v in (case.query or {}).items()}
    for container, value in ((operation.path_parameters, path), (operation.query, query)):
        if value and not make_validator(container.validation_schema, validator_cls).is_valid(value):
            return False
    body = operation.get_body_for_media_type(case.media_type) if case.media_type else None
    if body is None:
        return True
    return bool(make_validator(body.validation_schema, validator_cls).is_valid(case.body))


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    """The ``{project}`` of every path is pinned to the key's project: nothing is generated
    for it. Without its constraints Schemathesis makes no invalid values of it either,
    which the pin would replace by a valid one (while the case still counted as invalid)."""
    for operations in raw_schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "path" and parameter.get("name") == "project":
                    parameter["schema"] = {"type": "string"}


@schemathesis.check
def refusals_are_documented(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A request the document accepts is refused with 400 or 422 only for what the
    document cannot state (the module's docstring)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422) or not _valid_as_sent(case):
        return None
    problem = _problem(response)
    slug = str(problem.get("type", "")).removeprefix(PREFIX)
    operation = case.operation.label
    if response.status_code == 422 and slug == "event-rejected":
        return None
    if response.status_code == 400 and slug == "invalid-input" and operation in CROSS_FIELD:
        return None
    errors = problem.get("errors") or []
    if (
        slug == "invalid-request"
        and errors
        and all(_undocumentable(case.body, e) for e in errors)
    ):
        return None
    raise AssertionError(
        f"{operation}: a request its document accepts was refused with {response.status_code} "
        f"{slug or 'without a problem type'}: {problem.get('detail', '')!r}; either the "
        "document should refuse it too, or the server accept it"
    )


def schemathesis_run(
    server: ApiServer, tmp_path: Path, *, token: str | None, examples: int
) -> list[tuple[str, int]]:
    """Run Schemathesis against ``server``; fail with its report unless every check
    passed. Returns the operation and status of every answer."""
    config = tmp_path / "schemathesis.toml"
    # Requests name the key's project, so they reach the routes instead of a 403. A valid
    # request may be refused for what the document cannot state (refusals_are_documented
    # decides which refusals): 400 and 422 join the statuses that accept one.
    config.write_text(
        f'[parameters]\n"path.project" = "{PROJECT}"\n\n'
        "[checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429"]\n'
    )
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
        server.url + "/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(examples),
        "--seed", str(SEED),
        "--workers", "1",
        "--generation-database", "none",
        "--report", "ndjson", "--report-ndjson-path", str(tmp_path / "events.ndjson"),
        "--no-color",
    ]  # fmt: skip
    if token is not None:
        command[6:6] = ["--header", f"Authorization: Bearer {token}"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": __file__},
    )
    report = done.stdout
    if len(report) > 16000:  # the failures come first (each with a curl line), the summary last
        report = report[:10000] + "\n...\n" + report[-6000:]
    report += done.stderr[-3000:]
    assert done.returncode == 0, report + "\n--- server log ---\n" + server.log.read_text()[-4000:]
    assert " passed" in done.stdout, report
    return answers(tmp_path / "events.ndjson")


def answers(events: Path) -> list[tuple[str, int]]:
    """``(operation, status)`` of every answer in a Schemathesis NDJSON report."""
    found = []
    for line in events.read_text(encoding="utf-8").splitlines():
        scenario = json.loads(line).get("ScenarioFinished")
        if scenario is None:
            continue
        recorder = scenario.get("recorder") or {}
        for interaction in (recorder.get("interactions") or {}).values():
            response = interaction.get("response")
            if response is not None:
                found.append((recorder.get("label", ""), int(response["status_code"])))
    return found


@pytest.mark.slow
def test_every_answer_is_documented(store_server: ApiServer, tmp_path: Path) -> None:
    """With an admin key of the project: every phase, every check, no failure."""
    token = store_server.key(PROJECT, "admin", name="schemathesis")
    schemathesis_run(store_server, tmp_path, token=token, examples=EXAMPLES)


@pytest.mark.slow
def test_without_a_key_every_answer_is_documented(store_server: ApiServer, tmp_path: Path) -> None:
    """Without a key: the same checks, and every operation but the health check answers
    401, unless the gate refused its URL first (400) or the method is not its (405)."""
    found = schemathesis_run(store_server, tmp_path, token=None, examples=EXAMPLES_WITHOUT_KEY)
    gated = {(label, status) for label, status in found if label != "GET /api/v1/health"}
    assert {status for _, status in gated} <= {400, 401, 405}, sorted(gated)
    answered = {label for label, status in gated if status == 401}
    assert len(answered) == len({label for label, _ in gated}) > 40, sorted(gated)
