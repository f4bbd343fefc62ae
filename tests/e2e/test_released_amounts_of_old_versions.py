"""Before 2025-03-31 an uncaptured amount that was released (a partial capture's remainder, a
canceled authorization) showed on the charge as refunded; from then on it does not, and the
charge never shows what remit keeps to tell the two apart."""

from typing import Any

import stripe

BEFORE_BASIL = "2025-03-01.dashboard"
OLD: Any = {"stripe_version": BEFORE_BASIL}


def _held(client: stripe.StripeClient, amount: int) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={"amount": amount, "currency": "usd", "confirm": True, "capture_method": "manual",
                "payment_method": "pm_card_visa", "return_url": "https://shop.test/r"}
    )  # fmt: skip


def test_a_canceled_authorization_is_refunded_in_full_before_basil(
    client: stripe.StripeClient,
) -> None:
    held = _held(client, 2500)
    assert held.status == "requires_capture"
    client.v1.payment_intents.cancel(held.id)
    charge_id = str(held.latest_charge)

    latest = client.v1.charges.retrieve(charge_id).to_dict()
    old = client.v1.charges.retrieve(charge_id, options=OLD).to_dict()
    assert (latest["captured"], latest["amount_refunded"], latest["refunded"]) == (False, 0, False)
    assert (old["captured"], old["amount_refunded"], old["refunded"]) == (False, 2500, True)
    assert "authorization_released" not in latest
    assert "authorization_released" not in old
    # remit never made a Refund for the release, so none is listed.
    assert client.v1.refunds.list(params={"charge": charge_id}, options=OLD).data == []


def test_an_authorization_still_held_is_not_refunded_before_basil(
    client: stripe.StripeClient,
) -> None:
    held = _held(client, 1800)
    old = client.v1.charges.retrieve(str(held.latest_charge), options=OLD).to_dict()
    assert (old["captured"], old["amount_refunded"], old["refunded"]) == (False, 0, False)


def test_the_remainder_of_a_partial_capture_is_refunded_before_basil(
    client: stripe.StripeClient,
) -> None:
    held = _held(client, 3000)
    client.v1.payment_intents.capture(held.id, params={"amount_to_capture": 1000})

    latest = client.v1.charges.retrieve(str(held.latest_charge)).to_dict()
    old = client.v1.charges.retrieve(str(held.latest_charge), options=OLD).to_dict()
    assert (latest["amount_captured"], latest["amount_refunded"]) == (1000, 0)
    assert (old["amount_captured"], old["amount_refunded"], old["refunded"]) == (1000, 2000, False)
