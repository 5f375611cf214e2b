"""The facets OpenLineage events carried for each dataset version, as Marquez shows
them: merged over the events that named the version, in the order received (a
later event's facet of the same name wins), and the fields and description they
give the version.

The events are read from the log (the ``openlineage-*-event`` bodies keep every
facet received); asked about a few versions, only the events naming them are
parsed (their ids are matched in the stored text first).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from registry.canonical import loads
from registry.store.raw import Raw

#: The event types that keep an OpenLineage event as it was received.
RECEIVED_TYPES = ("openlineage-run-event", "openlineage-dataset-event", "openlineage-job-event")
#: Asked about more versions than this, every received event of the project is read.
MATCHED_AT_MOST = 20


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching it literally (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def dataset_facets(
    raw: Raw, project: str, versions: Collection[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Dataset version id -> the dataset facets its events carried (for ``versions``,
    or every version named by an event when None)."""
    sql = (
        "SELECT type, entity, body FROM events WHERE project = ? "
        f"AND type {raw.among(RECEIVED_TYPES)}"
    )
    params: list[Any] = [project, *raw.among_params(RECEIVED_TYPES)]
    if versions is not None:
        if not versions:
            return {}
        if len(versions) <= MATCHED_AT_MOST:
            wanted = sorted(versions)
            matches = " OR ".join(["body LIKE ? ESCAPE '\\'"] * len(wanted))
            sql += f" AND (entity {raw.among(wanted)} OR {matches})"
            params += [*raw.among_params(wanted), *(f'%"dataset":"{_like(v)}"%' for v in wanted)]
    merged: dict[str, dict[str, Any]] = {}
    for type_, entity, body in raw.all(sql + " ORDER BY position", params):
        event = loads(body)
        if type_ == "openlineage-dataset-event":
            named = [(entity, event.get("facets") or {})]
        else:
            # A run's input and output facets (data-quality assertions on what a test
            # read, output statistics) are facets of the version too.
            named = [
                (d.get("dataset"), {**(d.get(extra) or {}), **(d.get("facets") or {})})
                for side, extra in (("inputs", "input_facets"), ("outputs", "output_facets"))
                for d in event.get(side) or []
            ]
        for version, facets in named:
            if version and (versions is None or version in versions):
                _merge(merged.setdefault(version, {}), facets)
    return merged


def _merge(into: dict[str, Any], facets: dict[str, Any]) -> None:
    """Facets received later over those before, by name; a version's data-quality
    assertions accumulate over the events that tested it (one per assertion and
    column, the latest result of each)."""
    for name, facet in facets.items():
        if not isinstance(facet, dict):
            continue
        before = into.get(name)
        if name == "dataQualityAssertions" and isinstance(before, dict):
            kept = {_assertion_key(a): a for a in before.get("assertions") or []}
            kept.update({_assertion_key(a): a for a in facet.get("assertions") or []})
            facet = {**facet, "assertions": list(kept.values())}
        into[name] = facet


def _assertion_key(assertion: Any) -> str:
    if not isinstance(assertion, dict):
        return repr(assertion)
    return repr((assertion.get("name"), assertion.get("assertion"), assertion.get("column")))


def fields_of(facets: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Marquez's fields from a schema facet, in the table's order, with their
    descriptions (nested fields as ``parent.child``); None without one."""
    schema = facets.get("schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        return None
    out: list[dict[str, Any]] = []

    def walk(fields: list[Any], prefix: str) -> None:
        for field in fields:
            if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                continue
            name = prefix + field["name"]
            kind = field.get("type")
            description = field.get("description")
            out.append(
                {
                    "name": name,
                    "type": kind if isinstance(kind, str) else None,
                    "tags": [],
                    "description": description if isinstance(description, str) else None,
                }
            )
            if isinstance(field.get("fields"), list):
                walk(field["fields"], name + ".")

    walk(schema["fields"], "")
    return out


def description_of(facets: dict[str, Any]) -> str | None:
    """The documentation facet's description, if one was sent."""
    documentation = facets.get("documentation")
    if isinstance(documentation, dict) and isinstance(documentation.get("description"), str):
        return str(documentation["description"])
    return None


def with_facets(answer: dict[str, Any], facets: dict[str, Any]) -> dict[str, Any]:
    """A Marquez Dataset or DatasetVersion (``answer``) with the facets its version's
    events carried: the fields and description they give, and the facets themselves."""
    fields = fields_of(facets)
    if fields is not None:
        answer["fields"] = fields
    description = description_of(facets)
    if description is not None:
        answer["description"] = description
    answer["facets"] = facets
    return answer
