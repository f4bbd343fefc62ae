"""The hosted 3-D Secure page: remit's stand-in for the issuer's challenge.

`GET /three_d_secure/{account}/{challenge}` shows the payment and two buttons; the buttons POST
`outcome=succeed` or `outcome=fail` to the same address, which completes the challenge and sends
the cardholder on to the PaymentIntent's return_url (with `payment_intent` and
`payment_intent_client_secret`, as Stripe does), or shows the result when there is none.

No API key: the cardholder's browser has none. The challenge id is the credential (143 random
bits, valid for one hour, answerable once), so the page is useless to anyone without the link.
Responses are never cached and send no referrer, so the link does not leak onwards.
"""

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Final
from urllib.parse import parse_qs

import grpc
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.errors import ErrorKind, RemitError
from remit.core.ids import is_well_formed_id, new_id
from remit.core.return_urls import csp_source_of, may_send_cardholder_to, return_to
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY, REQUEST_ID_KEY
from remit.grpcutil.unstarted import refused_unstarted
from remit.payments.send_budget import core_call_timeout_s
from remit.rest.bodies import BodyTooLargeError, capped_body
from remit.rest.body_deadline import BodyReadTimeoutError
from remit.rest.dependencies import Dependencies
from remit.rest.rate_limits import client_address
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb

log = logging.getLogger(__name__)

PATH: Final = "/three_d_secure/{account}/{challenge}"
MAX_FORM_BYTES: Final = 1024
# How long a press waits, try after try, for another press of the same challenge to finish
# (about 6 s in all: an authorization takes far less, unless the network is failing).
_IN_FLIGHT_PAUSES_S: Final = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
# form-action comes last: a page whose form leads to the merchant appends its origin to it.
_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_STATUS_WORDS: Final = {
    pb.THREE_D_SECURE_CHALLENGE_STATUS_PENDING: "pending",
    pb.THREE_D_SECURE_CHALLENGE_STATUS_SUCCEEDED: "succeeded",
    pb.THREE_D_SECURE_CHALLENGE_STATUS_FAILED: "failed",
    pb.THREE_D_SECURE_CHALLENGE_STATUS_EXPIRED: "expired",
}


def _page(title: str, body: str, status: int = 200, return_url: str | None = None) -> HTMLResponse:
    """A page; one whose form sends the cardholder on to `return_url` lets the form go there:
    browsers apply the policy's form-action to where a form submission is redirected too."""
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:28rem;margin:3rem auto}"
        "button{font-size:1rem;margin-right:1rem;padding:.5rem 1rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    headers = _HEADERS
    source = None if return_url is None else csp_source_of(return_url)
    if source is not None:
        policy = _HEADERS["Content-Security-Policy"] + " " + source
        headers = {**_HEADERS, "Content-Security-Policy": policy}
    return HTMLResponse(document, status_code=status, headers=headers)


def _amount(amount_minor: int, currency: str) -> str:
    exponent = SUPPORTED_CURRENCIES.get(currency, 2)
    return f"{Decimal(amount_minor).scaleb(-exponent):.{exponent}f} {currency.upper()}"


def _metadata(account_id: str) -> tuple[tuple[str, str], ...]:
    return ((ACCOUNT_KEY, account_id), (REQUEST_ID_KEY, new_id("req")))


def _not_found() -> HTMLResponse:
    return _page("Not found", "<p>There is no such authentication.</p>", status=404)


def _ids(request: Request) -> tuple[str, str] | None:
    """The account and challenge ids of the address, or None when either could not be one:
    whatever a browser sends (a newline, a NUL, any other character) is told apart here, as
    no authentication, before it is passed on as call metadata or in a query."""
    account, challenge = request.path_params["account"], request.path_params["challenge"]
    if not is_well_formed_id(account, "acct") or not is_well_formed_id(challenge, "tdsc"):
        return None
    return account, challenge


# What the core answers about a challenge that is not there: an id it could not have made
# (refused as an argument) is as absent as one it did not.
_ABSENT: Final = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT})


async def _challenge(
    deps: Dependencies, account: str, challenge_id: str
) -> pb.ThreeDSecureChallenge | None:
    try:
        reply = await deps.payments.GetThreeDSecureChallenge(
            pb.GetThreeDSecureChallengeRequest(id=challenge_id),
            metadata=_metadata(account),
            timeout=10,
        )
    except grpc.aio.AioRpcError as error:
        if error.code() in _ABSENT:
            return None
        raise
    return reply.challenge


def _return_link(challenge: pb.ThreeDSecureChallenge) -> str:
    if not challenge.HasField("return_url") or not may_send_cardholder_to(challenge.return_url):
        return ""
    return f"<p><a href='{html.escape(challenge.return_url)}'>Return to the merchant</a></p>"


def _back_after_decline(challenge: pb.ThreeDSecureChallenge, error: RemitError) -> str:
    """The challenge was answered and the network declined the authenticated attempt: the
    cardholder goes back to the merchant as after any other outcome (the merchant's page
    reads the decline from the intent). "" when there is no return_url to go to."""
    intent = error.related
    if (
        error.kind is not ErrorKind.CARD_DECLINED
        or not challenge.HasField("return_url")
        or not may_send_cardholder_to(challenge.return_url)
        or not isinstance(intent, pb.PaymentIntent)
    ):
        return ""
    return return_to(challenge.return_url, intent.id, intent.client_secret)


async def _complete(
    deps: Dependencies,
    account: str,
    challenge_id: str,
    outcome: "pb.ThreeDSecureChallengeOutcome.ValueType",
) -> pb.CompleteThreeDSecureChallengeResponse:
    """Answer the challenge, which sends the authenticated attempt to the network: given the
    deadline any call to the core that may send one is given (`core_call_timeout_s`). A press
    of the button while another press is being worked on (a double click: the browser shows
    the last one's page) waits for that one, then replays its outcome, instead of showing the
    cardholder a request in progress."""
    request = pb.CompleteThreeDSecureChallengeRequest(id=challenge_id, outcome=outcome)
    for pause_s in _IN_FLIGHT_PAUSES_S:
        try:
            return await deps.payments.CompleteThreeDSecureChallenge(
                request, metadata=_metadata(account), timeout=core_call_timeout_s()
            )
        except grpc.aio.AioRpcError as rpc_error:
            if remit_error_from_rpc_error(rpc_error).code != "idempotency_key_in_use":
                raise
        await asyncio.sleep(pause_s)
    # The last try: whatever it answers, the page shows.
    return await deps.payments.CompleteThreeDSecureChallenge(
        request, metadata=_metadata(account), timeout=core_call_timeout_s()
    )


# What the cardholder is told when the answer did not complete the payment, by whether the
# card was declined. Never the core's own message: that is written for the merchant's
# developers (it may name remit's calls, idempotency keys or the intent's state), and the
# merchant reads what happened from the intent.
_NOT_COMPLETED: Final = {
    True: "Your card was declined. Please return to the merchant to pay another way.",
    False: "Your payment could not be completed. Please return to the merchant.",
}


def _too_many() -> HTMLResponse:
    return _page("Too many requests", "<p>Please wait a moment and try again.</p>", status=429)


# The core could not be reached, or did not answer in time: nothing is known of the challenge,
# and an answer sent may yet be worked on. A press again replays its outcome (the answer runs
# under the challenge's own key), so the cardholder is asked to try again, not sent away.
_UNREACHABLE: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def _out_of_reach(rpc_error: grpc.aio.AioRpcError) -> bool:
    """Whether the core could not be reached, did not answer in time, or turned the call away
    under load before doing anything (`remit.grpcutil.unstarted`): the challenge is still as it
    was, and the cardholder can try again. A RESOURCE_EXHAUSTED without the mark is not this: it
    is a fault of remit's (a message past its size limit), whose outcome is not known."""
    return rpc_error.code() in _UNREACHABLE or refused_unstarted(rpc_error)


# Seconds a browser (or a cardholder) is asked to wait before trying again.
_RETRY_AFTER_S: Final = 5


def _try_again_shortly() -> HTMLResponse:
    page = _page(
        "Please try again",
        "<p>We could not reach the payment service just now. Please try again in a few "
        "moments.</p>",
        status=503,
    )
    page.headers["Retry-After"] = str(_RETRY_AFTER_S)
    return page


def _unless_core_unreachable(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """`handler`, answering the cardholder's page to try again shortly when the core cannot be
    reached or is too busy to take the call up (`_out_of_reach`), instead of the server's bare
    500 and a traceback: an outage, not a bug. The log line names neither the address nor the
    core's text: the address holds the challenge id, which is the link's credential."""

    async def handle(request: Request) -> Response:
        try:
            return await handler(request)
        except grpc.aio.AioRpcError as rpc_error:
            if not _out_of_reach(rpc_error):
                raise
            log.warning(
                "3-D Secure page %s: the core did not answer or was too busy to (%s); the "
                "cardholder is asked to try again",
                request.method,
                rpc_error.code().name,
            )
            return _try_again_shortly()

    return handle


def _admitted(deps: Dependencies, request: Request) -> bool:
    """The page takes no key, and every hit asks the core: a client is held to its address's
    request limit."""
    return deps.rate_limits.admit_client(client_address(request))


def routes(deps: Dependencies) -> list[Route]:
    async def show(request: Request) -> Response:
        if not _admitted(deps, request):
            return _too_many()
        ids = _ids(request)
        challenge = None if ids is None else await _challenge(deps, *ids)
        if challenge is None:
            return _not_found()
        status = _STATUS_WORDS.get(challenge.status, "unknown")
        if status != "pending":
            return _page(
                "Authentication finished",
                f"<p>This authentication has {status}.</p>{_return_link(challenge)}",
            )
        brand = common_pb2.CardBrand.Name(challenge.brand).removeprefix("CARD_BRAND_").title()
        return _page(
            "Confirm your payment",
            f"<p>Pay <strong>{html.escape(_amount(challenge.amount, challenge.currency))}</strong>"
            f" with {html.escape(brand)} ending in {html.escape(challenge.last4)}?</p>"
            "<p>This page simulates your bank's 3-D Secure check (test mode).</p>"
            "<form method='post'>"
            "<button name='outcome' value='succeed' type='submit'>Complete authentication"
            "</button>"
            "<button name='outcome' value='fail' type='submit'>Fail authentication</button>"
            "</form>",
            return_url=challenge.return_url if challenge.HasField("return_url") else None,
        )

    async def answer(request: Request) -> Response:
        if not _admitted(deps, request):
            return _too_many()
        ids = _ids(request)
        if ids is None:
            return _not_found()
        try:
            body = await capped_body(request, MAX_FORM_BYTES)
        except BodyTooLargeError:
            return _page("Bad request", "<p>The form is too large.</p>", status=400)
        except BodyReadTimeoutError:
            page = _page("Request timeout", "<p>The form did not arrive in time.</p>", status=408)
            # The rest of the form may still be on its way: the connection is not used again.
            page.headers["Connection"] = "close"
            return page
        chosen = parse_qs(body.decode("utf-8", "replace")).get("outcome", [""])[0]
        outcome = {
            "succeed": pb.THREE_D_SECURE_CHALLENGE_OUTCOME_SUCCEED,
            "fail": pb.THREE_D_SECURE_CHALLENGE_OUTCOME_FAIL,
        }.get(chosen)
        if outcome is None:
            return _page("Bad request", "<p>outcome must be succeed or fail.</p>", status=400)
        try:
            reply = await _complete(deps, *ids, outcome)
        except grpc.aio.AioRpcError as rpc_error:
            if _out_of_reach(rpc_error):
                # Not refused: its outcome is unknown, or it was never taken up; either way the
                # challenge may still be answered (`_unless_core_unreachable`).
                raise
            if rpc_error.code() in _ABSENT:
                return _not_found()
            error = remit_error_from_rpc_error(rpc_error)
            challenge = await _challenge(deps, *ids)
            back = "" if challenge is None else _back_after_decline(challenge, error)
            if back:
                return RedirectResponse(back, status_code=303, headers=_HEADERS)
            link = "" if challenge is None else _return_link(challenge)
            declined = error.kind is ErrorKind.CARD_DECLINED
            return _page(
                "Payment not completed",
                f"<p>{_NOT_COMPLETED[declined]}</p>{link}",
                status=402 if declined else 409,
            )
        if reply.redirect_url and may_send_cardholder_to(reply.redirect_url):
            return RedirectResponse(reply.redirect_url, status_code=303, headers=_HEADERS)
        passed = reply.challenge.status == pb.THREE_D_SECURE_CHALLENGE_STATUS_SUCCEEDED
        return _page(
            "Authentication complete" if passed else "Authentication failed",
            f"<p>Authentication {'succeeded' if passed else 'failed'}. You can close this "
            "page.</p>",
        )

    return [
        Route(PATH, _unless_core_unreachable(show), methods=["GET"]),
        Route(PATH, _unless_core_unreachable(answer), methods=["POST"]),
    ]
