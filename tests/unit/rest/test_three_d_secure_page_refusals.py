"""What the hosted 3-D Secure page shows when the core refuses an answer: an id the core refuses
as an argument is no authentication (the page's own 404), and any other refusal is told to the
cardholder in plain words, never in the core's message, which is written for the merchant's
developers. A core out of reach (UNAVAILABLE, DEADLINE_EXCEEDED), or one too busy to take the call
up (RESOURCE_EXHAUSTED marked as never started), is a page asking to try again shortly (503,
Retry-After), logged as a warning. The core is a fake stub raising the refusals a
real one sends."""

import logging
from typing import Any

import grpc
import httpx
import pytest
from grpc.aio import Metadata

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import to_rpc_status
from remit.grpcutil.unstarted import MARK
from remit.rest import three_d_secure
from remit.rest.app import build_app
from remit.rest.routes import all_operations
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support.rest_facade import every_key_is_a_secret_key, faked_dependencies

pytestmark = pytest.mark.anyio

URL = f"/three_d_secure/acct_{'a' * 24}/tdsc_{'b' * 24}"


def _refusal(error: RemitError) -> grpc.aio.AioRpcError:
    status = to_rpc_status(error)
    return grpc.aio.AioRpcError(
        grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == status.code)),
        Metadata(),
        Metadata(("grpc-status-details-bin", status.SerializeToString())),
        details=status.message,
    )


class _RefusingPayments:
    """Answers every completion with `refusal`, and shows the challenge pending."""

    def __init__(self, refusal: grpc.aio.AioRpcError, *, found: bool = True) -> None:
        self._refusal = refusal
        self._found = found

    async def GetThreeDSecureChallenge(  # noqa: N802 (the RPC name)
        self, request: pb.GetThreeDSecureChallengeRequest, **_options: Any
    ) -> pb.GetThreeDSecureChallengeResponse:
        if not self._found:
            raise self._refusal
        return pb.GetThreeDSecureChallengeResponse(
            challenge=pb.ThreeDSecureChallenge(
                id=request.id,
                status=pb.THREE_D_SECURE_CHALLENGE_STATUS_PENDING,
                amount=2000,
                currency="usd",
                last4="3184",
            )
        )

    async def CompleteThreeDSecureChallenge(  # noqa: N802 (the RPC name)
        self, _request: pb.CompleteThreeDSecureChallengeRequest, **_options: Any
    ) -> pb.CompleteThreeDSecureChallengeResponse:
        raise self._refusal


async def _pages(payments: _RefusingPayments) -> tuple[httpx.Response, httpx.Response]:
    deps = faked_dependencies(every_key_is_a_secret_key, payments=payments)
    transport = httpx.ASGITransport(app=build_app(deps, all_operations()))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as browser:
        shown = await browser.get(URL)
        answered = await browser.post(URL, data={"outcome": "succeed"})
    return shown, answered


async def test_an_id_the_core_refuses_as_an_argument_is_no_such_authentication() -> None:
    refused = _refusal(RemitError(message="Invalid character in the value of id: NUL", param="id"))
    shown, answered = await _pages(_RefusingPayments(refused, found=False))
    for page in (shown, answered):
        assert page.status_code == 404, page.text
        assert "There is no such authentication" in page.text


async def test_an_answer_refused_as_an_argument_is_no_such_authentication() -> None:
    refused = _refusal(RemitError(message="outcome must be succeed or fail.", param="outcome"))
    _, answered = await _pages(_RefusingPayments(refused))
    assert answered.status_code == 404, answered.text
    assert "There is no such authentication" in answered.text


INTERNAL_TEXT = (
    "Keys for idempotent requests can only be used for the same endpoint they were first used "
    "for ('CompleteThreeDSecureChallenge' vs 'CreatePaymentIntent'). Try using a key other "
    "than '3ds_tdsc_bbbb'."
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (
            RemitError(
                message=INTERNAL_TEXT,
                kind=ErrorKind.FAILED_PRECONDITION,
                code="idempotency_key_in_use",
                error_type="idempotency_error",
            ),
            409,
        ),
        (
            RemitError(
                message=INTERNAL_TEXT,
                kind=ErrorKind.FAILED_PRECONDITION,
                code="payment_intent_unexpected_state",
            ),
            409,
        ),
        (
            RemitError(
                message=INTERNAL_TEXT,
                kind=ErrorKind.CARD_DECLINED,
                code="card_declined",
                error_type="card_error",
            ),
            402,
        ),
    ],
    ids=["idempotency", "state", "decline"],
)
async def test_a_refused_answer_is_told_in_plain_words_never_in_the_cores_message(
    monkeypatch: pytest.MonkeyPatch, error: RemitError, status: int
) -> None:
    monkeypatch.setattr(three_d_secure, "_IN_FLIGHT_PAUSES_S", ())
    _, answered = await _pages(_RefusingPayments(_refusal(error)))
    assert answered.status_code == status, answered.text
    assert "Payment not completed" in answered.text
    for internal in ("idempotent", "CompleteThreeDSecureChallenge", "3ds_", "key"):
        assert internal not in answered.text


CORE_TEXT = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50051"


def _unreachable(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, Metadata(), Metadata(), details=CORE_TEXT)


# The core's bound of calls at once (`remit.grpcutil.concurrency`) refuses before anything runs.
OVERLOADED = grpc.aio.AioRpcError(
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    Metadata(),
    Metadata(MARK),
    details="Concurrent RPC limit exceeded!",
)
OUT_OF_REACH = pytest.mark.parametrize(
    "refusal",
    [
        _unreachable(grpc.StatusCode.UNAVAILABLE),
        _unreachable(grpc.StatusCode.DEADLINE_EXCEEDED),
        OVERLOADED,
    ],
    ids=["unavailable", "deadline", "overloaded"],
)


def _asks_to_try_again_shortly(page: httpx.Response) -> None:
    assert page.status_code == 503, page.text
    assert page.headers["Retry-After"] == "5"
    assert page.headers["Cache-Control"] == "no-store"
    assert "Please try again in a few moments" in page.text
    internals = ("127.0.0.1", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "core")
    for internal in (CORE_TEXT, "Concurrent RPC limit", *internals):
        assert internal not in page.text


def _warned_without_a_traceback(caplog: pytest.LogCaptureFixture, pages: int) -> None:
    records = [r for r in caplog.records if r.name == three_d_secure.__name__]
    assert [r.levelno for r in records] == [logging.WARNING] * pages
    assert all(r.exc_info is None for r in caplog.records)
    # The address holds the challenge id, the link's credential: never logged.
    assert not [r for r in caplog.records if "tdsc_" in r.getMessage()]


@OUT_OF_REACH
async def test_a_core_out_of_reach_is_a_page_asking_to_try_again_shortly(
    caplog: pytest.LogCaptureFixture, refusal: grpc.aio.AioRpcError
) -> None:
    with caplog.at_level(logging.WARNING):
        shown, answered = await _pages(_RefusingPayments(refusal, found=False))
    for page in (shown, answered):
        _asks_to_try_again_shortly(page)
    _warned_without_a_traceback(caplog, pages=2)


@OUT_OF_REACH
async def test_an_answer_the_core_did_not_take_in_time_is_not_told_as_not_completed(
    caplog: pytest.LogCaptureFixture, refusal: grpc.aio.AioRpcError
) -> None:
    """The challenge is shown, the answer is not taken (or not known to be): its outcome is
    unknown, or it was never taken up, and a press again replays it, so the cardholder is asked
    to try again, not told that the payment failed."""
    with caplog.at_level(logging.WARNING):
        shown, answered = await _pages(_RefusingPayments(refusal))
    assert shown.status_code == 200, shown.text
    _asks_to_try_again_shortly(answered)
    assert "Payment not completed" not in answered.text
    _warned_without_a_traceback(caplog, pages=1)
