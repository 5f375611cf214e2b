"""The lineage explorer: the lineage graph around a node, drawn in the browser.

``GET /lineage`` is the page: a form (node, direction, depth, as of) that works
without script, the graph drawn by ``static/explorer.js`` with the vendored
cytoscape.js, and a bounded list of the nodes as links. ``GET /lineage/graph``
answers the same graph as JSON for the script, ``GET /lineage/expand`` one node's
neighbours. All three answer from the API's lineage question
(``registry.services.lineage``, the typed ``LineageAnswer``) with the session's
project and its grants, and record each call in the access trail (``web.lineage``,
``web.lineage_graph``, ``web.lineage_expand``).

Positions are computed here (``registry.web.layout``): deterministic, and cheap for
the browser at thousands of nodes. The work is bounded: depth at most ``MAX_DEPTH``,
at most ``MAX_NODES`` nodes drawn (the nearest; the cut is said).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from markupsafe import Markup
from pydantic_core import to_json
from starlette.responses import JSONResponse, Response

from lineage.answers import LineageAnswer
from registry import services
from registry.errors import LedgerError
from registry.web import layout as layouts
from registry.web.pages import Viewer, render, signed_in

#: The deepest walk the explorer asks for, and the most nodes it draws.
MAX_DEPTH = 10
MAX_NODES = 5000
#: Nodes the page lists as links (the graph shows them all).
LISTED = 200
DEFAULT_DEPTH = 2
_NODE_MAX = 600
_TIME_MAX = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DIRECTIONS = ("both", "upstream", "downstream")

router = APIRouter(include_in_schema=False)


class BadQuery(Exception):
    """A query parameter the explorer refuses (400), saying what was expected."""


@dataclass(frozen=True)
class Question:
    """What the explorer is asked: a node, a direction, a depth, a time (or now)."""

    node: str
    direction: Literal["upstream", "downstream", "both"]
    depth: int
    as_of: str | None

    def query(self, **changes: Any) -> dict[str, str]:
        """The query string's fields of this question (with ``changes``)."""
        fields: dict[str, Any] = {
            "node": self.node,
            "direction": self.direction,
            "depth": self.depth,
            "as_of": self.as_of or "",
            **changes,
        }
        return {k: str(v) for k, v in fields.items() if v not in (None, "")}


def parse(params: Any, *, node_required: bool = True) -> Question | None:
    """The question of a query string (None: no node asked, where that is allowed).
    Raises BadQuery for a node, direction, depth or time out of bounds."""
    node = params.get("node", "").strip()
    if not node:
        if node_required:
            raise BadQuery("no node was given: expected ?node= a node id such as dataset:p/d@1")
        return None
    if len(node) > _NODE_MAX or _CONTROL.search(node):
        raise BadQuery(
            f"the node id is longer than {_NODE_MAX} characters or holds control characters: "
            "expected a node id such as dataset:p/d@1"
        )
    direction = params.get("direction", "both") or "both"
    if direction not in DIRECTIONS:
        raise BadQuery(
            f"direction {direction[:40]!r} is not one: expected upstream, downstream or both"
        )
    raw_depth = params.get("depth", str(DEFAULT_DEPTH)) or str(DEFAULT_DEPTH)
    try:
        depth = int(raw_depth)
        if not 0 <= depth <= MAX_DEPTH:
            raise ValueError
    except ValueError:
        raise BadQuery(
            f"depth {raw_depth[:40]!r} is not a depth: expected a whole number from 0 to "
            f"{MAX_DEPTH}"
        ) from None
    return Question(
        node,
        cast(Literal["upstream", "downstream", "both"], direction),
        depth,
        as_of_time(params.get("as_of", "")),
    )


def as_of_time(raw: str) -> str | None:
    """The time of ``?as_of=`` in RFC 3339 (None: now). The form's field sends a local
    date-time without an offset (``2026-12-06T19:10``): it is read as UTC."""
    text = raw.strip()
    if not text:
        return None
    problem = BadQuery(
        f"as of {text[:_TIME_MAX]!r} is not a time: expected a date and time such as "
        "2026-12-06T19:10 (UTC) or an RFC 3339 time with its offset"
    )
    if len(text) > _TIME_MAX or _CONTROL.search(text):
        raise problem
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
    except ValueError:
        raise problem from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise problem from None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def answer_of(request: Request, viewer: Viewer, question: Question) -> LineageAnswer:
    """The API's lineage answer to ``question`` for the session's project."""
    return services.lineage(
        request.app.state.ledger,
        viewer.project,
        node=question.node,
        direction=question.direction,
        depth=question.depth,
        as_of=question.as_of,
    )


@dataclass(frozen=True)
class Drawn:
    """What the explorer draws: the answer (cut to its nearest ``MAX_NODES`` nodes),
    ``cut`` (how many there were, when more) and the layout."""

    answer: LineageAnswer
    cut: dict[str, int] | None
    layout: dict[str, Any]

    def json(self) -> bytes:
        """The explorer's JSON: ``answer`` exactly as the API sends it, ``cut``,
        ``layout``. Serialised by pydantic's encoder: at thousands of nodes the
        standard library's took as long as the question."""
        return b"".join(
            (
                b'{"answer":',
                self.answer.model_dump_json().encode("utf-8"),
                b',"cut":',
                to_json(self.cut),
                b',"layout":',
                to_json(self.layout),
                b"}",
            )
        )

    def data_block(self) -> Markup:
        """``json()`` safe inside an HTML ``<script type="application/json">`` block:
        ``<``, ``>``, ``&`` and ``'`` (only ever inside JSON strings) as escapes, so no
        name can close the block."""
        text = self.json().decode("utf-8")
        for char, escape in _HTML_SAFE:
            text = text.replace(char, escape)
        return Markup(text)


_HTML_SAFE = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027"))


def nearest(answer: LineageAnswer) -> tuple[LineageAnswer, dict[str, int] | None]:
    """``answer`` with its nearest ``MAX_NODES`` nodes and the edges among them (it lists
    its nodes nearest first), and the cut (None when nothing was cut)."""
    if len(answer.nodes) <= MAX_NODES:
        return answer, None
    nodes = answer.nodes[:MAX_NODES]
    kept = {n["id"] for n in nodes}
    edges = [e for e in answer.edges if e["src"] in kept and e["dst"] in kept]
    cut = LineageAnswer.built(**{**vars(answer), "nodes": nodes, "edges": edges})
    return cut, {"total": len(answer.nodes), "shown": MAX_NODES}


def graph(answer: LineageAnswer) -> Drawn:
    """The explorer's drawing of ``answer``: cut (``nearest``) and laid out."""
    answer, cut = nearest(answer)
    placed = layouts.layout(
        answer.root,
        {n["id"]: n["kind"] for n in answer.nodes},
        [(e["src"], e["dst"]) for e in answer.edges],
    )
    layout = {
        "positions": placed.positions,
        "columns": placed.columns,
        "groups": [
            {
                "id": g.id,
                "label": g.label,
                "kind": g.kind,
                "column": g.column,
                "members": g.members,
                "x": g.x,
                "y": g.y,
            }
            for g in placed.groups
        ],
    }
    return Drawn(answer, cut, layout)


def problem(status: int, detail: str) -> JSONResponse:
    """A JSON problem (RFC 9457) for the script's calls."""
    titles = {400: "The request was refused", 403: "Not allowed", 404: "Not found"}
    return JSONResponse(
        {
            "type": "about:blank",
            "title": titles.get(status, "Error"),
            "status": status,
            "detail": detail,
        },
        status_code=status,
        media_type="application/problem+json",
    )


# --- the page ---------------------------------------------------------------------------


@router.get("/lineage")
def explorer_page(request: Request) -> Response:
    """The explorer on ``?node=`` (the form alone without one)."""
    viewer = signed_in(request, "/lineage")
    if not isinstance(viewer, Viewer):
        return viewer
    raw = {
        "node": request.query_params.get("node", ""),
        "direction": request.query_params.get("direction", "both"),
        "depth": request.query_params.get("depth", str(DEFAULT_DEPTH)),
        "as_of": request.query_params.get("as_of", ""),
    }
    try:
        question = parse(request.query_params, node_required=False)
    except BadQuery as exc:
        return _page(request, viewer, raw, None, None, status=400, message=str(exc))
    if question is None:
        return _page(request, viewer, raw, None, None)
    try:
        answer = answer_of(request, viewer, question)
    except LedgerError as exc:
        return _page(request, viewer, raw, question, None, status=exc.status, message=str(exc))
    return _page(request, viewer, raw, question, graph(answer))


def _page(
    request: Request,
    viewer: Viewer,
    raw: dict[str, str],
    question: Question | None,
    drawn: Drawn | None,
    *,
    status: int = 200,
    message: str | None = None,
) -> Response:
    as_of_field = ""
    if question is not None and question.as_of is not None:
        as_of_field = question.as_of[:19]
    elif status == 400:
        as_of_field = raw["as_of"][:_TIME_MAX]
    nodes = drawn.answer.nodes if drawn is not None else []
    return render(
        request,
        "lineage.html",
        status=status,
        viewer=viewer,
        title="Lineage",
        raw=raw,
        question=question,
        drawn=drawn,
        listed=[
            (
                n,
                "/node?" + urlencode({"id": n["id"]}),
                "/lineage?" + urlencode(question.query(node=n["id"])),
            )
            for n in nodes[:LISTED]
        ]
        if question is not None
        else [],
        as_of_field=as_of_field,
        directions=DIRECTIONS,
        max_depth=MAX_DEPTH,
        max_nodes=MAX_NODES,
        message=message,
    )


# --- the script's calls -------------------------------------------------------------------


@router.get("/lineage/graph")
def graph_json(request: Request) -> Response:
    """The graph of ``?node=&direction=&depth=&as_of=`` as JSON, laid out."""
    viewer = signed_in(request, "/lineage/graph")
    if not isinstance(viewer, Viewer):
        return viewer
    try:
        question = parse(request.query_params)
        assert question is not None
        drawn = graph(answer_of(request, viewer, question))
        return Response(drawn.json(), media_type="application/json")
    except BadQuery as exc:
        return problem(400, str(exc))
    except LedgerError as exc:
        return problem(exc.status, str(exc))


@router.get("/lineage/expand")
def expand_json(request: Request) -> Response:
    """The neighbours of ``?node=`` (one hop both ways) as of ``?as_of=``, as JSON: the
    API's lineage answer at depth 1, at most ``MAX_NODES`` nodes."""
    viewer = signed_in(request, "/lineage/expand")
    if not isinstance(viewer, Viewer):
        return viewer
    try:
        asked = parse(request.query_params)
        assert asked is not None
        question = Question(asked.node, "both", 1, asked.as_of)
        answer, cut = nearest(answer_of(request, viewer, question))
    except BadQuery as exc:
        return problem(400, str(exc))
    except LedgerError as exc:
        return problem(exc.status, str(exc))
    body = b'{"answer":' + answer.model_dump_json().encode("utf-8") + b',"cut":' + to_json(cut)
    return Response(body + b"}", media_type="application/json")
