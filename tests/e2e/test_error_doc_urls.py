"""Every error with a code links Stripe's page on that code (`doc_url`), in the error response
and in the `last_payment_error` of the PaymentIntent a decline leaves, at every version; an
error without a code links nothing."""

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

RETURN_URL = "https://shop.example/return"
CARD_DECLINED_PAGE = "https://stripe.com/docs/error-codes/card-declined"


def test_a_decline_links_the_page_of_its_code_in_the_error_and_on_the_intent(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "payment_method": "pm_card_visa_chargeDeclined",
                "confirm": True,
                "return_url": RETURN_URL,
            }
        )
    error = declined.value.error
    assert error is not None
    assert (error.code, error.doc_url) == ("card_declined", CARD_DECLINED_PAGE)
    intent = error.payment_intent
    assert intent is not None
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.doc_url == CARD_DECLINED_PAGE
    retrieved = client.v1.payment_intents.retrieve(intent.id)
    assert retrieved.last_payment_error is not None
    assert retrieved.last_payment_error.doc_url == CARD_DECLINED_PAGE


@pytest.mark.parametrize("version", ["2020-08-27", "2015-02-18"])
def test_older_versions_link_it_too(
    platform: RunningPlatform, account: TestAccount, version: str
) -> None:
    declined = httpx.post(
        platform.api_base + "/v1/payment_intents",
        headers={"Authorization": f"Bearer {account.secret_key}", "Stripe-Version": version},
        data={
            "amount": "1000",
            "currency": "usd",
            "payment_method": "pm_card_visa_chargeDeclined",
            "confirm": "true",
            "return_url": RETURN_URL,
        },
    )
    assert declined.status_code == 402, declined.text
    error = declined.json()["error"]
    assert error["doc_url"] == CARD_DECLINED_PAGE
    assert error["payment_intent"]["last_payment_error"]["doc_url"] == CARD_DECLINED_PAGE


def test_refusals_with_a_code_link_it_and_those_without_link_nothing(
    platform: RunningPlatform, account: TestAccount
) -> None:
    headers = {"Authorization": f"Bearer {account.secret_key}"}
    missing = httpx.get(platform.api_base + "/v1/payment_intents/pi_nothing", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["doc_url"] == (
        "https://stripe.com/docs/error-codes/resource-missing"
    )
    invalid = httpx.post(
        platform.api_base + "/v1/payment_intents",
        headers=headers,
        data={"amount": "ten", "currency": "usd"},
    )
    assert invalid.status_code == 400
    error = invalid.json()["error"]
    assert error["doc_url"] == "https://stripe.com/docs/error-codes/" + error["code"].replace(
        "_", "-"
    )
    unrouted = httpx.get(platform.api_base + "/v1/no_such_thing", headers=headers)
    assert unrouted.status_code == 404
    assert "code" not in unrouted.json()["error"]
    assert "doc_url" not in unrouted.json()["error"]
