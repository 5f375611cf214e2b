"""The shop world of the erasure command tests: six people's orders scored by a
deployed model, and ``mlledger`` run as a process against it (or the crashing
erasure of ``tests.support.erasecrasher``)."""

from __future__ import annotations

import os
import subprocess
import sys

import registry
from tests.support.helpers import CLI, mlledger_process
from tests.support.worlds import personal_dataset

CRASHER = [sys.executable, "-m", "tests.support.erasecrasher"]
SUBJECTS = [f"person-{i}" for i in range(6)]


def populate(url: str) -> None:
    with registry.connect(url, project="shop", actor="etl") as reg:
        keys = [f"order-{i}" for i in range(60)]
        subjects = [SUBJECTS[i % 6] for i in range(60)]
        raw = personal_dataset(reg, "orders", keys, subjects, uri="s3://orders")
        with reg.run("train", inputs=[raw]) as run:
            model = run.register_model("churn", artifact_uri="s3://m", artifact_digest="sha256:02")
        reg.deploy("api", endpoint="https://api", served={model: 100})
        reg.log_predictions("api", model=model, records=keys, outputs=[0.1] * 60)
        for subject in SUBJECTS:
            reg.store_subject_data(subject, {"email": f"{subject}@example.com"})


def mlledger(url: str, *args: str, crash_at: int | None = None) -> subprocess.CompletedProcess[str]:
    program = CLI if crash_at is None else [*CRASHER, str(crash_at)]
    env = {**os.environ, "MLLEDGER_DB": url}
    return mlledger_process(*args, "--project", "shop", env=env, timeout=300, program=program)
