"""The local executor: jobs as processes on this host, the embedded default.

Each job has a folder ``<root>/mlledger-<run uuid>/`` (root: ``MLLEDGER_JOBS_DIR``,
default ``.mlledger/jobs``) holding ``spec.json`` (what was submitted, no secret),
``log`` (the output of every attempt), ``transitions.jsonl`` (what happened, one JSON
object a line, fsynced) and, once released, ``supervisor.pid``.

Releasing a job starts a detached supervisor (``python -m executors.local DIR``) that
runs the command with the run's context in its environment (the API key too: it never
touches the disk), retries it, enforces the deadline, writes each transition to the
journal and appends it to the ledger. Any process can read the journal
(``observe``) and record it again: event ids derive from the transitions, so nothing
is recorded twice.

The local executor reserves no GPUs: a spec asking for some is refused, as is one
pinned to a GPU product. It runs ``command`` as is; ``image`` does not apply.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from executors.base import TERMINAL, ExecutorKind, Made, Transition
from executors.spec import JobSpec, RunContext, object_name, run_of
from registry.errors import InvalidInput, LedgerError, NotFound
from registry.timeutil import now

if TYPE_CHECKING:
    from executors.dispatch import Dispatcher

#: How often a following ``logs`` looks for new output, in seconds.
FOLLOW_POLL = 0.2


class LocalExecutor:
    """Jobs as supervised processes on this host."""

    kind: ExecutorKind = "local"

    def __init__(self, root: str | Path, *, python: str | None = None):
        self.root = Path(root)
        self.python = python or sys.executable

    @property
    def target(self) -> str:
        return f"local:{socket.gethostname()}"

    def folder(self, run: str) -> Path:
        return self.root / object_name(run)

    # --- submission ----------------------------------------------------------------------

    def render(self, spec: JobSpec, context: RunContext) -> dict[str, Any]:
        if spec.gpus or spec.gpu_product:
            raise InvalidInput(
                "the local executor reserves no GPUs: drop --gpus/--gpu-product, or submit "
                "to Kubernetes (--executor kubernetes)",
                field="gpus",
            )
        return {
            "kind": "LocalJob",
            "name": object_name(context.run),
            "run": context.run,
            "project": context.project,
            "command": list(spec.command),
            "env": dict(spec.env),
            "workdir": str(Path(spec.workdir or ".").resolve()),
            "retries": spec.retries,
            "deadline_s": spec.deadline_s,
        }

    def create(self, rendered: dict[str, Any], context: RunContext) -> None:
        folder = self.folder(context.run)
        folder.mkdir(parents=True, exist_ok=True)
        _write_once(folder / "spec.json", json.dumps(rendered, indent=2) + "\n")

    def release(self, run: str, context: RunContext) -> None:
        folder = self.folder(run)
        if not (folder / "spec.json").exists():
            raise NotFound(f"no job for run {run} in {self.root}")
        if (folder / "supervisor.pid").exists():
            return
        env = {**os.environ, **context.environment(with_key=True)}
        supervisor = subprocess.Popen(
            [self.python, "-m", "executors.local", str(folder)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "supervisor.log", "ab"),  # noqa: SIM115 (the child keeps it)
            start_new_session=True,
            close_fds=True,
        )
        _write_once(folder / "supervisor.pid", f"{supervisor.pid}\n")

    # --- what happened -------------------------------------------------------------------

    def observe(self, run: str) -> list[Transition]:
        return read_journal(self.folder(run), run)

    def cancel(self, run: str) -> bool:
        folder = self.folder(run)
        if not folder.exists():
            return False
        (folder / "cancelled").touch()
        _signal_supervisor(folder, signal.SIGTERM)
        return True

    def logs(self, run: str, *, follow: bool = False) -> Iterator[str]:
        folder = self.folder(run)
        if not (folder / "spec.json").exists():
            raise NotFound(f"no job for run {run} in {self.root}")
        path = folder / "log"
        while not path.exists():
            if not follow or _finished(folder, run):
                return
            time.sleep(FOLLOW_POLL)
        with path.open("r", encoding="utf-8", errors="replace") as out:
            while True:
                line = out.readline()
                if line:
                    yield line.rstrip("\n")
                    continue
                if not follow or _finished(folder, run):
                    rest = out.read()
                    yield from rest.splitlines()
                    return
                time.sleep(FOLLOW_POLL)

    def made(self) -> list[Made]:
        found: list[Made] = []
        if not self.root.is_dir():
            return found
        for folder in sorted(self.root.iterdir()):
            run = run_of(folder.name)
            if run is None or not (folder / "spec.json").exists():
                continue
            released = (folder / "supervisor.pid").exists()
            found.append(Made(run, released, _finished(folder, run)))
        return found

    def remove(self, run: str) -> None:
        folder = self.folder(run)
        if folder.exists():
            _signal_supervisor(folder, signal.SIGKILL)
            shutil.rmtree(folder, ignore_errors=True)


# --- the journal -----------------------------------------------------------------------------


def read_journal(folder: Path, run: str) -> list[Transition]:
    """The transitions written to ``folder``'s journal (a torn last line is skipped)."""
    path = folder / "transitions.jsonl"
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: written again by nobody, so not real
        found.append(Transition(run, item["type"], item["body"], item["at"], item["key"]))
    return found


def _finished(folder: Path, run: str) -> bool:
    return (folder / "cancelled").exists() or any(
        t.type in TERMINAL for t in read_journal(folder, run)
    )


def _write_once(path: Path, text: str) -> None:
    """Write ``path`` whole and durably unless it exists."""
    if path.exists():
        return
    staged = path.with_name(path.name + ".tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(staged, path)


def _signal_supervisor(folder: Path, sig: int) -> None:
    """Signal the job's supervisor; SIGKILL goes to the attempt running too (it has a
    session of its own, and a killed supervisor cannot stop it)."""
    names = ("supervisor.pid", "attempt.pid") if sig == signal.SIGKILL else ("supervisor.pid",)
    for name in names:
        try:
            pid = int((folder / name).read_text())
        except (FileNotFoundError, ValueError):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


# --- the supervisor --------------------------------------------------------------------------


class Supervisor:
    """Runs one local job: its attempts, its deadline, its journal and its records."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.spec = json.loads((folder / "spec.json").read_text())
        self.run = self.spec["run"]
        self.child: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.recorder = _recorder(folder.parent, self.spec)

    def note(self, type: str, body: dict[str, Any], key: str | None = None) -> None:
        """Write one transition to the journal, durably, then record it in the ledger."""
        t = Transition(self.run, type, body, now(), key or type)
        line = json.dumps({"type": t.type, "body": t.body, "at": t.occurred_at, "key": t.key})
        with (self.folder / "transitions.jsonl").open("a", encoding="utf-8") as journal:
            journal.write(line + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        if self.recorder is not None:
            self.recorder.record([t])

    def stop(self, signum: int, frame: object) -> None:
        self.cancelled = True
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGTERM)

    def main(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        spec, host = self.spec, socket.gethostname()
        deadline = None if spec["deadline_s"] is None else time.monotonic() + spec["deadline_s"]
        env = {**os.environ, **spec["env"]}
        last: dict[str, Any] = {}
        for number in range(spec["retries"] + 1):
            attempt = f"{spec['name']}-{number}"
            self.note(
                "job-scheduled",
                {"attempt": attempt, "node": host, "gpus": 0},
                f"scheduled/{attempt}",
            )
            with (self.folder / "log").open("ab") as log:
                log.write(f"--- attempt {number} ---\n".encode())
                log.flush()
                self.child = subprocess.Popen(
                    spec["command"],
                    cwd=spec["workdir"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            (self.folder / "attempt.pid").write_text(f"{self.child.pid}\n")
            self.note("job-started", {"attempt": attempt}, f"started/{attempt}")
            code, reason = self._wait(deadline)
            if self.cancelled:
                return 0  # the canceller records it
            if code == 0:
                self.note("job-succeeded", {"attempt": attempt, "exit_code": 0})
                return 0
            last = {"attempt": attempt, "exit_code": code, "reason": reason}
            self.note("job-attempt-failed", last, f"attempt-failed/{attempt}")
            if reason == "DeadlineExceeded":
                break
        why = (
            "DeadlineExceeded"
            if last.get("reason") == "DeadlineExceeded"
            else "BackoffLimitExceeded"
        )
        self.note(
            "job-failed",
            {
                "reason": why,
                "exit_code": last.get("exit_code"),
                "attempt_reason": last.get("reason"),
            },
        )
        return 0

    def _wait(self, deadline: float | None) -> tuple[int, str]:
        """The attempt's exit code and reason (Error, Killed, DeadlineExceeded)."""
        assert self.child is not None
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            code = self.child.wait(timeout=left)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait()
            return 137, "DeadlineExceeded"
        if code < 0:  # ended by a signal: the shell's convention
            return 128 - code, "Killed" if code == -signal.SIGKILL else "Signalled"
        return code, "Error" if code else "Completed"


def _recorder(root: Path, spec: dict[str, Any]) -> Dispatcher | None:
    """A dispatcher appending to the job's run through the SDK, from the context in this
    process's environment; None (the journal alone) when the ledger cannot be opened:
    the job still runs, and whoever reads the journal later records it."""
    from executors.dispatch import Dispatcher  # the supervisor's alone: not for --help
    from registry.sdk import connect

    try:
        registry = connect(project=spec["project"], create=False)
    except (LedgerError, OSError) as exc:
        print(f"ledger unavailable, keeping the journal only: {exc}", file=sys.stderr)
        return None
    return Dispatcher(registry, LocalExecutor(root), ledger_url=os.environ["MLLEDGER_DB"])


def main(argv: list[str] | None = None) -> int:
    """``python -m executors.local FOLDER``: supervise the job in FOLDER."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m executors.local JOB_FOLDER", file=sys.stderr)
        return 2
    return Supervisor(Path(args[0])).main()


if __name__ == "__main__":
    sys.exit(main())
