"""Amounts Stripe's API holds to whole units coarser than the minor unit, over REST with the
official SDK: `isk` is charged in whole krónur (100 of its hundredths), a three-decimal currency
in whole hundredths, and `huf` and `twd` are paid out in whole forints and dollars."""

from typing import Any

import pytest
import stripe

BYPASS_PENDING = "pm_card_bypassPending"


def _paid(client: stripe.StripeClient, amount: int, currency: str) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "payment_method": BYPASS_PENDING,
            "confirm": True,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"amount": 5124, "currency": "kwd"},
         "Invalid amount (5124): an amount in kwd must be a multiple of 10, such as 5120 or "
         "5130."),
        ({"amount": 1, "currency": "isk"},
         "Invalid amount (1): an amount in isk must be a multiple of 100, such as 100."),
    ],
)  # fmt: skip
def test_a_create_finer_than_the_currency_charges_is_a_400(
    client: stripe.StripeClient, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]
    refused = raised.value
    assert refused.error is not None
    assert (refused.http_status, refused.error.type, refused.code, refused.param) == (
        400,
        "invalid_request_error",
        "invalid_charge_amount_no_decimal_compatible",
        "amount",
    )
    assert refused.error.message == message


def test_isk_500_charges_five_kronur_and_a_refund_of_a_fraction_of_one_is_a_400(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(client, 500, "isk")
    assert (intent.status, intent.amount_received) == ("succeeded", 500)
    assert intent.latest_charge is not None
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert charge.balance_transaction is not None
    txn = client.v1.balance_transactions.retrieve(str(charge.balance_transaction))
    # 2.9% of 5 kr plus 0.30 kr is 44.5 hundredths, 0.44 kr rounded half to even; 500 whole
    # krónur would have paid 15 kr.
    assert (txn.amount, txn.fee, txn.net, txn.currency) == (500, 44, 456, "isk")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 50})
    assert (raised.value.http_status, raised.value.code) == (
        400,
        "invalid_charge_amount_no_decimal_compatible",
    )
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})
    assert refund.amount == 100


def test_a_huf_payout_of_a_fraction_of_a_forint_is_a_400_naming_amount(
    client: stripe.StripeClient,
) -> None:
    _paid(client, 100_000, "huf")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payouts.create(params={"amount": 12_345, "currency": "huf"})
    assert (raised.value.http_status, raised.value.param) == (400, "amount")
    assert raised.value.error is not None
    assert "multiple of 100" in str(raised.value.error.message)
    payout = client.v1.payouts.create(params={"amount": 12_300, "currency": "huf"})
    assert (payout.amount, payout.currency) == (12_300, "huf")
