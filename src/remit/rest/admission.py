"""How many requests one api process serves at once, and the answer to those past it.

Without a bound, every request is admitted and queued first-come on the core's calls and the
database pools: at a rate past what the platform sustains, each one waits behind all the others
until every request is as slow as the REST deadline, and the process's memory grows with the
queue. Past `max_in_flight` requests in progress a request is answered at once, as Stripe
answers overload: 429 `rate_limit`, which clients back off from (no `Stripe-Should-Retry`: SDKs
told to retry would do so within a second or two, adding to the load that refused them).
Nothing of the request has been read, so nothing is stored under its idempotency key.

The check is a counter compared and moved on each request: the hot path pays no more. It is
ASGI middleware, inside the app, so the refusal is Stripe's JSON rather than the plain text of
uvicorn's own `limit_concurrency`. The health checks (`/healthz`, `/readyz`) are outside the
bound: a process that refuses work because it is busy is neither down nor unready.
"""

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})


class AdmissionLimit:
    """ASGI middleware that serves at most `max_in_flight` HTTP requests at once and answers
    the others with `refusal(headers)`, which echoes what the request's headers ask echoed
    (its Idempotency-Key, its Stripe-Version)."""

    def __init__(
        self, app: ASGIApp, *, max_in_flight: int, refusal: Callable[[Headers], Response]
    ) -> None:
        self._app = app
        self._max_in_flight = max_in_flight
        self._refusal = refusal
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self._app(scope, receive, send)
            return
        if self._in_flight >= self._max_in_flight:
            refusal = self._refusal(Headers(scope=scope))
            await refusal(scope, receive, send)
            return
        self._in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_flight -= 1
