"""A key reused on another endpoint, or with other parameters, is Stripe's idempotency_error in
Stripe's words, naming the key as the client sent it (never the prefix remit stores a
publishable key's keys under)."""

import httpx
import pytest
import stripe

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
