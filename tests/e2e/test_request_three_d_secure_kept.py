"""`payment_method_options[card][request_three_d_secure]` is the intent's, as Stripe keeps it:
set on create or update, shown on the object, and asked for by a confirmation that names none.
The standard integration creates the intent on the server with `request_three_d_secure=any`
and lets Stripe.js confirm it; the option used to be dropped unless the create confirmed, and
the cardholder was never asked for 3-D Secure."""

from typing import Any

import httpx
import stripe

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

RETURN_URL = "https://shop.example/return"
# A card whose issuer needs no authentication: only the merchant's request can ask for it.
FRICTIONLESS = "pm_card_visa"


def _options(requested: str) -> Any:
    return {"card": {"request_three_d_secure": requested}}


def _requested(intent: stripe.PaymentIntent) -> str | None:
    options = intent.payment_method_options
    if options is None or options.card is None:
        return None
    return options.card.request_three_d_secure


def test_a_payment_page_confirming_later_asks_for_the_3ds_the_create_requested(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    created = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method_options": _options("any")}
    )
    assert _requested(created) == "any"
    assert _requested(client.v1.payment_intents.retrieve(created.id)) == "any"
    assert created.client_secret is not None
    confirmed = httpx.post(
        f"{platform.api_base}/v1/payment_intents/{created.id}/confirm",
        data={
            "client_secret": created.client_secret,
            "payment_method": FRICTIONLESS,
            "return_url": RETURN_URL,
        },
        headers={"Authorization": f"Bearer {account.publishable_key}"},
        timeout=30,
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "requires_action"


def test_an_update_sets_it_and_a_server_confirmation_asks_for_it(
    client: stripe.StripeClient,
) -> None:
    created = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    assert _requested(created) == "automatic"
    updated = client.v1.payment_intents.update(
        created.id, params={"payment_method_options": _options("challenge")}
    )
    assert _requested(updated) == "challenge"
    confirmed = client.v1.payment_intents.confirm(
        created.id, params={"payment_method": FRICTIONLESS, "return_url": RETURN_URL}
    )
    assert confirmed.status == "requires_action"
    assert _requested(confirmed) == "challenge"


def test_a_confirmations_own_request_wins_and_is_kept(client: stripe.StripeClient) -> None:
    created = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method_options": _options("any")}
    )
    confirmed = client.v1.payment_intents.confirm(
        created.id,
        params={
            "payment_method": FRICTIONLESS,
            "return_url": RETURN_URL,
            "payment_method_options": _options("automatic"),
        },
    )
    assert (confirmed.status, _requested(confirmed)) == ("succeeded", "automatic")


def _raw_options(
    platform: RunningPlatform, account: TestAccount, intent_id: str, version: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {account.secret_key}"}
    if version is not None:
        headers["Stripe-Version"] = version
    answer = httpx.get(
        f"{platform.api_base}/v1/payment_intents/{intent_id}", headers=headers, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["payment_method_options"]


def _card_options(request_three_d_secure: str) -> dict[str, Any]:
    """A card intent's options as Stripe shows them: every one, the unset ones null."""
    return {
        "card": {
            "installments": None,
            "mandate_options": None,
            "network": None,
            "request_three_d_secure": request_three_d_secure,
        }
    }


def test_a_card_intent_shows_stripes_default_options_until_one_is_set(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    plain = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    chosen = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method_options": _options("any")}
    )
    assert _raw_options(platform, account, plain.id) == _card_options("automatic")
    assert _raw_options(platform, account, chosen.id) == _card_options("any")
    # At the oldest version too: the options are new fields, which Stripe shows at every one.
    for version in ("2011-01-01", "2019-02-11", "2022-11-15"):
        assert _raw_options(platform, account, chosen.id, version) == _card_options("any")
