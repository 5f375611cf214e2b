"""Where the SDK's writes and questions go: a local store, or a server over HTTP.

``Backend`` is the small surface the SDK needs. ``LocalBackend`` runs it in
process on a ``Ledger`` (a SQLite file or PostgreSQL); ``registry.client.
HttpBackend`` sends the same requests to ``mlledger serve``, which answers
them with a ``LocalBackend`` of its own, so both behave and fail alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Unpack

from registry import erasures, intake, services, writes
from registry.erasures import EraseOptions
from registry.intake import Item
from registry.ledger import Ledger

QUESTIONS = tuple(services.QUESTIONS)


class Backend(Protocol):
    """What the SDK asks of a ledger, local or remote."""

    def append(self, project: str, items: Sequence[Item]) -> list[int]:
        """Append a batch atomically (sealing personal data); return positions."""
        ...

    def dataset(self, node: str) -> dict[str, Any] | None:
        """``{"digest", "records"}`` of a registered dataset version, or None."""
        ...

    def top_model_version(self, project: str, name: str) -> int | None:
        """Highest all-digit version of a model name, or None."""
        ...

    def resolve_model(self, project: str, text: str) -> str:
        """A model version id from ``name@version``, ``name@alias``, ``name@latest``, a
        full id or ``dataset:<namespace>:model/<name>`` (``services.resolve_model``)."""
        ...

    def ask(self, project: str, question: str, **params: Any) -> dict[str, Any]:
        """Answer one of ``QUESTIONS`` (``registry.services``), as JSON, showing only
        nodes of projects ``project`` may read (the rest counted as ``withheld``)."""
        ...

    def jobs(self, project: str, *, status: str | None = None, limit: int = 100) -> dict[str, Any]:
        """The jobs executing the project's runs (``JobsAnswer``), as JSON, newest first."""
        ...

    def job(self, project: str, run: str) -> dict[str, Any]:
        """The job executing a run of the project, with its events (``JobAnswer``), as JSON."""
        ...

    def subject_data(self, project: str, subject: str | int) -> list[dict[str, Any]]:
        """Decrypted vault entries of a data subject."""
        ...

    def erase(
        self, project: str, subject: str | int, *, actor: str, **options: Unpack[EraseOptions]
    ) -> dict[str, Any]:
        """Erase a data subject (``audit.erasure``), or plan it with ``dry_run``; purge
        and sign a checkpoint after it unless told not to (a batch does both once):
        ``EraseOptions``, each left out taking ``ERASE_DEFAULTS``."""
        ...

    def resume_erasures(self, project: str, *, purge: bool = True) -> list[dict[str, Any]]:
        """Complete every interrupted erasure of the project."""
        ...

    def purge(self, project: str) -> dict[str, Any]:
        """Physically purge what erasures deleted, and sign a checkpoint."""
        ...

    def erasures(self, project: str) -> list[dict[str, Any]]:
        """The project's erasures (references and counts, never pseudonyms)."""
        ...

    def erasure_certificate(self, project: str, erasure: str) -> dict[str, Any]:
        """The signed certificate (DSSE envelope) of a completed erasure."""
        ...

    def remediations(self, project: str, status: str | None = None) -> list[dict[str, Any]]:
        """Remediation flags erasures put on model versions."""
        ...

    def erased_records(self, project: str, records: Sequence[str | int]) -> list[bool]:
        """Whether each record key was erased."""
        ...

    def subject_report(self, project: str, subject: str | int) -> dict[str, Any]:
        """The subject-access report (GDPR Art. 15) of a data subject, as JSON."""
        ...

    def close(self) -> None: ...

    def opened_with(self) -> tuple[str, str | None]:
        """Where and with which API key another process opens this same backend (a
        prediction logger's sender process)."""
        ...


class LocalBackend:
    """The backend on a ``Ledger`` in this process."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def append(self, project: str, items: Sequence[Item]) -> list[int]:
        events, before_commit = intake.seal(self.ledger, items)
        return self.ledger.append(events, before_commit=before_commit)

    def dataset(self, node: str) -> dict[str, Any] | None:
        return writes.known_dataset(self.ledger, node)

    def top_model_version(self, project: str, name: str) -> int | None:
        return writes.top_model_version(self.ledger, project, name)

    def resolve_model(self, project: str, text: str) -> str:
        return services.resolve_model(self.ledger, project, text)

    def ask(self, project: str, question: str, **params: Any) -> dict[str, Any]:
        # The typed answer's JSON form: what HttpBackend receives for the same question.
        return services.ask(self.ledger, project, question, **params).model_dump(mode="json")

    def jobs(self, project: str, *, status: str | None = None, limit: int = 100) -> dict[str, Any]:
        answer = services.jobs(self.ledger, project, status=status, limit=limit)
        return answer.model_dump(mode="json")

    def job(self, project: str, run: str) -> dict[str, Any]:
        return services.job(self.ledger, project, run=run).model_dump(mode="json")

    def subject_data(self, project: str, subject: str | int) -> list[dict[str, Any]]:
        return erasures.subject_data(self.ledger, project, subject)

    def erase(
        self, project: str, subject: str | int, *, actor: str, **options: Unpack[EraseOptions]
    ) -> dict[str, Any]:
        if options.get("retain"):
            options["retain"] = services.retained(self.ledger, project, options["retain"])
        return erasures.erase(self.ledger, project, subject, actor=actor, **options)

    def resume_erasures(self, project: str, *, purge: bool = True) -> list[dict[str, Any]]:
        return erasures.resume_erasures(self.ledger, project, purge=purge)

    def purge(self, project: str) -> dict[str, Any]:
        return erasures.purge(self.ledger)

    def erasures(self, project: str) -> list[dict[str, Any]]:
        return erasures.erasures(self.ledger, project)

    def erasure_certificate(self, project: str, erasure: str) -> dict[str, Any]:
        return erasures.certificate(self.ledger, project, erasure)

    def remediations(self, project: str, status: str | None = None) -> list[dict[str, Any]]:
        return erasures.remediations(self.ledger, project, status)

    def erased_records(self, project: str, records: Sequence[str | int]) -> list[bool]:
        return erasures.erased_records(self.ledger, project, records)

    def subject_report(self, project: str, subject: str | int) -> dict[str, Any]:
        return erasures.subject_report(self.ledger, project, subject)

    def opened_with(self) -> tuple[str, str | None]:
        return self.ledger.store.url, None

    def close(self) -> None:
        self.ledger.close()
