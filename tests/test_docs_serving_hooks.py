"""``docs/serving-hooks.md`` as written: its FastAPI example runs against a new ledger,
and the predictions it logs are in the ledger, each once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import registry

PAGE = Path(__file__).resolve().parents[1] / "docs" / "serving-hooks.md"


def test_the_fastapi_example_logs_its_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_DB", str(tmp_path / "ledger.db"))
    [block] = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)
    namespace: dict[str, Any] = {"__name__": "serving_hooks_page"}
    exec(compile(block, str(PAGE), "exec"), namespace)
    namespace["reg"].close()
    with registry.connect(project="shop") as reg:
        events = [e for e in reg.ledger.read(0) if e.type == "predictions-logged"]
        assert sum(e.body["count"] for e in events) == 3
        assert all(e.entity == "deployment:shop/scoring-api" for e in events)
        for key in ("app-17", "app-18", "app-19"):
            assert len(reg.scored(key)["predictions"]) == 1
    assert list((tmp_path / ".mlledger" / "spool").iterdir()) == []  # all sent, lane gone
