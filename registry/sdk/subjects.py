"""Personal data and its erasure (GDPR): the vault, erasing a data subject, remediation
flags, and what the ledger holds on a subject."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from registry import writes
from registry.sdk.session import Session
from registry.sdk.values import checked_key, checked_keys, plain


class Subjects(Session):
    """The personal-data and erasure calls of a ``Registry``."""

    def store_subject_data(self, subject: str | int, attributes: Mapping[str, Any]) -> str:
        """Put personal attributes of a data subject in the encrypted vault; return the entry id."""
        item = writes.subject_data_item(self, subject, attributes)
        self._append([item])
        return item.event_id

    def subject_data(self, subject: str | int) -> list[dict[str, Any]]:
        """Decrypt what the vault holds for a data subject."""
        self.flush()
        return self.backend.subject_data(self.project, checked_key(subject, "subject"))

    def erase(
        self,
        subject: str | int,
        *,
        dry_run: bool = False,
        retain: Sequence[Mapping[str, str]] = (),
        purge: bool = True,
        sign: bool = True,
    ) -> dict[str, Any]:
        """Erase data subject S everywhere (``docs/gdpr.md``); ``dry_run`` returns the
        plan and changes nothing. ``retain`` lists affected model versions kept in
        service (``{"model", "justification", "approver"}``, model ``"*"`` for all);
        every other one is flagged ``retrain-required``. ``purge`` and ``sign``
        (physical purge, a checkpoint) may wait for the end of a batch (``purge()``)."""
        self.flush()
        return self.backend.erase(
            self.project,
            checked_key(subject, "subject"),
            actor=self.actor,
            dry_run=dry_run,
            retain=[dict(rule) for rule in retain],
            purge=purge,
            sign=sign,
        )

    def resume_erasures(self, *, purge: bool = True) -> list[dict[str, Any]]:
        """Complete every erasure of the project that was interrupted."""
        return self.backend.resume_erasures(self.project, purge=purge)

    def purge(self) -> dict[str, Any]:
        """Physically purge what erasures deleted, and sign a checkpoint (after a batch)."""
        return self.backend.purge(self.project)

    def subject_report(self, subject: str | int) -> dict[str, Any]:
        """Everything held on a data subject, where it went and which models and
        predictions used it (GDPR Art. 15); ``audit.reports.subject``."""
        self.flush()
        return self.backend.subject_report(self.project, checked_key(subject, "subject"))

    def erasures(self) -> list[dict[str, Any]]:
        """The project's erasures, oldest first."""
        return self.backend.erasures(self.project)

    def erasure_certificate(self, erasure: str) -> dict[str, Any]:
        """The signed certificate (a DSSE envelope) of a completed erasure."""
        return self.backend.erasure_certificate(self.project, erasure)

    def remediations(self, status: str | None = None) -> list[dict[str, Any]]:
        """Remediation flags on model versions; ``status="retrain-required"``: the open ones."""
        self.flush()
        return self.backend.remediations(self.project, status)

    def erased_records(self, records: Iterable[str | int]) -> set[str | int]:
        """The record keys among ``records`` that an erasure erased: drop them before
        retraining a flagged model."""
        keys = checked_keys(plain(list(records)), "records")
        gone = self.backend.erased_records(self.project, keys)
        return {k for k, erased in zip(keys, gone, strict=True) if erased}
