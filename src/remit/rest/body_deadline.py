"""How long a request's body may take to arrive.

A request is admitted (`remit.rest.admission`) once its head has arrived; a client that then
sends its body slowly, or stops half-way, would hold that place, and a connection, for ever:
enough of them and the api process refuses everyone else. Here the body must have arrived
within `timeout_s` of the request's start; past it, the reader gets `BodyReadTimeoutError`,
which the facade answers 408 in Stripe's shape (nothing was done, nothing is stored under the
idempotency key), closing the connection the rest of the body would arrive on.

ASGI middleware, wrapping `receive`: what reads the body (`remit.rest.bodies`) needs no clock
of its own. Only the body is bounded; what the app receives after it (a disconnect it waits
for) is not.
"""

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyReadTimeoutError(TimeoutError):
    """The request's body did not arrive in time."""


class BodyReadDeadline:
    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        self._app = app
        self._timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        body_read = False

        async def bounded_receive() -> Message:
            nonlocal body_read
            if body_read:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyReadTimeoutError(
                    f"the request body did not arrive within {self._timeout_s:g} seconds"
                ) from None
            body_read = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self._app(scope, bounded_receive, send)
