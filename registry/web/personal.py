"""The pages about people's data: who scored a record, a data subject's footprint, and
erasing a subject (plan, typed confirmation, certificate).

A record key or subject id is personal data: it travels only in the body of a
``POST`` from this site's own form (CSRF token and origin checked), never in a URL,
so it never reaches the access trail, a log or a span; the pages show pseudonymous
references only. The permissions are the API's: looking up a record is ``read``
(``POST /api/v1/projects/{p}/questions/scored``), a subject's footprint and its
erasure ``personal`` (roles ``dpo`` and ``admin``); the list of erasures and their
certificates, which hold no personal data, ``read``.

The erasure flow: the footprint page offers a plan (a dry run of the erasure: what
it would touch, nothing changed); the plan page asks to type the first characters
of the subject's erasure reference, and lets affected model versions be kept in
service with a justification and an approver; the erasure is then run exactly as
the API runs it (``registry.erasures.erase``) and its certificate offered for
download.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from registry import erasures, services
from registry.errors import LedgerError
from registry.web.pages import (
    ACCESS,
    NAVIGATION,
    Viewer,
    _ledger,
    error_page,
    posted_form,
    render,
    router,
    signed_in,
)

ACCESS.update(
    {
        ("GET", "/records"): ("read", "web.records"),
        ("POST", "/records"): ("read", "web.records.scored"),
        ("GET", "/subjects"): ("personal", "web.subjects"),
        ("POST", "/subjects"): ("personal", "web.subjects.footprint"),
        ("POST", "/subjects/plan"): ("personal", "web.erasures.plan"),
        ("POST", "/subjects/erase"): ("personal", "web.erasures.create"),
        ("GET", "/erasures"): ("read", "web.erasures"),
        ("GET", "/erasures/{erasure}/certificate"): ("read", "web.erasures.certificate"),
    }
)
NAVIGATION.extend(
    [
        ("Records", "/records", "read"),
        ("Subjects", "/subjects", "personal"),
        ("Erasures", "/erasures", "read"),
    ]
)

#: Rows a page lists of a long answer (the rest counted, never sent).
SHOWN = 200
#: Characters of the erasure reference typed to confirm an erasure.
CONFIRM_CHARS = 8
#: The longest record key or subject id the forms take (the API's bound).
KEY_MAX = 1024
#: Fields of the erasure form: the kept model versions come one checkbox each.
ERASE_FIELDS = 250
#: Bytes of the erasure form: a justification of 2,000 characters in any script (up
#: to 4 bytes each, percent-encoded 3 times over) and the model versions' ids fit.
ERASE_FORM_LIMIT = 64 * 1024


async def _answer_form(
    request: Request, answer: Callable[[Request, dict[str, str]], Response], **options: Any
) -> Response:
    """``answer`` to the form posted (in a worker thread: it reads the store), or the
    error page of a form refused before it is read (``pages.posted_form``)."""
    form = await posted_form(request, **options)
    if isinstance(form, Response):
        return form
    answered: Response = await run_in_threadpool(answer, request, form)
    return answered


def _key_field(form: dict[str, str], name: str) -> str | None:
    """The record key or subject id of the form, or None when missing."""
    value = form.get(name, "")
    return value if value.strip() else None


def _too_long(value: str, what: str) -> str | None:
    if len(value) > KEY_MAX:
        return f"the {what} is {len(value)} characters long: expected at most {KEY_MAX}"
    return None


def _records_page(
    request: Request, viewer: Viewer, *, status: int = 200, answer: Any = None,
    problem: str | None = None,
) -> Response:  # fmt: skip
    return render(
        request, "records.html", status=status, viewer=viewer, title="Records",
        answer=answer, problem=problem, shown=SHOWN,
    )  # fmt: skip


def _subject_page(
    request: Request, viewer: Viewer, *, status: int = 200, footprint: Any = None,
    subject: str = "", problem: str | None = None,
) -> Response:  # fmt: skip
    return render(
        request, "subject.html", status=status, viewer=viewer, title="Subjects",
        footprint=footprint, subject=subject, problem=problem, shown=SHOWN,
    )  # fmt: skip


# --- who scored a record ----------------------------------------------------------------


@router.get("/records")
def records_form(request: Request) -> Response:
    """The form asking who scored a record (the key goes in the body of a POST)."""
    viewer = signed_in(request, "/records")
    if not isinstance(viewer, Viewer):
        return viewer
    return _records_page(request, viewer)


@router.post("/records")
async def records_lookup(request: Request) -> Response:
    """Every time the record posted was scored: deployment, model version, time, output."""
    return await _answer_form(request, _records_lookup)


def _records_lookup(request: Request, form: dict[str, str]) -> Response:
    viewer = signed_in(request, "/records", method="POST", form=form)
    if not isinstance(viewer, Viewer):
        return viewer
    record = _key_field(form, "record")
    problem = (
        "no record key was entered: type the record's key as the model's caller sent it"
        if record is None
        else _too_long(record, "record key")
    )
    if problem is not None or record is None:
        return _records_page(request, viewer, status=400, problem=problem)
    try:
        answer = services.scored(_ledger(request), viewer.project, record=record)
    except LedgerError as exc:
        return _records_page(request, viewer, status=exc.status, problem=str(exc))
    return _records_page(request, viewer, answer=answer)


# --- a data subject: footprint, plan, erasure -------------------------------------------


@router.get("/subjects")
def subjects_form(request: Request) -> Response:
    """The form asking for a data subject's footprint (dpo and admin)."""
    viewer = signed_in(request, "/subjects")
    if not isinstance(viewer, Viewer):
        return viewer
    return _subject_page(request, viewer)


@router.post("/subjects")
async def subject_footprint(request: Request) -> Response:
    """Everything linked to the data subject posted, and the way to plan its erasure."""
    return await _answer_form(request, _footprint)


def _subject(request: Request, viewer: Viewer, form: dict[str, str]) -> str | Response:
    """The subject id of the form, or the page saying what is wrong with it."""
    subject = _key_field(form, "subject")
    problem = (
        "no subject id was entered: type the data subject's id as the ledger was given it"
        if subject is None
        else _too_long(subject, "subject id")
    )
    if problem is not None or subject is None:
        return _subject_page(request, viewer, status=400, problem=problem)
    return subject


def _footprint(request: Request, form: dict[str, str]) -> Response:
    viewer = signed_in(request, "/subjects", method="POST", form=form)
    if not isinstance(viewer, Viewer):
        return viewer
    subject = _subject(request, viewer, form)
    if isinstance(subject, Response):
        return subject
    try:
        footprint = services.footprint(_ledger(request), viewer.project, subject=subject)
    except LedgerError as exc:
        return _subject_page(request, viewer, status=exc.status, problem=str(exc))
    return _subject_page(request, viewer, footprint=footprint, subject=subject)


@router.post("/subjects/plan")
async def erasure_plan(request: Request) -> Response:
    """What erasing the subject posted would touch (a dry run: nothing changes), and the
    form that confirms it."""
    return await _answer_form(request, _plan)


def _dry_run(request: Request, viewer: Viewer, subject: str) -> dict[str, Any]:
    return erasures.erase(
        _ledger(request), viewer.project, subject, actor=f"key:{viewer.key.key_id}", dry_run=True
    )


def _reference(outcome: dict[str, Any]) -> str:
    """The erasure reference of an outcome's subject (``subject:<project>/<reference>``)."""
    return str(outcome["subject"]).rsplit("/", 1)[-1]


def _plan(request: Request, form: dict[str, str]) -> Response:
    viewer = signed_in(request, "/subjects/plan", method="POST", form=form)
    if not isinstance(viewer, Viewer):
        return viewer
    subject = _subject(request, viewer, form)
    if isinstance(subject, Response):
        return subject
    try:
        outcome = _dry_run(request, viewer, subject)
    except LedgerError as exc:
        return _subject_page(request, viewer, status=exc.status, problem=str(exc))
    return _plan_page(request, viewer, subject, outcome)


def _holds_data(outcome: dict[str, Any]) -> bool:
    """Whether a dry run found anything to erase."""
    plan = outcome.get("plan") or {}
    return bool(
        plan.get("records", {}).get("count")
        or plan.get("vault_entries")
        or plan.get("predictions", {}).get("count")
        or plan.get("events_to_redact")
    )


def _plan_page(
    request: Request,
    viewer: Viewer,
    subject: str,
    outcome: dict[str, Any],
    *,
    status: int = 200,
    problem: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    reference = _reference(outcome)
    kept = set((form or {}).get("keep", "").split("\n")) - {""}
    erased = None
    if not _holds_data(outcome):  # nothing left: say whether an erasure took it
        erased = services.footprint(_ledger(request), viewer.project, subject=subject).erased
    return render(
        request,
        "erasure_plan.html",
        status=status,
        viewer=viewer,
        title="Erasure plan",
        outcome=outcome,
        subject=subject,
        reference=reference,
        confirm_chars=CONFIRM_CHARS,
        problem=problem,
        holds_data=_holds_data(outcome),
        erased=erased,
        kept=kept,
        justification=(form or {}).get("justification", ""),
        approver=(form or {}).get("approver", ""),
        shown=SHOWN,
    )


@router.post("/subjects/erase")
async def erase(request: Request) -> Response:
    """Erase the subject posted, once the first characters of its erasure reference were
    typed to confirm; the outcome, with its certificate to download."""
    return await _answer_form(
        request, _erase, lists=frozenset({"keep"}), max_fields=ERASE_FIELDS, limit=ERASE_FORM_LIMIT
    )


def _erase(request: Request, form: dict[str, str]) -> Response:
    viewer = signed_in(request, "/subjects/erase", method="POST", form=form)
    if not isinstance(viewer, Viewer):
        return viewer
    subject = _subject(request, viewer, form)
    if isinstance(subject, Response):
        return subject
    ledger = _ledger(request)
    try:
        planned = _dry_run(request, viewer, subject)
    except LedgerError as exc:
        return _subject_page(request, viewer, status=exc.status, problem=str(exc))
    reference = _reference(planned)
    typed = form.get("confirm", "").strip()
    if planned["status"] == "planned" and typed != reference[:CONFIRM_CHARS]:
        return _plan_page(
            request, viewer, subject, planned, status=400, form=form,
            problem=f"the confirmation {typed[:40]!r} does not match: type the first "
            f"{CONFIRM_CHARS} characters of the erasure reference, {reference[:CONFIRM_CHARS]}",
        )  # fmt: skip
    kept = sorted(set(form.get("keep", "").split("\n")) - {""})
    rules = [
        {
            "model": model,
            "justification": form.get("justification", "").strip(),
            "approver": form.get("approver", "").strip(),
        }
        for model in kept
    ]
    if rules and not (rules[0]["justification"] and rules[0]["approver"]):
        return _plan_page(
            request, viewer, subject, planned, status=400, form=form,
            problem="model versions kept in service need a justification and an approver: "
            "fill in both, or untick them",
        )  # fmt: skip
    try:
        retain = services.retained(ledger, viewer.project, rules)
        outcome = erasures.erase(
            ledger, viewer.project, subject, actor=f"key:{viewer.key.key_id}", retain=retain
        )
    except LedgerError as exc:
        return _plan_page(
            request, viewer, subject, planned, status=exc.status, form=form, problem=str(exc)
        )
    return render(
        request, "erasure_done.html", viewer=viewer, title="Erasure", outcome=outcome,
        reference=_reference(outcome),
    )  # fmt: skip


# --- erasures and their certificates ------------------------------------------------------


@router.get("/erasures")
def erasure_list(request: Request) -> Response:
    """The project's erasures (references and counts, no personal data), newest first."""
    viewer = signed_in(request, "/erasures")
    if not isinstance(viewer, Viewer):
        return viewer
    listed = erasures.erasures(_ledger(request), viewer.project)
    newest = list(reversed(listed))
    return render(
        request, "erasures.html", viewer=viewer, title="Erasures", erasures=newest[:SHOWN],
        total=len(newest), shown=SHOWN,
    )  # fmt: skip


@router.get("/erasures/{erasure}/certificate")
def erasure_certificate(request: Request, erasure: str) -> Response:
    """The erasure's signed certificate (a DSSE envelope), as a file to download
    (``mlledger audit verify-certificate`` checks it)."""
    viewer = signed_in(request, "/erasures/{erasure}/certificate")
    if not isinstance(viewer, Viewer):
        return viewer
    if not _is_uuid(erasure):
        return error_page(
            request, 404, f"{erasure[:60]!r} is not an erasure id: expected a UUID", viewer=viewer
        )
    try:
        certificate = erasures.certificate(_ledger(request), viewer.project, erasure)
    except LedgerError as exc:
        return error_page(request, exc.status, str(exc), viewer=viewer)
    return Response(
        json.dumps(certificate, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8"),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="erasure-{erasure}.certificate.json"'
        },
    )


def _is_uuid(text: str) -> bool:
    parts = text.split("-")
    return (
        len(text) == 36
        and [len(p) for p in parts] == [8, 4, 4, 4, 12]
        and all(c in "0123456789abcdef" for p in parts for c in p)
    )
