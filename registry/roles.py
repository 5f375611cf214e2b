"""Roles and the permissions each grants (see docs/security.md): a table with no
imports, read by the key checks and by the command line's help."""

from __future__ import annotations

PERMISSIONS = ("read", "write", "audit", "personal", "admin")
ROLES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "writer": frozenset({"read", "write"}),
    "auditor": frozenset({"read", "audit"}),
    "dpo": frozenset({"read", "personal"}),
    "admin": frozenset(PERMISSIONS),
}
