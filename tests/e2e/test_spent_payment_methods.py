"""A PaymentMethod used to confirm a PaymentIntent while attached to no customer is spent: no
other PaymentIntent may use it (create with confirm, confirm, update), and it may not be
attached to a customer afterwards. The intent that spent it may still be confirmed with it
again, a request retried under its Idempotency-Key replays, and payment methods attached to a
customer (or saved by the payment, `setup_future_usage`) stay reusable, as do Stripe's test ids,
each use of which is a fresh payment method. A payment with `setup_future_usage` and no customer
that went through leaves its payment method free to be attached to a customer afterwards (and
to no other intent until then)."""

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import stripe
from google.rpc import status_pb2

from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.e2e.test_three_d_secure_path import (
    answer,
    challenge_url,
    declined_off_session,
    renew_off_session,
)
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

RETURN_URL = "https://shop.example/return"
SPENT = (
    "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
    "attachment, shared with a connected account without Customer attachment, or was detached "
    "from a Customer. It may not be used again. To use a PaymentMethod multiple times, you must "
    "attach it to a Customer first."
)


def _method(client: stripe.StripeClient, test_card: str = "tok_visa") -> str:
    """A saved payment method attached to no customer."""
    return client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": test_card}}
    ).id


def _paid(client: stripe.StripeClient, method_id: str, **extra: Any) -> stripe.PaymentIntent:
    params: Any = {
        "amount": 1000,
        "currency": "usd",
        "payment_method": method_id,
        "confirm": True,
        "return_url": RETURN_URL,
        **extra,
    }
    return client.v1.payment_intents.create(params=params)


def _assert_spent(refused: pytest.ExceptionInfo[stripe.InvalidRequestError]) -> None:
    error = refused.value.error
    assert refused.value.http_status == 400
    assert error is not None
    assert (error.type, error.param, error.message) == (
        "invalid_request_error",
        "payment_method",
        SPENT,
    )


def test_a_method_used_without_a_customer_pays_no_other_intent(
    client: stripe.StripeClient,
) -> None:
    method_id = _method(client)
    assert _paid(client, method_id).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as on_create:
        _paid(client, method_id)
    _assert_spent(on_create)
    other = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as on_confirm:
        client.v1.payment_intents.confirm(
            other.id, params={"payment_method": method_id, "return_url": RETURN_URL}
        )
    _assert_spent(on_confirm)
    with pytest.raises(stripe.InvalidRequestError) as on_update:
        client.v1.payment_intents.update(other.id, params={"payment_method": method_id})
    _assert_spent(on_update)
    assert client.v1.payment_intents.retrieve(other.id).status == "requires_payment_method"


def test_a_spent_method_cannot_be_attached_to_a_customer(client: stripe.StripeClient) -> None:
    method_id = _method(client)
    _paid(client, method_id)
    customer = client.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_methods.attach(method_id, params={"customer": customer.id})
    _assert_spent(refused)
    assert client.v1.payment_methods.retrieve(method_id).customer is None


def test_a_retried_payment_replays_under_its_idempotency_key(client: stripe.StripeClient) -> None:
    method_id = _method(client)
    params: Any = {
        "amount": 1000,
        "currency": "usd",
        "payment_method": method_id,
        "confirm": True,
        "return_url": RETURN_URL,
    }
    first = client.v1.payment_intents.create(params=params, options={"idempotency_key": "once"})
    again = client.v1.payment_intents.create(params=params, options={"idempotency_key": "once"})
    assert (again.id, again.status) == (first.id, "succeeded")


def test_the_intent_that_spent_a_method_may_be_confirmed_with_it_again(
    client: stripe.StripeClient,
) -> None:
    method_id = _method(client, "tok_chargeDeclined")
    with pytest.raises(stripe.CardError) as declined:
        _paid(client, method_id)
    intent = declined.value.error.payment_intent if declined.value.error else None
    assert intent is not None
    with pytest.raises(stripe.CardError):
        # Declined again by the network, not refused as spent.
        client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": method_id, "return_url": RETURN_URL}
        )
    with pytest.raises(stripe.InvalidRequestError) as elsewhere:
        _paid(client, method_id)
    _assert_spent(elsewhere)


def test_a_method_attached_to_a_customer_pays_again_and_again(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create()
    method_id = _method(client)
    client.v1.payment_methods.attach(method_id, params={"customer": customer.id})
    for _ in range(2):
        assert _paid(client, method_id, customer=customer.id).status == "succeeded"


def test_a_method_saved_by_its_payment_pays_its_customer_again(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create()
    method_id = _method(client)
    first = _paid(client, method_id, customer=customer.id, setup_future_usage="off_session")
    assert first.status == "succeeded"
    assert client.v1.payment_methods.retrieve(method_id).customer == customer.id
    assert _paid(client, method_id, customer=customer.id).status == "succeeded"


def test_every_use_of_a_test_id_is_a_fresh_method_and_each_of_them_is_spent(
    client: stripe.StripeClient,
) -> None:
    first, second = _paid(client, "pm_card_visa"), _paid(client, "pm_card_visa")
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert first.payment_method != second.payment_method
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _paid(client, str(first.payment_method))
    _assert_spent(refused)
    with_token: Any = {
        "amount": 1000,
        "currency": "usd",
        "payment_method_data": {"type": "card", "card": {"token": "tok_visa"}},
        "confirm": True,
        "return_url": RETURN_URL,
    }
    by_token = client.v1.payment_intents.create(params=with_token)
    assert by_token.status == "succeeded"


def test_a_card_saved_for_future_usage_without_a_customer_can_be_attached_afterwards(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(client, "pm_card_visa", setup_future_usage="off_session")
    assert (intent.status, intent.customer) == ("succeeded", None)
    customer = client.v1.customers.create()
    attached = client.v1.payment_methods.attach(
        str(intent.payment_method), params={"customer": customer.id}
    )
    assert attached.customer == customer.id
    again = _paid(client, attached.id, customer=customer.id, off_session=True)
    assert (again.status, again.payment_method) == ("succeeded", attached.id)


def test_a_card_authorized_for_future_usage_without_a_customer_makes_a_customer_with_it(
    client: stripe.StripeClient,
) -> None:
    method_id = _method(client)
    intent = _paid(client, method_id, setup_future_usage="on_session", capture_method="manual")
    assert (intent.status, intent.customer) == ("requires_capture", None)
    customer = client.v1.customers.create(params={"payment_method": method_id})
    assert client.v1.payment_methods.retrieve(method_id).customer == customer.id
    assert _paid(client, method_id, customer=customer.id).status == "succeeded"


def test_a_card_saved_for_future_usage_pays_no_other_intent_before_it_is_attached(
    client: stripe.StripeClient,
) -> None:
    method_id = _method(client)
    assert _paid(client, method_id, setup_future_usage="off_session").status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _paid(client, method_id)
    _assert_spent(refused)
    with pytest.raises(stripe.InvalidRequestError) as refused_saving:
        _paid(client, method_id, setup_future_usage="off_session")
    _assert_spent(refused_saving)


def test_a_card_declined_for_future_usage_without_a_customer_stays_spent(
    client: stripe.StripeClient,
) -> None:
    method_id = _method(client, "tok_chargeDeclined")
    with pytest.raises(stripe.CardError):
        _paid(client, method_id, setup_future_usage="off_session")
    customer = client.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError) as on_attach:
        client.v1.payment_methods.attach(method_id, params={"customer": customer.id})
    _assert_spent(on_attach)
    with pytest.raises(stripe.InvalidRequestError) as on_create:
        client.v1.customers.create(params={"payment_method": method_id})
    _assert_spent(on_create)


def test_a_card_whose_payment_for_future_usage_never_went_through_stays_spent(
    client: stripe.StripeClient,
) -> None:
    """Its challenge not passed, then the intent canceled: the cardholder agreed to nothing."""
    intent = _paid(client, "pm_card_authenticationRequired", setup_future_usage="off_session")
    assert intent.status == "requires_action"
    method_id = str(intent.payment_method)
    customer = client.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError) as while_waiting:
        client.v1.payment_methods.attach(method_id, params={"customer": customer.id})
    _assert_spent(while_waiting)
    assert client.v1.payment_intents.cancel(intent.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as once_canceled:
        client.v1.payment_methods.attach(method_id, params={"customer": customer.id})
    _assert_spent(once_canceled)


def test_a_guests_card_set_up_off_session_pays_off_session_once_attached(
    client: stripe.StripeClient,
) -> None:
    """The guest authenticated the payment that set the card up for off-session payments
    (4000002500003155 asks for it on session and at setup): attached to the customer the guest
    became, the card pays off session without authentication, as the agreement allows."""
    intent = _paid(
        client, "pm_card_authenticationRequiredOnSetup", setup_future_usage="off_session"
    )
    assert answer(challenge_url(intent), "succeed").status_code == 303
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert (paid.status, paid.customer) == ("succeeded", None)
    customer = client.v1.customers.create()
    method_id = str(paid.payment_method)
    client.v1.payment_methods.attach(method_id, params={"customer": customer.id})
    renewed = renew_off_session(client, customer.id, method_id)
    assert (renewed.status, renewed.next_action) == ("succeeded", None)


def test_a_guests_card_saved_for_on_session_use_only_is_declined_off_session(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(client, "pm_card_authenticationRequiredOnSetup", setup_future_usage="on_session")
    assert answer(challenge_url(intent), "succeed").status_code == 303
    customer = client.v1.customers.create()
    method_id = str(client.v1.payment_intents.retrieve(intent.id).payment_method)
    client.v1.payment_methods.attach(method_id, params={"customer": customer.id})
    declined_off_session(client, customer.id, method_id)


# --- gRPC, as an internal caller of the core ---------------------------------------------


@pytest.fixture
def payments_stub(
    platform: RunningPlatform,
) -> Iterator[payments_pb2_grpc.PaymentsServiceStub]:
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        yield payments_pb2_grpc.PaymentsServiceStub(channel)


def _error_detail(error: grpc.RpcError) -> common_pb2.ErrorDetail:
    packed = [
        item.value for item in error.trailing_metadata() if item.key == "grpc-status-details-bin"
    ]
    status = status_pb2.Status.FromString(packed[0])
    detail = common_pb2.ErrorDetail()
    assert status.details[0].Unpack(detail)
    return detail


def test_grpc_refuses_a_spent_method_with_failed_precondition(
    payments_stub: payments_pb2_grpc.PaymentsServiceStub,
    client: stripe.StripeClient,
    account: TestAccount,
) -> None:
    metadata = (("remit-account-id", account.id),)
    method_id = _method(client)
    paid = payments_stub.CreatePaymentIntent(
        payments_pb2.CreatePaymentIntentRequest(
            amount=1000, currency="usd", payment_method=method_id, confirm=True,
            return_url=RETURN_URL,
        ),
        metadata=metadata,
        timeout=30,
    ).payment_intent  # fmt: skip
    assert paid.payment_method == method_id
    other = payments_stub.CreatePaymentIntent(
        payments_pb2.CreatePaymentIntentRequest(amount=500, currency="usd"),
        metadata=metadata,
        timeout=10,
    ).payment_intent
    with pytest.raises(grpc.RpcError) as raised:
        payments_stub.ConfirmPaymentIntent(
            payments_pb2.ConfirmPaymentIntentRequest(
                id=other.id, payment_method=method_id, return_url=RETURN_URL
            ),
            metadata=metadata,
            timeout=10,
        )
    detail = _error_detail(raised.value)
    # By the payment method's state: stored under the request's key (`payments.keyed`).
    assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert (detail.type, detail.param, detail.message, detail.http_status) == (
        "invalid_request_error",
        "payment_method",
        SPENT,
        400,
    )
