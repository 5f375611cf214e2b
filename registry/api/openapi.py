"""The API's OpenAPI document, as pinned in ``docs/openapi.json``.

``python -m registry.api.openapi > docs/openapi.json`` rewrites it after a
deliberate change; a test fails while the two differ. ``complete`` adds to what
FastAPI generates what the routes cannot say themselves: the problems every
operation can answer (``registry.api.problems``) and the schemas of OpenLineage
events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from registry.api import problems


def spec() -> dict[str, Any]:
    """The OpenAPI document of the app (opens no database)."""
    from registry.api.app import create_app  # the app builds its document with ``complete``

    return create_app().openapi()


def complete(
    document: dict[str, Any], schemas: Mapping[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``document`` (FastAPI's) with ``schemas`` added to its components (schemas the
    routes refer to that no model generates) and the problems of every operation
    declared."""
    found = document.setdefault("components", {}).setdefault("schemas", {})
    found.update(schemas or {})
    document["components"]["schemas"] = dict(sorted(found.items()))
    return problems.document(document)


def text() -> str:
    return json.dumps(spec(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(text(), end="")
