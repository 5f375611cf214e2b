"""The pages of the framework callbacks (``docs/autolog-lightning.md``,
``docs/autolog-transformers.md``): their ``python`` blocks run, in order, as one
program in a directory of their own with ``MLLEDGER_DB`` there, and record what the
page says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import registry
from tests.frameworks.recorded import only, run_events, started_run
from tests.test_docs import FENCE

ROOT = Path(__file__).resolve().parents[2]


def program(page: str) -> str:
    blocks = FENCE.findall((ROOT / "docs" / page).read_text())
    assert blocks, f"docs/{page} has no python block"
    return "\n".join(blocks)


@pytest.mark.parametrize(
    ("page", "job", "checkpoints", "dataset"),
    [
        ("autolog-lightning.md", "lightning.Regression", 3, "sensor-readings"),
        ("autolog-transformers.md", "transformers.BertForSequenceClassification", 2, "reviews"),
    ],
)
def test_the_page_runs_and_records_its_training(
    page: str, job: str, checkpoints: int, dataset: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    env = {**os.environ, "MLLEDGER_DB": f"sqlite:///{ledger}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", program(page)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with registry.connect(f"sqlite:///{ledger}", project="default") as reg:
        started = started_run(reg)
        assert started.body["job"] == job
        events = run_events(reg, started.entity)
        models = only(events, "model-version-registered")
        assert len(models) == checkpoints
        (used,) = only(events, "run-inputs-used")
        assert used.body["inputs"][0].startswith(f"dataset:default/{dataset}@")
        assert events[-1].type == "run-completed"
    # What the page prints: the run and its model versions, then the training data.
    (ids,) = [line for line in done.stdout.splitlines() if line.startswith(started.entity)]
    assert all(m.entity in ids for m in models)
    assert done.stdout.splitlines()[-1] == repr(used.body["inputs"])
