"""The thin path end to end: the stripe SDK, the REST facade, gRPC, PostgreSQL, and back."""

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform


def test_the_sdk_creates_and_retrieves_a_payment_intent(client: stripe.StripeClient) -> None:
    created = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "metadata": {"order_id": "6735"}}
    )
    assert created.id.startswith("pi_")
    assert created.object == "payment_intent"
    assert (created.amount, created.currency) == (2000, "usd")
    assert created.status == "requires_payment_method"
    assert created.livemode is False
    assert created.metadata.to_dict() == {"order_id": "6735"}
    assert created.latest_charge is None
    assert created.client_secret is not None
    assert created.client_secret.startswith(f"{created.id}_secret_")
    assert isinstance(created.created, int)

    retrieved = client.v1.payment_intents.retrieve(created.id)
    assert retrieved.to_dict() == created.to_dict()


def test_unset_fields_are_null_and_integers_stay_integers(
    platform: RunningPlatform, account: TestAccount
) -> None:
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "1099", "currency": "jpy"},
        auth=(account.secret_key, ""),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["amount"] == 1099
    assert body["currency"] == "jpy"
    for field in ("customer", "description", "latest_charge", "payment_method", "canceled_at"):
        assert body[field] is None, field
    assert response.headers["request-id"].startswith("req_")


def test_a_created_payment_intent_with_a_payment_method_requires_confirmation(
    client: stripe.StripeClient,
) -> None:
    created = client.v1.payment_intents.create(
        params={"amount": 500, "currency": "eur", "payment_method": "pm_card_visa"}
    )
    assert created.status == "requires_confirmation"
    # The test id becomes a payment method of the account, made of its card, as with Stripe.
    assert isinstance(created.payment_method, str)
    assert created.payment_method.startswith("pm_")
    assert created.payment_method != "pm_card_visa"
    method = client.v1.payment_methods.retrieve(created.payment_method)
    assert method.type == "card"
    assert method.card is not None
    assert (method.card.brand, method.card.last4) == ("visa", "4242")


def test_an_account_never_sees_another_accounts_objects(
    platform: RunningPlatform, client: stripe.StripeClient
) -> None:
    other = create_account(platform.core, token=platform.internal_token)
    theirs = stripe.StripeClient(
        other.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    ).v1.payment_intents.create(params={"amount": 100, "currency": "usd"})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.retrieve(theirs.id)
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert theirs.id in str(raised.value.user_message)
    assert all(item.id != theirs.id for item in client.v1.payment_intents.list().data)


def test_listing_pages_newest_first_with_a_url_the_sdk_can_follow(
    client: stripe.StripeClient,
) -> None:
    ids = [
        client.v1.payment_intents.create(params={"amount": 100 + n, "currency": "usd"}).id
        for n in range(5)
    ]
    first = client.v1.payment_intents.list(params={"limit": 2})
    assert first.url == "/v1/payment_intents"
    assert [pi.id for pi in first.data] == ids[::-1][:2]
    assert first.has_more is True
    everything = [pi.id for pi in first.auto_paging_iter()]
    assert everything == ids[::-1]
