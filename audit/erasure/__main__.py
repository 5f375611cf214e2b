"""``python -m audit.erasure schema``: print the erasure certificate's JSON Schema, the
text of ``docs/schemas/erasure-certificate.schema.json``."""

from __future__ import annotations

import sys

from audit.erasure.schema import schema_text


def main(argv: list[str]) -> int:
    """Print the schema for ``schema``; anything else is a usage error (exit 2)."""
    if argv != ["schema"]:
        print("usage: python -m audit.erasure schema", file=sys.stderr)
        return 2
    sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
