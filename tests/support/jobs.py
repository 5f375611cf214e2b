"""What the executors' tests and benchmark share: the events of a run or deployment,
waiting for a job to reach a transition, and the ``mlledger jobs watch`` command a
test runs as a process of its own."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from registry.events import StoredEvent

if TYPE_CHECKING:
    from executors.dispatch import Dispatcher
    from registry.sdk import Registry


def events_of(reg: Registry, entity: str) -> list[StoredEvent]:
    """The events of ``entity`` (a run, a deployment), in log order; for a run, with the
    model versions it registered."""
    store = reg.ledger.store
    with store.read() as conn:
        return [
            e
            for e in store.select_events(conn, 0)
            if e.entity == entity or e.body.get("run") == entity
        ]


def types_of(reg: Registry, entity: str) -> list[str]:
    return [e.type for e in events_of(reg, entity)]


def wait_for_event(
    reg: Registry, dispatcher: Dispatcher, run: str, event: str, timeout: float = 30
) -> None:
    """Record what the platform reports about ``run`` until ``event`` is among its
    events (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while event not in types_of(reg, run):
        assert time.monotonic() < deadline, f"{run} never reached {event}"
        dispatcher.sync(run)
        time.sleep(0.1)


def watch_command(
    url: str, project: str, namespace: str, kubeconfig: Path, ledger_url: str
) -> tuple[list[str], dict[str, str]]:
    """``mlledger jobs watch`` on the ledger ``url`` for ``project``, watching
    ``namespace`` through ``kubeconfig``: its arguments and environment."""
    env = {
        **os.environ,
        "MLLEDGER_EXECUTOR": "kubernetes",
        "MLLEDGER_NAMESPACE": namespace,
        "MLLEDGER_JOB_LEDGER_URL": ledger_url,
    }
    argv = [sys.executable, "-m", "registry.cli", "jobs", "watch", "--db", url,
            "--project", project, "--kubeconfig", str(kubeconfig)]  # fmt: skip
    return argv, env
