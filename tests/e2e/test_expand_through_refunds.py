"""At the latest version a charge's `refunds` shows only when expanded, and a path may go on
through it (`refunds.data.balance_transaction`), from a charge or from a PaymentIntent's
expanded `latest_charge`, as far as four levels."""

import pytest
import stripe


def _refunded_intent(client: stripe.StripeClient, refunds: int) -> stripe.PaymentIntent:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": "https://shop.example/back",
        }
    )
    assert intent.status == "succeeded"
    for _ in range(refunds):
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})
    return intent


def test_a_charge_expands_its_refunds_balance_transactions(client: stripe.StripeClient) -> None:
    intent = _refunded_intent(client, refunds=2)
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(
        intent.latest_charge, params={"expand": ["refunds.data.balance_transaction"]}
    )
    assert charge.refunds is not None
    refunds = charge.refunds.data
    assert len(refunds) == 2
    for refund in refunds:
        txn = refund.balance_transaction
        assert isinstance(txn, stripe.BalanceTransaction)
        assert (txn.source, txn.amount) == (refund.id, -100)


def test_a_payment_intent_expands_its_latest_charges_refunds(client: stripe.StripeClient) -> None:
    intent = _refunded_intent(client, refunds=1)
    shown = client.v1.payment_intents.retrieve(
        intent.id, params={"expand": ["latest_charge.refunds"]}
    )
    charge = shown.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert charge.refunds is not None
    (refund,) = charge.refunds.data
    assert refund.amount == 100
    assert isinstance(refund.balance_transaction, str)
    assert (charge.refunds.has_more, charge.refunds.url) == (
        False,
        f"/v1/charges/{charge.id}/refunds",
    )


def test_a_payment_intent_expands_four_levels_into_its_refunds(
    client: stripe.StripeClient,
) -> None:
    intent = _refunded_intent(client, refunds=1)
    shown = client.v1.payment_intents.retrieve(
        intent.id, params={"expand": ["latest_charge.refunds.data.balance_transaction"]}
    )
    charge = shown.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert charge.refunds is not None
    (refund,) = charge.refunds.data
    txn = refund.balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    assert txn.source == refund.id


def test_a_list_of_intents_expands_each_latest_charges_refunds(
    client: stripe.StripeClient,
) -> None:
    intent = _refunded_intent(client, refunds=1)
    listed = client.v1.payment_intents.list(
        params={"limit": 1, "expand": ["data.latest_charge.refunds"]}
    )
    (only,) = listed.data
    assert only.id == intent.id
    charge = only.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert charge.refunds is not None
    assert [refund.amount for refund in charge.refunds.data] == [100]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "latest_charge.refunds.data.no_such_field",
            "This property cannot be expanded (latest_charge.refunds.data.no_such_field).",
        ),
        (
            "latest_charge.no_such_list.data.balance_transaction",
            "This property cannot be expanded "
            "(latest_charge.no_such_list.data.balance_transaction).",
        ),
        (
            "latest_charge.refunds.data.amount",
            "This property cannot be expanded (latest_charge.refunds.data.amount).",
        ),
    ],
)
def test_paths_through_refunds_that_name_nothing_expandable_are_refused(
    client: stripe.StripeClient, path: str, message: str
) -> None:
    intent = _refunded_intent(client, refunds=1)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.retrieve(intent.id, params={"expand": [path]})
    assert refused.value.http_status == 400
    assert refused.value.param == "expand"
    assert refused.value.user_message == message


def test_a_fifth_level_through_refunds_is_refused(client: stripe.StripeClient) -> None:
    intent = _refunded_intent(client, refunds=1)
    path = "latest_charge.refunds.data.balance_transaction.source"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.retrieve(intent.id, params={"expand": [path]})
    assert refused.value.http_status == 400
    assert refused.value.code == "parameter_invalid"
    assert "more than 4 levels" in (refused.value.user_message or "")
