"""Stripe's `off_session` takes `true` or how the customer is away (`one_off`, `recurring`), and
`use_stripe_sdk=true` (what Stripe.js and the mobile SDKs send) says the client's SDK handles
the next action in place: 3-D Secure is then `use_stripe_sdk`, whatever return_url there is."""

from typing import Any, cast

import httpx
import pytest
import stripe

from tests.e2e.test_three_d_secure_path import RETURN_URL, answer, sdk_challenge_url
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

ALWAYS_AUTHENTICATE = "pm_card_authenticationRequired"


@pytest.mark.parametrize("kind", ["one_off", "recurring"])
def test_an_off_session_kind_is_an_off_session_payment(
    client: stripe.StripeClient, kind: str
) -> None:
    """Off-session, a card that asks for authentication is declined: nobody is there to
    authenticate (on session it waits in requires_action)."""
    params = {
        "amount": 2000,
        "currency": "usd",
        "payment_method": ALWAYS_AUTHENTICATE,
        "confirm": True,
        "off_session": kind,
    }
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(params=cast(Any, params))
    assert declined.value.code == "authentication_required"

    intent = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    with pytest.raises(stripe.CardError) as declined_on_confirm:
        client.v1.payment_intents.confirm(
            intent.id,
            params=cast(Any, {"payment_method": ALWAYS_AUTHENTICATE, "off_session": kind}),
        )
    assert declined_on_confirm.value.code == "authentication_required"


def test_an_unknown_off_session_kind_is_refused(client: stripe.StripeClient) -> None:
    params = {"amount": 2000, "currency": "usd", "confirm": True, "off_session": "sometimes"}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(params=cast(Any, params))
    assert refused.value.param == "off_session"


def test_with_use_stripe_sdk_the_challenge_is_for_the_sdk_even_with_a_return_url(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": ALWAYS_AUTHENTICATE,
            "confirm": True,
            "return_url": RETURN_URL,
            "use_stripe_sdk": True,
        }
    )
    url = sdk_challenge_url(intent)
    assert answer(url, "succeed").status_code in (200, 303)
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"

    redirected = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": ALWAYS_AUTHENTICATE,
            "confirm": True,
            "return_url": RETURN_URL,
            "use_stripe_sdk": False,
        }
    )
    assert redirected.next_action is not None
    assert redirected.next_action.type == "redirect_to_url"


def test_a_payment_page_confirms_with_use_stripe_sdk(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """As Stripe.js confirms: a publishable key, the client secret, use_stripe_sdk."""
    created = client.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    assert created.client_secret is not None
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents/{created.id}/confirm",
        data={
            "client_secret": created.client_secret,
            "payment_method": ALWAYS_AUTHENTICATE,
            "return_url": RETURN_URL,
            "use_stripe_sdk": "true",
        },
        headers={"Authorization": f"Bearer {account.publishable_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    action = response.json()["next_action"]
    assert action["type"] == "use_stripe_sdk"
    assert action["use_stripe_sdk"]["type"] == "three_d_secure_redirect"
