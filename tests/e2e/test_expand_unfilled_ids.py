"""Stripe's expandable ids that name objects remit does not serve (Connect's applications,
accounts, fees and transfers, a customer's card source and test clock, an external account, an
invoice) are always null in remit, and `expand[]` may name them, as Stripe's clients routinely
do (`expand=["default_source"]`, `["data.application_fee"]`): the answer shows the null. They
were refused as unexpandable, and a confirmed create with such a path did nothing.

A customer's `sources`, `subscriptions` and `tax_ids`, shown only when expanded since
2020-08-27, are empty lists; its `tax` and `cash_balance` stay refused (no Stripe Tax settings
nor cash balance to show). A path going on past an unfilled id, or naming a field the version
lacks (`invoice` since 2025-03-31), is still refused."""

from typing import Any

import pytest
import stripe

from tests.e2e.test_balance_and_payouts import capture
from tests.e2e.test_radar import pay
from tests.support.accounts import TestAccount
from tests.support.postgres import WorkerDatabases

BEFORE_2025_03_31 = "2024-06-20"
BEFORE_2015_02_18 = "2014-01-31"


def _refused(path: str, call: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        call()
    assert (refused.value.http_status, refused.value.param) == (400, "expand")
    assert str(refused.value.user_message) == f"This property cannot be expanded ({path})."


@pytest.mark.parametrize("field", ["default_source", "test_clock"])
def test_a_customer_expands_its_unfilled_ids_to_null(
    client: stripe.StripeClient, field: str
) -> None:
    customer = client.v1.customers.create(params={"name": "Ada"})
    expanded = client.v1.customers.retrieve(customer.id, params={"expand": [field]})
    assert expanded.to_dict()[field] is None
    listed = client.v1.customers.list(params={"expand": [f"data.{field}"]})
    assert [c.to_dict()[field] for c in listed.data] == [None]


def test_an_old_customer_expands_its_default_card_to_null(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    expanded = client.v1.customers.retrieve(
        customer.id,
        params={"expand": ["default_card", "default_source"]},
        options={"stripe_version": BEFORE_2015_02_18},
    )
    assert (expanded["default_card"], expanded["default_source"]) == (None, None)


@pytest.mark.parametrize("name", ["sources", "subscriptions", "tax_ids"])
def test_a_customers_lists_shown_only_when_expanded_are_empty(
    client: stripe.StripeClient, name: str
) -> None:
    customer = client.v1.customers.create()
    assert name not in client.v1.customers.retrieve(customer.id).to_dict()
    expanded = client.v1.customers.retrieve(customer.id, params={"expand": [name]}).to_dict()
    assert expanded[name] == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": f"/v1/customers/{customer.id}/{name}",
    }


@pytest.mark.parametrize(
    "path", ["tax", "cash_balance", "default_source.id", "test_clock.name", "sources.data"]
)
def test_a_customer_still_refuses_what_it_cannot_expand(
    client: stripe.StripeClient, path: str
) -> None:
    customer = client.v1.customers.create()
    _refused(path, lambda: client.v1.customers.retrieve(customer.id, params={"expand": [path]}))


@pytest.mark.parametrize("field", ["application", "on_behalf_of"])
def test_a_confirmed_payment_intent_expands_its_unfilled_ids_to_null(
    client: stripe.StripeClient, field: str
) -> None:
    intent = pay(client, "pm_card_visa", amount=500, expand=[field])
    assert intent.status == "succeeded"
    assert intent.to_dict()[field] is None
    assert [c.id for c in client.v1.charges.list().data] == [intent.latest_charge]


def test_before_2025_03_31_an_intent_and_a_charge_expand_their_invoice_to_null(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 500,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": "https://shop.example/back",
            "expand": ["invoice", "latest_charge.invoice"],
        },
        options={"stripe_version": BEFORE_2025_03_31},
    )
    assert intent.status == "succeeded"
    assert (intent["invoice"], intent["latest_charge"]["invoice"]) == (None, None)


def test_since_2025_03_31_invoice_is_no_field_and_a_confirmed_create_does_nothing(
    client: stripe.StripeClient,
) -> None:
    _refused("invoice", lambda: pay(client, "pm_card_visa", amount=500, expand=["invoice"]))
    assert client.v1.payment_intents.list().data == []


@pytest.mark.parametrize("field", ["application", "application_fee", "on_behalf_of",
                                   "source_transfer"])  # fmt: skip
def test_listed_charges_expand_their_unfilled_ids_to_null(
    client: stripe.StripeClient, field: str
) -> None:
    intent = pay(client, "pm_card_visa", amount=500)
    listed = client.v1.charges.list(params={"limit": 1, "expand": [f"data.{field}"]})
    assert [(c.id, c.to_dict()[field]) for c in listed.data] == [(intent.latest_charge, None)]


def test_a_charges_transfer_which_only_destination_charges_have_is_null_once_expanded(
    client: stripe.StripeClient,
) -> None:
    """Left out of a charge that is no destination charge, `transfer` is there, null, when
    asked for: `charge.transfer` reads None instead of raising AttributeError."""
    intent = pay(client, "pm_card_visa", amount=500)
    plain = client.v1.charges.retrieve(intent.latest_charge)
    charge = client.v1.charges.retrieve(intent.latest_charge, params={"expand": ["transfer"]})
    through_intent = client.v1.payment_intents.retrieve(
        intent.id, params={"expand": ["latest_charge.transfer"]}
    )
    assert "transfer" not in plain.to_dict()
    assert charge.id == intent.latest_charge
    assert charge.transfer is None
    assert through_intent["latest_charge"].to_dict()["transfer"] is None


def test_a_charge_refuses_a_path_going_on_past_an_unfilled_id(
    client: stripe.StripeClient,
) -> None:
    intent = pay(client, "pm_card_visa", amount=500)
    _refused(
        "data.application_fee.amount",
        lambda: client.v1.charges.list(params={"expand": ["data.application_fee.amount"]}),
    )
    _refused(
        "latest_charge.transfer.amount",
        lambda: client.v1.payment_intents.retrieve(
            intent.id, params={"expand": ["latest_charge.transfer.amount"]}
        ),
    )


@pytest.mark.parametrize("field", ["transfer_reversal", "source_transfer_reversal"])
def test_a_refund_expands_its_unfilled_ids_to_null(client: stripe.StripeClient, field: str) -> None:
    intent = pay(client, "pm_card_visa", amount=500)
    refund = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 100, "expand": [field]}
    )
    assert refund.to_dict()[field] is None
    retrieved = client.v1.refunds.retrieve(refund.id, params={"expand": [field, "charge"]})
    assert retrieved.to_dict()[field] is None
    assert retrieved["charge"]["id"] == intent.latest_charge


def test_a_payout_expands_its_transaction_and_its_null_destination(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    capture(databases, account.id, "ch_e2e_unfilled_1", 5_000, bypass_pending=True)
    payout = client.v1.payouts.create(
        params={"amount": 1000, "currency": "usd", "expand": ["destination"]}
    )
    assert payout.destination is None
    retrieved = client.v1.payouts.retrieve(
        payout.id, params={"expand": ["balance_transaction", "destination"]}
    )
    assert retrieved.destination is None
    assert retrieved["balance_transaction"]["object"] == "balance_transaction"
    _refused(
        "destination.id",
        lambda: client.v1.payouts.retrieve(payout.id, params={"expand": ["destination.id"]}),
    )


def test_a_deleted_customer_expanded_from_an_intent_is_its_stub(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create()
    intent = client.v1.payment_intents.create(
        params={"amount": 500, "currency": "usd", "customer": customer.id}
    )
    client.v1.customers.delete(customer.id)
    expanded = client.v1.payment_intents.retrieve(
        intent.id, params={"expand": ["customer.default_source", "customer.sources"]}
    )
    assert expanded["customer"].to_dict() == {
        "id": customer.id,
        "object": "customer",
        "deleted": True,
    }
