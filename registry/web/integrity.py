"""The audit pages: the log's signed checkpoints, verifying the whole log now (its
progress shown as it goes), the public key and proof bundles to download, and the
project's access trail with filters.

The permissions are the API's: the checkpoints, proofs and trail are ``audit``
(roles ``auditor`` and ``admin``), the public key ``read``. A proof bundle is served
only for an event or trail entry of the session's project, as
``GET /api/v1/projects/{p}/audit/proofs/{index}`` serves it.

Verifying is ``mlledger audit verify`` run by the server (``audit.verify.verify``:
both trees recomputed from storage, every checkpoint's signature checked with the
server's key, the consistency between checkpoints). Its page is sent as the work goes:
the head at once, a line of progress at most every ``STEP_SECONDS`` (the stylesheet
shows the newest one only, so no script is needed), then the report. One
verification runs at a time among the server's processes on a host (``VERIFY_LOCK``);
a second one asked meanwhile is told to wait (429). A browser that goes away stops it
at its next step.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from audit import checkpoints as cps
from audit.checkpoints import sync_tree
from audit.note import VerifierKey
from audit.proofs import make_bundle
from audit.trail import TrailFilter, search_trail
from audit.tree import EVENTS, TRAIL, leaf_count
from audit.verify import VerifyReport, verify
from registry.errors import LedgerError, NotFound
from registry.settings import Settings, key_directory
from registry.store import Store
from registry.web.pages import (
    ACCESS,
    NAVIGATION,
    Viewer,
    _ledger,
    error_page,
    page_html,
    posted_form,
    render,
    router,
    signed_in,
    templates,
)

ACCESS.update(
    {
        ("GET", "/audit"): ("audit", "web.audit"),
        ("POST", "/audit/verify"): ("audit", "web.audit.verify"),
        ("GET", "/audit/proof"): ("audit", "web.audit.proof"),
        ("GET", "/audit/public-key"): ("read", "web.audit.public_key"),
        ("GET", "/audit/trail"): ("audit", "web.audit.trail"),
    }
)
NAVIGATION.extend([("Audit", "/audit", "audit"), ("Access trail", "/audit/trail", "audit")])

#: Checkpoints a page lists, and trail entries.
CHECKPOINTS_SHOWN = 25
TRAIL_SHOWN = 50
#: The most seqs of the trail (every project's entries) one page looks through for its
#: filter's matches, so a filter that matches little costs a bounded read; the next
#: page goes on from there.
TRAIL_WINDOW = 100_000
#: The most often a verification's page is sent a line of progress.
STEP_SECONDS = 0.25
#: How often the page's sender looks for the verification's news.
_POLL_SECONDS = 0.05
#: The longest filter texts the trail page takes (the trail's own column bounds).
_ACTOR_MAX, _ACTION_MAX = 300, 64
_INDEX_MAX = 2**62
#: The tree names as the pages say them.
TREE_TITLES = {EVENTS.name: "event log", TRAIL.name: "access trail"}
#: The file whose lock lets one verification at a time run among the server's
#: processes on a host (in the ledger's key directory): it reads every row of the store.
VERIFY_LOCK = "verify.lock"
#: Processes that recompute a large log's entries: this one and one started for it.
VERIFY_WORKERS = 2

log = logging.getLogger("mlledger.web")


# --- checkpoints ------------------------------------------------------------------------


@router.get("/audit")
def audit_page(request: Request) -> Response:
    """Both trees' newest checkpoints and sizes, a page of one tree's checkpoints (newest
    first), the verify button, the public key and the proof form."""
    viewer = signed_in(request, "/audit")
    if not isinstance(viewer, Viewer):
        return viewer
    try:
        tree = _tree(request)
        before = _whole(request.query_params.get("before"), "before", "a checkpoint number")
    except ValueError as exc:
        return error_page(request, 400, str(exc), viewer=viewer)
    store = _ledger(request).store
    with store.read() as conn:
        trees = [
            {
                "name": spec.name,
                "title": TREE_TITLES[spec.name],
                "size": leaf_count(conn, spec),
                "latest": cps.latest_checkpoint(conn, spec.name),
            }
            for spec in (EVENTS, TRAIL)
        ]
        listed = cps.newest_checkpoints(conn, tree, before=before, limit=CHECKPOINTS_SHOWN + 1)
    return render(
        request,
        "audit.html",
        viewer=viewer,
        title="Audit",
        trees=trees,
        tree=tree,
        checkpoints=listed[:CHECKPOINTS_SHOWN],
        older=listed[CHECKPOINTS_SHOWN - 1].seq if len(listed) > CHECKPOINTS_SHOWN else None,
        key=_public_key(store, request.app.state.settings),
    )


def _tree(request: Request) -> str:
    """The tree the query names (``events`` unless it says ``access``); ValueError
    saying what was wrong when it names another."""
    tree = request.query_params.get("tree", EVENTS.name)
    if tree not in TREE_TITLES:
        raise ValueError(f"tree {tree[:40]!r} is not a tree: expected events or access")
    return tree


def _whole(text: str | None, name: str, what: str) -> int | None:
    """``text`` as a whole number from 0 to 2**62, or None when absent or empty;
    ValueError saying that ``name`` must be ``what`` when it is not one."""
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > _INDEX_MAX:
        raise ValueError(f"{name} must be {what}: a whole number of 0 or more")
    return int(text)


def _public_key(store: Store, settings: Settings) -> VerifierKey | None:
    """The verifier key of the server's signing key, or None before it has one."""
    if not cps.key_path(store.url, settings.signing_key).exists():
        return None
    key, _, _ = cps.load_signing_key(store.url, settings.signing_key)
    return key.verifier()


@router.get("/audit/public-key")
def public_key(request: Request) -> Response:
    """The verifier key that checks the checkpoints (C2SP note verifier format), as a file
    to download, as ``GET /api/v1/projects/{p}/audit/public-key`` answers it."""
    viewer = signed_in(request, "/audit/public-key")
    if not isinstance(viewer, Viewer):
        return viewer
    key = _public_key(_ledger(request).store, request.app.state.settings)
    if key is None:
        return error_page(
            request,
            404,
            "The server has no signing key yet: it creates one when it signs its first checkpoint.",
            viewer=viewer,
        )
    return Response(
        key.to_string() + "\n",
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="mlledger-public-key.txt"'},
    )


@router.get("/audit/proof")
def proof(request: Request) -> Response:
    """The proof bundle of an event (``tree=events``, by position) or an access-trail entry
    (``tree=access``, by seq) of the session's project, as a file to download: the entry,
    its inclusion proof and the newest checkpoint (``mlledger audit verify-proof`` checks
    it offline)."""
    viewer = signed_in(request, "/audit/proof")
    if not isinstance(viewer, Viewer):
        return viewer
    try:
        tree = _tree(request)
        what = "a position in the log" if tree == EVENTS.name else "an access-trail seq"
        index = _whole(request.query_params.get("index"), "index", what)
        if index is None:
            raise ValueError(f"index must be {what}: a whole number of 0 or more")
    except ValueError as exc:
        return error_page(request, 400, str(exc), viewer=viewer)
    try:
        bundle = make_bundle(_ledger(request).store, index, tree, project=viewer.project)
    except NotFound:
        # One answer whether the entry is missing or another project's.
        entry = "event at position" if tree == EVENTS.name else "access-trail entry"
        return error_page(
            request, 404, f"There is no {entry} {index} in this project.", viewer=viewer
        )
    except LedgerError as exc:
        return error_page(request, exc.status, str(exc), viewer=viewer)
    return Response(
        json.dumps(bundle, indent=2, sort_keys=True).encode() + b"\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="proof-{tree}-{index}.json"'},
    )


# --- verifying now ----------------------------------------------------------------------

_STEP_MARK = "<!--verify-steps-->"


@router.post("/audit/verify")
async def verify_now(request: Request) -> Response:
    """Verify the whole log now: the page is sent as the verification goes (its progress,
    then its report)."""
    form = await posted_form(request)
    if isinstance(form, Response):
        return form
    viewer = await run_in_threadpool(signed_in, request, "/audit/verify", method="POST", form=form)
    if not isinstance(viewer, Viewer):
        return viewer
    store = _ledger(request).store
    if await run_in_threadpool(_busy, store):
        answer = error_page(request, 429, _BUSY, viewer=viewer)
        answer.headers["Retry-After"] = "10"
        return answer
    page = await run_in_threadpool(
        page_html, request, "verify.html", viewer=viewer, title="Verifying the log", mark=_STEP_MARK
    )
    head, _, tail = page.partition(_STEP_MARK)
    return StreamingResponse(
        _verification(request, head, tail), media_type="text/html; charset=utf-8"
    )


_BUSY = (
    "A verification is already running on this server: wait for it to finish (its page "
    "shows the progress), then verify again."
)


# --- one at a time ----------------------------------------------------------------------


def _take_turn(store: Store) -> int | None:
    """The right to verify ``store``'s log: an open file descriptor holding an exclusive
    lock on ``VERIFY_LOCK`` in the ledger's key directory (every process of the server
    on this host sees the same file), or None while another verification holds it."""
    directory = key_directory(store.url)
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory / VERIFY_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _end_turn(descriptor: int) -> None:
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)


def _busy(store: Store) -> bool:
    """Whether a verification of ``store``'s log is running now."""
    descriptor = _take_turn(store)
    if descriptor is None:
        return True
    _end_turn(descriptor)
    return False


# --- the verification and its page -----------------------------------------------------


class _Stopped(Exception):
    """The page of a verification was closed: the verification stops."""


async def _verification(request: Request, head: str, tail: str) -> AsyncIterator[str]:
    """The page: its head, the verification's steps as they come, its report, its tail."""
    yield head
    store = _ledger(request).store
    turn = await run_in_threadpool(_take_turn, store)
    if turn is None:  # another one began since the request was taken
        yield _fragment("verify_busy.html", message=_BUSY)
        yield tail
        return
    news: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()
    settings: Settings = request.app.state.settings
    worker = threading.Thread(
        target=_verify_in_thread,
        args=(store, settings, news, stop, turn),
        name="mlledger-web-verify",
        daemon=True,
    )
    worker.start()  # it ends the turn when it ends
    try:
        while True:
            if news.empty():
                if not worker.is_alive() and news.empty():
                    yield _fragment("verify_failed.html", message=_BROKEN)
                    break
                await asyncio.sleep(_POLL_SECONDS)
                continue
            kind, value = news.get()
            if kind == "step":
                tree, done, total = value
                yield _fragment("verify_step.html", tree=TREE_TITLES[tree], done=done, total=total)
            elif kind == "report":
                yield _fragment("verify_report.html", report=value, titles=TREE_TITLES)
                break
            else:
                yield _fragment("verify_failed.html", message=value)
                break
        yield tail
    finally:
        stop.set()  # the browser went away (or the page is done): the thread stops


_BROKEN = "The verification could not run to its end: what happened is in the server's log."


def _fragment(template: str, **context: Any) -> str:
    return templates.get_template(template).render(**context)


def _verify_in_thread(
    store: Store,
    settings: Settings,
    news: queue.SimpleQueue[tuple[str, Any]],
    stop: threading.Event,
    turn: int,
) -> None:
    """Run the verification, telling ``news`` its steps (at most every ``STEP_SECONDS``,
    and each tree's first and last) and its report or what stopped it; end ``turn``."""
    last, told = 0.0, ("", -1)

    def progress(tree: str, done: int, total: int) -> None:
        nonlocal last, told
        if stop.is_set():
            raise _Stopped
        now = time.monotonic()
        if (tree, done) != told and (done in (0, total) or now - last >= STEP_SECONDS):
            last, told = now, (tree, done)
            news.put(("step", (tree, done, total)))

    try:
        sync_tree(store)
        report: VerifyReport = verify(
            store, _public_key(store, settings), workers=VERIFY_WORKERS, progress=progress
        )
        news.put(("report", report))
    except _Stopped:
        news.put(("failed", "The verification was stopped: its page was closed."))
    except LedgerError as exc:
        news.put(("failed", f"The verification could not run: {exc}"))
    except Exception:
        log.exception("the verification of the log failed")
        news.put(("failed", _BROKEN))
    finally:
        _end_turn(turn)


# --- the access trail -------------------------------------------------------------------


@router.get("/audit/trail")
def trail_page(request: Request) -> Response:
    """The project's access trail, newest first, filtered by key, action, outcome and
    dates; older entries a page at a time (each page looks through at most
    ``TRAIL_WINDOW`` entries)."""
    viewer = signed_in(request, "/audit/trail")
    if not isinstance(viewer, Viewer):
        return viewer
    query = request.query_params
    fields = {name: query.get(name, "").strip() for name in _TRAIL_FIELDS}
    try:
        where = _trail_filter(fields, query.get("before"))
    except ValueError as exc:
        return render(
            request, "trail.html", status=400, viewer=viewer, title="Access trail",
            fields=fields, entries=[], older=None, problem=str(exc), paged=False, covered=0,
            stopped=None, window=TRAIL_WINDOW,
        )  # fmt: skip
    store = _ledger(request).store
    found, floor = search_trail(
        store, viewer.project, where, limit=TRAIL_SHOWN + 1, window=TRAIL_WINDOW
    )
    with store.read() as conn:
        signed = cps.latest_checkpoint(conn, TRAIL.name)
    # The next page: from the last entry shown, or from where this search stopped.
    older = found[TRAIL_SHOWN - 1]["seq"] if len(found) > TRAIL_SHOWN else floor
    return render(
        request,
        "trail.html",
        viewer=viewer,
        title="Access trail",
        fields=fields,
        entries=found[:TRAIL_SHOWN],
        older=None if older is None else _older_link(fields, older),
        problem=None,
        paged=where.before is not None,
        covered=0 if signed is None else signed.size,
        stopped=None if len(found) > TRAIL_SHOWN else floor,
        window=TRAIL_WINDOW,
    )


_TRAIL_FIELDS = ("actor", "action", "outcome", "from", "to")
#: A day as the form's date fields send it (``date.fromisoformat`` takes other forms).
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _trail_filter(fields: dict[str, str], before: str | None) -> TrailFilter:
    """The filter the trail form asks for; ValueError saying what is wrong with it."""
    for name, label, most in (
        ("actor", "the key id", _ACTOR_MAX),
        ("action", "the action", _ACTION_MAX),
    ):
        if len(fields[name]) > most:
            raise ValueError(f"{label} is {len(fields[name])} characters: expected at most {most}")
    if fields["outcome"] not in ("", "allow", "deny"):
        raise ValueError(f"outcome {fields['outcome'][:20]!r} is not one: expected allow or deny")
    days: dict[str, date | None] = {}
    for name in ("from", "to"):
        text = fields[name]
        try:
            if text and not _DAY.fullmatch(text):
                raise ValueError(text)
            days[name] = date.fromisoformat(text) if text else None
        except ValueError:
            raise ValueError(f"{name} {text[:40]!r} is not a date: expected YYYY-MM-DD") from None
    since, until = days["from"], days["to"]
    if since is not None and until is not None and until < since:
        raise ValueError(f"to ({until}) is before from ({since}): expected from on or before to")
    return TrailFilter(
        actor=fields["actor"] or None,
        action=fields["action"] or None,
        outcome=fields["outcome"] or None,
        since_at=None if since is None else since.isoformat(),
        # "to" is the whole day: entries before the next one.
        until_at=None if until is None or until == date.max else str(until + timedelta(days=1)),
        before=_whole(before, "before", "an access-trail seq"),
    )


def _older_link(fields: dict[str, str], seq: int) -> str:
    kept = {name: value for name, value in fields.items() if value}
    return "/audit/trail?" + urlencode({**kept, "before": seq})
