"""The facets OpenLineage events carried for each dataset version, as Marquez shows
them: merged over the events that named the version, in the order received (a
later event's facet of the same name wins), and the fields and description they
give the version.

The events are read from the log (the ``openlineage-*-event`` bodies keep every
facet received); asked about a few versions, only the events naming them are
parsed (their ids are matched in the stored text first).
"""

from __future__ import annotations

import json
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
    raw: Raw,
    project: str,
    versions: Collection[str] | None = None,
    *,
    in_runs: bool = True,
    until: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Dataset version id -> the dataset facets its events carried (for ``versions``,
    or every version named by an event when None); with ``in_runs``, the input and
    output facets of the runs that read or wrote it too; with ``until`` (a stored
    timestamp), only the events that had occurred by then."""
    sql = (
        "SELECT type, entity, body FROM events WHERE project = ? "
        f"AND type {raw.among(RECEIVED_TYPES)}"
    )
    params: list[Any] = [project, *raw.among_params(RECEIVED_TYPES)]
    if until is not None:
        sql += " AND occurred_at <= ?"
        params.append(until)
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
        for version, facets in named_facets(type_, entity, restored(loads(body)), in_runs=in_runs):
            if versions is None or version in versions:
                _merge(merged.setdefault(version, {}), facets)
    return merged


def named_facets(
    type_: str, entity: str, event: dict[str, Any], *, in_runs: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """(dataset version id, facets) for each version a stored ``openlineage-*-event``
    body (``restored``) names, in its order; with ``in_runs``, a run's input and output
    facets of a version as its facets too."""
    if type_ == "openlineage-dataset-event":
        named = [(entity, event.get("facets") or {})]
    else:
        # A run's input and output facets (data-quality assertions on what a test
        # read, output statistics) are facets of the version too.
        named = [
            (
                d.get("dataset"),
                {**(_obj(d.get(extra)) if in_runs else {}), **_obj(d.get("facets"))},
            )
            for side, extra in (("inputs", "input_facets"), ("outputs", "output_facets"))
            for d in event.get(side) or []
        ]
    return [(version, facets) for version, facets in named if version]


def merge_named(into: dict[str, Any], facets: dict[str, Any]) -> None:
    """Merge ``facets`` received later over ``into`` (``dataset_facets``' rule)."""
    _merge(into, facets)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _merge(into: dict[str, Any], facets: dict[str, Any]) -> None:
    """Facets received later over those before, by name; a version's data-quality
    assertions accumulate over the events that tested it (one per assertion and
    column, the latest result of each)."""
    if not isinstance(facets, dict):
        return
    for name, facet in facets.items():
        if not isinstance(facet, dict):
            continue
        before = into.get(name)
        earlier, later = (
            f.get("assertions") if isinstance(f, dict) else None for f in (before, facet)
        )
        if (
            name == "dataQualityAssertions"
            and isinstance(earlier, list)
            and isinstance(later, list)
        ):
            kept = {_assertion_key(a): a for a in earlier}
            kept.update({_assertion_key(a): a for a in later})
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


def tag_name(tag: Any) -> str | None:
    """The Marquez tag name of one OpenLineage tag (``{"key", "value", "source"}``):
    ``<key>:<value>``, as OpenLineage writes a tag in its clients' configuration, or the
    key alone for a label (a value of ``true``, which OpenLineage's clients give a tag
    written without one). None for an entry that is not a tag: no object, a key that is
    not a non-blank string, a value that is neither a string nor a boolean."""
    if not isinstance(tag, dict):
        return None
    key, value = tag.get("key"), tag.get("value")
    if not isinstance(key, str) or not key.strip():
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, str):
        return None
    return key if value.strip().lower() in ("true", "") else f"{key}:{value}"


def _tags(facet: Any) -> list[tuple[str, str | None]]:
    """(name, field) of each tag of a ``tags`` facet, in the order sent: field is the
    field of the dataset a tag applies to, None for the whole. A facet that is not an
    object with a list of ``tags`` has none; an entry that is not a tag (``tag_name``),
    or names a field by anything but a non-blank string, is left out."""
    entries = facet.get("tags") if isinstance(facet, dict) else None
    found: list[tuple[str, str | None]] = []
    for entry in entries if isinstance(entries, list) else []:
        name = tag_name(entry)
        if name is None:
            continue
        field = entry.get("field")
        if field is None:
            found.append((name, None))
        elif isinstance(field, str) and field.strip():
            found.append((name, field))
    return found


def tags_of(facets: dict[str, Any]) -> list[str]:
    """The names of the tags a ``tags`` facet among ``facets`` gives its dataset, job or
    run as a whole, sorted, each once."""
    return sorted({name for name, field in _tags(facets.get("tags")) if field is None})


def field_tags_of(facets: dict[str, Any]) -> dict[str, list[str]]:
    """Field name -> the names of the tags a ``tags`` facet among ``facets`` gives that
    field (its ``field``), sorted, each once."""
    found: dict[str, set[str]] = {}
    for name, field in _tags(facets.get("tags")):
        if field is not None:
            found.setdefault(field, set()).add(name)
    return {field: sorted(names) for field, names in found.items()}


def tag_names(facet: Any) -> set[str]:
    """Every tag name a ``tags`` facet names, whether for the whole or for a field."""
    return {name for name, _ in _tags(facet)}


def description_of(facets: dict[str, Any]) -> str | None:
    """The documentation facet's description, if one was sent."""
    documentation = facets.get("documentation")
    if isinstance(documentation, dict) and isinstance(documentation.get("description"), str):
        return str(documentation["description"])
    return None


def with_facets(answer: dict[str, Any], facets: dict[str, Any]) -> dict[str, Any]:
    """A Marquez Dataset or DatasetVersion (``answer``) with the facets its version's
    events carried: the fields, tags and description they give, and the facets
    themselves."""
    fields = fields_of(facets)
    if fields is not None:
        answer["fields"] = fields
    answer["tags"] = tags_of(facets)
    on_fields = field_tags_of(facets)
    for field in answer.get("fields") or []:
        field["tags"] = on_fields.get(field["name"], [])
    description = description_of(facets)
    if description is not None:
        answer["description"] = description
    source = facets.get("dataSource")
    if isinstance(source, dict) and isinstance(source.get("name"), str) and source["name"]:
        answer["sourceName"] = source["name"]
    answer["facets"] = facets
    return answer


class RunFacets:
    """What the OpenLineage events of some runs carried, merged per run in the order
    received (a later event's facet of the same name wins): run facets, job facets,
    and the input and output facets of each version they read or wrote."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.io: dict[tuple[str, str, str], dict[str, Any]] = {}  # (run, side, version)
        self.cut: dict[str, set[str]] = {}  # run -> run facets stored with fields redacted

    @classmethod
    def read(cls, raw: Raw, project: str, runs: Collection[str]) -> RunFacets:
        found = cls()
        wanted = sorted(runs)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            # By the entity index alone (a few events per run): with the project and
            # type in the condition too, a planner without statistics (SQLite's) takes
            # the (project, type) index and reads every run event of the project.
            for entity, project_of, type_, body in raw.all(
                "SELECT entity, project, type, body FROM events "
                f"WHERE entity {raw.among(chunk)} ORDER BY position",
                raw.among_params(chunk),
            ):
                if project_of == project and type_ == "openlineage-run-event":
                    found.add(entity, restored(loads(body)))
        return found

    def add(self, run: str, event: dict[str, Any]) -> None:
        _merge(self.runs.setdefault(run, {}), event.get("run_facets") or {})
        for path in event.get("redacted") or []:
            parts = str(path).split(".")
            if len(parts) > 2 and parts[:2] == ["run", "facets"]:
                self.cut.setdefault(run, set()).add(parts[2])
        _merge(self.jobs.setdefault(run, {}), (event.get("job") or {}).get("facets") or {})
        for side, extra in (("inputs", "input_facets"), ("outputs", "output_facets")):
            for dataset in event.get(side) or []:
                if dataset.get("dataset"):
                    key = (run, side, dataset["dataset"])
                    _merge(self.io.setdefault(key, {}), dataset.get(extra) or {})

    def run_facets(self, run: str, *, whole: bool = False) -> dict[str, Any]:
        """The run facets received; ``whole``: only those kept whole (a facet whose
        personal fields were redacted on the way in no longer follows its schema)."""
        cut = self.cut.get(run, set()) if whole else set()
        return {k: v for k, v in self.runs.get(run, {}).items() if k not in cut}

    def job_facets(self, run: str) -> dict[str, Any]:
        return dict(self.jobs.get(run, {}))

    def io_facets(self, run: str, side: str, version: str) -> dict[str, Any]:
        """The input (``side`` "inputs") or output facets ``run`` sent for ``version``."""
        return dict(self.io.get((run, side, version), {}))


#: Where a stored ``openlineage-*-event`` body keeps what a path of the event as sent
#: names: (the path's first parts, the body's keys for them).
_PLACES = (
    (("run", "facets"), ("run_facets",)),
    (("job", "facets"), ("job", "facets")),
    (("dataset", "facets"), ("facets",)),
)
_DATASET_PLACES = {
    "facets": "facets",
    "inputFacets": "input_facets",
    "outputFacets": "output_facets",
}


def restored(body: dict[str, Any]) -> dict[str, Any]:
    """A stored ``openlineage-*-event`` body with the integers it had to keep as text
    (beyond ±(2^53-1), listed in ``stringified``) numbers again, as they were sent, so
    facets sent on validate as they did; non-finite numbers stay text."""
    paths = body.get("stringified") or []
    if not paths:
        return body
    body = json.loads(json.dumps(body))  # a copy to change
    for path in paths:
        parts = str(path).split(".")
        target: list[Any] | None = None
        for head, keys in _PLACES:
            if tuple(parts[: len(head)]) == head:
                target, parts = [*keys], parts[len(head) :]
                break
        if target is None and len(parts) > 2 and parts[0] in ("inputs", "outputs"):
            place = _DATASET_PLACES.get(parts[2])
            if place is not None and parts[1].isdigit():
                target, parts = [parts[0], int(parts[1]), place], parts[3:]
        if target is not None and parts:
            _restore(body, [*target, *parts])
    return body


def _restore(body: Any, steps: list[Any]) -> None:
    """Turn the integer text at ``steps`` (keys, list indexes) back into a number."""
    node = body
    for step in steps[:-1]:
        if isinstance(node, list) and str(step).isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return  # a key holding '.' (or changed since): left as text
    last = steps[-1]
    if isinstance(node, list) and str(last).isdigit() and int(last) < len(node):
        key: Any = int(last)
    elif isinstance(node, dict) and last in node:
        key = last
    else:
        return
    value = node[key]
    if isinstance(value, str) and value.lstrip("-").isdigit():
        node[key] = int(value)
