"""A client that sends slowly holds nothing for long: a request's body that does not arrive
within REMIT_API_READ_TIMEOUT_S is answered 408 in Stripe's shape and its place under the
in-flight bound freed; a connection whose request head does not arrive in that time is closed;
past REMIT_API_MAX_CONNECTIONS a new connection is answered 429 at once. The api process runs
under uvicorn as `remit serve` runs it; the gRPC side is faked."""

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn

from remit.core.jsonview import JsonObject
from remit.rest.app import Operation, build_app
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.params import Schema
from remit.rest.server import listening_socket, uvicorn_config
from tests.support.ports import free_port
from tests.support.rest_facade import every_key_is_a_secret_key, faked_dependencies

pytestmark = pytest.mark.anyio

KEY = "sk_test_" + "a" * 24
# For the tests that wait for the timeout.
READ_TIMEOUT_S = 0.3
# For those whose connections must stay open, saying nothing, while the test goes on, however
# slowly a loaded machine runs it.
LONG_READ_TIMEOUT_S = 60.0
# Only an answer that never comes takes this long.
ANSWERED_WITHIN_S = 30.0


async def _created(context: ApiContext, deps: Dependencies) -> JsonObject:
    return {"id": "cus_1", "object": "customer"}


async def _slow(context: ApiContext, deps: Dependencies) -> JsonObject:
    await asyncio.sleep(2 * READ_TIMEOUT_S)
    return {"id": "cus_1", "object": "customer"}


def _app() -> Any:
    deps = faked_dependencies(every_key_is_a_secret_key)
    operations = [
        Operation("POST", "/v1/customers", Schema({}), _created),
        Operation("GET", "/v1/customers/{customer}", Schema({}), _slow),
    ]
    return build_app(deps, operations, max_in_flight=1)


@asynccontextmanager
async def _serving(
    monkeypatch: pytest.MonkeyPatch, read_timeout_s: float = READ_TIMEOUT_S
) -> AsyncIterator[int]:
    monkeypatch.setenv("REMIT_API_READ_TIMEOUT_S", str(read_timeout_s))
    monkeypatch.setenv("REMIT_API_MAX_CONNECTIONS", "2")
    port = free_port()
    server = uvicorn.Server(uvicorn_config(_app()))
    serving = asyncio.create_task(server.serve(sockets=[listening_socket("127.0.0.1", port)]))
    while not server.started:
        assert not serving.done()
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await serving


def _head(length: int) -> bytes:
    return (
        "POST /v1/customers HTTP/1.1\r\nHost: api\r\n"
        f"Authorization: Bearer {KEY}\r\nIdempotency-Key: slow-1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _answer(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), ANSWERED_WITHIN_S)


async def test_a_body_that_does_not_arrive_in_time_is_answered_408(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _serving(monkeypatch) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_head(100) + b"name=half")
        await writer.drain()
        answer = await _answer(reader)  # read to the end: the server closes the connection
        writer.close()

        # Its place under the in-flight bound (1) is free again.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_head(0))
        await writer.drain()
        after = await asyncio.wait_for(reader.readuntil(b"\r\n"), ANSWERED_WITHIN_S)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    headers = head.decode().lower()
    assert "connection: close" in headers
    assert "idempotency-key: slow-1" in headers
    assert "stripe-should-retry: true" in headers
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert after.startswith(b"HTTP/1.1 200 ")


async def test_a_connection_whose_request_head_does_not_arrive_in_time_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _serving(monkeypatch) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/customers HTTP/1.1\r\nHost: a")
        await writer.drain()
        assert await _answer(reader) == b""
        writer.close()


async def test_connections_past_the_cap_are_answered_429_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _serving(monkeypatch, LONG_READ_TIMEOUT_S) as port:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answer = await _answer(reader)
            writer.close()
        finally:
            for sock in held:
                sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429 ")
    assert json.loads(body)["error"]["code"] == "rate_limit"


async def test_what_is_not_http_is_still_refused_in_stripes_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _serving(monkeypatch) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/customers HTTP/1.1\r\nHost: api\r\nX-Bad: a\x01b\r\n\r\n")
        await writer.drain()
        answer = await _answer(reader)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


async def test_a_pipelined_request_served_past_the_timeout_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its head arrived with the request before it: the wait for a head does not cut it off."""
    async with _serving(monkeypatch) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        get = f"GET /v1/customers/cus_1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {KEY}\r\n"
        writer.write(
            _head(0) + (get + "\r\n").encode() + (get + "Connection: close\r\n\r\n").encode()
        )
        await writer.drain()
        answers = await _answer(reader)
        writer.close()
    assert answers.count(b"HTTP/1.1 200 ") == 3


def _refused_answer(port: int) -> bytes:
    """Connect, send a request at once, as a client does, and read the answer only once the
    server has surely closed its side."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(9) + b"name=late")
        time.sleep(0.05)
        sock.settimeout(ANSWERED_WITHIN_S)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


async def test_a_refused_connection_s_request_does_not_lose_it_its_429(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closed with the request unread, the server's socket would answer it with a reset, which
    discards the 429 before the client reads it: the server reads and drops what comes before
    it closes."""
    async with _serving(monkeypatch, LONG_READ_TIMEOUT_S) as port:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            await asyncio.sleep(0.05)
            answers = [await asyncio.to_thread(_refused_answer, port) for _ in range(5)]
        finally:
            for sock in held:
                sock.close()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 429 ")


async def _status_line(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_head(0))
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), ANSWERED_WITHIN_S)
    writer.close()
    return answer


async def test_a_refused_connection_lingering_takes_no_place_under_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with _serving(monkeypatch, LONG_READ_TIMEOUT_S) as port:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            await asyncio.sleep(0.05)
            # Refused, read to the end of its answer, and left open: it lingers.
            reader, lingering = await asyncio.open_connection("127.0.0.1", port)
            assert (await _answer(reader)).startswith(b"HTTP/1.1 429 ")
            held.pop().close()
            # The server frees the closed one's place once it sees the close, which a loaded
            # machine can delay: refused until then. Were the lingering one to take a place,
            # every connection would be refused for as long as it lingers.
            deadline = asyncio.get_running_loop().time() + ANSWERED_WITHIN_S
            while (answer := await _status_line(port)).startswith(b"HTTP/1.1 429 "):
                assert asyncio.get_running_loop().time() < deadline, "no place came free"
                await asyncio.sleep(0.05)
            lingering.close()
        finally:
            for sock in held:
                sock.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
