"""The XGBoost and LightGBM autologging pages run: every ``python`` block of
``docs/autolog-xgboost.md`` and ``docs/autolog-lightgbm.md``, in order and in one
namespace per page, against a new ledger in an empty directory."""

from __future__ import annotations

import importlib
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from registry.assembly import open_ledger
from registry.hooks import recording
from tests.test_docs import DOCS, _python_blocks

PAGES = {"autolog-xgboost.md": "xgboost", "autolog-lightgbm.md": "lightgbm"}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_autolog_page_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip(PAGES[page])
    hook = importlib.import_module(f"registry.{PAGES[page]}")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLLEDGER_DB", f"sqlite:///{tmp_path / 'ledger.db'}")
    for name in ("MLLEDGER_PROJECT", "MLLEDGER_ACTOR", "MLLEDGER_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)

    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = _python_blocks(text)
    assert blocks and len(blocks) == text.count("```python")
    namespace: dict[str, Any] = {"__name__": page.removesuffix(".md")}
    try:
        for line, source in blocks:
            code = compile(source, f"docs/{page}, block at line {line}", "exec")
            try:
                exec(code, namespace)
            except Exception as exc:
                raise AssertionError(
                    f"the python block at docs/{page} line {line} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    finally:
        hook.autolog(disable=True)
        recording._warned.clear()
        reg = namespace.get("reg")
        if reg is not None:
            reg.close()
    # The page recorded into the ledger MLLEDGER_DB names, its artifacts in the folder.
    with closing(open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")) as ledger:
        models = [e for e in ledger.tail() if e.type == "model-version-registered"]
        ended = [e for e in ledger.tail() if e.type == "run-completed"]
    assert len(models) == 2 and {m.body["framework"] for m in models} == {PAGES[page]}
    assert len(ended) == 2
    stored = {p.name.split(".")[0] for p in (work / "artifacts").iterdir()}
    assert {m.body["artifact_digest"][7:] for m in models} <= stored
