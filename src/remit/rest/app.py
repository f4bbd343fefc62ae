"""The REST facade: Stripe's wire format in front of remit's gRPC services.

Every route goes through `dispatch`, which does the same things in the same order: assign a
request id, authenticate, check the key may call this operation, decode and validate the
parameters against the operation's schema (unknown ones are refused), call the handler, and
render the result or the error in Stripe's shape. Handlers only translate parameters into a
gRPC call and the reply into JSON.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import cast

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from remit import versioning
from remit.accounts.domain import KeyKind, Principal
from remit.config import api_max_in_flight, api_read_timeout_s
from remit.core.errors import RemitError
from remit.core.ids import new_id
from remit.core.jsonview import JsonObject, internal_fields_left_out
from remit.core.logging import mask_card_numbers
from remit.rest import three_d_secure
from remit.rest.admission import AdmissionLimit
from remit.rest.bodies import BodyTooLargeError, capped_body
from remit.rest.body_deadline import BodyReadDeadline, BodyReadTimeoutError
from remit.rest.connect_headers import refuse_other_accounts
from remit.rest.context import ApiContext, request_path_for_core
from remit.rest.cors import CrossOriginHeaders, preflight_routes
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.expand import expand, expand_always, expand_present
from remit.rest.expand_paths import refuse_unexpandable
from remit.rest.forms import (
    FormDecodeError,
    FormValue,
    decode_form,
    decode_json_body,
    decode_query_and_body,
    refuse_nul,
    with_query,
)
from remit.rest.idempotency import HEADER as IDEMPOTENCY_KEY_HEADER
from remit.rest.idempotency import checked_idempotency_key, well_formed_idempotency_key
from remit.rest.params import PATH_PARAM, ExpandList, ParamError, Schema
from remit.rest.publishable import (
    public_object,
    publish_error_intent,
    publishable_view,
    refuse_other_expansions,
    refuse_private_params,
)
from remit.rest.rate_limits import client_address
from remit.rest.readiness import Readiness, grpc_serving
from remit.rest.related import related_fetch
from remit.rest.remit_errors import stripe_error_from_remit
from remit.rest.version_header import error_version, requested_version
from remit.versioning import (
    NO_RELATED,
    Fetch,
    Related,
    RequestRefusedError,
    gather_related,
    operation_key,
    reads_internal_fields,
    render,
    render_error,
    upgrade_request,
)
from remit.versioning.openapi import openapi_json
from versions import KNOWN_VERSIONS, LATEST_VERSION

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

Handler = Callable[[ApiContext, Dependencies], Awaitable[JsonObject]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    schema: Schema
    handler: Handler
    # Publishable keys, which live in browsers and apps, may only tokenize cards and create
    # payment methods (publishable_allowed), and retrieve or confirm a PaymentIntent when they
    # prove they hold its client secret (publishable_needs="client_secret"; the core checks it).
    publishable_allowed: bool = False
    publishable_needs: str | None = None
    # For a publishable key, on either kind: the only parameters it may send (what a payment
    # page sends). What the merchant decides (capture method, off-session use, allowed types,
    # which saved card to use) is not the browser's to change.
    publishable_params: frozenset[str] = frozenset()
    # The result comes from the core already rendered at the version it must be read at,
    # whatever Stripe-Version asks (events: Stripe renders an event's data once, for the
    # account, and never again), so it is not rendered again here.
    rendered_by_core: bool = False

    def __post_init__(self) -> None:
        if (self.publishable_allowed or self.publishable_needs) and not self.publishable_params:
            # Refused by default: an operation open to a public key names what it may send.
            raise ValueError(f"{self.method} {self.path}: publishable_params must be given")
        # Stripe takes `expand` on every GET and POST (its DELETEs answer a stub), and
        # dispatch applies it; declared here so no endpoint's schema can leave it out.
        if self.method != "DELETE" and not isinstance(self.schema.fields.get("expand"), ExpandList):
            object.__setattr__(self, "schema", self.schema.extend({"expand": ExpandList()}))


def json_response(status: int, body: Mapping[str, object], headers: Mapping[str, str]) -> Response:
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        media_type="application/json",
        headers=dict(headers),
    )


def error_response(
    error: StripeError,
    request_id: str,
    version: str = LATEST_VERSION,
    related: Related = NO_RELATED,
    *,
    public: bool = False,
    operation: str | None = None,
    related_unavailable: bool = False,
) -> Response:
    """An error at `version`: its status and fields as that version knew them for `operation`
    ("POST /v1/tokens", when one answered it) (`public`: for a publishable key, the intent it
    carries reduced to its public properties, once rendered; `related_unavailable`: its
    related lists could not be gathered, and are left out)."""
    versioned = render_error(
        error.http_status,
        _json_body(error),
        version,
        related,
        operation=operation,
        related_unavailable=related_unavailable,
    )
    if public:
        publish_error_intent(versioned.body)
    headers = {"Request-Id": request_id, "Stripe-Version": version}
    if error.should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if error.should_retry else "false"
    body = versioned.body
    error_fields = body.get("error")
    if isinstance(error_fields, dict):
        # A message may echo client input (an id, say), and a param is the name of a form key
        # the client sent, which may itself be a card number: one must never come back.
        for name in ("message", "param"):
            echoed = error_fields.get(name)
            if isinstance(echoed, str):
                error_fields[name] = mask_card_numbers(echoed)
    return json_response(versioned.http_status, body, headers)


async def read_form(request: Request) -> dict[str, FormValue]:
    """Parameters from the query string (GET, DELETE) or the body (POST), form or JSON; a
    body's query string is read with it, as one set of parameters (`decode_query_and_body`)."""
    if request.method in ("GET", "DELETE"):
        return decode_form(request.url.query)
    try:
        body = await capped_body(request, MAX_BODY_BYTES)
    except BodyTooLargeError:
        raise FormDecodeError("The request body is larger than 1 MiB.", None) from None
    except BodyReadTimeoutError as slow:
        raise StripeError.body_too_slow(str(slow)) from None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return with_query(request.url.query, decode_json_body(body))
    return decode_query_and_body(request.url.query, body)


async def _authenticated(request: Request, deps: Dependencies) -> Principal:
    """The request's principal. Only failed authentications count against the client's
    address, so merchants behind one shared address are never held back by each other; once
    an address has none left, only a key found good lately (`Authenticator.vouched`) or on
    record at the accounts service (`Authenticator.on_record`) passes, and no other is looked
    up: a client trying keys costs the accounts service nothing past its address's limit."""
    authorization = request.headers.get("authorization")
    known = deps.authenticator.known(authorization)
    if known is not None:
        return known
    if deps.authenticator.looking_up(authorization):
        # Another request is looking this key up: this one shares its answer and costs the
        # address nothing, so a burst with one good key is never held back.
        return await deps.authenticator.authenticate(authorization)
    address = client_address(request)
    if deps.authenticator.vouched(authorization):
        # Found good lately: looked up again (a revoked key still stops within the cache's
        # few seconds) but not held to the address's limit, which a client guessing keys
        # from the same address (a load balancer's) could otherwise use up for every merchant
        # behind it. Refused now, it counts as any failure does.
        return await _unheld(authorization, address, deps)
    # Counted before the look-up, so that wrong keys sent all at once are held to the limit
    # too; handed back when the key is found.
    if not deps.rate_limits.reserve_key_lookup(address):
        # A key this process has not found good lately (it restarted, or the merchant was
        # quiet) but that the accounts service has on record passes as a vouched one does.
        if await deps.authenticator.on_record(authorization):
            return await _unheld(authorization, address, deps)
        raise StripeError.rate_limited()
    failed = False
    try:
        principal = await deps.authenticator.authenticate(authorization)
    except StripeError as error:
        failed = error.http_status == 401
        raise
    finally:
        if not failed:
            deps.rate_limits.release_key_lookup(address)
    return principal


async def _unheld(authorization: str | None, address: str | None, deps: Dependencies) -> Principal:
    """The key looked up without waiting on its address's limit; a refusal counts against the
    address as any failure does."""
    try:
        return await deps.authenticator.authenticate(authorization)
    except StripeError as error:
        if error.http_status == 401:
            deps.rate_limits.count_failed_key_lookup(address)
        raise


async def _log_cancelled(request: Request) -> None:
    """Say why a request was cancelled while the server is not stopping."""
    try:
        gone = await request.is_disconnected()
    except Exception:
        gone = False
    if gone:
        log.info("%s %s: the client disconnected; no answer is sent", request.method,
                 request.url.path)  # fmt: skip
    else:
        log.warning("%s %s cancelled while the server is not stopping; no answer is sent",
                    request.method, request.url.path)  # fmt: skip


async def dispatch(
    request: Request, operation: Operation, deps: Dependencies, stopping: asyncio.Event
) -> Response:
    """Serve `operation`; `stopping` is set once the server is told to stop."""
    request_id = new_id("req")
    operation_name = operation_key(operation.method, operation.path)
    requested = requested_version(request.headers)
    # Until the request's version is resolved, errors render at the version asked for, if
    # valid (remit.rest.version_header).
    version = error_version(requested)
    context: ApiContext | None = None
    idempotency_key: str | None = None
    try:
        # Read first, so that even a refused request (a 401) echoes the key it came with; a
        # malformed one is refused only once the client is authenticated (below), as Stripe
        # answers whoever is not with its 401 whatever else is wrong with the request.
        presented_key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
        idempotency_key = well_formed_idempotency_key(presented_key)
        principal = await _authenticated(request, deps)
        # Who asks is known now: without a version asked for, errors render at its account's.
        version = error_version(requested, principal.api_version)
        publishable = principal.key_kind is KeyKind.PUBLISHABLE
        if publishable and not (operation.publishable_allowed or operation.publishable_needs):
            raise StripeError.publishable_key_not_allowed()
        # Counted per key kind: a publishable key is public, and whoever copies it from a web
        # page must not be able to spend the merchant's own requests.
        counted_as = f"{principal.account_id}/{principal.key_kind.value}"
        if not deps.rate_limits.admit(counted_as, write=request.method != "GET"):
            raise StripeError.rate_limited()
        # The request's own headers, checked as its parameters are: after who sends it.
        idempotency_key = checked_idempotency_key(request.method, presented_key)
        # Before anything is read or written (pinning the account's version is a write): a
        # request for another account is refused having done nothing, so nothing is stored
        # under its idempotency key that the key sent again without the header would replay.
        refuse_other_accounts(request.headers, principal.account_id)
        versions = await deps.resolve_version(principal, requested)
        version = versions.request
        form = await read_form(request)
        for name, value in request.path_params.items():
            PATH_PARAM.parse_value(refuse_nul(str(value), name), name)
        form = upgrade_request(operation_name, form, version)
        params = operation.schema.parse(form)
        # A payment page's call: a publishable key on an operation it may make with a secret.
        needs = operation.publishable_needs if publishable else None
        public = needs is not None
        if needs is not None:
            _refuse_publishable_without(needs, params)
        if publishable:
            refuse_private_params(params, operation.publishable_params)
        context = ApiContext(
            principal=principal,
            request_id=request_id,
            idempotency_key=idempotency_key,
            api_version=version,
            account_api_version=versions.account,
            params=params,
            path=dict(request.path_params),
            request_path=request_path_for_core(request.url.path),
        )
        # Any publishable request, not only a payment page's: a public key expands no more
        # than the page's own card.
        if publishable:
            refuse_other_expansions(context.expand)
        if not operation.rendered_by_core:
            # Before the handler: once it has paid or captured, a path refused while expanding
            # would answer 400 for work done (see remit.rest.expand_paths).
            refuse_unexpandable(context.expand, operation.method, operation.path, version)
        # At a version no change of which reads the fields kept off the wire, every object is
        # made without them, so rendering has nothing to take out of the body.
        leave_out = not reads_internal_fields(version)
        with internal_fields_left_out(leave_out):
            body = await operation.handler(context, deps)
            if not operation.rendered_by_core:
                body = await _expanded_and_rendered(
                    body,
                    context,
                    deps,
                    holds_internal_fields=not leave_out,
                    work_done=operation.method != "GET",
                )
        if public:
            body = publishable_view(body)
        elif publishable:
            # A page's own payment method or token (`publishable_allowed`).
            body = public_object(body)
    except StripeError as error:
        response = await _versioned_error(error, request_id, version, operation_name, deps, context)
    except RequestRefusedError as error:
        response = error_response(
            StripeError.invalid_request(error.message, code=error.code, param=error.param),
            request_id,
            version,
            operation=operation_name,
        )
    except ParamError as error:
        response = error_response(
            StripeError.from_param_error(error), request_id, version, operation=operation_name
        )
    except FormDecodeError as error:
        response = error_response(
            StripeError.from_form_error(error), request_id, version, operation=operation_name
        )
    except RemitError as error:
        response = await _versioned_error(
            stripe_error_from_remit(error), request_id, version, operation_name, deps, context
        )
    except ClientDisconnect:
        # Gone before its body was read: nothing was done, and no one is left to answer (what
        # is answered here is dropped). The client's doing, not an error of remit's.
        log.info("%s %s: the client disconnected before sending its body; no answer is sent",
                 request.method, request.url.path)  # fmt: skip
        response = error_response(
            StripeError.invalid_request("The client disconnected before sending its body."),
            request_id,
            version,
            operation=operation_name,
        )
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.url.path)
        response = error_response(
            StripeError.api_error(), request_id, version, operation=operation_name
        )
    except asyncio.CancelledError:
        if not stopping.is_set():
            # Not a stop: the server gave up on the request, as some do when its client
            # disconnects. There is no one to answer, and a 503 would be logged as one.
            await _log_cancelled(request)
            raise
        # The server is stopping and this request outlasted its grace. Left to uvicorn, it
        # would answer a bare text 500 with no Request-Id. What the core was doing (an
        # authorization) carries on and is recorded under the key, so a retry with it is safe.
        log.warning("%s %s cut off by the server stopping", request.method, request.url.path)
        response = error_response(
            StripeError.stopping(), request_id, version, operation=operation_name
        )
    else:
        response = json_response(200, body, {"Request-Id": request_id, "Stripe-Version": version})
    if response.status_code == 408:
        # The rest of the body may still be on its way: the connection is not used again.
        response.headers["Connection"] = "close"
    if context is not None:
        # Set by handlers, e.g. Idempotent-Replayed on a replayed answer or error.
        response.headers.update(context.response_headers)
    if idempotency_key is not None:
        # Echoed as Stripe does, so a client can match a logged answer to the key it sent; a
        # malformed key is not, as it may not even be a valid response header.
        response.headers[IDEMPOTENCY_KEY_HEADER] = idempotency_key
    return response


async def _expanded_and_rendered(
    body: JsonObject,
    context: ApiContext,
    deps: Dependencies,
    *,
    holds_internal_fields: bool,
    work_done: bool,
) -> JsonObject:
    """`body` with what `expand[]` asks and what Stripe always expands, rendered at the
    request's version. Done here, for every operation, so no endpoint can forget it.

    A path naming a field only the version shows (before 2022-11-15 a PaymentIntent's
    `charges`, a Charge's auto-expanded `refunds`) is expanded after rendering, the objects it
    fetches rendered at the version in turn; at the latest version such a path is still the
    400 it always was (refused before the handler ran). `holds_internal_fields`: whether
    `body`, and the objects fetched to expand it, may hold fields kept off the wire (see
    `render`).

    `work_done`: `body` reports a change already committed (a payment, a capture, a cancel).
    Then nothing here fails the answer: an object that cannot be fetched stays an id, and
    related lists that cannot be gathered are left out, as for an error reporting a decline.
    An error status would tell the client the change had not happened (or might not have), and
    a client retrying under a new key (stripe-python makes one per call) would make it twice;
    a 5xx asking for a retry would be safe only for a client that kept its key. The id in
    place of an object is the answer remit already gives for an object gone since."""
    version = context.api_version
    fetch_related = related_fetch(deps, context)
    after_rendering = await expand_present(
        body, context.expand, context, deps, best_effort=work_done
    )
    await expand_always(body, context, deps)
    related, unavailable = await _related_of(body, version, fetch_related, work_done=work_done)
    body = render(
        body,
        version,
        related,
        holds_internal_fields=holds_internal_fields,
        related_unavailable=unavailable,
    )

    async def rendered(fetched: JsonObject) -> JsonObject:
        related = await gather_related(fetched, version, fetch_related)
        return render(fetched, version, related, holds_internal_fields=holds_internal_fields)

    await expand(body, after_rendering, context, deps, finish=rendered, best_effort=work_done)
    return body


async def _related_of(
    body: JsonObject, version: str, fetch: Fetch, *, work_done: bool
) -> tuple[Related, bool]:
    """The related lists rendering `body` at `version` needs, and whether they could not be
    gathered (only for an answer of work done: otherwise that fails the request)."""
    try:
        return await gather_related(body, version, fetch), False
    except Exception:
        if not work_done:
            raise
        log.exception("could not gather related lists for an answer at %s", version)
        return NO_RELATED, True


def _refuse_publishable_without(needed: str, params: Mapping[str, object]) -> None:
    """A publishable key is a secret to no one: only the `needed` parameter (a PaymentIntent's
    client_secret) shows the caller may see the object."""
    if needed not in params:
        raise StripeError.permission_denied(
            f"This API call can be made with a publishable API key only with the {needed} of "
            "the object. Please pass it, or use a secret API key."
        )


async def _versioned_error(
    error: StripeError,
    request_id: str,
    version: str,
    operation: str,
    deps: Dependencies,
    context: ApiContext | None,
) -> Response:
    """An error that may embed an object (a declined confirm carries the PaymentIntent), which
    renders at the version like any other, related lists included. Should those fail to be
    gathered, the error still goes out at the version, without them: what it reports (a
    decline) has already happened, and the client must hear of it in the shape it reads."""
    related: Related = NO_RELATED
    unavailable = False
    if context is not None and error.payment_intent is not None:
        error = await _with_payment_method_expanded(error, deps, context)
        try:
            related = await gather_related(_json_body(error), version, related_fetch(deps, context))
        except Exception:
            log.exception("could not gather related lists for an error at %s", version)
            unavailable = True
    public = context is not None and context.principal.key_kind is KeyKind.PUBLISHABLE
    return error_response(
        error,
        request_id,
        version,
        related,
        public=public,
        operation=operation,
        related_unavailable=unavailable,
    )


async def _with_payment_method_expanded(
    error: StripeError, deps: Dependencies, context: ApiContext
) -> StripeError:
    """The error with its payment method, and its intent's, shown as objects. Should fetching
    them fail, the error still goes out naming them by id: the decline has already changed the
    intent, and the client must hear of it."""
    body = _json_body(error)
    try:
        await expand_always(body, context, deps)
    except Exception:
        log.exception("could not expand the payment method of a %s", error.type)
        return error
    expanded = body["error"]
    assert isinstance(expanded, dict)
    return replace(
        error,
        payment_intent=_mapping_or_none(expanded.get("payment_intent")),
        payment_method=_mapping_or_none(expanded.get("payment_method")) or error.payment_method,
    )


def _mapping_or_none(value: object) -> Mapping[str, object] | None:
    return cast(Mapping[str, object], value) if isinstance(value, dict) else None


def _json_body(error: StripeError) -> JsonObject:
    return cast(JsonObject, error.to_body())


def _route(operation: Operation, deps: Dependencies, stopping: asyncio.Event) -> Route:
    async def endpoint(request: Request) -> Response:
        return await dispatch(request, operation, deps, stopping)

    return Route(operation.path, endpoint, methods=[operation.method])


async def _not_found(request: Request) -> Response:
    """Stripe's 404 for a path no route serves, at the version asked for if valid: no key is
    looked up for it, so no account's version is known."""
    return error_response(
        StripeError.route_not_found(request.method, request.url.path),
        new_id("req"),
        error_version(requested_version(request.headers)),
    )


async def _openapi(request: Request) -> Response:
    """`GET /v1/openapi.json?version=V`: the OpenAPI document of a version (default: the
    `Stripe-Version` header, else the latest). Public, like Stripe's published spec: it
    describes the API and holds no account data, so it needs no API key."""
    request_id = new_id("req")
    header = requested_version(request.headers)
    version = request.query_params.get("version") or header or LATEST_VERSION
    if version not in KNOWN_VERSIONS:
        error = StripeError.unknown_api_version(version, KNOWN_VERSIONS)
        return error_response(error, request_id, error_version(header))
    return Response(
        content=openapi_json(version),
        media_type="application/json",
        headers={"Request-Id": request_id, "Stripe-Version": version},
    )


async def _healthz(_request: Request) -> Response:
    """Liveness: the process answers HTTP. Whether it can serve is `/readyz`."""
    return Response("ok", media_type="text/plain")


# Every method a client may send, OPTIONS (a browser's preflight) and TRACE included: a route
# limited to fewer would leave the others Starlette's plain-text 405, with no Request-Id and a
# body no Stripe client can read.
_ANY_METHOD = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "TRACE"]


def _unimplemented_searches(operations: Sequence[Operation]) -> list[Route]:
    """`{collection}/search` of every collection served one object by id, unless remit serves
    that search: Stripe's unrecognized-URL 404. Without it the route of one object takes
    `search` for an id and answers "No such payment_intent: 'search'", which tells a client
    using Stripe's search API that the endpoint exists. Ahead of the operations' routes."""
    served = {operation.path for operation in operations}
    collections = {
        operation.path.rpartition("/")[0]
        for operation in operations
        if operation.path.rpartition("/")[2].startswith("{")
    }
    return [
        Route(f"{collection}/search", _not_found, methods=_ANY_METHOD)
        for collection in sorted(collections)
        if f"{collection}/search" not in served
    ]


def build_app(
    deps: Dependencies,
    operations: Sequence[Operation] | None = None,
    *,
    max_in_flight: int | None = None,
    read_timeout_s: float | None = None,
    stopping: asyncio.Event | None = None,
) -> Starlette:
    """The facade's app; it serves at most `max_in_flight` requests at once
    (REMIT_API_MAX_IN_FLIGHT by default) and refuses the others at once (`remit.rest.admission`),
    and waits `read_timeout_s` (REMIT_API_READ_TIMEOUT_S by default) at most for a request's
    body (`remit.rest.body_deadline`). A request cancelled once `stopping` is set (the server
    is stopping) answers a retryable 503; cancelled otherwise, it answers nothing."""
    from remit.rest.routes import all_operations

    versioning.load()  # a change naming an unknown field stops start-up here
    ops = list(operations) if operations is not None else all_operations()
    readiness = Readiness({"core": grpc_serving(lambda: deps.core_channel)})
    routes = [
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", readiness.endpoint, methods=["GET"]),
        Route("/v1/openapi.json", _openapi, methods=["GET"]),
    ]
    routes += _unimplemented_searches(ops)
    if stopping is None:
        stopping = asyncio.Event()  # never set: a server that does not stop, as in tests
    routes += [_route(op, deps, stopping) for op in ops]
    # A browser's preflight of a path served (an operation's route answers only its method):
    # ahead of the catch-all, which answers an unserved path's preflight with its 404.
    routes += preflight_routes(_methods_by_path(ops) | {"/v1/openapi.json": ["GET"]})
    routes += three_d_secure.routes(deps)
    # Anything unmatched, including a known path with the wrong method, is Stripe's 404.
    routes.append(Route("/{path:path}", _not_found, methods=_ANY_METHOD))
    limit = api_max_in_flight() if max_in_flight is None else max_in_flight
    app = Starlette(
        routes=routes,
        middleware=[
            # Outermost, so that every answer, a refusal of the in-flight bound's included, is
            # one a browser page may read.
            Middleware(CrossOriginHeaders),
            Middleware(AdmissionLimit, max_in_flight=limit, refusal=_overloaded),
            Middleware(BodyReadDeadline, timeout_s=read_timeout_s or api_read_timeout_s()),
        ],
        # A method no route lists (WebDAV's, a made-up one): Starlette's 405, answered as the
        # catch-all answers every other unserved request.
        exception_handlers={405: _method_not_served},
    )
    # A path the catch-all cannot match (its pattern stops at a newline, `%0A` in an id) would
    # get Starlette's own plain-text 404, and one ending in a slash a 307 to the path without
    # it: neither is an answer a Stripe client can read. Both are Stripe's 404 instead.
    app.router.redirect_slashes = False
    app.router.default = _unmatched
    return app


def _methods_by_path(operations: Sequence[Operation]) -> dict[str, list[str]]:
    methods: dict[str, list[str]] = {}
    for operation in operations:
        methods.setdefault(operation.path, []).append(operation.method)
    return methods


def _overloaded(headers: Headers) -> Response:
    """The 429 of a request past the in-flight bound, with the headers every other error of
    the facade carries: a client matching answers to keys by the echoed Idempotency-Key must
    find this one too. Nothing was done under the key, so a retry with it, backed off,
    proceeds; no Stripe-Should-Retry, as `remit.rest.admission` says why."""
    version = error_version(requested_version(headers))
    response = error_response(StripeError.rate_limited(), new_id("req"), version)
    # A malformed key is not echoed, as `dispatch` does not: it may not be a valid header.
    key = well_formed_idempotency_key(headers.get(IDEMPOTENCY_KEY_HEADER))
    if key is not None:
        response.headers[IDEMPOTENCY_KEY_HEADER] = key
    return response


async def _method_not_served(request: Request, _: Exception) -> Response:
    return await _not_found(request)


async def _unmatched(scope: Scope, receive: Receive, send: Send) -> None:
    response = await _not_found(Request(scope, receive))
    await response(scope, receive, send)
