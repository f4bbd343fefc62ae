"""`POST /v1/payment_methods` with `payment_method=`: a new payment method made of another's
card. A publishable key, which any web page shows, may never ask for one; a secret key may only
copy a payment method that is neither a customer's nor spent on an intent."""

from typing import Any

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform


def _post(platform: RunningPlatform, key: str, data: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{platform.api_base}/v1/payment_methods",
        data=data,
        headers={"Authorization": f"Bearer {key}"},
    )


def _saved_card(client: stripe.StripeClient) -> stripe.PaymentMethod:
    """A customer's saved card, with the customer's billing details on it."""
    customer = client.v1.customers.create(params={"email": "victim@example.com"})
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"token": "tok_visa"},
            "billing_details": {"name": "Victim Name", "email": "victim@example.com"},
        }
    )
    return client.v1.payment_methods.attach(method.id, params={"customer": customer.id})


def _spent_card(client: stripe.StripeClient) -> stripe.PaymentMethod:
    """A payment method that has paid an intent while attached to no customer."""
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}}
    )
    params: Any = {
        "amount": 1200,
        "currency": "usd",
        "payment_method": method.id,
        "confirm": True,
        "return_url": "https://shop.example/return",
    }
    assert client.v1.payment_intents.create(params=params).status == "succeeded"
    return method


def _assert_refused_on_payment_method(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "payment_method"
    # Nothing of the card comes back.
    assert "4242" not in response.text
    assert "Victim" not in response.text
    return error


@pytest.mark.parametrize("with_type", [True, False])
def test_a_publishable_key_may_not_copy_a_saved_card(
    client: stripe.StripeClient,
    platform: RunningPlatform,
    account: TestAccount,
    with_type: bool,
) -> None:
    saved = _saved_card(client)
    data = {"payment_method": saved.id, **({"type": "card"} if with_type else {})}
    error = _assert_refused_on_payment_method(_post(platform, account.publishable_key, data))
    assert "publishable" in error["message"]
    assert [m.id for m in client.v1.payment_methods.list().data] == [saved.id]


def test_a_publishable_key_still_makes_payment_methods_of_the_card_a_page_collects(
    platform: RunningPlatform, account: TestAccount
) -> None:
    data = {
        "type": "card",
        "card[token]": "tok_visa",
        "billing_details[name]": "Payer",
        "metadata[order]": "A-1",
    }
    response = _post(platform, account.publishable_key, data)
    assert response.status_code == 200, response.text
    assert response.json()["card"]["last4"] == "4242"


def test_a_secret_key_may_not_copy_a_customers_saved_card(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    saved = _saved_card(client)
    data = {"type": "card", "payment_method": saved.id}
    error = _assert_refused_on_payment_method(_post(platform, account.secret_key, data))
    assert saved.id in error["message"]
    assert "customer" in error["message"]
    assert [m.id for m in client.v1.payment_methods.list().data] == [saved.id]


def test_a_secret_key_may_not_copy_a_payment_method_spent_on_an_intent(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    spent = _spent_card(client)
    data = {"type": "card", "payment_method": spent.id}
    error = _assert_refused_on_payment_method(_post(platform, account.secret_key, data))
    assert spent.id in error["message"]
    assert [m.id for m in client.v1.payment_methods.list().data] == [spent.id]


def test_a_secret_key_copies_a_payment_method_no_one_holds(
    client: stripe.StripeClient,
) -> None:
    fresh = client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})
    copy = client.v1.payment_methods.create(params={"payment_method": fresh.id})
    assert copy.id != fresh.id
    assert copy.card is not None
    assert copy.card.last4 == "4242"
