"""The 3-D Secure (`requires_action`) path of a PaymentIntent as a merchant drives it: the
official SDK for the API, an HTTP client for the cardholder's browser on the challenge page."""

import asyncio
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import stripe
from sqlalchemy import create_engine, text

from remit.storage.embedded import to_sqlalchemy_url
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

RETURN_URL = "https://shop.example/return"


def pay(client: stripe.StripeClient, payment_method: str, amount: int = 2000, **extra: Any) -> Any:
    params: dict[str, Any] = {
        "amount": amount,
        "currency": "usd",
        "payment_method": payment_method,
        "confirm": True,
        "return_url": RETURN_URL,
        **extra,
    }
    return client.v1.payment_intents.create(params=cast(Any, params))


def challenge_url(intent: Any) -> str:
    assert intent.status == "requires_action"
    url: str = intent.next_action.redirect_to_url.url
    return url


def answer(url: str, outcome: str) -> httpx.Response:
    """What the cardholder's browser does: press a button on the page."""
    with httpx.Client(timeout=30) as browser:
        return browser.post(url, data={"outcome": outcome})


def test_a_new_amount_while_the_challenge_waits_is_never_authorized_at_the_old_one(
    client: stripe.StripeClient,
) -> None:
    """The cardholder authenticates the amount the challenge shows. An update of the amount
    meanwhile sends the intent back to `requires_confirmation`: the old challenge can no
    longer pay it, and the next confirmation authenticates and authorizes the new amount."""
    intent = pay(client, "pm_card_authenticationRequired", amount=2000)
    old_challenge = challenge_url(intent)
    updated = client.v1.payment_intents.update(intent.id, params={"amount": 90000})
    assert (updated.status, updated.amount, updated.next_action) == (
        "requires_confirmation",
        90000,
        None,
    )
    assert answer(old_challenge, "succeed").status_code == 409
    waiting = client.v1.payment_intents.retrieve(intent.id)
    assert (waiting.status, waiting.amount_received) == ("requires_confirmation", 0)
    # The old attempt can never be paid: its charge fails with the update, not pending for good.
    left = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (left.status, left.failure_code) == ("failed", "payment_intent_authentication_failure")
    confirmed = client.v1.payment_intents.confirm(intent.id, params={"return_url": RETURN_URL})
    new_challenge = challenge_url(confirmed)
    assert new_challenge != old_challenge
    assert answer(new_challenge, "succeed").status_code == 303
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert (paid.status, paid.amount, paid.amount_received) == ("succeeded", 90000, 90000)
    charge = client.v1.charges.retrieve(str(paid.latest_charge))
    assert (charge.amount, charge.amount_captured, charge.status) == (90000, 90000, "succeeded")
    listed = client.v1.charges.list(params={"payment_intent": intent.id})
    assert {(c.id, c.status) for c in listed.data} == {
        (left.id, "failed"),
        (charge.id, "succeeded"),
    }


def test_an_authentication_for_one_currency_does_not_pay_the_same_amount_in_another(
    client: stripe.StripeClient,
) -> None:
    """Manually confirmed: after the challenge the intent waits in `requires_confirmation`
    and the next confirmation goes on with the authenticated attempt, unless the payment has
    changed since. A new currency is such a change, even with the same number."""
    intent = pay(
        client, "pm_card_authenticationRequiredOnSetup", amount=2000, confirmation_method="manual"
    )
    assert answer(challenge_url(intent), "succeed").status_code == 303
    client.v1.payment_intents.update(intent.id, params={"currency": "eur"})
    confirmed = client.v1.payment_intents.confirm(intent.id, params={"return_url": RETURN_URL})
    # The euro payment is authenticated on its own; the dollar attempt does not pay for it.
    assert confirmed.latest_charge != intent.latest_charge
    assert answer(challenge_url(confirmed), "succeed").status_code == 303
    paid = client.v1.payment_intents.confirm(intent.id, params={"return_url": RETURN_URL})
    assert (paid.status, paid.currency, paid.amount_received) == ("succeeded", "eur", 2000)
    charge = client.v1.charges.retrieve(str(paid.latest_charge))
    assert (charge.currency, charge.amount_captured) == ("eur", 2000)


def test_a_challenge_abandoned_and_its_intent_canceled_can_no_longer_be_answered(
    client: stripe.StripeClient,
) -> None:
    """Stripe leaves an abandoned challenge's intent in `requires_action`; the merchant's
    cancel ends it. The challenge page then offers nothing to press, before and after a late
    answer, and the late answer authorizes nothing."""
    intent = pay(client, "pm_card_authenticationRequired")
    url = challenge_url(intent)
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_action"
    canceled = client.v1.payment_intents.cancel(
        intent.id, params={"cancellation_reason": "abandoned"}
    )
    assert (canceled.status, canceled.next_action, canceled.amount_capturable) == (
        "canceled",
        None,
        0,
    )
    with httpx.Client(timeout=30) as browser:
        before = browser.get(url)
        assert (before.status_code, "Complete authentication" in before.text) == (200, False)
        assert "expired" in before.text
        late = browser.post(url, data={"outcome": "succeed"})
        assert late.status_code == 409
        after = browser.get(url)
        assert (after.status_code, "Complete authentication" in after.text) == (200, False)
    assert client.v1.payment_intents.retrieve(intent.id).status == "canceled"


def test_a_challenge_abandoned_and_its_intent_canceled_leaves_a_failed_charge(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """The charge made for the attempt waits `pending` with its challenge; canceling the
    intent fails it, under the intent's cancel, with what Stripe's model says of a payment
    never authenticated: never sent to the network for authorization, no charge event, no
    money anywhere. The acquirer's only answer for it asked for authentication."""
    intent = pay(client, "pm_card_authenticationRequired")
    charge_id = str(intent.latest_charge)
    assert client.v1.charges.retrieve(charge_id).status == "pending"
    client.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "abandoned"})

    canceled = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["latest_charge"]})
    charge = canceled.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert (charge.id, charge.status, charge.paid, charge.captured, charge.amount_captured) == (
        charge_id,
        "failed",
        False,
        False,
        0,
    )
    assert charge.failure_code == "payment_intent_authentication_failure"
    assert charge.failure_message == (
        "The payment was abandoned before 3-D Secure authentication was completed: the "
        "PaymentIntent was canceled."
    )
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.network_status) == (
        "invalid",
        "not_sent_to_network",
    )
    assert charge.balance_transaction is None
    listed = client.v1.charges.list(params={"payment_intent": intent.id})
    assert [(c.id, c.status) for c in listed.data] == [(charge_id, "failed")]
    kinds = [event.type for event in client.v1.events.list(params={"limit": 100}).data]
    assert "payment_intent.canceled" in kinds
    assert "charge.failed" not in kinds
    assert client.v1.balance_transactions.list().data == []
    assert _acquirer_answers(platform, account, charge_id) == [(charge_id, False, "card_declined")]


def test_a_failed_challenge_fails_its_charge_as_never_sent_to_the_network(
    client: stripe.StripeClient,
) -> None:
    """The cardholder presses "fail": the merchant hears of it as from Stripe, through the
    intent (`payment_intent.payment_failed`, `payment_intent_authentication_failure`). The
    charge remit made for the attempt ends as one the intent left behind: `failed`, with an
    outcome saying it never reached the network, and no `charge.failed` of its own (Stripe has
    no charge for a payment whose authentication failed)."""
    intent = pay(client, "pm_card_authenticationRequired")
    assert answer(challenge_url(intent), "fail").status_code == 303
    failed = client.v1.payment_intents.retrieve(intent.id)
    assert failed.status == "requires_payment_method"
    error = failed.last_payment_error
    assert error is not None
    assert (error.code, error.charge) == ("payment_intent_authentication_failure", None)

    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.status, charge.paid, charge.failure_code) == (
        "failed",
        False,
        "payment_intent_authentication_failure",
    )
    assert charge.outcome is not None
    assert (charge.outcome.type, charge.outcome.network_status, charge.outcome.reason) == (
        "invalid",
        "not_sent_to_network",
        None,
    )
    assert charge.outcome.seller_message == (
        "This payment was never sent to the card network: the cardholder failed 3-D Secure "
        "authentication."
    )
    assert charge.payment_method_details is not None
    card = charge.payment_method_details.card
    assert card is not None
    assert card.three_d_secure is not None
    assert card.three_d_secure.result == "failed"
    assert card.network_transaction_id is None
    kinds = [event.type for event in client.v1.events.list(params={"limit": 100}).data]
    assert sorted(kinds) == [
        "payment_intent.created",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
    ]
    assert client.v1.balance_transactions.list().data == []


def _acquirer_answers(
    platform: RunningPlatform, account: TestAccount, charge_id: str
) -> list[tuple[str, bool, str | None]]:
    """The acquirer's operations for the charge's references (its first request and the one
    after authentication), and whether it holds any authorization for the account."""
    engine = create_engine(to_sqlalchemy_url(platform.env["ACQUIRER_DATABASE_URL"]))
    try:
        with engine.connect() as db:
            held = db.execute(
                text("SELECT count(*) FROM authorizations WHERE merchant_id = :account"),
                {"account": account.id},
            ).scalar_one()
            assert held == 0
            rows = db.execute(
                text(
                    "SELECT reference, approved, code FROM operations "
                    "WHERE merchant_id = :account AND reference IN (:first, :authenticated) "
                    "ORDER BY reference"
                ),
                {"account": account.id, "first": charge_id, "authenticated": f"{charge_id}_3ds"},
            ).all()
    finally:
        engine.dispose()
    return [(str(row.reference), bool(row.approved), row.code) for row in rows]


def sdk_challenge_url(intent: Any) -> str:
    """The challenge of an intent without a return_url: for the client's SDK to show."""
    assert intent.status == "requires_action"
    action = intent.next_action
    assert (action.type, action.redirect_to_url) == ("use_stripe_sdk", None)
    sdk = action.use_stripe_sdk.to_dict()
    assert set(sdk) == {"type", "stripe_js", "source"}
    assert sdk["type"] == "three_d_secure_redirect"
    url: str = sdk["stripe_js"]
    assert url.endswith(f"/{sdk['source']}")
    assert sdk["source"].startswith("tdsc_")
    return url


def test_without_a_return_url_the_challenge_is_for_the_sdk_to_show(
    client: stripe.StripeClient,
) -> None:
    """An intent that never redirects (`allow_redirects=never`) needs no return_url. With none
    to send the cardholder back to, Stripe's next_action is `use_stripe_sdk`: the client's SDK
    shows the challenge in place. Its hash is opaque in Stripe's API; remit's holds the
    challenge page, which then only says how it ended."""
    params: Any = {
        "amount": 2000,
        "currency": "usd",
        "payment_method": "pm_card_authenticationRequired",
        "confirm": True,
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
    }
    intent = client.v1.payment_intents.create(params=params)
    url = sdk_challenge_url(intent)
    assert sdk_challenge_url(client.v1.payment_intents.retrieve(intent.id)) == url
    answered = answer(url, "succeed")
    assert (answered.status_code, "Authentication complete" in answered.text) == (200, True)
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert (paid.status, paid.next_action, paid.amount_received) == ("succeeded", None, 2000)


def test_a_card_only_intent_confirmed_without_a_return_url_is_for_the_sdk_at_any_version(
    client: stripe.StripeClient, account: TestAccount, platform: RunningPlatform
) -> None:
    """An intent created before 2023-08-16 accepts cards only, so it is confirmed without a
    return_url: `use_stripe_sdk` as well, shown before 2019-02-11 as `next_source_action`
    `authorize_with_url` to the same page (that action came later). Given one,
    `redirect_to_url` as before."""
    created = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd"}, options={"stripe_version": "2022-11-15"}
    )
    assert created.automatic_payment_methods is None
    confirmed = client.v1.payment_intents.confirm(
        created.id, params={"payment_method": "pm_card_authenticationRequired"}
    )
    url = sdk_challenge_url(confirmed)
    assert confirmed.next_action is not None
    headers = {"Authorization": f"Bearer {account.secret_key}", "Stripe-Version": "2018-11-08"}
    with httpx.Client(timeout=30) as http:
        old = http.get(f"{platform.api_base}/v1/payment_intents/{created.id}", headers=headers)
    assert old.status_code == 200
    assert old.json()["next_source_action"] == {
        "type": "authorize_with_url",
        "authorize_with_url": {"url": url, "return_url": None},
    }
    assert old.json()["status"] == "requires_source_action"

    redirected = pay(
        client, "pm_card_authenticationRequired", automatic_payment_methods={"enabled": False}
    )
    assert redirected.next_action.type == "redirect_to_url"
    assert redirected.next_action.use_stripe_sdk is None
    assert redirected.next_action.redirect_to_url.return_url == RETURN_URL
    assert answer(url, "fail").status_code == 200


def test_the_insufficient_funds_card_is_declined_after_its_challenge_passes(
    client: stripe.StripeClient,
) -> None:
    """4000008260003178 (pm_card_authenticationRequiredChargeDeclinedInsufficientFunds) asks
    for 3-D Secure, and is declined for insufficient funds once authenticated."""
    intent = pay(client, "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds")
    answer(challenge_url(intent), "succeed")
    declined = client.v1.payment_intents.retrieve(intent.id)
    assert declined.status == "requires_payment_method"
    assert declined.last_payment_error is not None
    assert (declined.last_payment_error.code, declined.last_payment_error.decline_code) == (
        "card_declined",
        "insufficient_funds",
    )
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.status, charge.failure_code) == ("failed", "card_declined")
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    secure = charge.payment_method_details.card.three_d_secure
    assert secure is not None
    assert secure.result == "authenticated"


def test_a_payment_declined_after_its_challenge_still_sends_the_cardholder_back(
    client: stripe.StripeClient,
) -> None:
    """Whatever the payment's outcome once the challenge is answered, the cardholder goes back
    to the merchant's return_url with the intent and its client secret, which the merchant's
    page needs to find the outcome: also when the network declines the authenticated
    attempt, and again for a second press of the button."""
    intent = pay(client, "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds")
    url = challenge_url(intent)
    for _ in range(2):
        answered = answer(url, "succeed")
        assert answered.status_code == 303
        back = urlsplit(answered.headers["location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == RETURN_URL
        assert parse_qs(back.query) == {
            "payment_intent": [intent.id],
            "payment_intent_client_secret": [intent.client_secret],
        }
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"


def test_the_cardholder_goes_back_with_the_intent_in_the_query_and_the_fragment_kept(
    client: stripe.StripeClient,
) -> None:
    """A return_url with a query and a fragment: the intent joins the query, before the
    fragment, which the browser never sends."""
    intent = pay(client, "pm_card_authenticationRequired",
                 return_url="https://shop.example/return?x=1#frag")  # fmt: skip
    answered = answer(challenge_url(intent), "succeed")
    assert answered.status_code == 303
    back = urlsplit(answered.headers["location"])
    assert (back.netloc, back.path, back.fragment) == ("shop.example", "/return", "frag")
    assert parse_qs(back.query) == {
        "x": ["1"],
        "payment_intent": [intent.id],
        "payment_intent_client_secret": [intent.client_secret],
    }


def test_a_double_click_on_the_challenge_sends_the_cardholder_back_whichever_click_wins(
    client: stripe.StripeClient,
) -> None:
    """A browser shows the answer to the last of several presses of a button. Every press
    waits for the one being worked on and then goes back to the merchant with it, rather than
    telling the cardholder of a request in progress; the payment is authorized once."""
    intent = pay(client, "pm_card_authenticationRequired")
    url = challenge_url(intent)

    async def presses() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as browser:
            return list(
                await asyncio.gather(
                    *(browser.post(url, data={"outcome": "succeed"}) for _ in range(3))
                )
            )

    for pressed in asyncio.run(presses()):
        assert pressed.status_code == 303, pressed.text
        back = urlsplit(pressed.headers["location"])
        assert parse_qs(back.query)["payment_intent"] == [intent.id]
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert (paid.status, paid.amount_received, paid.latest_charge) == (
        "succeeded",
        2000,
        intent.latest_charge,
    )


def test_a_card_detached_while_its_challenge_waits_is_not_charged(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """Nothing is authorized before the cardholder passes the challenge, and a detached
    payment method may no longer pay (Stripe: "once detached, a PaymentMethod can no longer be
    used for payments"). The pass checks the card again: the cardholder goes back to the
    merchant as after any outcome, and the intent waits for a new payment method, its
    last_payment_error saying why, instead of staying in `requires_action`. The attempt never
    reaches the network beyond its first, unauthenticated request."""
    customer = client.v1.customers.create()
    method = client.v1.payment_methods.attach(
        "pm_card_authenticationRequired", params={"customer": customer.id}
    )
    intent = pay(client, method.id, customer=customer.id)
    url = challenge_url(intent)
    client.v1.payment_methods.detach(method.id)
    for _ in range(2):  # a second press replays the first's answer
        answered = answer(url, "succeed")
        assert answered.status_code == 303
        assert parse_qs(urlsplit(answered.headers["location"]).query)["payment_intent"] == [
            intent.id
        ]
    refused = client.v1.payment_intents.retrieve(intent.id)
    assert (refused.status, refused.amount_received, refused.payment_method) == (
        "requires_payment_method",
        0,
        None,
    )
    error = refused.last_payment_error
    assert error is not None
    assert (error.type, error.code, error.message) == (
        "invalid_request_error",
        "payment_method_unexpected_state",
        f"The PaymentMethod {method.id} was previously detached from a Customer and may not "
        "be used again.",
    )
    charge_id = str(intent.latest_charge)
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.status, charge.paid, charge.failure_code) == (
        "failed",
        False,
        "payment_intent_payment_attempt_failed",
    )
    assert charge.outcome is not None
    assert charge.outcome.network_status == "not_sent_to_network"
    kinds = [event.type for event in client.v1.events.list(params={"limit": 100}).data]
    assert "payment_intent.payment_failed" in kinds
    assert "charge.failed" not in kinds
    assert client.v1.balance_transactions.list().data == []
    # The acquirer's soft decline of the first request, asking for authentication; no other.
    assert _acquirer_answers(platform, account, charge_id) == [(charge_id, False, "card_declined")]


def renew_off_session(client: stripe.StripeClient, customer: str, payment_method: str) -> Any:
    """What a merchant's subscription renewal does: charge the saved card, cardholder away."""
    params = {
        "amount": 2000,
        "currency": "usd",
        "customer": customer,
        "payment_method": payment_method,
        "off_session": True,
        "confirm": True,
    }
    return client.v1.payment_intents.create(params=cast(Any, params))


def declined_off_session(client: stripe.StripeClient, customer: str, payment_method: str) -> Any:
    with pytest.raises(stripe.CardError) as declined:
        renew_off_session(client, customer, payment_method)
    error = declined.value.error
    assert (declined.value.http_status, declined.value.code) == (402, "authentication_required")
    assert error is not None
    assert error.decline_code == "authentication_required"
    assert error.payment_intent is not None
    assert error.payment_intent.status == "requires_payment_method"
    return error


def test_a_card_set_up_with_authentication_pays_off_session_without_it(
    client: stripe.StripeClient,
) -> None:
    """4000002500003155 (pm_card_authenticationRequiredOnSetup) asks for 3-D Secure on session
    and when it is set up. Once the cardholder authenticated the payment that saved it for
    off-session use, the merchant's off-session payments with it need no authentication; the
    cardholder, present again, still authenticates."""
    customer = client.v1.customers.create()
    intent = pay(
        client,
        "pm_card_authenticationRequiredOnSetup",
        customer=customer.id,
        setup_future_usage="off_session",
    )
    assert answer(challenge_url(intent), "succeed").status_code == 303
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert paid.status == "succeeded"
    [saved] = client.v1.customers.payment_methods.list(customer.id).data
    assert saved.id == paid.payment_method

    for _ in range(2):
        renewed = renew_off_session(client, customer.id, saved.id)
        assert (renewed.status, renewed.next_action, renewed.amount_received) == (
            "succeeded",
            None,
            2000,
        )
    on_session = pay(client, saved.id, customer=customer.id)
    assert on_session.status == "requires_action"


def test_an_off_session_payment_without_an_authenticated_setup_is_declined(
    client: stripe.StripeClient,
) -> None:
    """Attached without a payment, or saved by an authenticated payment for on-session use only,
    the card was never set up for off-session payments: they decline with
    authentication_required, as Stripe documents for a card that needs authentication."""
    customer = client.v1.customers.create()
    attached = client.v1.payment_methods.attach(
        "pm_card_authenticationRequiredOnSetup", params={"customer": customer.id}
    )
    declined_off_session(client, customer.id, attached.id)

    other = client.v1.customers.create()
    intent = pay(
        client,
        "pm_card_authenticationRequiredOnSetup",
        customer=other.id,
        setup_future_usage="on_session",
    )
    assert answer(challenge_url(intent), "succeed").status_code == 303
    saved = client.v1.payment_intents.retrieve(intent.id).payment_method
    declined_off_session(client, other.id, str(saved))


def test_the_always_authenticate_card_declines_off_session_even_after_an_authenticated_setup(
    client: stripe.StripeClient,
) -> None:
    """4000002760003184 (pm_card_authenticationRequired) asks for authentication on every
    payment: an off-session one declines even after an authenticated off-session setup."""
    customer = client.v1.customers.create()
    intent = pay(
        client, "pm_card_authenticationRequired", customer=customer.id,
        setup_future_usage="off_session",
    )  # fmt: skip
    assert answer(challenge_url(intent), "succeed").status_code == 303
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert paid.status == "succeeded"
    error = declined_off_session(client, customer.id, str(paid.payment_method))
    charge = client.v1.charges.retrieve(str(error.charge))
    assert (charge.status, charge.failure_code) == ("failed", "authentication_required")


def test_the_challenge_pages_form_may_lead_to_the_merchants_return_url(
    client: stripe.StripeClient,
) -> None:
    """Browsers apply the page's form-action to where its form submission is redirected:
    with 'self' alone, the redirect to the merchant's return_url would be blocked and the
    cardholder left on the page."""
    intent = pay(client, "pm_card_authenticationRequired")
    page = httpx.get(challenge_url(intent), timeout=30)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert policy.endswith("form-action 'self' https://shop.example")


@pytest.mark.parametrize(
    ("account_part", "challenge_part"),
    [
        ("acct_%0Ax", None),
        ("acct_%C3%A9", None),
        ("acct_%00", None),
        ("acct_a%20b", None),
        (f"acct_{'a' * 300}", None),
        (None, "tdsc_%00"),
        (None, "tdsc_%0Ax"),
        (None, "tdsc_%C3%A9"),
    ],
)
def test_a_malformed_id_in_the_challenge_address_is_the_pages_own_not_found(
    client: stripe.StripeClient,
    platform: RunningPlatform,
    account: TestAccount,
    account_part: str | None,
    challenge_part: str | None,
) -> None:
    """The page is public: whatever a browser puts in its address, an id remit could never
    have made is an authentication that does not exist, answered by the page itself, not
    handed on to the core (where it could not even travel as call metadata)."""
    intent = pay(client, "pm_card_authenticationRequired")
    challenge_id = challenge_url(intent).rsplit("/", 1)[1]
    url = (
        f"{platform.api_base}/three_d_secure/{account_part or account.id}"
        f"/{challenge_part or challenge_id}"
    )
    logged_before = len(platform.log_text())
    with httpx.Client(timeout=30) as browser:
        for answered in (browser.get(url), browser.post(url, data={"outcome": "succeed"})):
            assert answered.status_code == 404, answered.text
            assert "There is no such authentication" in answered.text
    logged = platform.log_text()[logged_before:]
    assert "Traceback" not in logged
    assert "Exception in ASGI application" not in logged
    # The challenge itself is untouched and still waits for its cardholder.
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_action"


@pytest.mark.parametrize("new_customer", ["another", "none"])
def test_a_new_customer_after_authentication_needs_a_new_attempt_filed_under_it(
    client: stripe.StripeClient, new_customer: str
) -> None:
    """A manually confirmed intent that passed 3-D Secure waits in `requires_confirmation`
    with its authenticated attempt, whose charge was made for the customer the intent had then.
    An update of the customer, as in `requires_action`, leaves that attempt behind (failed,
    never sent to the network): the next confirmation authenticates and charges a new one,
    for the new customer, and the card is set up for that customer alone."""
    first = client.v1.customers.create()
    intent = pay(
        client,
        "pm_card_authenticationRequired",
        confirmation_method="manual",
        customer=first.id,
        setup_future_usage="on_session",
    )
    answer(challenge_url(intent), "succeed")
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_confirmation"
    second = client.v1.customers.create() if new_customer == "another" else None
    updated = client.v1.payment_intents.update(
        intent.id, params={"customer": second.id if second is not None else ""}
    )
    assert (updated.status, updated.customer) == (
        "requires_confirmation",
        second.id if second is not None else None,
    )
    left = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (left.status, left.failure_code) == ("failed", "payment_intent_payment_attempt_failed")
    assert left.failure_message is not None
    assert "the PaymentIntent's customer changed" in left.failure_message
    assert left.outcome is not None
    assert left.outcome.network_status == "not_sent_to_network"
    confirmed = client.v1.payment_intents.confirm(intent.id, params={"return_url": RETURN_URL})
    assert confirmed.latest_charge != intent.latest_charge
    assert answer(challenge_url(confirmed), "succeed").status_code == 303
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_confirmation"
    paid = client.v1.payment_intents.confirm(intent.id, params={"return_url": RETURN_URL})
    assert (paid.status, paid.amount_received, paid.latest_charge) == (
        "succeeded",
        2000,
        confirmed.latest_charge,
    )
    charge = client.v1.charges.retrieve(str(paid.latest_charge))
    assert (charge.status, charge.customer) == (
        "succeeded",
        second.id if second is not None else None,
    )
    # The first customer keeps only the attempt left behind, never the payment.
    filed_first = client.v1.charges.list(params={"customer": first.id}).data
    assert [(c.id, c.status) for c in filed_first] == [(left.id, "failed")]
    assert client.v1.customers.payment_methods.list(first.id).data == []
    if second is not None:
        [saved] = client.v1.customers.payment_methods.list(second.id).data
        assert saved.id == paid.payment_method
    listed = client.v1.charges.list(params={"payment_intent": intent.id})
    assert {(c.id, c.status) for c in listed.data} == {
        (left.id, "failed"),
        (charge.id, "succeeded"),
    }


def test_a_merchants_idempotency_key_named_after_the_challenge_does_not_block_the_cardholder(
    client: stripe.StripeClient,
) -> None:
    """The challenge id is public (it is in the page's address); the answer's own key is
    remit's, out of reach of the merchant's Idempotency-Keys, so a request keyed after the
    challenge neither blocks the cardholder's answer nor is answered with it."""
    intent = pay(client, "pm_card_authenticationRequired")
    url = challenge_url(intent)
    key = f"3ds_{url.rsplit('/', 1)[1]}"
    params: Any = {"amount": 500, "currency": "usd"}
    mine = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    pressed = answer(url, "succeed")
    assert pressed.status_code == 303, pressed.text
    assert parse_qs(urlsplit(pressed.headers["location"]).query)["payment_intent"] == [intent.id]
    paid = client.v1.payment_intents.retrieve(intent.id)
    assert (paid.status, paid.amount_received) == ("succeeded", 2000)
    again = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    assert again.id == mine.id
