"""The pages of the web interface: sign-in and sign-out, home, the event feed, search.

Each page that shows data is for a signed-in session (``registry.sessions``): its key
is looked up on every request and the page's permission decided as the API decides
it (``registry.auth.decide``), and the decision, allowed or denied, goes to the access
trail with the page's action (``web.home``, ``web.search``, ...), as the API's
requests do. A request without a session cookie is sent to the sign-in page and
writes nothing; a cookie that opens no session, and a failed sign-in, count as failed
authentications within the API's bounds (``registry.api.gate.FailureLimiter``).

The pages render the typed answers of ``registry.services`` (the API's own), with
Jinja2 templates escaping every value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from audit import checkpoints as cps
from audit.answers import CheckpointAnswer
from lineage import overview
from registry import auth, services, sessions
from registry.api.gate import FailureLimiter, trail_resource
from registry.errors import LedgerError
from registry.ledger import Ledger
from registry.settings import Settings
from registry.tracing import current_trace_id
from registry.web import security
from registry.web.security import SESSION_COOKIE, SIGN_IN_COOKIE

STATIC_DIRECTORY = Path(__file__).resolve().parent / "static"
#: The navigation: every page of the interface a signed-in key may open from anywhere,
#: with the permission it needs (a session sees the pages its role may open).
NAVIGATION: list[tuple[str, str, str]] = [
    ("Home", "/", "read"),
    ("Search", "/search", "read"),
    ("Lineage", "/lineage", "read"),
]
#: Events the home page lists, and the most the feed adds at a time.
FEED_SHOWN = 20
SEARCH_PAGE = 25
_SIGN_IN_FORM_SECONDS = 3600
#: Each route: the permission it needs and the action its trail entries record
#: (docs/ui.md lists them; a test keeps the two equal). ``none``: open, nothing
#: recorded; ``key``: takes an API key; ``session``: any signed-in session.
ACCESS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/sign-in"): ("none", "—"),
    ("POST", "/sign-in"): ("key", "web.sign_in"),
    ("POST", "/sign-out"): ("session", "web.sign_out"),
    ("GET", "/"): ("read", "web.home"),
    ("GET", "/feed"): ("audit", "web.feed"),
    ("GET", "/search"): ("read", "web.search"),
    ("GET", "/lineage"): ("read", "web.lineage"),
    ("GET", "/lineage/graph"): ("read", "web.lineage_graph"),
    ("GET", "/lineage/expand"): ("read", "web.lineage_expand"),
}

templates = Environment(
    loader=PackageLoader("registry.web", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)

#: The kinds of node that have a page (``registry.web.entities``).
PAGE_KINDS = ("dataset", "run", "model", "deployment")


def node_href(node: str) -> str:
    """The path of ``node``'s page: ``/node?id=`` and the id, URL-encoded."""
    return "/node?" + urlencode({"id": node})


def has_page(node: str) -> bool:
    """Whether ``node`` is of a kind with a page (OpenLineage's jobs have one too)."""
    kind, _, rest = node.partition(":")
    return kind in PAGE_KINDS or (kind == "job" and ":" in rest)


templates.globals.update(node_href=node_href, has_page=has_page)


# --- who is signed in -----------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """A signed-in session, as the pages use it."""

    session: sessions.WebSession
    token: str

    @property
    def key(self) -> auth.ApiKey:
        return self.session.key

    @property
    def project(self) -> str:
        return self.session.project

    @property
    def csrf(self) -> str:
        return sessions.csrf_token(self.token)

    def may(self, permission: str) -> bool:
        return permission in self.key.permissions


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def _limits(request: Request) -> sessions.Limits:
    settings: Settings = request.app.state.settings
    return sessions.Limits(settings.web_idle_seconds, settings.web_absolute_seconds)


def _source(request: Request) -> str:
    return (request.client.host if request.client is not None else "unknown")[:300]


def _record(
    request: Request,
    *,
    actor: str,
    project: str | None,
    action: str,
    status: int,
    reason: str,
    resource: str | None = None,
) -> None:
    """Append the decision about this request to the access trail (durable on return)."""
    recorder: auth.TrailRecorder = request.app.state.trail
    recorder.record(
        auth.AccessEntry(
            actor=actor,
            project=project,
            action=action,
            resource=resource
            if resource is not None
            else trail_resource(request.url.path, request.url.query),
            source=_source(request),
            outcome="allow" if status == 200 else "deny",
            status=status,
            reason=reason[:500],
            trace_id=current_trace_id(),
        )
    )


def _failed(request: Request, *, actor: str, action: str, reason: str) -> bool:
    """Record a failed authentication within the limiter's bounds: whether it was
    recorded (False: the address is over its bound, answer 429)."""
    limiter: FailureLimiter = request.app.state.failures
    admitted, summary = limiter.admit(_source(request))
    if summary is not None:
        request.app.state.trail.record(summary)
    if admitted:
        _record(request, actor=actor, project=None, action=action, status=401, reason=reason)
    return admitted


def _summary_due(request: Request) -> None:
    limiter: FailureLimiter = request.app.state.failures
    summary = limiter.due()
    if summary is not None:
        request.app.state.trail.record(summary)


def signed_in(
    request: Request,
    page: str,
    *,
    method: str = "GET",
    form: dict[str, str] | None = None,
    renew: bool = True,
) -> Viewer | Response:
    """The session of the request, allowed the permission of ``method page`` (recorded
    as its action, ``ACCESS``), or the answer to give instead: to the sign-in page
    without a cookie (nothing recorded), the sign-in page saying why with a cookie
    that opens no session (a failed authentication), the 403 page for a role without
    the permission. A ``POST`` is allowed only with the session's CSRF token in its
    ``form`` (a refusal recorded as the others are)."""
    permission, action = ACCESS[(method, page)]
    token = request.cookies.get(SESSION_COOKIE)
    if token is None:
        if method != "GET":
            return RedirectResponse("/sign-in", status_code=303)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/sign-in?" + urlencode({"next": target}), status_code=303)
    checked = sessions.check(_ledger(request).store, token, _limits(request), renew=renew)
    if checked.session is None:
        actor = checked.key_id or "anonymous"
        if not _failed(request, actor=actor, action=action, reason=checked.reason):
            return _too_many(request)
        # Signed in again, the browser goes on to the page it asked for.
        asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        answer = sign_in_page(
            request,
            status=401,
            message=checked.reason,
            next_path=asked if method == "GET" else "/",
        )
        security.clear_cookie(answer, request, SESSION_COOKIE)
        return answer
    viewer = Viewer(checked.session, token)
    decision = auth.decide(
        viewer.key, project=viewer.project, permission=permission, had_token=True
    )
    if (
        decision.allowed
        and method != "GET"
        and not sessions.csrf_matches(token, (form or {}).get("csrf"))
    ):
        decision = auth.Decision(
            False, 403, "the form's CSRF token is missing or wrong: send it from this site's page"
        )
    _summary_due(request)
    _record(
        request,
        actor=viewer.key.key_id,
        project=viewer.project,
        action=action,
        status=decision.status,
        reason=decision.reason,
    )
    if not decision.allowed:
        return error_page(request, decision.status, decision.reason, viewer=viewer)
    return viewer


def viewer_of(request: Request) -> Viewer | None:
    """The live session of the request, if any, for a page that records nothing (an
    error page's navigation)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not sessions.well_formed(token):
        return None
    assert token is not None
    checked = sessions.check(_ledger(request).store, token, _limits(request))
    return None if checked.session is None else Viewer(checked.session, token)


# --- rendering ------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    viewer: Viewer | None = None,
    title: str,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered in the layout (escaping every value)."""
    page = page_html(request, template, viewer=viewer, title=title, **context)
    return HTMLResponse(page, status_code=status)


def page_html(
    request: Request, template: str, *, viewer: Viewer | None, title: str, **context: Any
) -> str:
    """The text of ``template`` rendered in the layout (escaping every value)."""
    return templates.get_template(template).render(
        viewer=viewer,
        title=title,
        navigation=[(label, href) for label, href, need in NAVIGATION if viewer.may(need)]
        if viewer is not None
        else [],
        path=request.url.path,
        **context,
    )


def error_page(
    request: Request, status: int, message: str, *, viewer: Viewer | None = None
) -> HTMLResponse:
    """The error page of ``status`` saying ``message``."""
    titles = {
        400: "The request was refused",
        403: "Not allowed",
        404: "Not found",
        405: "Method not allowed",
        409: "Not yet possible",
        413: "Too large",
        429: "Too many requests",
        500: "Server error",
    }
    return render(
        request,
        "error.html",
        status=status,
        viewer=viewer,
        title=titles.get(status, "Error"),
        status_code=status,
        message=message,
    )


def _too_many(request: Request) -> HTMLResponse:
    answer = error_page(
        request,
        429,
        "Too many failed sign-ins from this address: wait a minute, then sign in with a "
        "valid API key.",
    )
    answer.headers["Retry-After"] = str(int(request.app.state.failures.window))
    return answer


def sign_in_page(
    request: Request, *, status: int = 200, message: str | None = None, next_path: str = "/"
) -> HTMLResponse:
    """The sign-in form, with its form token in its cookie and hidden field: the
    browser's own, while it has one (the forms of several tabs then all work), else a
    fresh one."""
    held = request.cookies.get(SIGN_IN_COOKIE)
    form_token = held if sessions.well_formed(held) and held else security.new_form_token()
    answer = render(
        request,
        "sign_in.html",
        status=status,
        title="Sign in",
        message=message,
        form_token=form_token,
        next_path=security.local_path(next_path),
    )
    security.set_cookie(answer, request, SIGN_IN_COOKIE, form_token, _SIGN_IN_FORM_SECONDS)
    return answer


async def posted_form(request: Request, **options: Any) -> dict[str, str] | Response:
    """The fields of a form posted from this site (``security.read_form`` with
    ``options``), or the error page to answer: 403 for a form from another site, 413
    for one too large, 400 for a body that is not a form."""
    foreign = security.foreign_origin(request)
    if foreign is not None:
        return error_page(request, 403, foreign)
    try:
        return await security.read_form(request, **options)
    except security.FormTooLarge as exc:
        return error_page(request, 413, str(exc))
    except security.NotAForm as exc:
        return error_page(request, 400, str(exc))


# --- sign-in and sign-out -------------------------------------------------------------


@router.get("/sign-in")
def sign_in_form(request: Request) -> Response:
    """The sign-in form (nothing recorded: it shows no data)."""
    return sign_in_page(request, next_path=request.query_params.get("next", "/"))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Exchange an API key for a session: the key checked as the API checks it, a new
    session token in the cookie, the old session (if any) ended."""
    form = await posted_form(request)
    if isinstance(form, Response):
        return form
    next_path = security.local_path(form.get("next"))
    if not security.same_token(request.cookies.get(SIGN_IN_COOKIE), form.get("csrf")):
        return sign_in_page(
            request,
            status=403,
            message="The sign-in form had expired or came from elsewhere: sign in again here.",
            next_path=next_path,
        )
    answer: Response = await run_in_threadpool(_sign_in, request, form, next_path)
    return answer


def _sign_in(request: Request, form: dict[str, str], next_path: str) -> Response:
    store = _ledger(request).store
    token = form.get("key", "").strip()
    key = auth.verify_token(store, token) if token else None
    if key is None or key.revoked_at is not None:
        if not token:
            reason = "no API key was entered: paste a key that 'mlledger keys create' printed"
        elif key is None:
            reason = (
                "unknown or malformed API key: expected a key mll_<key id>_<secret> as "
                "'mlledger keys create' printed it"
            )
        else:
            reason = f"API key {key.key_id} was revoked at {key.revoked_at}"
        actor = key.key_id if key is not None else "anonymous"
        if not _failed(request, actor=actor, action=ACCESS[("POST", "/sign-in")][1], reason=reason):
            return _too_many(request)
        return sign_in_page(request, status=401, message=reason, next_path=next_path)
    old = request.cookies.get(SESSION_COOKIE)
    if old is not None:
        sessions.end(store, old)  # never two sessions for one browser
    limits = _limits(request)
    _, session_token = sessions.start(store, key, limits)
    _summary_due(request)
    _record(
        request,
        actor=key.key_id,
        project=key.project,
        action=ACCESS[("POST", "/sign-in")][1],
        status=200,
        reason=f"role {key.role} signed in",
        resource=trail_resource(request.url.path, ""),
    )
    answer = RedirectResponse(next_path, status_code=303)
    security.set_cookie(answer, request, SESSION_COOKIE, session_token, int(limits.absolute))
    security.clear_cookie(answer, request, SIGN_IN_COOKIE)
    return answer


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session: its row deleted, its cookie cleared. Only from this site's own
    form (Origin and CSRF token checked)."""
    form = await posted_form(request)
    if isinstance(form, Response):
        return form
    answer: Response = await run_in_threadpool(_sign_out, request, form)
    return answer


def _sign_out(request: Request, form: dict[str, str]) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    store = _ledger(request).store
    checked = (
        sessions.check(store, token, _limits(request))
        if token is not None
        else sessions.Checked(None, "no session")
    )
    if checked.session is None or token is None:
        answer: Response = RedirectResponse("/sign-in", status_code=303)
        security.clear_cookie(answer, request, SESSION_COOKIE)
        return answer
    viewer = Viewer(checked.session, token)
    if not sessions.csrf_matches(token, form.get("csrf")):
        reason = (
            "the sign-out form's CSRF token is missing or wrong: sign out from this site's page"
        )
        _record(
            request,
            actor=viewer.key.key_id,
            project=viewer.project,
            action=ACCESS[("POST", "/sign-out")][1],
            status=403,
            reason=reason,
        )
        return error_page(request, 403, reason, viewer=viewer)
    sessions.end(store, token)
    _record(
        request,
        actor=viewer.key.key_id,
        project=viewer.project,
        action=ACCESS[("POST", "/sign-out")][1],
        status=200,
        reason=f"role {viewer.key.role} signed out",
    )
    answer = RedirectResponse("/sign-in", status_code=303)
    security.clear_cookie(answer, request, SESSION_COOKIE)
    return answer


# --- home and the event feed ----------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    """The project's counts, the projects it may read, its newest events (a live
    feed) and the log's checkpoint: the last two for keys that may audit."""
    viewer = signed_in(request, "/")
    if not isinstance(viewer, Viewer):
        return viewer
    ledger = _ledger(request)
    counts = services.counts(ledger, viewer.project)
    granting = sorted(services.readable(ledger, viewer.project) - {viewer.project})
    feed = checkpoint = None
    if viewer.may("audit"):
        feed = services.feed(ledger, viewer.project, limit=FEED_SHOWN)
        with ledger.store.read() as conn:
            found = cps.latest_checkpoint(conn, "events")
        if found is not None:
            checkpoint = CheckpointAnswer.model_validate(found.as_dict())
    settings: Settings = request.app.state.settings
    return render(
        request,
        "home.html",
        viewer=viewer,
        title="Home",
        counts=counts,
        granting=granting,
        feed=feed,
        feed_after=max((e["position"] for e in feed.events), default=-1) if feed else -1,
        feed_interval_ms=int(settings.web_feed_seconds * 1000),
        feed_lookback=overview.FEED_LOOKBACK,
        checkpoint=checkpoint,
    )


@router.get("/feed")
def feed_rows(request: Request) -> Response:
    """The project's events after ``?after=POSITION``, newest first, as rows of the
    home page's feed table (what its script adds)."""
    # The home page's script asks every few seconds: that is not use of the session.
    viewer = signed_in(request, "/feed", renew=False)
    if not isinstance(viewer, Viewer):
        return viewer
    raw = request.query_params.get("after", "-1")
    try:
        after = int(raw)
    except ValueError:
        return error_page(
            request,
            400,
            f"after {raw[:40]!r} is not a position: expected a whole number",
            viewer=viewer,
        )
    try:
        feed = services.feed(_ledger(request), viewer.project, after=after, limit=FEED_SHOWN)
    except LedgerError as exc:
        return error_page(request, exc.status, str(exc), viewer=viewer)
    return render(request, "feed_rows.html", viewer=viewer, title="Events", feed=feed)


# --- search ---------------------------------------------------------------------------

#: The kinds a search may look for, with their names on the page.
KIND_NAMES = {
    "dataset": "Datasets",
    "model": "Models",
    "run": "Runs",
    "deployment": "Deployments",
    "job": "OpenLineage jobs",
}


@router.get("/search")
def search(request: Request) -> Response:
    """Names of the project's datasets, models, runs, deployments and OpenLineage jobs
    holding ``?q=``, filtered by ``?type=`` (repeatable), ``?page=`` of them."""
    viewer = signed_in(request, "/search")
    if not isinstance(viewer, Viewer):
        return viewer
    params = request.query_params
    text = params.get("q", "")
    kinds = tuple(params.getlist("type"))
    raw_page = params.get("page", "1")
    answer = None
    problem = None
    status = 200
    try:
        page = int(raw_page)
        if page < 1:
            raise ValueError
    except ValueError:
        page, problem, status = 1, f"page {raw_page[:40]!r} is not a page: expected 1, 2, ...", 400
    if problem is None and text.strip():
        try:
            answer = services.search(
                _ledger(request),
                viewer.project,
                text,
                kinds=kinds or tuple(KIND_NAMES),
                offset=(page - 1) * SEARCH_PAGE,
                limit=SEARCH_PAGE,
            )
        except LedgerError as exc:
            problem, status = str(exc), exc.status
    chosen = [k for k in KIND_NAMES if k in kinds]

    def page_link(number: int) -> str:
        query = [("q", text)] + [("type", k) for k in chosen] + [("page", str(number))]
        return "/search?" + urlencode(query)

    pages = 0
    if answer is not None:
        pages = max(1, -(-answer.total // SEARCH_PAGE))
    return render(
        request,
        "search.html",
        status=status,
        viewer=viewer,
        title="Search",
        text=text,
        chosen=chosen,
        kind_names=KIND_NAMES,
        answer=answer,
        problem=problem,
        page=page,
        pages=pages,
        previous_link=page_link(page - 1) if answer is not None and page > 1 else None,
        next_link=page_link(page + 1) if answer is not None and page < pages else None,
    )
