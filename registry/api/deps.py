"""Dependencies shared by the routers: the ledger, and who is asking.

``allow(permission, action)`` is the one gate: it reads the bearer key,
decides (deny by default: no key 401; another project or a role without the
permission 403), records the decision in the access trail, allow and deny
alike, and hands the route a ``Principal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from registry import auth
from registry.api.gate import PRINCIPAL, Principal, Requirement, safe_project, trail_resource
from registry.api.problems import Problem
from registry.api.schemas import NAME_PATTERN
from registry.ledger import Ledger
from registry.settings import Settings
from registry.tracing import current_trace_id

bearer = HTTPBearer(auto_error=False, description="An API key from `mlledger keys create`.")


async def get_ledger(request: Request) -> Ledger:
    # Async: nothing blocks here, and a sync dependency costs a hop to a worker thread.
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with (``create_app`` keeps them in its state)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def source_of(request: Request) -> str:
    """The address the request came from ("unknown" when the server does not say)."""
    return request.client.host if request.client is not None else "unknown"


async def get_source(request: Request) -> str:
    return source_of(request)


#: The address the request came from, as the access trail records it.
SourceDep = Annotated[str, Depends(get_source)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def project_path(description: str) -> Any:
    """A path parameter naming a project (others: 422)."""
    return Path(description=description, min_length=1, max_length=128, pattern=NAME_PATTERN)


ProjectPath = Annotated[str, project_path("Project name.")]


def _admit(request: Request, token: str | None, project: str | None, req: Requirement) -> Principal:
    """Decide and record, for an app built without the gate middleware (the gate
    normally decided before the body was read, and left its Principal in the scope)."""
    ledger: Ledger = request.app.state.ledger
    key = auth.verify_token(ledger.store, token) if token else None
    project = project or (key.project if key else None)
    shown = safe_project(project)
    decision = auth.decide(
        key, project=project or "", permission=req.permission, had_token=token is not None
    )
    recorder: auth.TrailRecorder = request.app.state.trail
    recorder.record(
        auth.AccessEntry(
            actor=key.key_id if key is not None else "anonymous",
            project=shown,
            action=req.action,
            resource=trail_resource(request.url.path, request.url.query),
            source=source_of(request)[:300],
            outcome="allow" if decision.allowed else "deny",
            status=decision.status,
            reason=decision.reason[:500],
            trace_id=current_trace_id(),
        )
    )
    if not decision.allowed or key is None or shown is None:
        raise Problem("unauthenticated" if decision.status == 401 else "forbidden", decision.reason)
    return Principal(key, shown)


def _check(permission: str) -> None:
    if permission not in auth.PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")


async def _principal(
    request: Request, credentials: Credentials, project: str | None, need: Requirement
) -> Principal:
    """The Principal the gate admitted (it decided before the body was read), or the
    decision made here for an app without the gate."""
    found = request.scope.get(PRINCIPAL)
    if isinstance(found, Principal):
        return found
    token = credentials.credentials if credentials is not None else None
    admitted: Principal = await run_in_threadpool(_admit, request, token, project, need)
    return admitted


def allow(permission: str, action: str) -> Any:
    """A dependency admitting keys whose role has ``permission`` on the ``{project}`` of
    the request's path (decided by the gate before the body is read)."""
    _check(permission)
    need = Requirement(permission, action)

    async def gate(request: Request, credentials: Credentials, project: ProjectPath) -> Principal:
        return await _principal(request, credentials, project, need)

    gate.requirement = need  # type: ignore[attr-defined]
    return Depends(gate)


@dataclass(frozen=True)
class Asking:
    """What a route works with: the ledger, and the principal ``allow`` admitted."""

    ledger: Ledger
    who: Principal

    @property
    def project(self) -> str:
        return self.who.project

    @property
    def actor(self) -> str:
        return self.who.actor


def asking(permission: str, action: str) -> Any:
    """Like ``allow``, handing the route the ledger together with the principal."""
    admit = allow(permission, action)

    async def both(ledger: LedgerDep, who: Principal = admit) -> Asking:
        return Asking(ledger, who)

    both.requirement = admit.dependency.requirement  # type: ignore[attr-defined]
    return Depends(both)


def allow_own(permission: str, action: str) -> Any:
    """Like ``allow``, on the key's own project (routes without ``{project}``, such as the
    OpenLineage endpoint, whose clients know only a URL and a key)."""
    _check(permission)
    need = Requirement(permission, action, own=True)

    async def gate(request: Request, credentials: Credentials) -> Principal:
        return await _principal(request, credentials, None, need)

    gate.requirement = need  # type: ignore[attr-defined]
    return Depends(gate)
