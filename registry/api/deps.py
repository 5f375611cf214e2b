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

from registry import auth
from registry.api.problems import Problem
from registry.ledger import Ledger
from registry.tracing import current_trace_id

bearer = HTTPBearer(auto_error=False, description="An API key from `mlledger keys create`.")


def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class Principal:
    """An allowed caller: its key, the project it acts on, and its name in the log."""

    key: auth.ApiKey
    project: str

    @property
    def actor(self) -> str:
        return f"key:{self.key.key_id}"

    def actor_for(self, declared: str | None) -> str:
        """The actor stored on events: what the client declared, with the key that sent it,
        so every change names the credential that made it."""
        if not declared or declared == self.actor:
            return self.actor
        return f"{declared[:250]} (key:{self.key.key_id})"


def _source(request: Request) -> str:
    client = request.client
    return client.host if client is not None else "unknown"


def _resource(request: Request) -> str:
    # Paths and query strings carry node ids only: personal keys travel in bodies.
    query = request.url.query
    return request.url.path + ("?" + query if query else "")


ProjectPath = Annotated[str, Path(description="Project name.", min_length=1, max_length=128)]


def _admit(
    request: Request,
    ledger: Ledger,
    credentials: HTTPAuthorizationCredentials | None,
    project: str | None,
    permission: str,
    action: str,
) -> Principal:
    token = credentials.credentials if credentials is not None else None
    key = auth.verify_token(ledger.store, token) if token else None
    project = project or (key.project if key else None)
    decision = auth.decide(
        key, project=project or "", permission=permission, had_token=token is not None
    )
    recorder: auth.TrailRecorder = request.app.state.trail
    recorder.record(
        auth.AccessEntry(
            actor=key.key_id if key is not None else "anonymous",
            project=project,
            action=action,
            resource=_resource(request),
            source=_source(request),
            outcome="allow" if decision.allowed else "deny",
            status=decision.status,
            reason=decision.reason,
            trace_id=current_trace_id(),
        )
    )
    if not decision.allowed or key is None or project is None:
        raise Problem("unauthenticated" if decision.status == 401 else "forbidden", decision.reason)
    return Principal(key, project)


def _check(permission: str) -> None:
    if permission not in auth.PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")


def allow(permission: str, action: str) -> Any:
    """A dependency admitting keys whose role has ``permission`` on the ``{project}`` of
    the request's path."""
    _check(permission)

    def gate(
        request: Request, ledger: LedgerDep, credentials: Credentials, project: ProjectPath
    ) -> Principal:
        return _admit(request, ledger, credentials, project, permission, action)

    return Depends(gate)


def allow_own(permission: str, action: str) -> Any:
    """Like ``allow``, on the key's own project (routes without ``{project}``, such as the
    OpenLineage endpoint, whose clients know only a URL and a key)."""
    _check(permission)

    def gate(request: Request, ledger: LedgerDep, credentials: Credentials) -> Principal:
        return _admit(request, ledger, credentials, None, permission, action)

    return Depends(gate)
