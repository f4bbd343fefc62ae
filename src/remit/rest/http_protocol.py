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
uvicorn's own `limit_concurrency` answers a plain-text 503, which SDKs retry at once, and counts
requests in progress too, health checks included.
"""

import asyncio
import json
import logging
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from remit.config import DEFAULT_API_MAX_CONNECTIONS, DEFAULT_API_READ_TIMEOUT_S
from remit.core.ids import new_id
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

    @classmethod
    def configured(
        cls, *, read_timeout_s: float, max_connections: int
    ) -> type["StripeShapedHttpToolsProtocol"]:
        """The protocol with these settings (uvicorn makes one per connection from a class)."""
        settings = {"read_timeout_s": read_timeout_s, "max_connections": max_connections}
        return type(cls.__name__, (cls,), settings)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            _log_refusal(self.loop.time(), self.max_connections)
            self._send_and_close(b"429 Too Many Requests", _OVERLOADED_BODY)
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

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

    def _send_and_close(self, status: bytes, body: bytes) -> None:
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"request-id: " + new_id("req").encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
            ]
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()
