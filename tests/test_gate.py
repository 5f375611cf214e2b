"""The gate in front of the API, on a real server, on SQLite and PostgreSQL.

Authentication comes before the body is read; an anonymous request costs bounded
memory and bounded durable bytes; bodies have a limit; URLs carry no credentials
and no control characters; trail entries are normalised, bounded and hold no
identifier of a person; no input gives a 5xx.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.api.gate import RESOURCE_MAX, FailureLimiter, trail_resource
from registry.assembly import open_ledger
from tests.support.apiserver import ApiServer

P = "gated"
LIMIT = 200_000
PER_ADDRESS = 5


SERVER_ENV = {
    "MLLEDGER_MAX_BODY_BYTES": str(LIMIT),
    "MLLEDGER_AUTH_FAILURES_PER_MINUTE": str(PER_ADDRESS),
}


@pytest.fixture(scope="module")
def server(store_server: ApiServer) -> ApiServer:
    return store_server


def _trail_head(server: ApiServer) -> int:
    rows = server.trail()
    return rows[-1]["seq"] + 1 if rows else 0


def _log_head(server: ApiServer) -> int:
    ledger = open_ledger(server.db)
    try:
        return ledger.head()
    finally:
        ledger.close()


def _rss_kib(server: ApiServer) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _raw_request(server: ApiServer, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a request by hand (to declare lengths we do not send); return the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading: what we test
        sock.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


# --- authentication before the body ---------------------------------------------------------


def test_an_anonymous_body_is_never_read_and_costs_no_memory(server: ApiServer) -> None:
    """A 100 MB body without a key gets 401 at once; the server's memory does not grow
    by the body (it never reads it)."""
    before = _rss_kib(server)
    size = 100 * 1024 * 1024
    head = (
        f"POST /api/v1/projects/{P}/datasets HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    answer = _raw_request(server, head, [b"{" * 65536] * 16)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert _rss_kib(server) - before < 20 * 1024


def test_unparseable_json_without_a_key_is_401_and_recorded(server: ApiServer) -> None:
    since = _trail_head(server)
    with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as http:
        response = http.post(
            f"/projects/{P}/datasets",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    entries = server.trail(since)
    assert [(e["action"], e["status"], e["outcome"]) for e in entries][-1:] == [
        ("datasets.register", 401, "deny")
    ]


def test_a_body_over_the_limit_is_413_and_writes_nothing(server: ApiServer) -> None:
    token = server.key(P, "writer")
    head_before = _log_head(server)
    big = {"name": "big", "version": "1", "uri": "s3://b", "digest": "sha256:0",
           "records": [f"r-{i:08d}" for i in range(LIMIT // 10)]}  # fmt: skip
    with server.client(token) as http:
        declared = http.post(f"/projects/{P}/datasets", json=big)
        assert declared.status_code == 413, declared.text
        assert declared.json()["type"] == "urn:mlledger:problem:payload-too-large"
        assert "MLLEDGER_MAX_BODY_BYTES" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it comes
            yield b'{"name": "big", "version": "1", "uri": "s3://b", "records": ['
            for i in range(LIMIT // 10):
                yield f'"r-{i:08d}",'.encode()
            yield b'"last"]}'

        streamed = http.post(
            f"/projects/{P}/datasets",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 413, streamed.text
    assert _log_head(server) == head_before


# --- the URL ----------------------------------------------------------------------------------


def test_control_characters_in_the_url_are_400_on_both_stores(server: ApiServer) -> None:
    since = _trail_head(server)
    viewer = server.key(P, "viewer")
    with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as anonymous:
        got = anonymous.get(f"/projects/{P}/datasets/a%00b/versions/v1")
        assert got.status_code == 400, got.text
        assert "control character" in got.json()["detail"]
    with server.client(viewer) as http:
        got = http.get(f"/projects/{P}/questions/aliases", params={"name": "a\x00b"})
        assert got.status_code == 400, got.text
        assert "'name'" in got.json()["detail"]
        # The server still answers everyone else.
        assert http.get(f"/projects/{P}/models/clf/top-version").status_code == 200
    resources = [e["resource"] for e in server.trail(since)]
    assert all("\x00" not in r for r in resources)


def test_credentials_in_the_query_string_are_refused_and_never_kept(server: ApiServer) -> None:
    token = server.key(P, "viewer")
    since = _trail_head(server)
    with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as http:
        for name in ("api_key", "token", "access_token", "Authorization"):
            got = http.get(f"/projects/{P}/models/clf/top-version", params={name: token})
            assert got.status_code == 400, got.text
            assert "Authorization: Bearer" in got.json()["detail"]
            assert token not in got.text
    assert all(token not in str(e) for e in server.trail(since))
    assert token not in (server.log.read_text(errors="replace"))


# --- the trail --------------------------------------------------------------------------------


def test_trail_entries_are_bounded_and_normalised(server: ApiServer) -> None:
    since = _trail_head(server)
    long_name = "x" * 60_000
    with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as http:
        got = http.get(f"/projects/{P}/datasets/{long_name}/versions/1")
        assert got.status_code == 401
    [entry] = server.trail(since)[-1:]
    assert len(entry["resource"]) <= RESOURCE_MAX
    assert "#sha256=" in entry["resource"]


def test_record_ids_never_reach_the_trail(server: ApiServer) -> None:
    token = server.key(P, "viewer")
    pseudonym = uuid.uuid4().hex
    since = _trail_head(server)
    with server.client(token) as http:
        got = http.get(
            f"/projects/{P}/questions/lineage", params={"node": f"record:{P}/{pseudonym}"}
        )
        assert got.status_code == 404
    entries = server.trail(since)
    assert entries and all(pseudonym not in str(e) for e in entries)
    assert f"record:{P}/[redacted]" in entries[-1]["resource"]


def test_trail_resource_normalises_what_clients_send() -> None:
    assert trail_resource("/a/b", "") == "/a/b"
    assert trail_resource("/x", "api_key=mll_0123456789abcdef_s3cr3t&depth=2") == "/x?depth=2"
    assert (
        trail_resource("/x", "node=subject:p/abc&depth=1") == "/x?node=subject:p/[redacted]&depth=1"
    )
    assert "%00" in trail_resource("/a\x00b", "")
    assert trail_resource("/caf\u00e9", "") == "/caf%C3%A9"


# --- failed authentication ----------------------------------------------------------------------


def test_an_anonymous_flood_is_answered_429_and_costs_a_bounded_trail(server: ApiServer) -> None:
    """Past the per-address bound, failed authentications are answered 429 without a trail
    entry each; a valid key from the same address is served all along."""
    viewer = server.key(P, "viewer")
    since = _trail_head(server)
    statuses = []
    with (
        httpx.Client(base_url=server.url + "/api/v1", timeout=30) as anonymous,
        server.client(viewer) as http,
    ):
        for _ in range(60):
            statuses.append(anonymous.get(f"/projects/{P}/models/clf/top-version").status_code)
            assert http.get(f"/projects/{P}/models/clf/top-version").status_code == 200
    assert set(statuses) <= {401, 429}
    assert statuses.count(429) >= 60 - PER_ADDRESS
    denied = [e for e in server.trail(since) if e["outcome"] == "deny"]
    assert len(denied) <= PER_ADDRESS


def test_the_limiter_summarises_each_window_it_suppressed() -> None:
    clock = [0.0]
    limiter = FailureLimiter(window=60, per_address=2, total=3, clock=lambda: clock[0])
    verdicts = [limiter.admit(address)[0] for address in ["a", "a", "a", "b", "b", "c"]]
    assert verdicts == [True, True, False, True, False, False]
    assert limiter.due() is None
    clock[0] = 61.0
    recorded, summary = limiter.admit("a")
    assert recorded is True
    assert summary is not None
    assert (summary.action, summary.status, summary.outcome) == ("auth.suppressed", 429, "deny")
    assert summary.reason.startswith("3 failed authentications from 3 addresses")
    assert limiter.flush() is None  # nothing suppressed in the new window


def test_a_bounded_number_of_addresses_is_remembered() -> None:
    limiter = FailureLimiter(per_address=1, total=10_000, addresses=3, clock=lambda: 0.0)
    for i in range(10):
        limiter.admit(f"10.0.0.{i}")
        limiter.admit(f"10.0.0.{i}")
    summary = limiter.flush()
    assert summary is not None
    assert "from 4 addresses" in summary.reason  # 3 remembered and "the others"


def test_the_access_log_shows_the_normalised_resource() -> None:
    """uvicorn's access log lines (``mlledger serve --access-log``) keep no credential
    and no record id."""
    import logging

    from registry.api.gate import redact_access_log

    redact_access_log()
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/v1/x?node=record:p/" + "ab" * 16 + "&token=mll_x", "1.1", 400),
        None,
    )  # fmt: skip
    for log_filter in logging.getLogger("uvicorn.access").filters:
        assert not isinstance(log_filter, logging.Filter) or log_filter.filter(record)
    line = record.getMessage()
    assert "ab" * 16 not in line and "mll_x" not in line
    assert "/api/v1/x?node=record:p/[redacted]" in line
