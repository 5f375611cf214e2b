"""Personal data as a project asks about it: one function per service.

A subject's stored data, erasing a subject (with its purge and checkpoint), resuming
interrupted erasures, the purge on its own, the project's erasures, certificates and
remediation flags, whether record keys were erased, and the subject-access report.
The HTTP API's routes and ``registry.backend.LocalBackend`` (the SDK and CLI) call
these, so each answers and fails alike in process and over HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from audit import erasure
from registry.lazy import lazy_import
from registry.ledger import Ledger

if TYPE_CHECKING:
    from audit.reports import subject as subject_reports
else:
    # The report's templates load with it: only a command asking for one pays for them.
    subject_reports = lazy_import("audit.reports.subject")


class EraseOptions(TypedDict, total=False):
    """How an erasure goes about it: ``dry_run`` plans and changes nothing; ``retain``
    lists rules (``{"model", "justification", "approver"}``) keeping affected model
    versions in service; ``purge`` and ``sign`` run the physical purge and sign a
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


def subject_data(ledger: Ledger, project: str, subject: str | int) -> list[dict[str, Any]]:
    """The data stored for ``subject`` in the project's vault."""
    pseudonym = ledger.pseudonymizer(project).subject(subject)
    with ledger.store.read() as conn:
        return ledger.vault.get(conn, project, pseudonym)


def erase(
    ledger: Ledger,
    project: str,
    subject: str | int,
    *,
    actor: str,
    **options: Unpack[EraseOptions],
) -> dict[str, Any]:
    """Erase ``subject`` (or plan it, ``dry_run``), then purge and sign as chosen."""
    chosen = erase_options(options)
    outcome = erasure.erase(
        ledger,
        project,
        subject,
        actor=actor,
        retain=[erasure.Retain(**rule) for rule in chosen["retain"]],
        dry_run=chosen["dry_run"],
    )
    return erasure.finish(ledger, outcome, purge=chosen["purge"], sign=chosen["sign"]).as_dict()


def resume_erasures(ledger: Ledger, project: str, *, purge: bool = True) -> list[dict[str, Any]]:
    """Complete the project's interrupted erasures; the last one purges and signs."""
    pending = erasure.pending_erasures(ledger, project)
    done = []
    for number, erasure_id in enumerate(pending, start=1):
        outcome = erasure.complete(ledger, erasure_id)
        outcome.status = "resumed"
        last = number == len(pending)
        done.append(erasure.finish(ledger, outcome, purge=purge and last, sign=last))
    return [outcome.as_dict() for outcome in done]


def purge(ledger: Ledger) -> dict[str, Any]:
    """Physically purge what erasures deleted, and sign a checkpoint."""
    report = erasure.purge.purge(ledger.store).as_dict()
    return {"purge": report, "checkpoint": erasure.checkpoint(ledger)}


def erasures(ledger: Ledger, project: str) -> list[dict[str, Any]]:
    """The project's erasures (references and counts, never pseudonyms)."""
    return erasure.erasures(ledger, project)


def certificate(ledger: Ledger, project: str, erasure_id: str) -> dict[str, Any]:
    """The signed certificate (a DSSE envelope) of one of the project's erasures."""
    return erasure.certify(ledger, project, erasure_id)


def remediations(ledger: Ledger, project: str, status: str | None = None) -> list[dict[str, Any]]:
    """Remediation flags erasures put on the project's model versions."""
    return erasure.remediations(ledger, project, status)


def erased_records(ledger: Ledger, project: str, records: Sequence[str | int]) -> list[bool]:
    """Whether each record key was erased."""
    return erasure.erased_keys(ledger, project, records)


def subject_report(ledger: Ledger, project: str, subject: str | int) -> dict[str, Any]:
    """The subject-access report (GDPR Art. 15) of a data subject, as JSON."""
    return subject_reports.subject_report(ledger, project, subject)
