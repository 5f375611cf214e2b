"""A serving process for the prediction logger's kill tests.

``python -m tests.support.servingchild REGISTRY SPOOL DEPLOYMENT MODEL COUNT RATE [MODE]``
logs predictions ``r-0``, ``r-1``, ... (COUNT of them, or without end when COUNT is 0)
through a ``PredictionLogger`` on SPOOL, RATE per second (0: flat out), and prints
``acked N`` after every 1,000 calls of ``log()`` that returned (and at the end), then
flushes and prints ``flushed <stats as JSON>``. The project and API key come from the
environment (``MLLEDGER_PROJECT``, ``MLLEDGER_API_KEY``).

MODE ``kill-after-send``: the process kills itself (SIGKILL) right after the ledger
took its first batch, before the logger records that the batch was sent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import registry
from registry.hooks.serving import PredictionLogger


def main(argv: list[str]) -> None:
    url, spool, deployment, model, count, rate = argv[:6]
    mode = argv[6] if len(argv) > 6 else ""
    reg = registry.connect(url, actor="server")
    if mode == "kill-after-send":
        send = reg.log_predictions

        def send_then_die(*args: Any, **kwargs: Any) -> list[int]:
            send(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
            raise AssertionError("unreachable: the process was killed")

        reg.log_predictions = send_then_die  # type: ignore[method-assign]
    # The crash is made inside this process's send: the sender runs as its thread.
    sender = "thread" if mode == "kill-after-send" else "process"
    logger = PredictionLogger(deployment, model=model, registry=reg, spool=spool, sender=sender)
    total, per_second = int(count), float(rate)
    began = time.monotonic()
    i = 0
    while total == 0 or i < total:
        logger.log(f"r-{i}", {"score": i % 97 / 97})
        i += 1
        if i % 1000 == 0:
            print(f"acked {i}", flush=True)
            if per_second:
                ahead = i / per_second - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
    print(f"acked {i}", flush=True)
    done = logger.flush(timeout=120)
    print(f"flushed {json.dumps({'done': done, **logger.stats()})}", flush=True)
    logger.close()


if __name__ == "__main__":
    main(sys.argv[1:])
