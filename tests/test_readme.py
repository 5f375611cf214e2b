"""The README's quickstart runs as written, and shows the two set-up commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry.assembly import open_ledger
from registry.errors import Forbidden
from tests.support.apiserver import ApiServer

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_shows_the_two_commands() -> None:
    shell = "\n".join(blocks("sh"))
    assert "make demo" in shell and "make test" in shell


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = blocks("python")[0]
    monkeypatch.chdir(tmp_path)  # the default database is ./.mlledger/ledger.db
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    ledger = open_ledger(f"sqlite:///{tmp_path}/.mlledger/ledger.db")
    try:
        event = ledger.last_event()
        assert event is not None and event.type == "predictions-logged"
        assert event.entity == "deployment:default/credit-api" and event.body["count"] == 2
    finally:
        ledger.close()


def test_autolog_lines_record_a_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's autologging block, as written, makes a fit a run with its model."""
    _, autolog = blocks("python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(tmp_path / "master.key"))
    import registry

    try:
        exec(compile(autolog, str(README), "exec"), {"__name__": "readme"})
    finally:
        registry.autolog(disable=True)
    ledger = open_ledger(f"sqlite:///{tmp_path}/.mlledger/ledger.db")
    try:
        with ledger.store.read() as conn:
            events = list(ledger.store.select_events(conn, 0))
        assert [e.type for e in events] == [
            "run-started",
            "dataset-version-registered",
            "run-inputs-used",
            "run-metrics-logged",
            "model-version-registered",
            "run-completed",
        ]
        assert events[-2].entity == "model:default/LogisticRegression@1"
    finally:
        ledger.close()


def test_cli_lines_in_the_readme_name_real_commands() -> None:
    from registry.cli import COMMANDS

    for line in "\n".join(blocks("sh")).splitlines():
        if line.startswith("mlledger "):
            assert line.split()[1] in COMMANDS, line


def shell_lines() -> list[str]:
    """Every command line of the README's shell blocks, in order, but the set-up
    commands and the server (which does not return)."""
    return [
        line
        for block in blocks("sh")
        for line in block.splitlines()
        if line.strip() and not line.startswith(("make ", "mlledger serve "))
    ]


def test_every_shell_line_runs_on_the_quickstart_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    code = blocks("python")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    script = Path(sys.executable).with_name("mlledger")
    env = {**os.environ, "PATH": f"{script.parent}{os.pathsep}{os.environ['PATH']}"}
    lines = shell_lines()
    assert any("--as-of" in line for line in lines)
    assert any(line.startswith("mlledger erase alice --certificate") for line in lines)
    for line in lines:
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, line
        if line.startswith("mlledger"):
            assert done.stdout.strip(), line
    ledger = open_ledger(f"sqlite:///{tmp_path}/.mlledger/ledger.db", create=False)
    try:
        types = [e.type for e in ledger.tail()]
    finally:
        ledger.close()
    assert "subject-erased" in types  # the erasure example erased alice
    assert (tmp_path / "dossier" / "index.html").exists()
    assert (tmp_path / "export-2026" / "manifest.json").exists()


@pytest.mark.parametrize("role", ["admin", "writer"])
def test_quickstart_runs_over_http_with_the_roles_the_readme_names(
    role: str, api_server: ApiServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An admin key runs the whole quickstart over HTTP; a writer key all but its
    last line, the footprint of a person, which needs the dpo role."""
    code = blocks("python")[0]
    *body, last = code.rstrip().splitlines()
    assert last.startswith("assert len(reg.footprint(")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_DB", api_server.url)
    # One server serves both runs: each in a project of its own.
    monkeypatch.setenv("MLLEDGER_PROJECT", f"quickstart-{role}")
    monkeypatch.setenv("MLLEDGER_API_KEY", api_server.key(f"quickstart-{role}", role))
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile("\n".join(body), str(README), "exec"), namespace)
    if role == "admin":
        exec(compile(last, str(README), "exec"), namespace)
    else:
        with pytest.raises(Forbidden, match="personal"):
            exec(compile(last, str(README), "exec"), namespace)
    assert not (tmp_path / ".mlledger").exists()  # nothing written locally
