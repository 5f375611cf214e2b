"""Compressed request bodies, on a real server, on SQLite and PostgreSQL.

``Content-Encoding: gzip`` (the official OpenLineage client's ``compression``) and
``deflate`` are decoded on every write route; any other coding gets 415 naming it;
a body that is not what its coding says gets 400; the body limit counts the
decompressed bytes, so a compression bomb gets 413 having cost at most the limit.
Nothing is written by a refused request.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import Iterator

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpCompression,
    HttpConfig,
    HttpTransport,
)

from registry.api.gate import _Decoder, _TooLarge, _Undecodable
from registry.assembly import open_ledger
from registry.events import StoredEvent
from tests.support.apiserver import ApiServer

P = "squeezed"
LIMIT = 200_000
SERVER_ENV = {"MLLEDGER_MAX_BODY_BYTES": str(LIMIT)}
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python"


@pytest.fixture(scope="module")
def server(store_server: ApiServer) -> ApiServer:
    return store_server


def _appended(server: ApiServer, head: int) -> list[StoredEvent]:
    ledger = open_ledger(server.db)
    try:
        return ledger.read(head + 1)
    finally:
        ledger.close()


def _head(server: ApiServer) -> int:
    ledger = open_ledger(server.db)
    try:
        return ledger.head()
    finally:
        ledger.close()


def _dataset(name: str) -> bytes:
    return json.dumps(
        {"name": name, "version": "1", "uri": f"s3://bucket/{name}", "digest": "sha256:" + "a" * 64}
    ).encode()


def test_the_official_client_with_gzip_lands_its_events(server: ApiServer) -> None:
    config = HttpConfig(
        url=server.url,
        auth=ApiKeyTokenProvider({"apiKey": server.key(P, "writer")}),
        compression=HttpCompression.GZIP,
    )
    client = OpenLineageClient(transport=HttpTransport(config))
    run_id = str(uuid.uuid4())
    head = _head(server)
    for state, at in ((RunState.START, "10:00"), (RunState.COMPLETE, "10:05")):
        client.emit(
            RunEvent(
                eventType=state,
                eventTime=f"2026-11-02T{at}:00.000Z",
                run=Run(runId=run_id),
                job=Job(namespace="nightly", name="compress_orders"),
                producer=PRODUCER,
                outputs=[OutputDataset(namespace="s3://lake", name="orders")],
            )
        )
    appended = _appended(server, head)
    started = [e for e in appended if e.type == "run-started"]
    assert [e.entity for e in started] == [f"run:{run_id}"]
    assert "run-completed" in [e.type for e in appended]
    assert all(e.project == P for e in appended)


@pytest.mark.parametrize(
    "coding, compress",
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # the zlib format, as RFC 9110 defines deflate
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw, as some clients send
        ("GZIP, identity", gzip.compress),
        ("gzip", lambda data: gzip.compress(data[:20]) + gzip.compress(data[20:])),  # 2 members
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "with-identity", "two-members"],
)
def test_each_coding_is_decoded_on_a_write_route(
    server: ApiServer, coding: str, compress: object
) -> None:
    name = f"packed-{uuid.uuid4().hex[:8]}"
    head = _head(server)
    with server.client(server.key(P, "writer")) as http:
        answer = http.post(
            f"/projects/{P}/datasets",
            content=compress(_dataset(name)),  # type: ignore[operator]
            headers={"Content-Type": "application/json", "Content-Encoding": coding},
        )
    assert answer.status_code == 201, answer.text
    registered = [e for e in _appended(server, head) if e.type == "dataset-version-registered"]
    assert [e.body["name"] for e in registered] == [name]


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
def test_a_coding_not_decoded_is_415_naming_it_and_writes_nothing(
    server: ApiServer, coding: str
) -> None:
    head = _head(server)
    with server.client(server.key(P, "writer")) as http:
        answer = http.post(
            f"/projects/{P}/datasets",
            content=_dataset("never"),
            headers={"Content-Type": "application/json", "Content-Encoding": coding},
        )
    assert answer.status_code == 415, answer.text
    problem = answer.json()
    assert problem["type"] == "urn:mlledger:problem:unsupported-media-type"
    assert coding.split(",")[0] in problem["detail"] and "gzip or deflate" in problem["detail"]
    assert answer.headers["accept-encoding"] == "gzip, deflate"
    assert _head(server) == head


def test_authentication_comes_before_the_coding(server: ApiServer) -> None:
    with server.client("mll_not-a-key") as http:
        answer = http.post(
            f"/projects/{P}/datasets",
            content=_dataset("never"),
            headers={"Content-Type": "application/json", "Content-Encoding": "br"},
        )
    assert answer.status_code == 401, answer.text


@pytest.mark.parametrize(
    "body, why",
    [
        (b"this is not gzip at all", "incorrect header check"),
        (gzip.compress(b'{"name": "cut"}')[:-6], "ends before its compressed stream does"),
    ],
    ids=["garbage", "truncated"],
)
def test_a_body_that_is_not_its_coding_is_400_and_writes_nothing(
    server: ApiServer, body: bytes, why: str
) -> None:
    head = _head(server)
    with server.client(server.key(P, "writer")) as http:
        answer = http.post(
            f"/projects/{P}/datasets",
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert "not valid gzip data" in detail and why in detail
    assert _head(server) == head


def test_a_compression_bomb_is_413_and_writes_nothing(server: ApiServer) -> None:
    # 64 MiB of the same byte inside a JSON string: about 64 KiB on the wire.
    bomb = b'{"name": "bomb", "version": "1", "uri": "s3://b", "digest": "' + b"a" * (64 << 20)
    packed = gzip.compress(bomb, compresslevel=9)
    assert len(packed) < LIMIT  # its declared length passes: only decoding finds it
    head = _head(server)
    with server.client(server.key(P, "writer")) as http:
        answer = http.post(
            f"/projects/{P}/datasets",
            content=packed,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert answer.status_code == 413, answer.text
        assert answer.json()["type"] == "urn:mlledger:problem:payload-too-large"
        # The server goes on answering.
        assert http.get(f"/projects/{P}/models/clf/top-version").status_code == 200
    assert _head(server) == head


def test_the_decoder_never_makes_more_than_one_byte_past_the_limit() -> None:
    bomb = zlib.compress(b"\0" * (32 << 20), 9)
    decoder = _Decoder("deflate", 1000)
    with pytest.raises(_TooLarge):
        for start in range(0, len(bomb), 4096):
            decoder.feed(bomb[start : start + 4096], final=start + 4096 >= len(bomb))
    assert decoder.made == 1001


def test_the_decoder_takes_a_body_split_anywhere() -> None:
    body = json.dumps({"records": [f"r-{i}" for i in range(5000)]}).encode()
    for coding, packed in (
        ("gzip", gzip.compress(body)),
        ("deflate", zlib.compress(body)),
        ("deflate", zlib.compress(body)[2:-4]),
    ):
        for size in (1, 7, 1000):
            decoder = _Decoder(coding, len(body))
            pieces = [packed[i : i + size] for i in range(0, len(packed), size)]
            out = b"".join(
                decoder.feed(piece, final=i == len(pieces) - 1) for i, piece in enumerate(pieces)
            )
            assert out == body, (coding, size)
    with pytest.raises(_Undecodable, match="bytes after the end"):
        _Decoder("deflate", 10_000).feed(zlib.compress(b"{}") + b"more", final=True)


def test_a_stream_of_empty_compressed_members_is_cut_off_at_the_limit(server: ApiServer) -> None:
    # Decompressing to nothing, it would never pass the limit decoded: what was sent does.
    empty = gzip.compress(b"")

    def members() -> Iterator[bytes]:
        yield gzip.compress(_dataset("never"))
        for _ in range(2 * LIMIT // len(empty)):
            yield empty

    head = _head(server)
    with server.client(server.key(P, "writer")) as http:
        answer = http.post(
            f"/projects/{P}/datasets",
            content=members(),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    assert answer.status_code == 413, answer.text
    assert _head(server) == head


def test_codings_over_several_header_lines_are_one_list(server: ApiServer) -> None:
    head = _head(server)
    with server.client(server.key(P, "writer")) as http:
        answer = http.post(
            f"/projects/{P}/datasets",
            content=gzip.compress(_dataset("never")),
            headers=[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "br"),
                ("Content-Encoding", "gzip"),
            ],
        )
    assert answer.status_code == 415, answer.text
    assert "'br'" in answer.json()["detail"]
    assert _head(server) == head
