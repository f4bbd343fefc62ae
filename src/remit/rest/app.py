"""The REST facade: Stripe's wire format in front of remit's gRPC services.

Every route goes through `dispatch`, which does the same things in the same order: assign a
request id, authenticate, check the key may call this operation, decode and validate the
parameters against the operation's schema (unknown ones are refused), call the handler, and
render the result or the error in Stripe's shape. Handlers only translate parameters into a
gRPC call and the reply into JSON.
"""

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from remit.accounts.domain import KeyKind
from remit.core.errors import RemitError
from remit.core.ids import new_id
from remit.core.jsonview import JsonObject
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.forms import FormDecodeError, FormValue, decode_form, decode_json_body
from remit.rest.params import ParamError, Schema
from remit.rest.remit_errors import stripe_error_from_remit

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

Handler = Callable[[ApiContext, Dependencies], Awaitable[JsonObject]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    schema: Schema
    handler: Handler
    # Publishable keys may only tokenize cards and create payment methods.
    publishable_allowed: bool = False


def json_response(status: int, body: Mapping[str, object], headers: Mapping[str, str]) -> Response:
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        media_type="application/json",
        headers=dict(headers),
    )


def error_response(error: StripeError, request_id: str) -> Response:
    headers = {"Request-Id": request_id}
    if error.should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if error.should_retry else "false"
    return json_response(error.http_status, error.to_body(), headers)


async def read_form(request: Request) -> dict[str, FormValue]:
    """Parameters from the query string (GET, DELETE) or the body (POST), form or JSON."""
    if request.method in ("GET", "DELETE"):
        return decode_form(request.url.query)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise FormDecodeError("The request body is larger than 1 MiB.", None)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return decode_json_body(body)
    query = decode_form(request.url.query)
    form = decode_form(body)
    overlap = set(query) & set(form)
    if overlap:
        raise FormDecodeError(f"Parameter given twice: {sorted(overlap)[0]}", sorted(overlap)[0])
    return {**query, **form}


async def dispatch(request: Request, operation: Operation, deps: Dependencies) -> Response:
    request_id = new_id("req")
    context: ApiContext | None = None
    try:
        principal = await deps.authenticator.authenticate(request.headers.get("authorization"))
        if principal.key_kind is KeyKind.PUBLISHABLE and not operation.publishable_allowed:
            raise StripeError.permission_denied(
                "This API call cannot be made with a publishable API key. Please use a secret "
                "API key."
            )
        form = await read_form(request)
        params = operation.schema.parse(form)
        context = ApiContext(
            principal=principal,
            request_id=request_id,
            idempotency_key=request.headers.get("idempotency-key") or None,
            api_version=await deps.resolve_version(
                principal, request.headers.get("stripe-version")
            ),
            params=params,
            path=dict(request.path_params),
        )
        body = await operation.handler(context, deps)
    except Exception as raised:
        response = error_response(_stripe_error(raised, request), request_id)
        if context is not None:
            response.headers.update(context.response_headers)
        return response
    return json_response(200, body, {"Request-Id": request_id, **context.response_headers})


def _stripe_error(raised: Exception, request: Request) -> StripeError:
    if isinstance(raised, StripeError):
        return raised
    if isinstance(raised, ParamError):
        return StripeError.from_param_error(raised)
    if isinstance(raised, FormDecodeError):
        return StripeError.from_form_error(raised)
    if isinstance(raised, RemitError):
        return stripe_error_from_remit(raised)
    log.exception(
        "unhandled error serving %s %s", request.method, request.url.path, exc_info=raised
    )
    return StripeError.api_error()


def _route(operation: Operation, deps: Dependencies) -> Route:
    async def endpoint(request: Request) -> Response:
        return await dispatch(request, operation, deps)

    return Route(operation.path, endpoint, methods=[operation.method])


async def _not_found(request: Request) -> Response:
    return error_response(
        StripeError.route_not_found(request.method, request.url.path), new_id("req")
    )


async def _healthz(_request: Request) -> Response:
    return Response("ok", media_type="text/plain")


def build_app(deps: Dependencies, operations: Sequence[Operation] | None = None) -> Starlette:
    from remit.rest.routes import all_operations

    ops = list(operations) if operations is not None else all_operations()
    routes = [Route("/healthz", _healthz, methods=["GET"])]
    routes += [_route(op, deps) for op in ops]
    # Anything unmatched, including a known path with the wrong method, is Stripe's 404.
    routes.append(
        Route("/{path:path}", _not_found, methods=["GET", "POST", "DELETE", "PUT", "PATCH"])
    )
    return Starlette(routes=routes)
