"""The canary: erase one subject among thousands, then search every byte the project
wrote for anything that was theirs.

Unique strings are planted as the canary subject's id, record keys, vault
attributes and prediction outputs; their pseudonyms (which the log holds instead
of the keys) are searched for too, in hex as stored. Before the erasure the
search finds the pseudonyms (so it can find things); after it, with the purge
done, nothing of the canary is anywhere: not in the database files (SQLite's db,
WAL and shared-memory files; PostgreSQL's table, TOAST and index files), not in
the certificate, not in what the command printed, not in the access trail of the
questions a viewer and a DPO asked about them over HTTP. The other subjects are
untouched and ``audit verify`` passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import registry
from audit.erasure.purge import find_bytes
from audit.trail import read_trail
from audit.verify import verify
from registry.assembly import open_ledger
from registry.store import open_store
from tests.support.apiserver import ApiServer
from tests.support.worlds import canary_world as _world

CLI = [sys.executable, "-m", "registry.cli"]


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def _ask_over_http(
    url: str, directory: Path, subject: str, records: list[str], pseudonyms: list[str]
) -> None:
    """Questions about the canary through a real server, as a viewer and a DPO would ask
    them (ids in bodies, a record's pseudonym in a lineage URL): each leaves an entry in
    the access trail, which must hold none of them."""
    (directory / "server").mkdir()
    keys = {name: os.environ[name] for name in ("MLLEDGER_KEY_FILE", "MLLEDGER_SIGNING_KEY")}
    server = ApiServer(directory / "server", db=url, env=keys).start()
    try:
        with server.client(server.key("clinic", "dpo")) as http:
            assert (
                http.post(
                    "/projects/clinic/questions/scored", json={"record": records[0]}
                ).status_code
                == 200
            )
            assert (
                http.post(
                    "/projects/clinic/questions/footprint", json={"subject": subject}
                ).status_code
                == 200
            )
            lineage = http.get(
                "/projects/clinic/questions/lineage",
                params={"node": f"record:clinic/{pseudonyms[1]}", "depth": 1},
            )
            assert lineage.status_code in (200, 404), lineage.text
    finally:
        server.stop()
    store = open_store(url)
    try:
        entries = read_trail(store, project="clinic", limit=100_000)
    finally:
        store.dispose()
    assert len(entries) >= 3
    for needle in [subject, *records, *pseudonyms]:
        assert all(needle not in str(entry) for entry in entries), needle


def test_an_erased_subject_leaves_no_byte_behind(
    store_url: str, tmp_path: Path, isolated_env: Path
) -> None:
    tag = uuid.uuid4().hex
    records, planted = _world(store_url, tag)
    subject = f"canary-subject-{tag}"
    ledger = open_ledger(store_url)
    pseudo = ledger.pseudonymizer("clinic")
    hidden = [pseudo.subject(subject), *pseudo.records(records)]
    raw = [subject, *records, *planted, f"canary-output-{tag}"]
    others = [pseudo.subject("patient-7"), *pseudo.records(["patient-7-visit-0"])]
    _ask_over_http(store_url, tmp_path, subject, records, hidden)
    before = find_bytes(ledger.store, [n.encode() for n in hidden + others])
    assert all(before[n.encode()] for n in hidden + others), "the search must find the pseudonyms"
    with registry.connect(store_url, project="clinic") as reg:
        footprint = reg.footprint("patient-7")

    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "MLLEDGER_DB": store_url}
    done = subprocess.run(
        [
            *CLI,
            "erase",
            subject,
            "--project",
            "clinic",
            "--json",
            "--certificate",
            str(out / "certificate.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    (out / "stdout.txt").write_text(done.stdout)
    (out / "stderr.txt").write_text(done.stderr)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "erased" and outcome["purge"] is not None
    last = ledger.last_event()
    assert last is not None and last.type == "subject-erased"
    assert last.body["records"] == 3 and last.body["vault_entries"] == 1

    needles = [n.encode() for n in hidden + raw]
    found = {n: where for n, where in find_bytes(ledger.store, needles).items() if where}
    assert found == {}, "erased data still stored"
    for name, content in _files(out).items():
        for needle in needles:
            assert needle not in content, (name, needle)
    if store_url.startswith("sqlite"):
        # Every file the store wrote, searched raw as well (WAL and journal included).
        directory = Path(store_url.split("///", 1)[1]).parent
        for name, content in _files(directory).items():
            for needle in needles:
                assert needle not in content, (name, needle)

    after = find_bytes(ledger.store, [n.encode() for n in others])
    assert all(after[n.encode()] for n in others), "other subjects must be untouched"
    with registry.connect(store_url, project="clinic") as reg:
        assert reg.footprint("patient-7") == footprint
    report = verify(ledger.store)
    assert report.ok, report.summary()
    ledger.close()
