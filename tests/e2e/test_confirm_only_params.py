"""What only a confirmation takes (`off_session`, `error_on_requires_action`, `return_url`) is
refused on a create without confirm=true: Stripe's spec says each "can only be used with
`confirm=true`". Accepted, `off_session` was dropped, and the intent confirmed later (by
Stripe.js) was charged as an on-session payment."""

from typing import Any

import grpc
import pytest
import stripe

from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

RETURN_URL = "https://shop.example/return"
CARD = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034}}


@pytest.mark.parametrize(
    ("name", "value"),
    [("off_session", True), ("error_on_requires_action", True), ("return_url", RETURN_URL)],
)
def test_a_create_without_confirm_refuses_what_only_a_confirmation_takes(
    client: stripe.StripeClient, name: str, value: Any
) -> None:
    params: Any = {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa"}
    params[name] = value
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(params=params)
    assert (refused.value.http_status, refused.value.code, refused.value.param) == (
        400,
        "parameter_invalid",
        name,
    )
    assert str(refused.value.user_message) == (
        f"The parameter {name} can only be used with confirm=true."
    )
    params["confirm"] = False
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params=params)
    assert client.v1.payment_intents.list().data == []


def test_a_create_giving_a_card_is_refused_before_the_card_is_stored(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(
            params={
                "amount": 2000,
                "currency": "usd",
                "payment_method_data": CARD,  # type: ignore[typeddict-item]
                "off_session": True,
            }
        )
    assert refused.value.param == "off_session"
    assert client.v1.payment_methods.list(params={"type": "card"}).data == []


def test_false_flags_ask_for_nothing_and_are_accepted(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "off_session": False,
            "error_on_requires_action": False,
        }
    )
    assert intent.status == "requires_payment_method"


def test_with_confirm_true_they_are_taken(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            "off_session": True,
        }
    )
    assert intent.status == "succeeded"


def test_over_grpc_the_refusal_is_invalid_argument(
    platform: RunningPlatform, account: TestAccount
) -> None:
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreatePaymentIntent(
                payments_pb2.CreatePaymentIntentRequest(
                    amount=1000, currency="usd", off_session=True
                ),
                metadata=(("remit-account-id", account.id),),
                timeout=10,
            )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
