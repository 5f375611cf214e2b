"""The API's contract: the pinned OpenAPI document, and no 5xx under schemathesis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from registry.api.openapi import spec, text
from tests.support.apiserver import ApiServer

PINNED = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
EXAMPLES_PER_OPERATION = 25


def test_openapi_document_is_pinned() -> None:
    assert PINNED.exists(), "docs/openapi.json is missing: python -m registry.api.openapi > it"
    assert json.loads(PINNED.read_text()) == spec(), (
        "the API changed: if deliberate, run 'python -m registry.api.openapi > docs/openapi.json'"
    )
    assert PINNED.read_text() == text()


def test_every_operation_is_documented_and_authenticated() -> None:
    document = spec()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("description") or operation.get("summary"), (method, path)
            if path != "/api/v1/health":
                assert operation.get("security") == [{"HTTPBearer": []}], (method, path)


def test_schemathesis_finds_no_server_error(api_server: ApiServer, tmp_path: Path) -> None:
    """Generated requests (valid and invalid) against every operation: zero 5xx."""
    token = api_server.key("fuzz", "admin", name="schemathesis")
    config = tmp_path / "schemathesis.toml"
    # Requests name the key's project, so they reach the handlers instead of a 403.
    config.write_text('[parameters]\n"path.project" = "fuzz"\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            api_server.url + "/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "20261122",
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    report = done.stdout[:8000] + done.stderr[-2000:]
    assert done.returncode == 0, (
        report + "\n--- server log ---\n" + api_server.log.read_text()[-4000:]
    )
    assert "passed" in done.stdout
