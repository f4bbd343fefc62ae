"""remit captures once: `final_capture=false` (Stripe's multicapture, which keeps the rest of
the authorization open for later captures) is refused, as the REST facade refuses it, rather
than ignored. Ignored, it captured the amount asked for and released the rest, which the caller
had asked to keep."""

from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.grpcutil.errors import detail_from_rpc_error
from remit.payments.tables import idempotency_keys
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support.accounts import call_metadata

pytestmark = pytest.mark.anyio


async def _authorized(stub: Any, account_id: str) -> pb.PaymentIntent:
    reply = await stub.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(
            amount=2000,
            currency="usd",
            payment_method="pm_visa",
            confirm=True,
            capture_method=pb.PAYMENT_INTENT_CAPTURE_METHOD_MANUAL,
        ),
        metadata=call_metadata(account_id, "authorize"),
    )
    intent: pb.PaymentIntent = reply.payment_intent
    assert (intent.status, intent.amount_capturable) == (
        pb.PAYMENT_INTENT_STATUS_REQUIRES_CAPTURE,
        2000,
    )
    return intent


async def test_a_capture_that_keeps_the_authorization_open_is_refused(
    payments_stub: Any, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _authorized(payments_stub, account_id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payments_stub.CapturePaymentIntent(
            pb.CapturePaymentIntentRequest(
                id=intent.id, amount_to_capture=500, final_capture=False
            ),
            metadata=call_metadata(account_id, "capture-part"),
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    # As the facade answers `final_capture=false`.
    assert (detail.type, detail.code, detail.param) == (
        "invalid_request_error",
        "parameter_invalid",
        "final_capture",
    )
    # Nothing captured, nothing released, and the key left free for a corrected request.
    got = await payments_stub.GetPaymentIntent(
        pb.GetPaymentIntentRequest(id=intent.id), metadata=call_metadata(account_id)
    )
    assert (got.payment_intent.status, got.payment_intent.amount_capturable) == (
        pb.PAYMENT_INTENT_STATUS_REQUIRES_CAPTURE,
        2000,
    )
    async with core_engine.connect() as db:
        kept = await db.scalar(select(func.count()).where(idempotency_keys.c.key == "capture-part"))
    assert kept == 0


@pytest.mark.parametrize("final_capture", [True, None])
async def test_a_final_capture_captures_and_releases_the_rest(
    payments_stub: Any, account_id: str, final_capture: bool | None
) -> None:
    intent = await _authorized(payments_stub, account_id)
    request = pb.CapturePaymentIntentRequest(id=intent.id, amount_to_capture=500)
    if final_capture is not None:
        request.final_capture = final_capture
    reply = await payments_stub.CapturePaymentIntent(
        request, metadata=call_metadata(account_id, "capture")
    )
    captured = reply.payment_intent
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        pb.PAYMENT_INTENT_STATUS_SUCCEEDED,
        500,
        0,
    )
