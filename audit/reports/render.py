"""The dossier's pictures, as SVG text: the training-data lineage and prediction volume.

The lineage picture puts the model on the right and each edge upstream one column
further left (runs, the dataset and model versions they read, what those were
derived from), each column headed by the kinds it holds. A column with more boxes
than fit is summarised: dataset versions of one name become one box "name (N
versions)", and past ``MAX_BOXES`` the rest is one "+K more" box, so a lineage
of thousands of nodes stays readable (the page lists every node in full). Every text is escaped.

The volume chart is drawn by matplotlib (Agg, text kept as text) as bars per day,
one colour per deployment.

The model card is Markdown, which HTML autoescaping does not make safe: ``[x](…)``,
``![i](…)``, ``|`` or a line break in a value would still make a link, an image or
a broken table. ``md_text`` and ``md_code`` make a value inert as text or as a code
span, and return ``MarkdownText`` so the card's environment knows it is done.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from typing import Any, Final
from xml.sax.saxutils import escape

from registry.ids import NodeId, kind_of, label_of
from registry.wording import counted

MAX_BOXES = 14
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 38, 70, 14, 20
COLOURS = {
    "model": ("#e3f8ff", "#2680c2"),
    "run": ("#fff8e1", "#cb6e17"),
    "dataset": ("#e3fcec", "#2f8132"),
    "group": ("#f0f4f8", "#627d98"),
}
KIND_NAMES = {"model": "model", "run": "run", "dataset": "dataset", "group": "group"}
HEADINGS = {"run": "runs", "dataset": "dataset versions", "model": "model versions"}

#: Line breaks and other control characters (tab aside): each becomes a space, so a
#: value stays on its line and in its table cell.
_BREAKS: Final = {
    c: " " for c in [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, 0x85, 0x2028, 0x2029]
}
#: HTML's special characters, as entities (CommonMark decodes them back to text).
_ENTITIES: Final = {
    ord(c): e
    for c, e in {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}.items()
}
#: Punctuation that starts or ends a Markdown construct: emphasis, code, links and
#: images, headings, lists, tables, strikethrough, math. Backslash-escaped.
_MARKDOWN: Final = {ord(c): "\\" + c for c in "\\`*_{}[]()#+-!|~$"}
_TEXT: Final = str.maketrans({**_BREAKS, **_ENTITIES, **_MARKDOWN})
_CODE: Final = str.maketrans(_BREAKS)
#: "1. " or "1." alone would start an ordered list at the beginning of a line.
_ORDERED: Final = re.compile(r"^(\d{1,9})\.(?=\s|$)")
_TICKS: Final = re.compile(r"`+")


class MarkdownText(str):
    """Text that is already inert Markdown (what ``md_text`` and ``md_code`` return)."""


def md_text(value: Any) -> MarkdownText:
    """``value`` as Markdown that renders as exactly its text, on one line: HTML's
    special characters as entities, Markdown's punctuation backslash-escaped, line
    breaks as spaces (``None`` is empty)."""
    text = "" if value is None else str(value)
    return MarkdownText(_ORDERED.sub(r"\1\\.", text.translate(_TEXT)))


def md_code(value: Any, *, table: bool = True) -> MarkdownText:
    """``value`` as a code span nothing in it can close: fenced by one backtick more
    than its longest run of backticks, padded where it starts or ends with one, line
    breaks as spaces. In a table cell (``table``, the default) ``|`` is escaped, as
    GFM tables require even inside code; outside a table it must not be, since a
    code span keeps backslashes. Empty (or ``None``) gives empty text."""
    text = ("" if value is None else str(value)).translate(_CODE)
    if not text:
        return MarkdownText("")
    fence = "`" * (max((len(t) for t in _TICKS.findall(text)), default=0) + 1)
    # CommonMark strips one space from each end when both ends have one; padding
    # both ends keeps a backtick off the fence and the value's own spaces intact.
    if (
        text.startswith("`")
        or text.endswith("`")
        or (text.startswith(" ") and text.endswith(" ") and text.strip(" "))
    ):
        text = f" {text} "
    if table:
        text = text.replace("|", "\\|")
    return MarkdownText(f"{fence}{text}{fence}")


def _short(node: str, label: str | None) -> str:
    if kind_of(node) == "run":
        return f"{label or 'run'} (…{node[-6:]})"
    return label_of(node).replace("@", " ")


def _fit(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _columns(
    training: dict[str, Any], model: str
) -> tuple[list[list[dict[str, Any]]], dict[str, str]]:
    """The boxes of each column (0: the model) and, for every node, its box's key."""
    distance: dict[str, int] = training["distance"]
    labels: dict[str, str] = training["labels"]
    by_column: dict[int, list[str]] = defaultdict(list)
    for node, d in distance.items():
        by_column[d].append(node)
    columns: list[list[dict[str, Any]]] = []
    owner: dict[str, str] = {}
    for d in range(max(by_column) + 1 if by_column else 1):
        nodes = sorted(by_column.get(d, []))
        boxes: list[dict[str, Any]] = []
        if len(nodes) <= MAX_BOXES:
            for node in nodes:
                boxes.append(
                    {
                        "key": node,
                        "kind": kind_of(node),
                        "title": _short(node, labels.get(node)),
                        "note": KIND_NAMES.get(kind_of(node), ""),
                    }
                )
                owner[node] = node
        else:
            groups: dict[tuple[str, str], list[str]] = defaultdict(list)
            for node in nodes:
                kind = kind_of(node)
                name = (
                    NodeId.parse(node).name
                    if kind in ("dataset", "model")
                    else (labels.get(node) or kind)
                )
                groups[(kind, name)].append(node)
            ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
            shown, rest = ordered[: MAX_BOXES - 1], ordered[MAX_BOXES - 1 :]
            for (kind, name), members in shown:
                key = f"group:{d}:{kind}:{name}"
                boxes.append(
                    {
                        "key": key,
                        "kind": kind if len(members) == 1 else "group",
                        "title": name,
                        "note": counted(len(members), f"{kind} version")
                        if kind != "run"
                        else counted(len(members), "run"),
                    }
                )
                for m in members:
                    owner[m] = key
            if rest:
                key = f"group:{d}:more"
                hidden = sum(len(m) for _, m in rest)
                boxes.append(
                    {
                        "key": key,
                        "kind": "group",
                        "title": f"+{hidden} more",
                        "note": f"in {counted(len(rest), 'other name')}",
                    }
                )
                for _, members in rest:
                    for m in members:
                        owner[m] = key
        columns.append(boxes)
    if not columns[0]:
        columns[0] = [{"key": model, "kind": "model", "title": _short(model, None), "note": ""}]
        owner[model] = model
    return columns, owner


def _heading(kinds: set[str]) -> str:
    """A column's heading: the kinds of node it holds (``runs``, ``dataset versions``, ...)."""
    return " and ".join(HEADINGS[k] for k in HEADINGS if k in kinds) or "upstream"


def lineage_svg(training: dict[str, Any], model: str) -> str:
    """The lineage picture of a dossier's ``training`` section."""
    columns, owner = _columns(training, model)
    tallest = max(len(c) for c in columns)
    width = PAD * 2 + len(columns) * BOX_W + (len(columns) - 1) * GAP_X
    height = PAD * 2 + 24 + tallest * (BOX_H + GAP_Y)
    places: dict[str, tuple[float, float]] = {}
    parts: list[str] = []
    for index, boxes in enumerate(columns):
        x = width - PAD - BOX_W - index * (BOX_W + GAP_X)
        top = PAD + 24 + (tallest - len(boxes)) * (BOX_H + GAP_Y) / 2
        for row, box in enumerate(boxes):
            y = top + row * (BOX_H + GAP_Y)
            places[box["key"]] = (x, y)
            fill, stroke = COLOURS.get(box["kind"], COLOURS["group"])
            parts.append(
                f'<g class="node {box["kind"]}"><title>{escape(box["key"])}</title>'
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6" '
                f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
                f'<text x="{x + 10:.0f}" y="{y + 16:.0f}" font-size="12" font-weight="600" '
                f'fill="#1f2933">{escape(_fit(box["title"]))}</text>'
                f'<text x="{x + 10:.0f}" y="{y + 30:.0f}" font-size="10" '
                f'fill="#52606d">{escape(_fit(box["note"], 32))}</text></g>'
            )
    lines: set[tuple[str, str]] = set()
    for edge in training["edges"]:
        src, dst = owner.get(edge["src"]), owner.get(edge["dst"])
        if src and dst and src != dst:
            lines.add((src, dst))
    arrows = []
    for src, dst in sorted(lines):
        (x1, y1), (x2, y2) = places[src], places[dst]
        arrows.append(
            f'<line x1="{x1 + BOX_W:.0f}" y1="{y1 + BOX_H / 2:.0f}" x2="{x2 - 4:.0f}" '
            f'y2="{y2 + BOX_H / 2:.0f}" stroke="#9aa5b1" stroke-width="1.2" '
            'marker-end="url(#arrow)"/>'
        )
    kinds: dict[int, set[str]] = defaultdict(set)
    for node, column in training["distance"].items():
        kinds[column].add(kind_of(node))
    headings = []
    for index in range(len(columns)):
        x = width - PAD - BOX_W - index * (BOX_W + GAP_X)
        label = "this model" if index == 0 else _heading(kinds[index])
        headings.append(
            f'<text x="{x:.0f}" y="{PAD + 8}" font-size="11" fill="#7b8794">{label}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" '
        f'aria-label="Training-data lineage of {escape(model)}" width="{width}" '
        f'height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" '
        'font-family="system-ui, sans-serif">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#9aa5b1"/></marker></defs>'
        + "".join(headings)
        + "".join(arrows)
        + "".join(parts)
        + "</svg>\n"
    )


def volume_svg(daily: list[dict[str, Any]]) -> str:
    """Predictions per day per deployment, as stacked bars (an empty chart says so)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    figure, axes = plt.subplots(figsize=(8, 2.8), dpi=100)
    try:
        days = sorted({d["day"] for d in daily})
        deployments = sorted({d["deployment"] for d in daily})
        if not days:
            axes.text(0.5, 0.5, "no predictions", ha="center", va="center", color="#7b8794")
            axes.set_axis_off()
        else:
            counts = {(d["deployment"], d["day"]): d["count"] for d in daily}
            bottom = [0] * len(days)
            for name in deployments:
                values = [counts.get((name, day), 0) for day in days]
                axes.bar(days, values, bottom=bottom, label=NodeId.parse(name).name)
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
            axes.set_ylabel("predictions per day")
            axes.legend(frameon=False, fontsize=8)
            axes.tick_params(axis="x", labelrotation=45, labelsize=8)
            for side in ("top", "right"):
                axes.spines[side].set_visible(False)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(figure)
    text = buffer.getvalue()
    # Keep the drawing; drop the XML prologue and the RDF metadata block.
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.DOTALL)
    return text.replace("<svg ", '<svg class="volume" role="img" ', 1)
