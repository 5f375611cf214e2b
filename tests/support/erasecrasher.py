"""Runs ``mlledger`` with the process killed (SIGKILL) in the middle of an erasure.

``python -m tests.support.erasecrasher N ARGS...`` runs ``mlledger ARGS...`` and kills
itself inside the N-th erasure's transaction, after its events were rewritten
and its vault entries deleted, before the commit: what a power cut does.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from audit.erasure import execute as erasure
from registry.cli import main


def run(argv: list[str]) -> int:
    target = int(argv[0])
    seen = 0
    forget = erasure._forget

    def forget_then_die(*args: Any, **kwargs: Any) -> None:
        nonlocal seen
        forget(*args, **kwargs)
        seen += 1
        if seen == target:
            os.kill(os.getpid(), signal.SIGKILL)

    erasure._forget = forget_then_die  # type: ignore[assignment]
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
