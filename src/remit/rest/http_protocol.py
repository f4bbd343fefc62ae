"""uvicorn's HTTP protocol (httptools), refusing a request it cannot parse in Stripe's shape.

The parser refuses what HTTP does not allow before the app sees the request: a control
character in a header value (an Idempotency-Key with a NUL or an ESC in it), a malformed request
line. uvicorn answers those with a plain-text 400, which no Stripe client can read: stripe-python
raises a bare APIError ("Invalid response body from API") in place of the InvalidRequestError
every other refusal is. Here the same 400 carries Stripe's error object.

It also bounds what a client holds without sending: uvicorn waits for a request's head for ever
(its keep-alive timeout starts only once an answer is sent, and any byte stops it), so a client
sending its head a byte at a time, or nothing at all after connecting, held its connection for
ever. Here the head must be complete within `read_timeout_s` of the connection, or of the answer
before it on the connection; past it the connection is closed (there is no request to answer).
How long the body may take is bounded in the app (`remit.rest.body_deadline`). And past
`max_connections` open at once, a new connection is answered at once, as Stripe answers
overload (429 `rate_limit`), and closed: each one holds a file descriptor and memory.
Closed at once, it would lose its answer: the client sends its request as it connects, and a
socket closed with bytes unread, or that receives some once closed, answers with a reset, which
discards the 429 on the client's side before it reads it (ECONNRESET). So the connection is
closed lingering: its sending side is shut after the answer (the client reads to its end), and
what the client sends is read and dropped until it closes its own side, `LINGER_S` passes or
`LINGER_BYTES` have come, whichever is first. At most `MAX_LINGERING` linger at once, beside the
`max_connections` they do not count in: past it, a refused connection is closed at once.
uvicorn's own `limit_concurrency` answers a plain-text 503, which SDKs retry at once, and counts
requests in progress too, health checks included.
"""

import asyncio
import json
import logging
import weakref
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from remit.config import DEFAULT_API_MAX_CONNECTIONS, DEFAULT_API_READ_TIMEOUT_S
from remit.core.ids import new_id
from remit.rest.cors import CROSS_ORIGIN_HEADERS
from remit.rest.errors import StripeError

log = logging.getLogger(__name__)

_MESSAGE: Final = (
    "The request could not be read as HTTP: a header holds a character HTTP does not allow "
    "(a control character, for instance), or the request is otherwise malformed."
)
_BODY: Final = json.dumps(
    {"error": {"type": "invalid_request_error", "message": _MESSAGE}}, separators=(",", ":")
).encode()
_OVERLOADED_BODY: Final = json.dumps(StripeError.rate_limited().to_body()).encode()
# Readable by a browser page, as every answer of the app is (`remit.rest.cors`).
_CROSS_ORIGIN_LINES: Final = tuple(
    name + b": " + value + b"\r\n" for name, value in CROSS_ORIGIN_HEADERS
)

# How long, and for how many bytes, a refused connection is read from before it is closed: a
# client that reads its answer closes within a round trip of it, and a request's head and a
# body of Stripe's size arrive well within these.
LINGER_S: Final = 1.0
LINGER_BYTES: Final = 64 * 1024
# How many refused connections may linger at once: a few, as a client that reads closes at once,
# but a flood of ones that do not must not hold descriptors without bound.
MAX_LINGERING: Final = 256

# The refused connections lingering, by the server they came to (the cap is a server's).
_lingering: "weakref.WeakKeyDictionary[ServerState, set[StripeShapedHttpToolsProtocol]]" = (
    weakref.WeakKeyDictionary()
)


# When a refused connection was last logged: a flood of them is logged once a second, not once
# each, which would make the log the next thing to fill up.
_last_refusal_logged: float | None = None


def _log_refusal(now: float, max_connections: int) -> None:
    global _last_refusal_logged
    if _last_refusal_logged is None or now - _last_refusal_logged >= 1.0:
        _last_refusal_logged = now
        log.warning("refusing connections: %d are open already", max_connections)


class StripeShapedHttpToolsProtocol(HttpToolsProtocol):
    # Set by `configured` from the api process's settings.
    read_timeout_s: ClassVar[float] = DEFAULT_API_READ_TIMEOUT_S
    max_connections: ClassVar[int] = DEFAULT_API_MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._lingered_bytes = 0

    @classmethod
    def configured(
        cls, *, read_timeout_s: float, max_connections: int
    ) -> type["StripeShapedHttpToolsProtocol"]:
        """The protocol with these settings (uvicorn makes one per connection from a class)."""
        settings = {"read_timeout_s": read_timeout_s, "max_connections": max_connections}
        return type(cls.__name__, (cls,), settings)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        lingering = _lingering.setdefault(self.server_state, set())
        if len(self.connections) - len(lingering) > self.max_connections:
            _log_refusal(self.loop.time(), self.max_connections)
            self._send_and_close(b"429 Too Many Requests", _OVERLOADED_BODY, linger=True)
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        self._stop_lingering()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._linger_timer is None:
            super().data_received(data)
            return
        # A refused connection's request: dropped unread, only so that it is not reset.
        self._lingered_bytes += len(data)
        if self._lingered_bytes >= LINGER_BYTES:
            self._stop_lingering()
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._head_arrived()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A pipelined request's head has arrived already, and uvicorn serves it now.
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._head_arrived()
        self._head_timer = self.loop.call_later(self.read_timeout_s, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection that sent no request within %gs", self.read_timeout_s)
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._send_and_close(b"400 Bad Request", _BODY)

    def _stop_lingering(self) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
            _lingering.get(self.server_state, set()).discard(self)

    def _linger_ended(self) -> None:
        self._stop_lingering()
        self.transport.close()

    def _send_and_close(self, status: bytes, body: bytes, *, linger: bool = False) -> None:
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"request-id: " + new_id("req").encode("ascii") + b"\r\n",
                *_CROSS_ORIGIN_LINES,
                b"connection: close\r\n",
                b"\r\n",
            ]
        )
        self.transport.write(b"".join(head) + body)
        lingering = _lingering.setdefault(self.server_state, set())
        if linger and len(lingering) < MAX_LINGERING and self.transport.can_write_eof():
            # The answer is sent, then the sending side shut; the client's closing ends the
            # connection (`eof_received` leaves the transport to close itself).
            self.transport.write_eof()
            lingering.add(self)
            self._linger_timer = self.loop.call_later(LINGER_S, self._linger_ended)
            return
        self.transport.close()
