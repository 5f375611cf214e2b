"""Audit over HTTP: automatic checkpoints while serving, proof bundles, consistency
proofs and the public key, against a real server; bundles fetched over HTTP verify
offline with the public key alone."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import registry
from audit import merkle
from audit.note import VerifierKey
from audit.proofs import verify_bundle
from registry.assembly import open_ledger
from tests.support.apiserver import ApiServer

EVERY = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    directory = tmp_path_factory.mktemp("audit-api")
    running = ApiServer(
        directory,
        env={
            "MLLEDGER_CHECKPOINT_EVERY": str(EVERY),
            "MLLEDGER_CHECKPOINT_SECONDS": "2",
            "MLLEDGER_SIGNING_KEY": str(directory / "signing.key"),
        },
    ).start()
    yield running
    running.stop()


def wait_for(condition: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_the_server_signs_checkpoints_as_the_log_grows(server: ApiServer) -> None:
    writer = server.key("alpha", "writer")
    auditor = server.client(server.key("alpha", "auditor"))
    with registry.connect(server.url, project="alpha", actor="ci", api_key=writer) as reg:
        for i in range(EVERY + 2):
            reg.register_dataset(f"d{i}", "1", uri=f"s3://d{i}", digest="sha256:00")

    def signed() -> bool:
        answer = auditor.get("/projects/alpha/audit/checkpoint")
        return answer.status_code == 200 and answer.json()["tree_size"] == EVERY + 2

    wait_for(signed)  # 5 events at once, then the last 2 once 2 s have passed
    listed = auditor.get("/projects/alpha/audit/checkpoints").json()
    assert [c["seq"] for c in listed] == list(range(len(listed)))
    assert listed[-1]["tree_size"] == EVERY + 2
    assert all(c["note"].count("\n— ") == 1 for c in listed)

    ledger = open_ledger(server.db)
    try:
        leaves = [e.leaf_hash for e in ledger.read()]
    finally:
        ledger.close()
    assert base64.b64decode(listed[-1]["root_hash"]) == merkle.root_hash(leaves)

    # The access trail has checkpoints of its own (its entries include these requests).
    wait_for(
        lambda: (
            auditor.get("/projects/alpha/audit/checkpoint", params={"tree": "access"}).status_code
            == 200
        )
    )
    access = auditor.get("/projects/alpha/audit/checkpoint", params={"tree": "access"}).json()
    assert access["tree"] == "access" and access["tree_size"] > 0
    assert access["note"].split("\n", 1)[0].endswith("/access-trail")


def test_bundles_from_the_api_verify_offline(server: ApiServer, tmp_path: Path) -> None:
    writer = server.key("beta", "writer")
    auditor = server.client(server.key("beta", "auditor"))
    with registry.connect(server.url, project="beta", actor="ci", api_key=writer) as reg:
        reg.register_dataset("b", "1", uri="s3://b", digest="sha256:11")
        for i in range(EVERY):
            reg.register_dataset(f"pad{i}", "1", uri=f"s3://p{i}", digest="sha256:00")
    ledger = open_ledger(server.db)
    try:
        position = next(e.position for e in ledger.read() if e.entity == "dataset:beta/b@1")
    finally:
        ledger.close()

    public = auditor.get("/projects/beta/audit/public-key")
    assert public.status_code == 200 and public.headers["content-type"].startswith("text/plain")
    key = VerifierKey.from_string(public.text.strip())

    def covered() -> bool:
        return auditor.get(f"/projects/beta/audit/proofs/{position}").status_code == 200

    wait_for(covered)
    bundle = auditor.get(f"/projects/beta/audit/proofs/{position}").json()
    checked = verify_bundle(bundle, key)
    assert checked.entry["entity"] == "dataset:beta/b@1" and checked.index == position

    # Another project's event is not served; a reader may not ask at all.
    other = server.client(server.key("gamma", "auditor"))
    answer = other.get(f"/projects/gamma/audit/proofs/{position}")
    assert answer.status_code == 404 and "no position" in answer.json()["detail"]
    viewer = server.client(server.key("beta", "viewer"))
    assert viewer.get(f"/projects/beta/audit/proofs/{position}").status_code == 403

    size = bundle["tree_size"]
    consistency = auditor.get(
        "/projects/beta/audit/consistency", params={"size1": 1, "size2": size}
    ).json()
    first = auditor.get("/projects/beta/audit/checkpoints").json()
    assert consistency["size1"] == 1 and consistency["size2"] == size
    proof = [base64.b64decode(h) for h in consistency["proof"]]
    leaves_root = base64.b64decode(next(c for c in first if c["tree_size"] == size)["root_hash"])
    assert merkle.verify_consistency(
        1, size, merkle.root_hash([bundle_leaf_zero(server)]), leaves_root, proof
    )
    bad = auditor.get("/projects/beta/audit/consistency", params={"size1": 9, "size2": 2})
    assert bad.status_code == 400 and "larger than size2" in bad.json()["detail"]
    beyond = auditor.get("/projects/beta/audit/consistency", params={"size1": 1, "size2": 10**9})
    assert beyond.status_code == 404


def bundle_leaf_zero(server: ApiServer) -> bytes:
    ledger = open_ledger(server.db)
    try:
        return ledger.read(0, 1)[0].leaf_hash
    finally:
        ledger.close()
