"""Where the SDK's writes and questions go: a local store, or a server over HTTP.

``Backend`` is the small surface the SDK needs. ``LocalBackend`` runs it in
process on a ``Ledger`` (a SQLite file or PostgreSQL); ``registry.client.
HttpBackend`` sends the same requests to ``mlledger serve``, which answers
them with a ``LocalBackend`` of its own, so both behave and fail alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypedDict, Unpack

from lineage import queries
from registry import intake, services
from registry.intake import Item
from registry.ledger import Ledger
from registry.store.raw import Raw

QUESTIONS = tuple(services.QUESTIONS)


class EraseOptions(TypedDict, total=False):
    """How ``Backend.erase`` goes about it: ``dry_run`` plans and changes nothing;
    ``retain`` lists rules (``{"model", "justification", "approver"}``) keeping affected
    model versions in service; ``purge`` and ``sign`` run the physical purge and sign a
    checkpoint after it (a batch leaves both to its end)."""

    dry_run: bool
    retain: Sequence[dict[str, str]]
    purge: bool
    sign: bool


#: What an option of ``EraseOptions`` left out means.
ERASE_DEFAULTS = EraseOptions(dry_run=False, retain=(), purge=True, sign=True)


def erase_options(options: EraseOptions) -> EraseOptions:
    """Every option of an erasure: those given, the rest as ``ERASE_DEFAULTS`` says."""
    return {**ERASE_DEFAULTS, **options}


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
        """A model version id from ``name@version``, ``name@alias`` or a full id."""
        ...

    def ask(self, project: str, question: str, **params: Any) -> dict[str, Any]:
        """Answer one of ``QUESTIONS`` (``registry.services``), as JSON, showing only
        nodes of projects ``project`` may read (the rest counted as ``withheld``)."""
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


class LocalBackend:
    """The backend on a ``Ledger`` in this process."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def append(self, project: str, items: Sequence[Item]) -> list[int]:
        events, before_commit = intake.seal(self.ledger, items)
        return self.ledger.append(events, before_commit=before_commit)

    def dataset(self, node: str) -> dict[str, Any] | None:
        with self.ledger.store.read() as conn:
            row = Raw(conn).one(
                "SELECT d.digest, c.records FROM cat_datasets d LEFT JOIN "
                "dataset_record_counts c ON c.dataset = d.id WHERE d.id = ?",
                (node,),
            )
        return None if row is None else {"digest": row[0], "records": row[1] or 0}

    def top_model_version(self, project: str, name: str) -> int | None:
        with self.ledger.store.read() as conn:
            top = Raw(conn).scalar(
                "SELECT top_version FROM model_names WHERE project = ? AND name = ?",
                (project, name),
            )
        return None if top is None else int(top)

    def resolve_model(self, project: str, text: str) -> str:
        return queries.resolve_model(self.ledger, text, project)

    def ask(self, project: str, question: str, **params: Any) -> dict[str, Any]:
        # The typed answer's JSON form: what HttpBackend receives for the same question.
        return services.ask(self.ledger, project, question, **params).model_dump(mode="json")

    def subject_data(self, project: str, subject: str | int) -> list[dict[str, Any]]:
        pseudonym = self.ledger.pseudonymizer(project).subject(subject)
        with self.ledger.store.read() as conn:
            return self.ledger.vault.get(conn, project, pseudonym)

    def erase(
        self, project: str, subject: str | int, *, actor: str, **options: Unpack[EraseOptions]
    ) -> dict[str, Any]:
        from audit import erasure

        chosen = erase_options(options)
        outcome = erasure.erase(
            self.ledger,
            project,
            subject,
            actor=actor,
            retain=[erasure.Retain(**rule) for rule in chosen["retain"]],
            dry_run=chosen["dry_run"],
        )
        finished = erasure.finish(self.ledger, outcome, purge=chosen["purge"], sign=chosen["sign"])
        return finished.as_dict()

    def resume_erasures(self, project: str, *, purge: bool = True) -> list[dict[str, Any]]:
        from audit import erasure

        pending = erasure.pending_erasures(self.ledger, project)
        done = []
        for number, erasure_id in enumerate(pending, start=1):
            outcome = erasure.complete(self.ledger, erasure_id)
            outcome.status = "resumed"
            last = number == len(pending)
            done.append(erasure.finish(self.ledger, outcome, purge=purge and last, sign=last))
        return [outcome.as_dict() for outcome in done]

    def purge(self, project: str) -> dict[str, Any]:
        from audit import erasure

        report = erasure.purge.purge(self.ledger.store).as_dict()
        return {"purge": report, "checkpoint": erasure.checkpoint(self.ledger)}

    def erasures(self, project: str) -> list[dict[str, Any]]:
        from audit import erasure

        return erasure.erasures(self.ledger, project)

    def erasure_certificate(self, project: str, erasure: str) -> dict[str, Any]:
        from audit import erasure as erasures

        return erasures.certify(self.ledger, project, erasure)

    def remediations(self, project: str, status: str | None = None) -> list[dict[str, Any]]:
        from audit import erasure

        return erasure.remediations(self.ledger, project, status)

    def erased_records(self, project: str, records: Sequence[str | int]) -> list[bool]:
        from audit import erasure

        return erasure.erased_keys(self.ledger, project, records)

    def subject_report(self, project: str, subject: str | int) -> dict[str, Any]:
        from audit.reports.subject import subject_report

        return subject_report(self.ledger, project, subject)

    def close(self) -> None:
        self.ledger.close()
