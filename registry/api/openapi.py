"""The API's OpenAPI document, as pinned in ``docs/openapi.json``.

``python -m registry.api.openapi > docs/openapi.json`` rewrites it after a
deliberate change; a test fails while the two differ. The app completes what
FastAPI generates with what the routes cannot say themselves
(``registry.api.problems.complete``): the problems every operation can answer and
the schemas of OpenLineage events.
"""

from __future__ import annotations

import json
from typing import Any

from registry.api.app import create_app


def spec() -> dict[str, Any]:
    """The OpenAPI document of the app (opens no database)."""
    return create_app().openapi()


def text() -> str:
    return json.dumps(spec(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(text(), end="")
