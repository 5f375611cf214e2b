"""The README's quickstart runs as written, and shows the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from registry.ledger import Ledger

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_shows_the_two_commands() -> None:
    shell = "\n".join(blocks("sh"))
    assert "make demo" in shell and "make test" in shell


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (code,) = blocks("python")
    monkeypatch.chdir(tmp_path)  # the default database is ./.mlledger/ledger.db
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    ledger = Ledger.open(f"sqlite:///{tmp_path}/.mlledger/ledger.db")
    try:
        event = ledger.last_event()
        assert event is not None and event.type == "predictions-logged"
        assert event.entity == "deployment:default/credit-api" and event.body["count"] == 2
    finally:
        ledger.close()


def test_cli_lines_in_the_readme_name_real_commands() -> None:
    from registry.cli import COMMANDS

    for line in "\n".join(blocks("sh")).splitlines():
        if line.startswith("mlledger "):
            assert line.split()[1] in COMMANDS, line
