"""A refusal whose detail is partly unreadable, as a client reads it over real gRPC: what can be
read is kept (message, code, HTTP status, ...), what cannot is left out with one warning, and the
caller gets a `RemitError` either way, never the parser's exception."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from google.protobuf import any_pb2

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import answer_of, detail_from_rpc_error, remit_error_from_rpc_error
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support.refusing_server import Refusal, refusal_with, refusing

pytestmark = pytest.mark.anyio

SERVICE = "remit_api.test.v1.Refusing"
INTENT_URL = "type.googleapis.com/remit_api.payments.v1.PaymentIntent"
# Bytes no log line may show: they stand for a payload that could quote a client's input.
SECRET = b"4242424242424242"


def _decline(intent: any_pb2.Any | None = None) -> common_pb2.ErrorDetail:
    detail = common_pb2.ErrorDetail(
        type="card_error",
        code="card_declined",
        decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
        charge="ch_1",
        param="payment_method",
        should_retry=False,
        http_status=402,
    )
    if intent is not None:
        detail.payment_intent.CopyFrom(intent)
    return detail


def _packed(message: common_pb2.ErrorDetail) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _decline_refusal(intent: any_pb2.Any) -> Refusal:
    return refusal_with(
        grpc.StatusCode.FAILED_PRECONDITION,
        "Your card has insufficient funds.",
        _packed(_decline(intent)),
    )


def _run(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(f"/{SERVICE}/Run")


@asynccontextmanager
async def _failed_call(refusal: Refusal) -> AsyncIterator[grpc.aio.AioRpcError]:
    async with refusing(SERVICE, "Run", refusal) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await _run(channel)(b"", timeout=30)
        yield failed.value


UNREADABLE_INTENTS = {
    "an unknown type": any_pb2.Any(type_url="type.googleapis.com/nowhere.v1.Unknown", value=SECRET),
    "no type at all": any_pb2.Any(type_url="", value=SECRET),
    "a type that is no message": any_pb2.Any(
        type_url="type.googleapis.com/google.protobuf.NullValue", value=SECRET
    ),
    "another message": _packed(common_pb2.ErrorDetail(message=SECRET.decode())),
    "corrupt bytes": any_pb2.Any(type_url=INTENT_URL, value=b"\xff\xff\xff" + SECRET),
    "text that is no UTF-8": any_pb2.Any(type_url=INTENT_URL, value=b"\x0a\x03\xc3\x28" + SECRET),
}


@pytest.mark.parametrize("intent", UNREADABLE_INTENTS.values(), ids=UNREADABLE_INTENTS.keys())
async def test_a_decline_whose_intent_cannot_be_read_keeps_the_rest(
    intent: any_pb2.Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with _failed_call(_decline_refusal(intent)) as failed:
        with caplog.at_level(logging.WARNING, logger="remit.grpcutil.errors"):
            error = remit_error_from_rpc_error(failed)
    assert isinstance(error, RemitError)
    assert (error.kind, error.error_type, error.code, error.decline_code) == (
        ErrorKind.CARD_DECLINED,
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
    assert (error.message, error.charge, error.param, error.should_retry) == (
        "Your card has insufficient funds.",
        "ch_1",
        "payment_method",
        False,
    )
    assert error.related is None
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "payment_intent" in warning.getMessage()
    assert SECRET.decode() not in warning.getMessage()


async def test_a_decline_carries_its_intent_when_it_reads() -> None:
    packed = any_pb2.Any()
    packed.Pack(pb.PaymentIntent(id="pi_1", amount=1000, currency="usd"))
    async with _failed_call(_decline_refusal(packed)) as failed:
        error = remit_error_from_rpc_error(failed)
    assert error.related == pb.PaymentIntent(id="pi_1", amount=1000, currency="usd")


async def test_answer_of_raises_the_refusal_when_its_intent_cannot_be_read() -> None:
    """The callers of another service (the facade, the core calling the vault) expect a
    `RemitError` of every refusal."""
    refusal = _decline_refusal(UNREADABLE_INTENTS["an unknown type"])
    async with refusing(SERVICE, "Run", refusal) as channel:
        with pytest.raises(RemitError) as refused:
            await answer_of(_run(channel)(b"", timeout=30))
    assert refused.value.code == "card_declined"


UNREADABLE_DETAILS = {
    "corrupt bytes": b"\xff\xff\xff" + SECRET,
    "a message that is no UTF-8": b"\x12\x03\xc3\x28" + SECRET,
    "a detail whose bytes are corrupt": refusal_with(
        grpc.StatusCode.FAILED_PRECONDITION,
        "refused",
        any_pb2.Any(
            type_url="type.googleapis.com/remit_api.common.v1.ErrorDetail",
            value=b"\xff\xff" + SECRET,
        ),
    ).details,
    "a detail whose text is no UTF-8": refusal_with(
        grpc.StatusCode.FAILED_PRECONDITION,
        "refused",
        any_pb2.Any(
            type_url="type.googleapis.com/remit_api.common.v1.ErrorDetail",
            value=b"\x2a\x02\xc3\x28",
        ),
    ).details,
}


@pytest.mark.parametrize("details", UNREADABLE_DETAILS.values(), ids=UNREADABLE_DETAILS.keys())
async def test_status_details_that_cannot_be_read_leave_the_status_code(
    details: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """With no detail to read, the call is classified by its status code alone: a refusal of
    unknown shape is an internal error, an UNAVAILABLE one stays retryable."""
    refused = Refusal(grpc.StatusCode.FAILED_PRECONDITION, "refused", details)
    async with _failed_call(refused) as failed:
        with caplog.at_level(logging.WARNING, logger="remit.grpcutil.errors"):
            assert detail_from_rpc_error(failed) is None
            error = remit_error_from_rpc_error(failed)
    assert (error.kind, error.error_type, error.message) == (
        ErrorKind.INTERNAL,
        "api_error",
        "An unexpected error occurred.",
    )
    # One line for the failed call, read twice; never its bytes.
    [warning] = caplog.records
    assert "status details" in warning.getMessage()
    assert SECRET.decode() not in warning.getMessage()
    unavailable = Refusal(grpc.StatusCode.UNAVAILABLE, "down", details)
    async with _failed_call(unavailable) as failed:
        error = remit_error_from_rpc_error(failed)
    assert (error.kind, error.should_retry) == (ErrorKind.UNAVAILABLE, True)


async def test_a_failure_read_several_times_is_told_once(caplog: pytest.LogCaptureFixture) -> None:
    """`GrpcCardNetwork._guarded` reads one failure up to three times."""
    async with _failed_call(_decline_refusal(UNREADABLE_INTENTS["corrupt bytes"])) as failed:
        with caplog.at_level(logging.WARNING, logger="remit.grpcutil.errors"):
            for _ in range(3):
                remit_error_from_rpc_error(failed)
    assert len(caplog.records) == 1
