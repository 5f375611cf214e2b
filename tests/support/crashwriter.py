"""A writer process for the crash test (``tests/test_crash.py``).

The test starts writers with :func:`child` from a fork server that has imported
this module (a fresh interpreter would spend about a second importing the
package, and most kills would land before the first write). By hand::

    python -m tests.support.crashwriter URL ACK_FILE SEED MODE STOP_FILE SIGNING_KEY_FILE

A writer writes without pause until ``STOP_FILE`` exists (then it exits 0), or until it
is killed. Before each write it appends a ``begin`` line to ``ACK_FILE`` and only
after the write returned (committed) an acknowledgement line saying what was
written. Each line is one JSON object written with a single ``os.write`` on an
``O_APPEND`` descriptor, so a kill leaves whole lines behind (the checker still
tolerates a torn last line).

Modes (``MODE``):

- ``raw``: ``Ledger.append`` batches of 1 to 6 events: dataset versions, or a run
  (``run-started`` and ``run-params-logged`` events); every event names its batch
  and the batch's size in its body (dataset ``tags``, run ``params``);
- ``sdk``: SDK writes, each at random a dataset version with its records (two events
  in one append) or a run whose first append holds ``run-started``,
  ``run-params-logged`` and ``subject-data-stored`` with its vault entry (one
  transaction); the vault entry's attributes name the batch;
- ``trail``: ``record_access`` batches of 1 to 4 access-trail entries, each naming
  its batch in ``resource`` as ``batch:<id>:<index>:<size>``;
- ``mixed``: one of ``raw``, ``sdk`` and ``trail`` at random for each write;
- ``checkpoint``: ``write_checkpoint`` of the ``events`` tree, then of the
  ``access`` tree, in a loop, signed with the key in ``SIGNING_KEY_FILE``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import registry
from audit.checkpoints import write_checkpoint
from audit.note import SigningKey
from registry.auth import AccessEntry, record_access
from registry.events import make_event
from registry.ids import dataset_id, run_id
from tests.support.events import access_entry

PROJECT = "crash"
JOB = "crash-test"
MODES = ("raw", "sdk", "trail", "mixed", "checkpoint")
SUBJECT_BATCH_SIZE = 3  # run-started, run-params-logged, subject-data-stored
DATASET_BATCH_SIZE = 2  # dataset-version-registered, dataset-records-added


def trail_entry(actor: str, resource: str, reason: str) -> AccessEntry:
    """An allowed ``crash.write`` decision of PROJECT's trail, from ``crash-test``."""
    fields = {"project": PROJECT, "action": "crash.write", "source": "crash-test"}
    return access_entry(actor=actor, resource=resource, reason=reason, **fields)


class Writer:
    def __init__(self, url: str, ack_file: str, seed: int, mode: str, stop_file: str, key: str):
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode
        self.rng = random.Random(seed)
        self.name = Path(ack_file).stem  # unique per writer process: prefixes its batch ids
        self.stop_file = stop_file
        self.code_dir = str(Path(ack_file).parent)
        self.fd = os.open(ack_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.reg = registry.connect(url, project=PROJECT, actor=self.name)
        self.ledger = self.reg.ledger
        self.key = SigningKey.load(Path(key)) if mode == "checkpoint" else None
        self.batches = 0

    def line(self, record: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def next_batch(self) -> str:
        self.batches += 1
        return f"{self.name}b{self.batches}"

    def run(self) -> None:
        self.line({"kind": "ready", "pid": os.getpid()})
        while not os.path.exists(self.stop_file):
            if self.mode == "checkpoint":
                self.checkpoints()
                continue
            kind = self.mode
            if kind == "mixed":
                kind = self.rng.choice(("raw", "sdk", "trail"))
            getattr(self, f"write_{kind}")(self.next_batch())
        self.reg.close()
        os.close(self.fd)

    # --- the writes -------------------------------------------------------------------------

    def write_raw(self, batch: str) -> None:
        size = self.rng.randint(1, 6)
        if self.rng.random() < 0.5:
            events = []
            for i in range(size):
                name = f"{batch}-{i}"
                body = {
                    "name": name,
                    "version": "1",
                    "digest": f"sha256:{name}",
                    "uri": f"file:///data/{name}",
                    "tags": {"batch": batch, "size": str(size)},
                }
                events.append(
                    make_event(
                        "dataset-version-registered",
                        project=PROJECT,
                        entity=dataset_id(PROJECT, name, "1"),
                        actor=self.name,
                        body=body,
                    )
                )
        else:
            run = run_id(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            params = {"batch": batch, "size": size}
            events = [
                make_event(
                    "run-started",
                    project=PROJECT,
                    entity=run,
                    actor=self.name,
                    body={"job": JOB, "params": params},
                )
            ]
            events += [
                make_event(
                    "run-params-logged",
                    project=PROJECT,
                    entity=run,
                    actor=self.name,
                    body={"params": {**params, "step": step}},
                )
                for step in range(1, size)
            ]
        self.line({"kind": "begin", "batch": batch})
        positions = self.ledger.append(events)
        self.line(
            {
                "kind": "raw",
                "batch": batch,
                "events": [[e.event_id, p] for e, p in zip(events, positions, strict=True)],
            }
        )

    def write_sdk(self, batch: str) -> None:
        if self.rng.random() < 0.5:
            records = [f"{batch}-r{i}" for i in range(self.rng.randint(1, 5))]
            self.line({"kind": "begin", "batch": batch})
            version = self.reg.register_dataset(
                batch,
                "1",
                uri=f"file:///data/{batch}",
                digest=f"sha256:{batch}",
                records=records,
                subjects=[f"{batch}-s{i % 2}" for i in range(len(records))],
                tags={"batch": batch, "size": str(DATASET_BATCH_SIZE)},
            )
            self.line(
                {"kind": "dataset", "batch": batch, "dataset": version.id, "records": len(records)}
            )
            return
        params = {"batch": batch, "size": SUBJECT_BATCH_SIZE}
        self.line({"kind": "begin", "batch": batch})
        with self.reg.run(JOB, params=params, code_dir=self.code_dir) as run:
            run.log_params({**params, "step": 1})
            # Appends the run's buffered events with the vault write: one transaction.
            entry = self.reg.store_subject_data(f"person-{batch}", params)
            self.line({"kind": "subject", "batch": batch, "run": run.id, "entry": entry})
        self.line({"kind": "run-end", "batch": batch, "run": run.id})

    def write_trail(self, batch: str) -> None:
        size = self.rng.randint(1, 4)
        entries = [
            trail_entry(self.name, f"batch:{batch}:{i}:{size}", f"entry {i} of {size}")
            for i in range(size)
        ]
        self.line({"kind": "begin", "batch": batch})
        seqs = record_access(self.ledger.store, entries)
        self.line({"kind": "trail", "batch": batch, "seqs": seqs})

    def checkpoints(self) -> None:
        assert self.key is not None
        for tree in ("events", "access"):
            self.line({"kind": "begin", "tree": tree})
            checkpoint, new = write_checkpoint(self.ledger.store, self.key, tree)
            self.line(
                {
                    "kind": "checkpoint",
                    "tree": tree,
                    "seq": checkpoint.seq,
                    "size": checkpoint.size,
                    "root": checkpoint.root.hex(),
                    "new": new,
                }
            )
        # Leave the append lock to the other writers a moment between rounds.
        time.sleep(self.rng.uniform(0.0, 0.05))


def child(argv: list[str], master_key: str, log: str) -> None:
    """A writer in a process forked for it: its own process group (so that a kill
    takes whatever it started too), its own environment and output file."""
    os.setpgid(0, 0)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for name in [n for n in os.environ if n.startswith("MLLEDGER_")]:
        del os.environ[name]
    os.environ["MLLEDGER_KEY_FILE"] = master_key
    try:
        code = main(argv)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's exit: nothing inherited from the fork server is cleaned up.
    os._exit(code)


def main(argv: list[str]) -> int:
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    url, ack_file, seed, mode, stop_file, key = argv
    Writer(url, ack_file, int(seed), mode, stop_file, key).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
