"""What the test-suite's throwaway servers share (``pgserver``, ``neo4jserver``,
``kube``): started and stopped as a context manager, described by ``repr``, on
ports of 127.0.0.1 found free.

A subclass sets ``_started`` (and, for a server of its own, ``_port``) in its
``start`` and clears it in its ``stop``; one that wraps a running server given by
URL sets ``_external_url``.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self


def free_port() -> int:
    """Ask the kernel for a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dying_with_parent(signum: int) -> Callable[[], None]:
    """A ``preexec_fn``: in the child, before exec, ask the kernel to send it ``signum``
    when the process that started it dies (even by SIGKILL, when :mod:`atexit` does not
    run), so no server outlives its tests."""

    def arrange() -> None:
        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signum)

    return arrange


def run_step(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: IO[str],
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run one build step, its command line and output written to ``log``; killed
    with the process that runs it. Raises ``subprocess.TimeoutExpired`` past
    ``timeout`` seconds."""
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
        preexec_fn=dying_with_parent(signal.SIGKILL),
    )


def wait_until_interrupted(alive: Callable[[], bool]) -> bool:
    """Wait while ``alive()`` until Ctrl-C or SIGTERM (``python -m ... up``): True when
    interrupted, False when ``alive()`` turned false first. Ctrl-C stops it even where
    the shell started it with SIGINT ignored."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while alive():
            time.sleep(1)
    except KeyboardInterrupt:
        return True
    return False


class ThrowawayServer:
    """A server the tests start in a temporary directory, or one given by URL."""

    #: The error a subclass raises when asked for what a stopped server lacks.
    error: type[Exception] = RuntimeError
    _external_url: str | None = None
    _port: int | None = None
    _started = False

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        where = "external" if self.is_external else f"port={self._port}"
        return f"<{type(self).__name__} {where} {state}>"

    @property
    def is_external(self) -> bool:
        """True when wrapping a server given by URL (never started or stopped here)."""
        return self._external_url is not None

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._started

    @property
    def url(self) -> str:
        """Where to reach the server: the URL given, or the throwaway one's."""
        if self._external_url is not None:
            return self._external_url
        if not self._started:
            raise self.error("server not started")
        return self._own_url()

    def _own_url(self) -> str:
        raise NotImplementedError

    @property
    def port(self) -> int:
        """The port of the throwaway server."""
        if self._port is None:
            raise self.error("server not started")
        return self._port
