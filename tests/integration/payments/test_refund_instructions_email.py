"""CreateRefund refuses `instructions_email` rather than dropping it: Stripe emails refund
instructions only for payment methods that cannot be refunded directly, remit refunds cards
only, so it sends none, and a caller must not believe an email went out. (The REST facade does
not accept the parameter at all.)"""

from typing import Any

import grpc
import pytest

from remit.grpcutil.errors import detail_from_rpc_error
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support.accounts import call_metadata

pytestmark = pytest.mark.anyio


async def test_a_refund_asking_for_an_instructions_email_is_refused(
    payments_stub: Any, account_id: str
) -> None:
    paid = await payments_stub.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(
            amount=1500, currency="usd", payment_method="pm_visa", confirm=True
        ),
        metadata=call_metadata(account_id, "pay"),
    )
    intent = paid.payment_intent
    assert intent.status == pb.PAYMENT_INTENT_STATUS_SUCCEEDED
    request = pb.CreateRefundRequest(payment_intent=intent.id, instructions_email="a@example.com")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payments_stub.CreateRefund(request, metadata=call_metadata(account_id, "refund"))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert detail.param == "instructions_email"
    # As the REST facade refuses a parameter it does not know: the same code either way.
    assert detail.code == "parameter_unknown"
    refunds = await payments_stub.ListRefunds(
        pb.ListRefundsRequest(payment_intent=intent.id), metadata=call_metadata(account_id)
    )
    assert list(refunds.data) == []
    # The same refund without it goes through, under the same key: the refusal kept nothing.
    request.ClearField("instructions_email")
    refunded = await payments_stub.CreateRefund(
        request, metadata=call_metadata(account_id, "refund")
    )
    assert refunded.refund.amount == 1500
