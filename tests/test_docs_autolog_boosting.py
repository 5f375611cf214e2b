"""The XGBoost and LightGBM autologging pages run: every ``python`` block of
``docs/autolog-xgboost.md`` and ``docs/autolog-lightgbm.md``, in order and in one
namespace per page, against a new ledger in an empty directory."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from registry.assembly import open_ledger
from tests.test_docs import run_guide

PAGES = {"autolog-xgboost.md": "xgboost", "autolog-lightgbm.md": "lightgbm"}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_autolog_page_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_guide(page, tmp_path, monkeypatch)
    work = tmp_path / "work"
    # The page recorded into the ledger MLLEDGER_DB names, its artifacts in the folder.
    with closing(open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")) as ledger:
        models = [e for e in ledger.tail() if e.type == "model-version-registered"]
        ended = [e for e in ledger.tail() if e.type == "run-completed"]
    assert len(models) == 2 and {m.body["framework"] for m in models} == {PAGES[page]}
    assert len(ended) == 2
    stored = {p.name.split(".")[0] for p in (work / "artifacts").iterdir()}
    assert {m.body["artifact_digest"][7:] for m in models} <= stored
