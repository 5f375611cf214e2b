"""The command line starts without the heavy libraries: ``import registry`` and
``mlledger --help`` load neither SQLAlchemy, pyarrow, networkx nor FastAPI (their
time is measured in ``tests/bench/startup.py``, not here)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "sqlmodel", "pyarrow", "networkx", "fastapi", "numpy")

PROBE = f"""
import json, sys
import registry, registry.cli
from registry import EventRejected, LedgerError
try:
    registry.cli.main(["--help"])
except SystemExit as done:  # argparse ends --help with exit status 0
    assert done.code == 0, done.code
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)
"""


def test_help_loads_no_heavy_library() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert "usage: mlledger" in done.stdout
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []


def test_the_sdk_is_still_one_attribute_away() -> None:
    probe = "import registry, sys; registry.connect; print('registry.sdk' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "True"
    missing = subprocess.run([sys.executable, "-c", "import registry; registry.nope"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert missing.returncode == 1
    assert "module 'registry' has no attribute 'nope'" in missing.stderr


def test_the_event_catalogue_loads_without_the_sdk_or_a_store() -> None:
    probe = (
        "import json, sys, registry.events\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('registry.sdk', 'registry.store', 'registry.ledger', 'lineage', 'audit',"
        " 'sqlalchemy', 'pyarrow'))))); print(len(registry.events.CATALOGUE))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    loaded, types = done.stdout.strip().splitlines()
    assert json.loads(loaded) == []
    assert int(types) > 0
