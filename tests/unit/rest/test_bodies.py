"""A request body is read only up to its limit: a declared size over it is refused unread, and a
body sent in chunks is refused as soon as it passes the limit."""

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from remit.rest.bodies import BodyTooLargeError, capped_body

CHUNK = b"x" * 1000


class ChunkedSender:
    """An ASGI `receive` that sends `chunks` chunks and counts how many were asked for."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.sent = 0

    async def __call__(self) -> Message:
        self.sent += 1
        more = self.sent < self.chunks
        return {"type": "http.request", "body": CHUNK, "more_body": more}


def _request(sender: ChunkedSender, headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, sender)


def test_a_body_within_the_limit_is_read_whole() -> None:
    sender = ChunkedSender(3)
    body = asyncio.run(capped_body(_request(sender, {}), 3000))
    assert body == CHUNK * 3
    assert sender.sent == 3


def test_a_declared_length_over_the_limit_is_refused_before_anything_is_read() -> None:
    sender = ChunkedSender(10_000)
    request = _request(sender, {"content-length": str(len(CHUNK) * 10_000)})
    with pytest.raises(BodyTooLargeError, match="larger than 5000 bytes"):
        asyncio.run(capped_body(request, 5000))
    assert sender.sent == 0


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    sender = ChunkedSender(10_000)  # 10 MB, sent without a declared length
    with pytest.raises(BodyTooLargeError):
        asyncio.run(capped_body(_request(sender, {}), 5000))
    assert sender.sent == 6  # the sixth chunk passed 5,000 bytes; nothing after it was read


def test_a_declared_length_that_understates_the_body_does_not_get_past_the_limit() -> None:
    sender = ChunkedSender(10_000)
    with pytest.raises(BodyTooLargeError):
        asyncio.run(capped_body(_request(sender, {"content-length": "10"}), 5000))
    assert sender.sent == 6
