"""Small helpers several test modules share: the CLI in-process, the newest event,
the ledger's signing key, and the shape of a one-line CLI error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import registry
from audit.checkpoints import load_signing_key, write_checkpoint
from audit.note import SigningKey
from registry.cli import main
from registry.events import StoredEvent
from registry.ledger import Ledger
from registry.sdk import Registry


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``mlledger ARGV`` in this process: its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


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
