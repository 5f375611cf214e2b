"""The entity pages: one node of the ledger each, at ``/node?id=<node id>``.

A run, a dataset version, a model version or a deployment, rendered from the same typed
answers as the API's read routes of those nodes (``registry.services.run_details`` and
its siblings); a job (``job:<namespace>:<name>``: an OpenLineage job, or the job of the
project's runs) from Marquez's Job and its runs, as Marquez's read API answers them.
The page dispatches on the kind of the id; what users type where the API
takes it (``?model=clf@production``, ``?dataset=orders@latest``, ``?run=<uuid>``,
``?deployment=api``, an id ending ``@latest`` or naming a model's alias, an OpenLineage
``dataset:<namespace>:<name>`` or a deployment's ``job:``) is answered with a
redirect to the canonical ``/node?id=``, built from the id the ledger resolved, never
from what was typed. An unknown kind, a malformed id, a node that does not exist and a
node of a project the session's key may not read all answer the same 404 page.

``/node/dossier?id=<model version id>`` sends the model version's dossier (the API's
``reports/models/{model}``) as a download: its HTML carries its own inline styles,
which the interface's Content-Security-Policy forbids on a page it shows.

Charts are inline SVG drawn by the templates from numbers computed here (no script,
no inline style), each with a title and a data table under it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from audit import checkpoints as cps
from lineage import entities as answers_of
from lineage import queries
from registry import services
from registry.errors import InvalidNodeId, LedgerError, NotFound
from registry.ids import NodeId, openlineage_id
from registry.settings import Settings
from registry.web import pages
from registry.web.pages import Viewer, node_href

#: Each route: its permission and the action of its trail entries (docs/ui.md).
ACCESS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/node"): ("read", "web.node"),
    ("GET", "/node/dossier"): ("read", "web.dossier"),
}
pages.ACCESS.update(ACCESS)

#: The short forms a user may type, by the kind of node they name.
SHORT = ("dataset", "model", "run", "deployment")
#: The longest id or name taken (the API's node parameters take 600 characters); a
#: job's id may be longer: its namespace and a chain of parents' names (Marquez's read
#: API takes names of 3,072 characters).
ID_MAX = 600
JOB_ID_MAX = 4 + 3072 + 1 + 3072
#: What the 404 page says: the same whether the node does not exist or is another
#: project's, so that it confirms nothing.
NO_NODE = "There is no such node in this project (or this key may not read it)."
#: How many rows the lists of a page show at most.
SHOWN = 100

router = APIRouter(include_in_schema=False)


# --- charts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    count: int


@dataclass(frozen=True)
class Chart:
    """A chart's geometry in SVG user units: the templates draw it."""

    width: int
    height: int
    left: int
    bottom: int
    line: str
    dots: list[tuple[float, float]]
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]


WIDTH, HEIGHT, LEFT, TOP, RIGHT, BOTTOM = 640, 220, 64, 12, 16, 36


def _number(value: float) -> str:
    """A tick's label: short, whatever the magnitude."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _scale(low: float, high: float, size: float) -> tuple[float, float]:
    """Where the drawn span starts and units per value. The span is never empty (a
    flat or all but flat series gets one around it, wide enough to exist at its
    magnitude: 1e17 + 1 is 1e17) and never overflows (it is measured in halves:
    1e308 - -1e308 does not fit a float); ``_offset`` places a value in it."""
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if not high / 2 - low / 2 > 0:  # flat, or too narrow to measure (5e-324 - 0)
        pad = max(1.0, abs(low) * 1e-9)
        wider = (low - pad, high + pad)
        if not all(math.isfinite(v) for v in wider):  # at the edge of the floats
            wider = (low - 2 * pad, high) if low > 0 else (low, high + 2 * pad)
        low, high = wider
    return low, (size / 2) / (high / 2 - low / 2)


def _offset(value: float, low: float, units: float) -> float:
    """``value``'s distance from ``low`` on the chart (in halves: never overflows)."""
    return (value / 2 - low / 2) * (2 * units)


def _at(distance: float, low: float, units: float) -> float:
    """The value ``distance`` from ``low`` on the chart (in halves, as ``_offset``)."""
    return 2 * (low / 2 + distance / (2 * units))


def line_chart(points: list[tuple[float, float]]) -> Chart:
    """A line through ``points`` (x, y), scaled to the chart."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    xs = [p[0] for p in points] or [0.0]
    ys = [p[1] for p in points] or [0.0]
    x0, sx = _scale(min(xs), max(xs), plot_w)
    y0, sy = _scale(min(ys), max(ys), plot_h)
    placed = [
        (round(LEFT + _offset(x, x0, sx), 1), round(TOP + plot_h - _offset(y, y0, sy), 1))
        for x, y in points
    ]
    y_ticks = [
        Tick(round(TOP + plot_h - i * plot_h / 4, 1), _number(_at(i * plot_h / 4, y0, sy)))
        for i in range(5)
    ]
    x_ticks = [
        Tick(round(LEFT + i * plot_w / 4, 1), _number(_at(i * plot_w / 4, x0, sx)))
        for i in range(5)
    ]
    return Chart(
        WIDTH,
        HEIGHT,
        LEFT,
        HEIGHT - BOTTOM,
        " ".join(f"{x},{y}" for x, y in placed),
        placed if len(placed) <= 60 else [],
        [],
        x_ticks,
        y_ticks,
    )


def bar_chart(daily: list[dict[str, Any]], since: str, days: int) -> Chart:
    """One bar per day of ``days`` from ``since`` (days without predictions: none)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    first = date.fromisoformat(since)
    index = {(first + timedelta(days=i)).isoformat(): i for i in range(days)}
    top = max((int(d["count"]) for d in daily), default=0) or 1
    step = plot_w / days
    bars = []
    for d in daily:
        i = index.get(str(d["day"]))
        if i is None:
            continue
        h = max(1.0, int(d["count"]) / top * plot_h)
        bars.append(
            Bar(
                round(LEFT + i * step + step * 0.1, 1),
                round(TOP + plot_h - h, 1),
                round(step * 0.8, 2),
                round(h, 1),
                str(d["day"]),
                int(d["count"]),
            )
        )
    y_ticks = [
        Tick(round(TOP + plot_h - i * plot_h / 4, 1), f"{top * i / 4:,.0f}") for i in range(5)
    ]
    x_ticks = [
        Tick(round(LEFT + i * step, 1), (first + timedelta(days=i)).isoformat()[5:])
        for i in range(0, days, max(1, days // 6))
    ]
    return Chart(WIDTH, HEIGHT, LEFT, HEIGHT - BOTTOM, "", [], bars, x_ticks, y_ticks)


# --- the page -----------------------------------------------------------------------------


def _ledger(request: Request) -> Any:
    return request.app.state.ledger


def _canonical(request: Request, viewer: Viewer, given: str, text: str) -> str:
    """The id of the node that ``text`` (given as ``?given=``) names, resolved as the
    API resolves it; NotFound or InvalidNodeId when it names none the key may read."""
    ledger, project = _ledger(request), viewer.project
    if given == "model":
        return services.resolve_model(ledger, project, text)
    if given == "run":
        return services.resolve_run(ledger, project, text)
    if given in ("dataset", "deployment"):
        named = services.named(ledger, project, text, given)
        services.own(ledger, project, named)
        return queries.resolve(named, given, project)
    if openlineage_id(text):
        if text.startswith("job:"):
            job = _job(ledger, project, text)
            if job is not None:
                return job.node
        return services.named(ledger, project, text)
    node = NodeId.parse(text)
    if node.kind == "model":
        return services.resolve_model(ledger, project, text)
    if node.kind == "dataset":
        services.own(ledger, project, text)
        return services.named(ledger, project, text, "dataset")
    if node.kind in ("run", "deployment"):
        return str(node)
    raise NotFound(f"a {node.kind} node has no page")


def duration(milliseconds: int | float | None) -> str:
    """A run's duration as a person reads it: ``2 h 24 min``, ``3 min 5 s``, ``0.4 s``."""
    if milliseconds is None:
        return "—"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute} min"


pages.templates.globals["duration"] = duration


@dataclass(frozen=True)
class Job:
    """An OpenLineage job whose runs are runs (not a deployment's changes): its node id
    as Marquez writes it, its namespace and name."""

    node: str
    namespace: str
    name: str


def _job(ledger: Any, project: str, text: str) -> Job | None:
    """The job ``text`` (``job:<namespace>:<name>``) names in the project when its runs
    are runs, with its id as the read model writes it; None for a deployment's job
    (its page is the deployment's); NotFound when there is none."""
    from lineage.openlineage import marquez  # its schemas cost start-up time elsewhere

    found = marquez.project_graph(ledger, project).find("JOB", text.partition(":")[2])
    if found is None:
        raise NotFound(f"no job {text!r} in project {project!r}")
    if found.rows[-1]["id"].partition(":")[0] != "run":
        return None
    namespace, name = found.key
    return Job(f"job:{namespace}:{name}", namespace, name)


def _job_details(request: Request, viewer: Viewer, node: str) -> dict[str, Any]:
    """Marquez's Job of ``node`` and its newest runs (at most ``SHOWN``), as Marquez's
    read API answers them."""
    from lineage.openlineage import marquez

    ledger, project = _ledger(request), viewer.project
    job = _job(ledger, project, node)
    if job is None:
        raise NotFound(f"no job {node!r} with runs in project {project!r}")
    runs = marquez.job_runs(ledger, project, job.namespace, job.name, limit=SHOWN, offset=0)
    return {
        "node": job.node,
        "job": marquez.job(ledger, project, job.namespace, job.name),
        "runs": runs["runs"],
        "total": runs["totalCount"],
    }


def _details(request: Request, viewer: Viewer, node: str) -> Any:
    """The answer of the API's read route of ``node``."""
    ledger, project = _ledger(request), viewer.project
    kind = node.partition(":")[0]
    if kind == "job":
        return _job_details(request, viewer, node)
    if kind == "run":
        return services.run_details(ledger, project, run=node)
    if kind == "dataset":
        return services.dataset_details(ledger, project, dataset=node)
    if kind == "model":
        return services.model_details(ledger, project, model=node)
    return services.deployment_details(ledger, project, deployment=node)


def _asked(request: Request, viewer: Viewer) -> tuple[str, str] | HTMLResponse:
    """Which parameter names the node and what it says, or the 400 page."""
    params = request.query_params
    given = [(k, params[k]) for k in ("id", *SHORT) if k in params]
    if len(given) != 1:
        return pages.error_page(
            request,
            400,
            "Expected one node: ?id=<node id> (dataset:PROJECT/NAME@VERSION, run:UUID, "
            "model:PROJECT/NAME@VERSION, deployment:PROJECT/NAME), or one of ?dataset=, "
            "?model=, ?run=, ?deployment= with a name as the API takes it.",
            viewer=viewer,
        )
    return given[0]


@router.get("/node")
def node_page(request: Request) -> Response:
    """The page of one node: a run, a dataset version, a model version or a deployment."""
    viewer = pages.signed_in(request, "/node")
    if not isinstance(viewer, Viewer):
        return viewer
    asked = _asked(request, viewer)
    if isinstance(asked, HTMLResponse):
        return asked
    given, text = asked
    longest = JOB_ID_MAX if given == "id" and text.startswith("job:") else ID_MAX
    if not text or len(text) > longest:
        return pages.error_page(request, 404, NO_NODE, viewer=viewer)
    try:
        node = _canonical(request, viewer, given, text)
        answer = _details(request, viewer, node)
        if given != "id" or node != text:
            # To a node that exists and may be read, by the id the ledger resolved:
            # never a redirect to what was typed.
            return RedirectResponse(node_href(node), status_code=303)
    except (NotFound, InvalidNodeId):
        return pages.error_page(request, 404, NO_NODE, viewer=viewer)
    except LedgerError as exc:
        return pages.error_page(request, exc.status, str(exc), viewer=viewer)
    kind = node.partition(":")[0]
    return _render(request, viewer, kind, answer)


def _render(request: Request, viewer: Viewer, kind: str, answer: Any) -> Response:
    context: dict[str, Any] = {"answer": answer, "shown": SHOWN}
    if kind == "run":
        title = f"Run {answer.job}"
        context["charts"] = [
            (
                s,
                line_chart(
                    [
                        (float(p["step"]) if p["step"] is not None else float(i), p["value"])
                        for i, p in enumerate(s.points)
                    ]
                ),
            )
            for s in answer.series
            if len(s.points) >= 2  # one value is a row of the table, not a chart
        ]
        if answer.project == viewer.project:  # a granted project's job is not this one's
            from lineage.openlineage import naming

            namespace, name = naming.run_key(answer.project, answer.job, answer.tags)
            context["job_href"] = node_href(f"job:{namespace}:{name}")
        context["series_max"] = answers_of.SERIES_MAX
        context["points_max"] = answers_of.POINTS_MAX
    elif kind == "dataset":
        title = f"Dataset {answer.name}@{answer.version}"
    elif kind == "job":
        title = f"Job {answer['job']['name']}"
        context["explorable"] = len(answer["node"]) <= ID_MAX  # the explorer's bound
    elif kind == "model":
        title = f"Model {answer.name}@{answer.version}"
        context["chart"] = _volume_chart(answer.predictions)
        context["dossier"] = "/node/dossier?" + urlencode({"id": answer.model})
    else:
        title = f"Deployment {answer.name}"
        context["chart"] = _volume_chart(answer.predictions)
    return pages.render(request, f"entity_{kind}.html", viewer=viewer, title=title, **context)


def _volume_chart(volume: Any) -> Chart:
    return bar_chart(list(volume.daily), volume.since, volume.days)


# --- the dossier --------------------------------------------------------------------------


@router.get("/node/dossier")
def dossier(request: Request) -> Response:
    """A model version's dossier (``?id=<model version id>``), as a file to download."""
    viewer = pages.signed_in(request, "/node/dossier")
    if not isinstance(viewer, Viewer):
        return viewer
    text = request.query_params.get("id", "")
    ledger = _ledger(request)
    try:
        if not text or len(text) > ID_MAX or NodeId.parse(text).kind != "model":
            raise NotFound(NO_NODE)
        node = services.resolve_model(ledger, viewer.project, text)
        if node != text:
            raise NotFound(NO_NODE)
        # Another project's model version (granted or not) has no dossier here: the
        # API's dossier route is of the asking project's own versions too.
        if NodeId.parse(node).project != viewer.project:
            raise NotFound(NO_NODE)
        settings: Settings = request.app.state.settings
        key, _, _ = cps.load_signing_key(ledger.store.url, settings.signing_key, create=True)
        from audit.reports import build_model_dossier

        made = build_model_dossier(ledger, viewer.project, node, key)
    except (NotFound, InvalidNodeId):
        return pages.error_page(request, 404, NO_NODE, viewer=viewer)
    except LedgerError as exc:
        return pages.error_page(request, exc.status, str(exc), viewer=viewer)
    parsed = NodeId.parse(node)
    filename = f"dossier-{parsed.name}-{parsed.version}.html"
    return HTMLResponse(
        made.html,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
