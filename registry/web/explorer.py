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
at most ``MAX_NODES`` nodes drawn (the nearest; the cut is said). Each process keeps
its few latest drawings (``Drawings``), by the session's project, the question and the
ledger's head: asked again before anything is appended, a graph is sent as it was
serialised, without walking, laying out or serialising it again.
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote_plus, urlencode

from fastapi import APIRouter, Request
from markupsafe import Markup
from pydantic_core import to_json
from starlette.responses import JSONResponse, Response

from lineage.answers import LineageAnswer
from registry import services
from registry.errors import LedgerError
from registry.web import layout as layouts
from registry.web.pages import Viewer, render, signed_in

if TYPE_CHECKING:
    from registry.ledger import Ledger

#: The deepest walk the explorer asks for, and the most nodes it draws.
MAX_DEPTH = 10
MAX_NODES = 5000
#: Nodes the page lists as links (the graph shows them all).
LISTED = 200
#: Drawings each process keeps (``Drawings``); one of 2,000 nodes holds about 4 MB.
KEPT = 8
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
    ``cut`` (how many there were, when more) and the layout. Serialised once, when
    first sent (a drawing is kept and sent again: ``Drawings``)."""

    answer: LineageAnswer
    cut: dict[str, int] | None
    layout: dict[str, Any]

    def json(self) -> bytes:
        """The explorer's JSON: ``answer`` exactly as the API sends it, ``cut``,
        ``layout``. Serialised by pydantic's encoder: at thousands of nodes the
        standard library's took as long as the question."""
        return self._json

    @functools.cached_property
    def _json(self) -> bytes:
        return b"".join(
            (
                b'{"answer":',
                answer_json(self.answer),
                b',"cut":',
                to_json(self.cut),
                b',"layout":',
                to_json(self.layout),
                b"}",
            )
        )

    def expand_json(self) -> bytes:
        """The JSON of ``/lineage/expand``: ``answer`` and ``cut``, not laid out."""
        return self._expand_json

    @functools.cached_property
    def _expand_json(self) -> bytes:
        return b'{"answer":' + answer_json(self.answer) + b',"cut":' + to_json(self.cut) + b"}"

    def data_block(self) -> Markup:
        """``json()`` safe inside an HTML ``<script type="application/json">`` block."""
        return self._data_block

    @functools.cached_property
    def _data_block(self) -> Markup:
        return Markup(html_safe(self.json()).decode("utf-8"))


def answer_json(answer: LineageAnswer) -> bytes:
    """``answer.model_dump_json()``, the API's bytes, serialised from the plain values the
    answer holds: pydantic's serializer of the model first builds the whole answer again
    as Python dictionaries (thousands, for a large graph), and only then writes them.
    An erasure note (a model of its own) goes the model's way."""
    held = vars(answer)
    if held.get("erased") is not None:
        return answer.model_dump_json().encode("utf-8")
    return to_json(
        {
            name: held[name]
            for name in LineageAnswer.model_fields
            if not (name in LineageAnswer.OMITTED_WHEN_NONE and held.get(name) is None)
        }
    )


#: What may not appear raw in a ``<script>`` block's JSON, with its JSON escape: each
#: appears only inside JSON strings (as UTF-8 for U+2028 and U+2029, whose bytes are
#: those characters' alone), where the escape reads back as the same string.
_HTML_SAFE = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    (b"'", b"\\u0027"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def html_safe(data: bytes) -> bytes:
    """JSON ``data`` safe inside an HTML ``<script type="application/json">`` block:
    ``<``, ``>``, ``&``, ``'``, U+2028 and U+2029 as JSON escapes, so no name can close
    the block; the same JSON once parsed. Requires ``data`` to be JSON in UTF-8."""
    for char, escape in _HTML_SAFE:
        if char in data:
            data = data.replace(char, escape)
    return data


class Drawings:
    """The latest drawings of one ledger in this process (at most ``KEPT``), each under
    the project that asked, everything in its question and the ledger's head when it
    was asked: any append moves the head, so a drawing is sent again only while the
    ledger holds what it was drawn from, and only to the project that asked it."""

    def __init__(self, kept: int = KEPT):
        self.kept = kept
        self._found: OrderedDict[tuple[Any, ...], Drawn] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Drawn | None:
        """The drawing kept under ``key``, or None."""
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], drawn: Drawn) -> None:
        """Keep ``drawn`` under ``key``, forgetting the least recently used past ``kept``."""
        with self._lock:
            self._found[key] = drawn
            self._found.move_to_end(key)
            while len(self._found) > self.kept:
                self._found.popitem(last=False)

    def clear(self) -> None:
        """Forget every drawing (the ledger's projections were rebuilt)."""
        with self._lock:
            self._found.clear()


_DRAWINGS: weakref.WeakKeyDictionary[Ledger, Drawings] = weakref.WeakKeyDictionary()
_DRAWINGS_LOCK = threading.Lock()


def drawings_of(ledger: Ledger) -> Drawings:
    """The drawings kept for ``ledger`` (made on first use, cleared by its rebuild)."""
    with _DRAWINGS_LOCK:
        found = _DRAWINGS.get(ledger)
        if found is None:
            found = _DRAWINGS[ledger] = Drawings()
            ledger.rebuilt.append(found.clear)
        return found


def drawn_of(request: Request, viewer: Viewer, question: Question, call: str) -> Drawn:
    """The drawing of ``question`` for the session's project (``call``: ``graph``, or
    ``expand`` for one node's neighbours, not laid out): the one kept when the ledger's
    head has not moved since it was drawn, else drawn now and kept. Raises LedgerError
    as the API's question does."""
    ledger: Ledger = request.app.state.ledger
    head = ledger.head()
    # The head is read before the question is answered: an append in between leaves a
    # newer drawing under an older head, which no later request (reading a head at least
    # as new) asks for.
    key = (call, viewer.project, question, MAX_NODES, head)
    drawings = drawings_of(ledger)
    found = drawings.get(key)
    if found is None:
        answer = answer_of(request, viewer, question)
        if call == "expand":
            cut_answer, cut = nearest(answer)
            found = Drawn(cut_answer, cut, {})
        else:
            found = graph(answer)
        drawings.put(key, found)
    return found


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
        drawn = drawn_of(request, viewer, question, "graph")
    except LedgerError as exc:
        return _page(request, viewer, raw, question, None, status=exc.status, message=str(exc))
    return _page(request, viewer, raw, question, drawn)


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
        listed=_listed(question, nodes[:LISTED]) if question is not None else [],
        as_of_field=as_of_field,
        directions=DIRECTIONS,
        max_depth=MAX_DEPTH,
        max_nodes=MAX_NODES,
        message=message,
    )


def _listed(question: Question, nodes: list[Any]) -> list[tuple[Any, str, str]]:
    """Each node with its page's link and the link exploring from it (``question`` on
    that node): each id quoted once, the rest of the query once for them all (as
    ``urlencode`` writes them: the id first)."""
    rest = urlencode({k: v for k, v in question.query().items() if k != "node"})
    tail = "&" + rest if rest else ""
    found = []
    for n in nodes:
        node = quote_plus(n["id"])
        found.append((n, "/node?id=" + node, "/lineage?node=" + node + tail))
    return found


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
        drawn = drawn_of(request, viewer, question, "graph")
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
        drawn = drawn_of(request, viewer, question, "expand")
    except BadQuery as exc:
        return problem(400, str(exc))
    except LedgerError as exc:
        return problem(exc.status, str(exc))
    return Response(drawn.expand_json(), media_type="application/json")
