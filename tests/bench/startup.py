"""How long a command line takes to start (part of ``make bench``): wall seconds of
``mlledger --help`` and of ``mlledger scored KEY --json`` on the demo's ledger, the
median of several runs each, in fresh processes, after one untimed run of each. The
targets are 0.3 s and 0.6 s.

The processes run as a user's do: with Python's bytecode cache (``PYTHONDONTWRITEBYTECODE``
is dropped from their environment), so that the figure is not the cost of compiling the
sources again on every start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.harness import load_average, write_result

RUNS = 7


#: The environment of the timed processes: a user's, with the bytecode cache.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _seconds(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=ENV, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def _median(command: list[str], cwd: Path, runs: int) -> float:
    """The median wall seconds of ``runs`` timed runs, after one untimed run (which
    writes the bytecode cache if it is not there)."""
    _seconds(command, cwd)
    return round(statistics.median(_seconds(command, cwd) for _ in range(runs)), 3)


def measure(runs: int = RUNS) -> dict[str, Any]:
    script = Path(sys.executable).with_name("mlledger")
    mlledger = [str(script)] if script.exists() else [sys.executable, "-m", "registry.cli"]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        subprocess.run([*mlledger, "demo", "--predictions", "300"], cwd=work, check=True,
                       capture_output=True, timeout=600)  # fmt: skip
        help_ = _median([*mlledger, "--help"], work, runs)
        question = [*mlledger, "scored", "bc-0532", "--project", "demo", "--json"]
        scored = _median(question, work, runs)
    return {
        "runs": runs,
        "help_seconds": help_,
        "scored_json_seconds": scored,
        "targets": {"help_seconds": 0.3, "scored_json_seconds": 0.6},
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs of each (default {RUNS})")
    args = parser.parse_args()
    figures = measure(args.runs)
    write_result(args.out, figures)


if __name__ == "__main__":
    main()
