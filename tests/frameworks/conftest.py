"""Fixtures of the training frameworks' tests: torch, Lightning, transformers and
datasets, installed in a virtualenv of their own (``make test-frameworks``); a
framework missing there fails the import, never skips.

Nothing is downloaded: the Hugging Face libraries are kept offline and every model is
built from its configuration. The ledger is SQLite (what the callbacks append does not
depend on the store, which the main suite tests on both)."""

from __future__ import annotations

import os

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from registry.hooks import recording  # noqa: E402
from registry.sdk import Registry  # noqa: E402
from tests.frameworks.recorded import Appends  # noqa: E402
from tests.support.helpers import connected  # noqa: E402


@pytest.fixture
def reg(tmp_path: Path, isolated_env: Path) -> Iterator[Registry]:
    """An SDK connection to a SQLite ledger of the test's own (project ``test``)."""
    yield from connected(f"sqlite:///{tmp_path}/ledger.db", project="test", actor="tester")


@pytest.fixture(autouse=True)
def quiet_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in its own directory (what a trainer writes by default lands there),
    with the same random numbers, and warnings not yet given (each hook warns once
    per process about each kind of failure)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recording, "_warned", set())
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def appends(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> Appends:
    """Every append ``reg`` makes (one transaction each), counted."""
    seen = Appends()
    original = reg.backend.append

    def counting(project: str, items: Any) -> list[int]:
        seen.batches.append([item.type for item in items])
        return original(project, items)

    monkeypatch.setattr(reg.backend, "append", counting)
    return seen
