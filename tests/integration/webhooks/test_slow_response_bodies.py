"""An endpoint's answer is its status line: a body that is slow to come, or never comes, leaves a
short snippet, not a failed attempt (a failure would be retried and the event delivered twice)."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from remit.webhooks.sender import HttpResult, WebhookSender
from remit.webhooks.urls import UrlPolicy

pytestmark = pytest.mark.anyio

PostTo = Callable[[bytes], Awaitable[HttpResult]]
# The attempt's timeout, which only a wait for the body that never comes would reach: long, so
# that a loaded machine's slowness is never taken for that wait.
ATTEMPT_TIMEOUT_S = 30.0


@pytest.fixture
async def post_to_raw_server() -> AsyncIterator[PostTo]:
    """POSTs once to a server that writes the given bytes after the request, then holds the
    connection open without another byte."""
    servers: list[asyncio.Server] = []
    held = asyncio.Event()

    async def post(head: bytes) -> HttpResult:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head)
            await writer.drain()
            await held.wait()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        sender = WebhookSender(
            UrlPolicy(allow_internal=True), timeout_s=ATTEMPT_TIMEOUT_S, snippet_wait_s=0.2
        )
        try:
            return await sender.post(f"http://127.0.0.1:{port}/", b"{}", {})
        finally:
            await sender.close()

    yield post
    held.set()
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_2xx_whose_body_never_comes_is_a_success(post_to_raw_server: PostTo) -> None:
    started = time.monotonic()
    result = await post_to_raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert result.http_status == 200
    assert result.error is None
    assert result.response_snippet == ""
    # Bounded by the snippet's wait, not by the attempt's timeout.
    assert time.monotonic() - started < ATTEMPT_TIMEOUT_S / 3


async def test_the_part_of_a_body_that_came_is_kept(post_to_raw_server: PostTo) -> None:
    result = await post_to_raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
    assert (result.http_status, result.error, result.response_snippet) == (200, None, "ok")


@pytest.mark.parametrize(
    ("head", "status", "retry_after"),
    [
        (b"HTTP/1.1 410 Gone\r\nContent-Length: 10\r\n\r\n", 410, None),
        (b"HTTP/1.1 429 Too Many\r\nRetry-After: 120\r\nContent-Length: 10\r\n\r\n", 429, "120"),
    ],
)
async def test_a_410_or_429_whose_body_never_comes_keeps_its_meaning(
    post_to_raw_server: PostTo, head: bytes, status: int, retry_after: str | None
) -> None:
    result = await post_to_raw_server(head)
    assert (result.http_status, result.error, result.retry_after) == (status, None, retry_after)


async def test_a_status_line_that_never_comes_is_still_a_timeout() -> None:
    held = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await held.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = WebhookSender(UrlPolicy(allow_internal=True), timeout_s=0.3)
    try:
        result = await sender.post(f"http://127.0.0.1:{port}/", b"{}", {})
    finally:
        await sender.close()
        held.set()
        server.close()
        await server.wait_closed()
    assert result.http_status is None
    assert result.error is not None
    assert result.error.startswith("timeout")
