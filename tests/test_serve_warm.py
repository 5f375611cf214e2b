"""A serving process loads the lineage graph and the prediction filters before it
accepts a connection; failing to is only logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lineage import queries
from lineage.graph import graph_of
from registry import auth
from registry.api.app import create_app
from registry.assembly import open_ledger
from registry.sdk import connect
from tests.support.helpers import newest

P = "warm"


def _ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with connect(url, project=P, actor="tests") as reg:
        data = reg.register_dataset("rows", "1", uri="file:///rows", digest="sha256:r",
                                    records=["a", "b"])  # fmt: skip
        with reg.run("train", inputs=[data]) as run:
            model = run.register_model("clf", artifact_uri="file:///m", artifact_digest="sha256:m")
        api = reg.deploy("api", endpoint="https://api", served={model: 100})
        reg.log_predictions(api, model=model, records=["a", "b"], outputs=[0.1, 0.9])
        last = newest(reg.ledger)
        assert (last.type, last.entity) == ("predictions-logged", api.id)
    return url


def _token(url: str) -> str:
    ledger = open_ledger(url)
    try:
        return auth.create_key(ledger.store, project=P, role="viewer", created_by="tests")[1]
    finally:
        ledger.close()


def test_the_graph_is_loaded_before_the_first_question(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _ledger(tmp_path)
    monkeypatch.setenv("MLLEDGER_CHECKPOINT_EVERY", "0")
    with TestClient(create_app(url)) as client:
        graph = graph_of(client.app.state.ledger)  # type: ignore[attr-defined]
        # Loaded at start, before any question (``current()`` would load it itself).
        assert graph._position >= 0
        assert {"dataset:warm/rows@1", "model:warm/clf@1"} <= set(graph._graph.nodes)


def test_a_failure_to_warm_is_logged_and_the_server_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = _ledger(tmp_path)
    token = _token(url)

    def broken(ledger: object) -> None:
        raise OSError("the disk went away")

    monkeypatch.setattr(queries, "warm", broken)
    monkeypatch.setenv("MLLEDGER_CHECKPOINT_EVERY", "0")
    with (
        caplog.at_level(logging.WARNING, logger="mlledger.api"),
        TestClient(create_app(url)) as client,
    ):
        answer = client.post(
            f"/api/v1/projects/{P}/questions/scored",
            json={"record": "a"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 1
    warned = [r.getMessage() for r in caplog.records if r.name == "mlledger.api"]
    assert any("the disk went away" in m and "first question" in m for m in warned), warned
