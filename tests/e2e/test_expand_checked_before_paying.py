"""An `expand[]` path the answer could never expand is refused before anything moves: a
create confirmed at once with `expand=["charges"]` (a field only versions before 2022-11-15
have) used to charge the card, store the success under its key and answer 400, and the SDK's
next call, under a new key, charged the card a second time."""

import pytest
import stripe

RETURN_URL = "https://shop.example/return"
BEFORE_2022_11_15 = "2022-08-01"


def test_a_confirmed_create_with_a_path_of_old_versions_charges_nothing(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(
            params={
                "amount": 2000,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "return_url": RETURN_URL,
                "expand": ["charges"],
            }
        )
    assert (refused.value.http_status, refused.value.param) == (400, "expand")
    assert str(refused.value.user_message) == "This property cannot be expanded (charges)."
    assert client.v1.payment_intents.list().data == []
    assert client.v1.charges.list().data == []


def test_a_path_through_an_expandable_field_is_checked_to_its_end_first(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(
            params={
                "amount": 2000,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "return_url": RETURN_URL,
                "expand": ["latest_charge.balance_transaction.no_such_field"],
            }
        )
    assert refused.value.param == "expand"
    assert client.v1.charges.list().data == []


def test_a_refund_with_a_path_no_refund_has_is_not_made(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(params={"payment_intent": intent.id, "expand": ["amount"]})
    assert refused.value.param == "expand"
    assert client.v1.refunds.list(params={"payment_intent": intent.id}).data == []


def test_before_2022_11_15_a_confirmed_create_still_expands_into_its_charges(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "expand": ["charges.data.balance_transaction"],
        },
        options={"stripe_version": BEFORE_2022_11_15},
    )
    assert intent.status == "succeeded"
    (charge,) = intent["charges"]["data"]
    assert charge["balance_transaction"]["object"] == "balance_transaction"
