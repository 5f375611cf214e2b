"""Small helpers several test modules share: the CLI in-process and as a child
process, connections a fixture yields, the newest event and the head of a ledger, the
ledger's signing key, and the shape of a one-line CLI error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path

import pytest

import registry
from audit.checkpoints import load_signing_key, write_checkpoint
from audit.note import SigningKey
from registry.assembly import open_ledger
from registry.cli import main
from registry.events import StoredEvent
from registry.ledger import Ledger
from registry.sdk import Registry


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``mlledger ARGV`` in this process: its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


#: The repository root, where child processes run.
REPO = Path(__file__).resolve().parents[2]
#: ``mlledger`` as this interpreter runs it.
CLI = [sys.executable, "-m", "registry.cli"]


def mlledger_process(
    *argv: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    program: Sequence[str] = CLI,
) -> subprocess.CompletedProcess[str]:
    """Run ``mlledger ARGV`` (or ``program ARGV``) in a process of its own from the
    repository root, with ``env`` (default: this process's environment); its exit
    status and text output, whatever the status."""
    return subprocess.run(
        [*program, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def connected(url: str, project: str, actor: str) -> Iterator[Registry]:
    """An SDK connection for a fixture to yield (``yield from``), closed after the test."""
    with registry.connect(url, project=project, actor=actor) as connection:
        yield connection


def opened_ledger(url: str) -> Iterator[Ledger]:
    """The ledger at ``url`` for a fixture to yield (``yield from``), closed after the test."""
    with closing(open_ledger(url)) as ledger:
        yield ledger


def head_of(url: str) -> int:
    """The head of the ledger at ``url`` (its event count), read through a ledger of
    its own."""
    with closing(open_ledger(url)) as ledger:
        return ledger.head()


def newest(ledger: Ledger) -> StoredEvent:
    """The ledger's last event; the ledger must not be empty."""
    event = ledger.last_event()
    assert event is not None
    return event


def signing_key(reg: Registry) -> SigningKey:
    """The ledger's signing key, created on first use."""
    key, _, _ = load_signing_key(reg.ledger.store.url, None, create=True)
    return key


def assert_one_error_line(err: str, command: str, *names: str) -> None:
    """``err`` is one ``mlledger COMMAND: error:`` line naming each of ``names``."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mlledger {command}: error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])


def signed_log(store_url: str, plant: Callable[[Registry], None]) -> SigningKey:
    """A ledger at ``store_url`` with what ``plant`` writes and a checkpoint signed by the
    key of the settings (created here); returns that key."""
    with registry.connect(store_url, project="test", actor="tester") as reg:
        plant(reg)
        key, _, created = load_signing_key(store_url, create=True)
        assert created
        checkpoint, written = write_checkpoint(reg.ledger.store, key)
        assert written and checkpoint.seq == 0
    return key
