"""A real ``mlledger serve`` (uvicorn) on 127.0.0.1, in a child process, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from registry import auth
from registry.serve import default_workers
from registry.store import open_store
from tests.support.throwaway import free_port

STARTUP_SECONDS = 60


class ApiServer:
    """``mlledger serve`` on a SQLite file (or ``db``) in ``directory``, with one worker
    process unless ``workers`` says otherwise (None: the command's default, one per
    core): a test that kills the server kills the process that answers."""

    def __init__(
        self,
        directory: Path,
        db: str | None = None,
        env: dict[str, str] | None = None,
        workers: int | None = 1,
    ):
        self.directory = directory
        self.db = db or f"sqlite:///{directory}/ledger.db"
        self.key_file = directory / "master.key"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "server.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLLEDGER_", "OTEL_"))}
        self.env["MLLEDGER_KEY_FILE"] = str(self.key_file)
        # Never the user's own key directory (a PostgreSQL ledger's default one).
        self.env["MLLEDGER_SIGNING_KEY"] = str(directory / "signing.key")
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.workers = workers

    def start(self) -> ApiServer:
        command = [
            sys.executable, "-m", "registry.cli", "serve",
            "--db", self.db, "--port", str(self.port),
        ]  # fmt: skip
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        self.directory.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log.read_text()}")
            try:
                answered = httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200
            except httpx.TransportError:
                answered = False  # not listening yet
            if answered and self._started(offset) >= self._expected_workers():
                return self
            time.sleep(0.1)
        raise RuntimeError(
            f"server did not answer, or not all {self._expected_workers()} workers logged "
            f"'Application startup complete.', in {STARTUP_SECONDS}s:\n{self.log.read_text()}"
        )

    def _expected_workers(self) -> int:
        return self.workers or default_workers()  # as `mlledger serve` counts them

    def _started(self, offset: int) -> int:
        """How many worker processes have finished starting (their lifespan run) since
        the log was ``offset`` bytes long: the first to answer may not be the last."""
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().count(b"Application startup complete.")

    def serving(self) -> Iterator[ApiServer]:
        """Start the server, yield it and stop it: a fixture's body (``yield from``)."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def key(self, project: str, role: str, name: str | None = None) -> str:
        """A fresh API key's token (created directly in the server's database)."""
        store = open_store(self.db)
        try:
            _, token = auth.create_key(
                store, project=project, role=role, name=name, created_by="tests"
            )
        finally:
            store.dispose()
        return token

    def trail(self, since: int = 0) -> list[dict[str, Any]]:
        """The access trail's entries from sequence number ``since``, read directly
        from the server's database."""
        store = open_store(self.db)
        try:
            return auth.read_trail(store, since=since, limit=100_000)
        finally:
            store.dispose()

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=60)
