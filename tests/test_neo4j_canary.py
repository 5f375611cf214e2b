"""No personal data in Neo4j: the canary world (thousands of subjects' records, vault
entries and predictions, a canary among them) synced into a real Neo4j server, which
must hold nothing of any person: neither a record key, a subject id, a vault attribute
or a prediction output, nor their pseudonyms or erasure references.

Two searches: every property of every node and relationship, read back through Cypher
(complete whatever the store's encoding), and the raw bytes of every file of the
server's store and transaction logs (where every committed change is written). Neo4j
packs short strings (a 32-digit hex pseudonym among them) into its own encoding, so
the file search looks for the canary's record keys and subject id only, and first
proves it finds a string of their shape where one was written: a dataset named like a
canary record key. After the canary is erased, the graph is synced again and searched
again.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import registry
from lineage.neo4j import Neo4jGraph
from registry.assembly import open_ledger
from tests.support.neo4jserver import Neo4jServer
from tests.support.worlds import canary_world

SUBJECTS = 200


def _everything(graph: Neo4jGraph) -> str:
    """Every label, key and value of every node and relationship, as text."""

    def read(tx: Any) -> list[Any]:
        nodes = [
            dict(r["n"]) | {"labels": list(r["n"].labels)} for r in tx.run("MATCH (n) RETURN n")
        ]
        edges = [dict(r["r"]) | {"type": r["r"].type} for r in tx.run("MATCH ()-[r]->() RETURN r")]
        return nodes + edges

    return repr(graph._call(read))


def _stored(directory: Path, needles: list[bytes]) -> dict[bytes, list[str]]:
    """Which of ``needles`` occur in which files under ``directory`` (the server's store,
    transaction logs and logs)."""
    found: dict[bytes, list[str]] = {n: [] for n in needles}
    for path in directory.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for needle in needles:
                if needle in content:
                    found[needle].append(str(path))
    return found


def test_neo4j_holds_nothing_of_any_person(
    store_url: str, neo4j_graph: Neo4jGraph, neo4j_server: Neo4jServer, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex
    records, planted = canary_world(store_url, tag, SUBJECTS)
    subject = f"canary-subject-{tag}"
    # A dataset named like a canary record key: what proves the file search finds one.
    witness = f"canary-record-{uuid.uuid4().hex}-9"
    with registry.connect(store_url, project="clinic", actor="loader") as reg:
        reg.register_dataset(witness, "1", uri="s3://clinic/witness", digest="sha256:ee")
        event = reg.ledger.last_event()
        assert event is not None and event.type == "dataset-version-registered"
    ledger = open_ledger(store_url)
    pseudo = ledger.pseudonymizer("clinic")
    others = [f"patient-{i}" for i in range(0, SUBJECTS, 37)]
    hidden = [
        pseudo.subject(subject),
        pseudo.erasure_reference(subject),
        *pseudo.records(records),
        *(pseudo.subject(o) for o in others),
        *(pseudo.erasure_reference(o) for o in others),
        *pseudo.records([f"{o}-visit-0" for o in others]),
    ]
    raw = [subject, *records, *planted, f"canary-output-{tag}", *others]

    position = neo4j_graph.sync(ledger)
    assert position == neo4j_graph.status(ledger).head >= 0
    text = _everything(neo4j_graph)
    assert witness in text and "dataset:clinic/visits@1" in text
    for needle in hidden + raw:
        assert needle not in text, needle
    assert neo4j_server.data_dir is not None, "a server of the tests' own: its files are searched"
    files = _stored(
        neo4j_server.data_dir, [witness.encode(), subject.encode(), *map(str.encode, records)]
    )
    assert files.pop(witness.encode()), "the file search must find what the graph holds"
    assert {n: where for n, where in files.items() if where} == {}

    with registry.connect(store_url, project="clinic", actor="dpo") as reg:
        outcome = reg.erase(subject)
        assert outcome["status"] == "erased"
        erased = reg.ledger.last_event()
        assert erased is not None and erased.type == "subject-erased"
    assert neo4j_graph.sync(ledger) == neo4j_graph.status(ledger).head
    text = _everything(neo4j_graph)
    for needle in hidden + raw:
        assert needle not in text, needle
    ledger.close()
