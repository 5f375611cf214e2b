"""The event types of grants between projects: access granted and revoked."""

from __future__ import annotations

from pydantic import Field, field_validator

from registry.errors import InvalidNodeId
from registry.events.catalogue import Body, event_type
from registry.ids import check_name

_REASON_MAX = 1000


def _grantee(value: str) -> str:
    try:
        return check_name(value, "grantee project")
    except InvalidNodeId as exc:  # a plain ValueError, for pydantic to report
        raise ValueError(str(exc)) from None


class _Grant(Body):
    grantee: str = Field(description="The project granted access.")
    reason: str | None = Field(
        default=None, max_length=_REASON_MAX, description="Why, in a few words."
    )

    @field_validator("grantee")
    @classmethod
    def _check_grantee(cls, value: str) -> str:
        return _grantee(value)


@event_type("project-access-granted", entity="project")
class ProjectAccessGranted(_Grant):
    """A project lets another project use and read its dataset and model versions.

    The grantee's runs may then take this project's dataset and model versions as
    inputs and derive datasets from them, and the grantee's readers see this
    project's nodes in lineage answers. Appended by the granting project's admin
    (``registry.grants``).
    """


@event_type("project-access-revoked", entity="project")
class ProjectAccessRevoked(_Grant):
    """A project withdraws the access it granted another project.

    New links to this project's versions are refused from now on; links made under
    the grant stay in the log. Appended by the granting project's admin.
    """

    grantee: str = Field(description="The project whose access ends.")
