"""Grants of access between projects: the one way a link may cross a project.

A project's writes may reference only that project's runs, dataset versions and
model versions, and its readers see only its own nodes. A project's admin may
grant another project access: from then on the grantee's runs may read the
granting project's dataset and model versions (run inputs, derivations, a base
model to fine-tune), and the grantee's readers see the granting project's nodes
in lineage answers. Runs, deployments, records and predictions stay the owner's:
no grant lets another project write to them.

Grants and revocations are events of the granting project (``entity``
``project:<project>``; their types are in the catalogue, ``registry.events``),
appended by its admin and so in the log and the access trail; the catalogue
projects them into ``project_grants``. A revocation stops
new links; links made under the grant stay in the log, and the grantee's
readers no longer see the other project's nodes (they are counted as withheld).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from registry.events import make_event
from registry.ids import project_id
from registry.store.raw import Raw

if TYPE_CHECKING:
    from registry.ledger import Ledger


def readable_projects(raw: Raw, project: str) -> frozenset[str]:
    """The projects whose nodes ``project``'s readers may see: itself and every project
    that grants it access now."""
    granted = raw.all(
        "SELECT project FROM project_grants WHERE grantee = ? AND revoked_pos IS NULL",
        (project,),
    )
    return frozenset([project, *(row[0] for row in granted)])


def grants(raw: Raw, project: str) -> list[dict[str, Any]]:
    """Grants made by ``project`` and to it, oldest first, revoked ones included."""
    rows: Iterable[Any] = raw.all(
        "SELECT project, grantee, granted_pos, granted_by, granted_at, reason, revoked_pos, "
        "revoked_by, revoked_at FROM project_grants WHERE project = ? OR grantee = ? "
        "ORDER BY granted_pos",
        (project, project),
    )
    return [
        {
            "project": r[0],
            "grantee": r[1],
            "granted_position": int(r[2]),
            "granted_by": r[3],
            "granted_at": r[4],
            "reason": r[5],
            "revoked_position": None if r[6] is None else int(r[6]),
            "revoked_by": r[7],
            "revoked_at": r[8],
        }
        for r in rows
    ]


def _change(
    ledger: Ledger, kind: str, project: str, grantee: str, actor: str, reason: str | None
) -> int:
    event = make_event(
        kind,
        project=project,
        entity=project_id(project),
        actor=actor,
        body={"grantee": grantee, "reason": reason},
    )
    return ledger.append([event])[0]


def grant(
    ledger: Ledger, project: str, grantee: str, *, actor: str, reason: str | None = None
) -> int:
    """Let ``grantee`` use and read ``project``'s dataset and model versions; return the
    position of the ``project-access-granted`` event."""
    return _change(ledger, "project-access-granted", project, grantee, actor, reason)


def revoke(
    ledger: Ledger, project: str, grantee: str, *, actor: str, reason: str | None = None
) -> int:
    """End the access ``project`` granted ``grantee``; return the position of the
    ``project-access-revoked`` event."""
    return _change(ledger, "project-access-revoked", project, grantee, actor, reason)
