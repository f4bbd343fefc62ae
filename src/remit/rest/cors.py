"""Cross-origin access: a browser page may call the API, as it calls Stripe's.

A payment page holds a publishable key and calls the API from the browser: it creates payment
methods and tokens, and retrieves and confirms its PaymentIntent with the client secret. The
browser sends such a call only once the API says it accepts it: a request with an
`Authorization` header, or a JSON body, is first asked about with an `OPTIONS` preflight, and
the answer to either is handed to the page only if it carries `Access-Control-Allow-Origin`.

Every origin is allowed (`*`): the API authenticates with a bearer key and never with cookies,
so a page from another origin can do nothing the key it holds does not allow, and a browser
never sends credentials (cookies) to a `*` answer. A secret key has no business in a browser,
and the facade refuses a publishable key every operation but a payment page's
(`Operation.publishable_allowed`).

A preflight of a route the facade serves is answered 204 at once, before authentication,
idempotency and the per-key rate limits: it carries no key, does nothing, and a page must not
be held back by its own preflights. A preflight of a path the facade does not serve is the 404
of any unserved request. Every answer, errors included, says which of its headers the page may
read (`Access-Control-Expose-Headers`): the request id, the retry advice and the version.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_ORIGIN: Final = "*"
ALLOWED_REQUEST_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Stripe-Account",
    "Stripe-Context",
    "Stripe-Version",
)
EXPOSED_RESPONSE_HEADERS: Final = (
    "Request-Id",
    "Stripe-Should-Retry",
    "Idempotent-Replayed",
    "Idempotency-Key",
    "Stripe-Version",
)
# How long a browser may reuse a preflight's answer before asking again (Chromium holds it at
# most 2 hours, Firefox 1 day): a page calling the API in a loop asks once per path.
MAX_AGE_S: Final = 600

CROSS_ORIGIN_HEADERS: Final = (
    (b"access-control-allow-origin", ALLOW_ORIGIN.encode()),
    (b"access-control-expose-headers", ", ".join(EXPOSED_RESPONSE_HEADERS).encode()),
)


class CrossOriginHeaders:
    """ASGI middleware that marks every answer readable by a page of any origin."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *CROSS_ORIGIN_HEADERS]
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_marked)


def preflight_routes(methods_by_path: Mapping[str, Iterable[str]]) -> list[Route]:
    """An `OPTIONS` route for each path, answering a preflight with the methods it serves."""
    return [
        Route(path, _preflight_endpoint(sorted(set(methods))), methods=["OPTIONS"])
        for path, methods in methods_by_path.items()
    ]


def _preflight_endpoint(methods: Sequence[str]) -> Callable[[Request], Awaitable[Response]]:
    headers = {
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Allow-Headers": ", ".join(ALLOWED_REQUEST_HEADERS),
        "Access-Control-Max-Age": str(MAX_AGE_S),
    }

    async def preflight(_request: Request) -> Response:
        return Response(status_code=204, headers=headers)

    return preflight
