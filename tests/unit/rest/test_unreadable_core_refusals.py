"""A refusal of the core's whose detail is partly unreadable still reaches the client as Stripe's
error object, with everything that could be read: never a bare 500. The core is a real gRPC
server that answers every confirm with the refusal given."""

from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import any_pb2

from remit.rest.app import build_app
from remit.rest.routes import all_operations
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2_grpc
from tests.support.refusing_server import Refusal, refusal_with, refusing
from tests.support.rest_facade import every_key_is_a_secret_key, faked_dependencies

pytestmark = pytest.mark.anyio

KEY = "sk_test_" + "c" * 24
SERVICE = "remit_api.payments.v1.PaymentsService"


async def _confirm_answered_by(refusal: Refusal) -> httpx.Response:
    async with refusing(SERVICE, "ConfirmPaymentIntent", refusal) as channel:
        deps = faked_dependencies(
            every_key_is_a_secret_key,
            core_channel=channel,
            payments=payments_pb2_grpc.PaymentsServiceStub(channel),
        )
        transport = httpx.ASGITransport(app=build_app(deps, all_operations()))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post("/v1/payment_intents/pi_1/confirm", auth=(KEY, ""))


def _decline_carrying(intent: any_pb2.Any) -> Refusal:
    detail = common_pb2.ErrorDetail(
        type="card_error",
        code="card_declined",
        decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
        charge="ch_1",
        http_status=402,
    )
    detail.payment_intent.CopyFrom(intent)
    packed = any_pb2.Any()
    packed.Pack(detail)
    return refusal_with(grpc.StatusCode.FAILED_PRECONDITION, detail.message, packed)


INTENT_URL = "type.googleapis.com/remit_api.payments.v1.PaymentIntent"
UNREADABLE_INTENTS = {
    "an unknown type": any_pb2.Any(type_url="type.googleapis.com/nowhere.v1.Unknown", value=b"x"),
    "corrupt bytes": any_pb2.Any(type_url=INTENT_URL, value=b"\xff\xff\xff"),
}


@pytest.mark.parametrize("intent", UNREADABLE_INTENTS.values(), ids=UNREADABLE_INTENTS.keys())
async def test_a_decline_whose_intent_cannot_be_read_is_answered_without_it(
    intent: any_pb2.Any,
) -> None:
    response = await _confirm_answered_by(_decline_carrying(intent))
    assert response.status_code == 402, response.text
    assert response.json() == {
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
            "charge": "ch_1",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        }
    }


async def test_status_details_that_cannot_be_read_are_answered_as_an_api_error() -> None:
    refusal = Refusal(grpc.StatusCode.FAILED_PRECONDITION, "refused", b"\xff\xff\xff")
    response = await _confirm_answered_by(refusal)
    assert response.status_code == 500, response.text
    body: Any = response.json()
    assert body["error"]["type"] == "api_error"
    assert body["error"]["message"] == "An unexpected error occurred."
