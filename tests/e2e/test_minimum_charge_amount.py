"""An intent's amount must reach its currency's minimum charge (Stripe's $0.50 or equivalent),
over REST with the official SDK and over gRPC, on create and on update; a refusal stores nothing.
"""

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import stripe
from google.rpc import status_pb2
from sqlalchemy import create_engine, text

from remit.grpcutil.internal_auth import internal_sync_channel
from remit.storage.embedded import to_sqlalchemy_url
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

RETURN_URL = "https://shop.example/return"


def _stored_intents(platform: RunningPlatform, account: TestAccount) -> int:
    """The account's payment_intents rows, read from the core's database itself."""
    engine = create_engine(to_sqlalchemy_url(platform.env["DATABASE_URL"]))
    try:
        with engine.connect() as db:
            query = text("SELECT count(*) FROM payment_intents WHERE account_id = :account")
            return int(db.execute(query, {"account": account.id}).scalar_one())
    finally:
        engine.dispose()


# --- REST, with the official SDK ---------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"amount": 49, "currency": "usd"}, "Amount must be at least 0.50 usd"),
        ({"amount": 1, "currency": "eur"}, "Amount must be at least 0.50 eur"),
        ({"amount": 49, "currency": "jpy"}, "Amount must be at least 50 jpy"),
        ({"amount": 17_499, "currency": "huf"}, "Amount must be at least 175.00 huf"),
        # Confirmed at once: refused before any charge is attempted.
        ({"amount": 49, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True,
          "return_url": RETURN_URL}, "Amount must be at least 0.50 usd"),
    ],
)  # fmt: skip
def test_a_create_below_the_minimum_is_a_400_amount_too_small_that_stores_nothing(
    client: stripe.StripeClient,
    platform: RunningPlatform,
    account: TestAccount,
    params: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    refused = raised.value
    assert refused.http_status == 400
    assert refused.error is not None
    assert (refused.error.type, refused.code, refused.param, refused.error.message) == (
        "invalid_request_error",
        "amount_too_small",
        "amount",
        message,
    )
    assert _stored_intents(platform, account) == 0


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(50, "usd"), (30, "gbp"), (50, "jpy"), (17_500, "huf"), (1, "krw"), (1, "ars")],
)
def test_exactly_the_minimum_is_accepted_and_one_unit_where_stripe_lists_none(
    client: stripe.StripeClient, amount: int, currency: str
) -> None:
    """krw and ars have no published minimum: without exchange rates remit keeps one unit."""
    intent = client.v1.payment_intents.create(params={"amount": amount, "currency": currency})
    assert (intent.amount, intent.currency, intent.status) == (
        amount,
        currency,
        "requires_payment_method",
    )


def test_the_minimum_amount_can_be_paid(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 50,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    assert (intent.status, intent.amount_received) == ("succeeded", 50)


def test_an_update_below_the_minimum_is_refused_and_changes_nothing(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as lowered:
        client.v1.payment_intents.update(
            intent.id, params={"amount": 49, "description": "discounted"}
        )
    assert lowered.value.http_status == 400
    assert (lowered.value.code, lowered.value.param) == ("amount_too_small", "amount")
    assert lowered.value.error is not None
    assert lowered.value.error.message == "Amount must be at least 0.50 usd"
    # 1000 is only 10.00 huf, below its 175.00: a new currency is judged with the amount.
    with pytest.raises(stripe.InvalidRequestError) as moved:
        client.v1.payment_intents.update(intent.id, params={"currency": "huf"})
    assert moved.value.code == "amount_too_small"
    assert moved.value.error is not None
    assert moved.value.error.message == "Amount must be at least 175.00 huf"
    unchanged = client.v1.payment_intents.retrieve(intent.id)
    assert (unchanged.amount, unchanged.currency, unchanged.description) == (1000, "usd", None)
    lowest = client.v1.payment_intents.update(intent.id, params={"amount": 50})
    assert lowest.amount == 50


# --- gRPC, as an internal caller of the core ---------------------------------------------


@pytest.fixture
def payments_stub(
    platform: RunningPlatform,
) -> Iterator[payments_pb2_grpc.PaymentsServiceStub]:
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        yield payments_pb2_grpc.PaymentsServiceStub(channel)


def _error_detail(error: grpc.RpcError) -> common_pb2.ErrorDetail:
    """The ErrorDetail the core attaches to a refusal (Stripe's error fields), carried in the
    rich status of the trailing metadata."""
    packed = [
        item.value for item in error.trailing_metadata() if item.key == "grpc-status-details-bin"
    ]
    status = status_pb2.Status.FromString(packed[0])
    detail = common_pb2.ErrorDetail()
    assert status.details[0].Unpack(detail)
    return detail


def _refusal(error: grpc.RpcError) -> tuple[object, ...]:
    detail = _error_detail(error)
    return (error.code(), detail.type, detail.code, detail.param, detail.http_status)


INVALID_AMOUNT = (
    grpc.StatusCode.INVALID_ARGUMENT,
    "invalid_request_error",
    "amount_too_small",
    "amount",
    400,
)


def test_grpc_refuses_a_create_below_the_minimum_with_invalid_argument(
    payments_stub: payments_pb2_grpc.PaymentsServiceStub,
    platform: RunningPlatform,
    account: TestAccount,
) -> None:
    metadata = (("remit-account-id", account.id),)
    with pytest.raises(grpc.RpcError) as raised:
        payments_stub.CreatePaymentIntent(
            payments_pb2.CreatePaymentIntentRequest(amount=49, currency="jpy"),
            metadata=metadata,
            timeout=10,
        )
    assert _refusal(raised.value) == INVALID_AMOUNT
    assert _error_detail(raised.value).message == "Amount must be at least 50 jpy"
    assert _stored_intents(platform, account) == 0
    at_minimum = payments_stub.CreatePaymentIntent(
        payments_pb2.CreatePaymentIntentRequest(amount=50, currency="jpy"),
        metadata=metadata,
        timeout=10,
    ).payment_intent
    unlisted = payments_stub.CreatePaymentIntent(
        payments_pb2.CreatePaymentIntentRequest(amount=1, currency="krw"),
        metadata=metadata,
        timeout=10,
    ).payment_intent
    assert (at_minimum.amount, unlisted.amount) == (50, 1)
    assert _stored_intents(platform, account) == 2


def test_grpc_refuses_an_update_below_the_minimum_with_invalid_argument(
    payments_stub: payments_pb2_grpc.PaymentsServiceStub, account: TestAccount
) -> None:
    metadata = (("remit-account-id", account.id),)
    created = payments_stub.CreatePaymentIntent(
        payments_pb2.CreatePaymentIntentRequest(amount=1000, currency="usd"),
        metadata=metadata,
        timeout=10,
    ).payment_intent
    with pytest.raises(grpc.RpcError) as raised:
        payments_stub.UpdatePaymentIntent(
            payments_pb2.UpdatePaymentIntentRequest(id=created.id, amount=0),
            metadata=metadata,
            timeout=10,
        )
    assert _refusal(raised.value) == INVALID_AMOUNT
    assert _error_detail(raised.value).message == "Amount must be at least 0.50 usd"
    after = payments_stub.GetPaymentIntent(
        payments_pb2.GetPaymentIntentRequest(id=created.id), metadata=metadata, timeout=10
    ).payment_intent
    assert after == created
