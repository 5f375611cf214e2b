"""The SDK's backend over HTTP: ``registry.connect("http://host:8000", api_key=...)``.

Every call is one request to ``mlledger serve``; problem-details errors come
back as the exceptions the SDK raises on a local file (EventRejected with its
index and field, NotFound, Conflict, ...). Requests carry ``traceparent`` so a
job's spans and the events it appends share a trace. Appends are retried on a
broken connection: events are keyed by their ids, so a batch sent twice is
stored once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, NoReturn, Unpack

import httpx

from registry import intake
from registry.erasures import EraseOptions, erase_options
from registry.errors import (
    ConfigError,
    EventRejected,
    FieldError,
    Forbidden,
    InvalidInput,
    LedgerError,
    NotFound,
    Unauthenticated,
    error_for,
)
from registry.ids import NodeId, kind_of, openlineage_id
from registry.intake import Item
from registry.services import EXPECTED, NAMES
from registry.tracing import inject

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
RETRIES = 3
#: Whatever its kind, a 401 or 403 answer is the server refusing the key.
_BY_STATUS: dict[int, type[LedgerError]] = {401: Unauthenticated, 403: Forbidden}
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class HttpBackend:
    """Talks to an mlledger server's ``/api/v1``."""

    def __init__(self, url: str, api_key: str | None):
        if not api_key:
            raise ConfigError(
                f"connecting to {url} needs an API key: set MLLEDGER_API_KEY (or, in "
                "Python, pass registry.connect(..., api_key=...)); create one on the "
                "server's host with 'mlledger keys create --project P --role writer'"
            )
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._http = httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "mlledger-sdk"},
            timeout=TIMEOUT,
        )

    def opened_with(self) -> tuple[str, str | None]:
        """The server's URL and the API key, for a process that opens it again."""
        return self.url, self._api_key

    def close(self) -> None:
        self._http.close()

    # --- plumbing ---------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        retries: int = 0,
    ) -> Any:
        headers = inject({})
        content = None
        if body is not None:
            try:
                content = _ENCODE(body).encode()
            except (TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"request body is not JSON ({exc}); expected finite numbers, strings, "
                    "booleans, null, lists and objects"
                ) from None
            headers["Content-Type"] = "application/json"
        for attempt in range(retries + 1):
            try:
                response = self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
                break
            except httpx.TransportError as exc:
                if attempt == retries:
                    raise ConfigError(f"cannot reach the server at {self.url}: {exc}") from None
                time.sleep(0.2 * 2**attempt)
        if response.is_success:
            return response.json()
        _raise(response)

    # --- Backend ------------------------------------------------------------------------

    def append(self, project: str, items: Sequence[Item]) -> list[int]:
        intake.check(items)
        body = {"events": [intake.to_wire(item) for item in items]}
        answer = self._request("POST", f"/projects/{project}/events", body=body, retries=RETRIES)
        return list(answer["positions"])

    def dataset(self, node: str) -> dict[str, Any] | None:
        parsed = NodeId.parse(node)
        try:
            found = self._request(
                "GET",
                f"/projects/{parsed.project}/datasets/{parsed.name}/versions/{parsed.version}",
            )
        except NotFound:
            return None
        return {"digest": found["digest"], "records": found["records"]}

    def top_model_version(self, project: str, name: str) -> int | None:
        top = self._request("GET", f"/projects/{project}/models/{name}/top-version")["top_version"]
        return None if top is None else int(top)

    def resolve_model(self, project: str, text: str) -> str:
        return str(
            self._request("GET", f"/projects/{project}/models/resolve", params={"model": text})[
                "id"
            ]
        )

    def ask(self, project: str, question: str, **params: Any) -> dict[str, Any]:
        base = f"/projects/{project}/questions"
        if question == "scored":
            return self._request("POST", f"{base}/scored", body={"record": params["record"]})
        if question == "footprint":
            return self._request("POST", f"{base}/footprint", body={"subject": params["subject"]})
        query = {k: v for k, v in params.items() if v is not None}
        path = {"trained_on": "trained-on"}.get(question, question)
        return self._request("GET", f"{base}/{path}", params=query)

    def jobs(self, project: str, *, status: str | None = None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        return dict(self._request("GET", f"/projects/{project}/jobs", params=params))

    def job(self, project: str, run: str) -> dict[str, Any]:
        if openlineage_id(run):
            run = self._newest_run(project, run)
        return dict(self._request("GET", f"/projects/{project}/jobs/{run}"))

    def _newest_run(self, project: str, job: str) -> str:
        """The run an OpenLineage ``job:<namespace>:<name>`` names (its newest in the
        project), as the server resolves it: the root of its lineage, 0 hops deep (a
        namespace may hold '/', which no path segment can)."""
        root = str(
            self._request(
                "GET",
                f"/projects/{project}/questions/lineage",
                params={"node": job, "depth": 0},
            )["root"]
        )
        if kind_of(root) != "run":
            raise NotFound(
                f"no run {job!r} in project {project!r}: it names the "
                f"{NAMES.get(kind_of(root), kind_of(root))} {root}; expected {EXPECTED['run']}"
            )
        return root

    def subject_data(self, project: str, subject: str | int) -> list[dict[str, Any]]:
        return list(
            self._request(
                "POST", f"/projects/{project}/subjects/data/search", body={"subject": subject}
            )
        )

    def erase(
        self, project: str, subject: str | int, *, actor: str, **options: Unpack[EraseOptions]
    ) -> dict[str, Any]:
        # The server records the erasure as done by the key that asks (``actor`` is local).
        chosen = erase_options(options)
        body = {"subject": subject, **chosen, "retain": list(chosen["retain"])}
        return dict(self._request("POST", f"/projects/{project}/erasures", body=body))

    def resume_erasures(self, project: str, *, purge: bool = True) -> list[dict[str, Any]]:
        body = {"purge": purge}
        return list(self._request("POST", f"/projects/{project}/erasures/resume", body=body))

    def purge(self, project: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/projects/{project}/erasures/purge", body={}))

    def erasures(self, project: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/projects/{project}/erasures"))

    def erasure_certificate(self, project: str, erasure: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/projects/{project}/erasures/{erasure}/certificate"))

    def remediations(self, project: str, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status is not None else None
        return list(self._request("GET", f"/projects/{project}/remediations", params=params))

    def erased_records(self, project: str, records: Sequence[str | int]) -> list[bool]:
        body = {"records": list(records)}
        answer = self._request("POST", f"/projects/{project}/erasures/check", body=body)
        return [bool(x) for x in answer["erased"]]

    def subject_report(self, project: str, subject: str | int) -> dict[str, Any]:
        body = {"subject": subject}
        return dict(self._request("POST", f"/projects/{project}/reports/subjects", body=body))


def _raise(response: httpx.Response) -> NoReturn:
    """Raise the exception a problem-details answer stands for."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(problem.get("detail") or f"HTTP {response.status_code} from the server")
    slug = str(problem.get("type", "")).rsplit(":", 1)[-1]
    if slug == "event-rejected":
        raise EventRejected(
            int(problem.get("index", 0)),
            str(problem.get("event_id", "?")),
            str(problem.get("event_type", "?")),
            str(problem.get("field", "?")),
            str(problem.get("reason", detail)),
        )
    # The class the kind names (registry.errors is the one table of kinds); the API's
    # own kinds name none: a schema error is refused input, anything else the base class.
    cls = error_for(slug) or (InvalidInput if slug == "invalid-request" else LedgerError)
    if cls is InvalidInput:
        field = problem.get("field")
        raise FieldError(field, detail) if isinstance(field, str) else InvalidInput(detail)
    raise _BY_STATUS.get(response.status_code, cls)(detail)
