"""A key reused on another endpoint, or with other parameters, is Stripe's idempotency_error in
Stripe's words, naming the key as the client sent it (never the prefix remit stores a
publishable key's keys under)."""

from collections.abc import Callable

import grpc
import httpx
import pytest
import stripe

from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from remit_api.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

RETURN_URL = "https://shop.example/return"


def test_a_key_reused_on_another_endpoint_says_so(client: stripe.StripeClient) -> None:
    created = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd"}, options={"idempotency_key": "ord-1"}
    )
    with pytest.raises(stripe.IdempotencyError) as refused:
        client.v1.payment_intents.confirm(
            created.id,
            params={"payment_method": "pm_card_visa", "return_url": RETURN_URL},
            options={"idempotency_key": "ord-1"},
        )
    message = str(refused.value.user_message)
    assert message.startswith(
        "Keys for idempotent requests can only be used for the same endpoint they were first "
        "used for"
    )
    assert "Try using a key other than 'ord-1'" in message


def test_a_payment_pages_key_is_named_as_the_page_sent_it(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    created = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    assert created.client_secret is not None

    def confirm(return_url: str) -> httpx.Response:
        return httpx.post(
            f"{platform.api_base}/v1/payment_intents/{created.id}/confirm",
            data={
                "client_secret": created.client_secret,
                "payment_method": "pm_card_visa",
                "return_url": return_url,
            },
            headers={
                "Authorization": f"Bearer {account.publishable_key}",
                "Idempotency-Key": "page-7",
            },
            timeout=30,
        )

    assert confirm(RETURN_URL).status_code == 200
    refused = confirm(RETURN_URL + "?again")
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["type"] == "idempotency_error"
    assert "Try using a key other than 'page-7'" in error["message"]
    assert "remit-" not in error["message"]


def _endpoint_refusal(send: Callable[[], object]) -> str:
    """The message of the idempotency_error `send` gets, checked to be the endpoint one."""
    with pytest.raises(stripe.IdempotencyError) as refused:
        send()
    assert refused.value.http_status == 400
    message = str(refused.value.user_message)
    assert message.startswith(
        "Keys for idempotent requests can only be used for the same endpoint they were first "
        "used for ("
    ), message
    return message


def _paths(message: str) -> str:
    """The part of an endpoint refusal naming the two endpoints: `'/v1/a' vs '/v1/b'`."""
    return message.split("first used for (", 1)[1].split("). Try", 1)[0]


def _confirmed(client: stripe.StripeClient, **params: object) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            **params,  # type: ignore[typeddict-item]
        }
    )


def test_a_key_reused_on_another_endpoint_names_the_paths_with_their_ids(
    client: stripe.StripeClient,
) -> None:
    """Stripe names the URL paths, an object's id included ('/v1/invoices/in_x/pay' vs
    '/v1/invoices'); never remit's RPCs, which a REST client never called."""
    created = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd"}, options={"idempotency_key": "paths-1"}
    )
    message = _endpoint_refusal(
        lambda: client.v1.payment_intents.confirm(
            created.id,
            params={"payment_method": "pm_card_visa", "return_url": RETURN_URL},
            options={"idempotency_key": "paths-1"},
        )
    )
    assert _paths(message) == f"'/v1/payment_intents/{created.id}/confirm' vs '/v1/payment_intents'"
    assert "PaymentIntent'" not in message


def test_every_kind_of_keyed_request_names_its_path(client: stripe.StripeClient) -> None:
    """Payment intents (create, confirm, capture, cancel), refunds, payouts, customers and
    payment methods: each refusal names the request's path and the first one's."""
    held = _confirmed(client, capture_method="manual")
    other = _confirmed(client, capture_method="manual")
    client.v1.payment_intents.capture(held.id, options={"idempotency_key": "k-capture"})
    cancel = _endpoint_refusal(
        lambda: client.v1.payment_intents.cancel(other.id, options={"idempotency_key": "k-capture"})
    )
    assert _paths(cancel) == (
        f"'/v1/payment_intents/{other.id}/cancel' vs '/v1/payment_intents/{held.id}/capture'"
    )

    client.v1.refunds.create(
        params={"payment_intent": held.id, "amount": 100}, options={"idempotency_key": "k-re"}
    )
    payout = _endpoint_refusal(
        lambda: client.v1.payouts.create(
            params={"amount": 100, "currency": "usd"}, options={"idempotency_key": "k-re"}
        )
    )
    assert _paths(payout) == "'/v1/payouts' vs '/v1/refunds'"

    customer = client.v1.customers.create(
        params={"name": "Ada"}, options={"idempotency_key": "k-cus"}
    )
    update = _endpoint_refusal(
        lambda: client.v1.customers.update(
            customer.id, params={"name": "Ada L"}, options={"idempotency_key": "k-cus"}
        )
    )
    assert _paths(update) == f"'/v1/customers/{customer.id}' vs '/v1/customers'"

    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}},
        options={"idempotency_key": "k-pm"},
    )
    attach = _endpoint_refusal(
        lambda: client.v1.payment_methods.attach(
            method.id, params={"customer": customer.id}, options={"idempotency_key": "k-pm"}
        )
    )
    assert _paths(attach) == f"'/v1/payment_methods/{method.id}/attach' vs '/v1/payment_methods'"


def test_the_same_endpoint_for_another_object_is_another_endpoint(
    client: stripe.StripeClient,
) -> None:
    """To Stripe a confirm of another intent is another endpoint: its path differs."""
    first, second = (
        client.v1.payment_intents.create(
            params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa"}
        )
        for _ in range(2)
    )
    client.v1.payment_intents.confirm(
        first.id, params={"return_url": RETURN_URL}, options={"idempotency_key": "k-confirm"}
    )
    message = _endpoint_refusal(
        lambda: client.v1.payment_intents.confirm(
            second.id, params={"return_url": RETURN_URL}, options={"idempotency_key": "k-confirm"}
        )
    )
    assert _paths(message) == (
        f"'/v1/payment_intents/{second.id}/confirm' vs '/v1/payment_intents/{first.id}/confirm'"
    )
    assert client.v1.payment_intents.retrieve(second.id).status == "requires_confirmation"


def test_a_grpc_caller_is_told_the_rpcs(platform: RunningPlatform, account: TestAccount) -> None:
    """A caller of the core's RPCs sent no URL path: it is told the RPCs it called."""
    metadata = (("remit-account-id", account.id), ("idempotency-key", "k-grpc"))
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        payments_pb2_grpc.PaymentsServiceStub(channel).CreatePaymentIntent(
            payments_pb2.CreatePaymentIntentRequest(amount=1000, currency="usd"),
            metadata=metadata,
            timeout=10,
        )
        with pytest.raises(grpc.RpcError) as refused:
            ledger_pb2_grpc.LedgerServiceStub(channel).CreatePayout(
                ledger_pb2.CreatePayoutRequest(amount=100, currency="usd"),
                metadata=metadata,
                timeout=10,
            )
    assert refused.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "('CreatePayout' vs 'CreatePaymentIntent')" in str(refused.value.details())


def test_a_keyed_request_to_a_path_of_any_characters_is_answered(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """The path travels to the core with the key: one with characters gRPC metadata cannot
    carry, or thousands long (an id in a path may hold up to 5000), is still answered (404: no
    such payout), never a 500."""
    for payout_id in ("p%C3%B3%20%07", "po_" + "x" * 4_990):
        answer = httpx.post(
            f"{platform.api_base}/v1/payouts/{payout_id}/cancel",
            headers={"Authorization": f"Bearer {account.secret_key}", "Idempotency-Key": "k-odd"},
            timeout=30,
        )
        assert answer.status_code == 404, answer.text
