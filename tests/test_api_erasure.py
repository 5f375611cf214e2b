"""Erasure over HTTP, against a real server: only a data-protection officer may erase;
the SDK behaves as on a local file; the certificate fetched over HTTP verifies
offline with the public key alone; training code checks erased keys with a writer key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import registry
from audit.erasure.certificate import verify_certificate
from audit.note import VerifierKey
from registry.assembly import open_ledger
from registry.errors import Forbidden
from tests.support.apiserver import ApiServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    directory = tmp_path_factory.mktemp("erasure-api")
    running = ApiServer(
        directory,
        env={
            "MLLEDGER_CHECKPOINT_EVERY": "0",
            "MLLEDGER_SIGNING_KEY": str(directory / "signing.key"),
        },
    ).start()
    yield running
    running.stop()


def populate(server: ApiServer, project: str) -> str:
    writer = server.key(project, "writer")
    with registry.connect(server.url, project=project, actor="etl", api_key=writer) as reg:
        keys = [f"r{i}" for i in range(20)]
        raw = reg.register_dataset(
            "raw",
            "1",
            uri="s3://raw",
            digest="sha256:01",
            records=keys,
            subjects=[f"s{i % 5}" for i in range(20)],
        )
        with reg.run("train", inputs=[raw]) as run:
            model = run.register_model("m", artifact_uri="s3://m", artifact_digest="sha256:02")
        reg.deploy("api", endpoint="https://api", served={model: 100})
        reg.log_predictions("api", model=model, records=keys, outputs=[0.5] * 20)
        reg.store_subject_data("s1", {"email": "s1@example.com"})
    return writer


def test_only_a_data_protection_officer_may_erase(server: ApiServer) -> None:
    writer = populate(server, "gamma")
    with registry.connect(server.url, project="gamma", api_key=writer) as reg:
        with pytest.raises(Forbidden):
            reg.erase("s1")
        assert reg.erased_records(["r1", "r2"]) == set()
    auditor = server.key("gamma", "auditor")
    with registry.connect(server.url, project="gamma", api_key=auditor) as reg:
        with pytest.raises(Forbidden):
            reg.erase("s1", dry_run=True)
        assert reg.erasures() == []


def test_a_dpo_erases_over_http_and_the_certificate_verifies_offline(server: ApiServer) -> None:
    writer = populate(server, "delta")
    dpo = server.key("delta", "dpo", "privacy office")
    with registry.connect(server.url, project="delta", api_key=dpo) as reg:
        plan = reg.erase("s1", dry_run=True)
        assert plan["status"] == "planned" and plan["plan"]["records"]["count"] == 4
        outcome = reg.erase("s1")
        assert outcome["status"] == "erased"
        assert reg.erase("s1")["status"] == "already-erased"
        assert reg.footprint("s1")["erased"]["position"] == outcome["erased_position"]
        listed = reg.erasures()
        assert [e["erasure"] for e in listed] == [outcome["erasure"]]
        envelope = reg.erasure_certificate(outcome["erasure"])

    ledger = open_ledger(server.db)
    try:
        erased = ledger.read(outcome["erased_position"], 1)[0]
    finally:
        ledger.close()
    assert erased.type == "subject-erased" and erased.actor.startswith("key:")

    auditor = server.client(server.key("delta", "auditor"))
    public = auditor.get("/projects/delta/audit/public-key").text.strip()
    verified = verify_certificate(envelope, VerifierKey.from_string(public))
    assert verified.erasure == outcome["erasure"]
    assert verified.completed_position == outcome["erased_position"]
    assert verified.records == 4 and verified.vault_entries == 1

    with registry.connect(server.url, project="delta", api_key=writer) as reg:
        assert reg.erased_records([f"r{i}" for i in range(20)]) == {"r1", "r6", "r11", "r16"}
        flags = reg.remediations(status="retrain-required")
        assert [f["erasure"] for f in flags] == [outcome["erasure"]]
    # The trail records the erasure request, not the subject's id.
    trail = auditor.get("/projects/delta/access-trail").json()
    assert any(e["action"] == "erasures.create" for e in trail)
    assert all("s1" not in e["resource"] for e in trail)
