"""A PaymentIntent create with confirm=true, or a confirmation, refused by the state of the
payment method it pays with (spent on another intent, attached to another customer) is answered
for good under its idempotency key, as Stripe stores any answer once the endpoint's work has
begun: a retry with the key after that state changed (the method attached to the intent's
customer, or the intent made that customer's) replays the refusal, with Idempotent-Replayed,
and authorizes nothing at the acquirer. Without the key, the same request pays."""

from typing import Any

import psycopg
import pytest
import stripe
from stripe import RequestOptions

from remit.worker.runner import libpq_url
from tests.support.accounts import TestAccount
from tests.support.postgres import WorkerDatabases

RETURN_URL = "https://shop.example/return"


def _replayed(error: stripe.StripeError) -> bool:
    return error.headers is not None and error.headers.get("Idempotent-Replayed") == "true"


def _authorizations(databases: WorkerDatabases, account_id: str) -> int:
    """How many authorizations the acquirer was asked for on the account's behalf."""
    with psycopg.connect(libpq_url(databases.acquirer_url), autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM authorizations WHERE merchant_id = %s", (account_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _spent_but_saved(client: stripe.StripeClient) -> str:
    """A payment method spent on a payment without a customer that saved it for future usage:
    no other intent may use it, until it is attached to a customer."""
    paid = client.v1.payment_intents.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "setup_future_usage": "off_session",
            "return_url": RETURN_URL,
        }
    )
    assert paid.status == "succeeded"
    return str(paid.payment_method)


def _refused_twice(
    send: Any, change: Any
) -> tuple[stripe.InvalidRequestError, stripe.InvalidRequestError]:
    """`send` refused, then `change` made, then `send` again: both refusals."""
    with pytest.raises(stripe.InvalidRequestError) as first:
        send()
    change()
    with pytest.raises(stripe.InvalidRequestError) as retried:
        send()
    return first.value, retried.value


def test_a_confirmation_refused_a_spent_method_is_replayed_after_the_attach(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    method_id = _spent_but_saved(client)
    customer_id = client.v1.customers.create().id
    intent = client.v1.payment_intents.create(
        params={"amount": 700, "currency": "usd", "customer": customer_id}
    )
    authorized = _authorizations(databases, account.id)
    key: RequestOptions = {"idempotency_key": f"confirm-{intent.id}"}

    first, retried = _refused_twice(
        lambda: client.v1.payment_intents.confirm(
            intent.id,
            params={"payment_method": method_id, "return_url": RETURN_URL},
            options=key,
        ),
        lambda: client.v1.payment_methods.attach(method_id, params={"customer": customer_id}),
    )

    assert first.http_status == 400
    assert first.error is not None
    assert first.error.param == "payment_method"
    assert "It may not be used again" in str(first.user_message)
    assert not _replayed(first)
    assert _replayed(retried)
    assert retried.json_body == first.json_body
    assert _authorizations(databases, account.id) == authorized
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
    # The state did change: the same confirmation under a new key pays.
    paid = client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": method_id, "return_url": RETURN_URL}
    )
    assert paid.status == "succeeded"


def test_a_create_and_confirm_refused_a_spent_method_is_replayed_after_the_attach(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    method_id = _spent_but_saved(client)
    customer_id = client.v1.customers.create().id
    authorized = _authorizations(databases, account.id)
    key: RequestOptions = {"idempotency_key": f"create-{method_id}"}

    first, retried = _refused_twice(
        lambda: client.v1.payment_intents.create(
            params={
                "amount": 700,
                "currency": "usd",
                "customer": customer_id,
                "payment_method": method_id,
                "confirm": True,
                "return_url": RETURN_URL,
            },
            options=key,
        ),
        lambda: client.v1.payment_methods.attach(method_id, params={"customer": customer_id}),
    )

    assert first.http_status == 400
    assert first.error is not None
    assert first.error.param == "payment_method"
    assert not _replayed(first)
    assert _replayed(retried)
    assert retried.json_body == first.json_body
    assert _authorizations(databases, account.id) == authorized
    assert client.v1.payment_intents.list(params={"customer": customer_id}).data == []


def test_a_confirmation_refused_another_customers_method_is_replayed_once_it_is_theirs(
    client: stripe.StripeClient, account: TestAccount, databases: WorkerDatabases
) -> None:
    owner_id = client.v1.customers.create().id
    method_id = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}}
    ).id
    client.v1.payment_methods.attach(method_id, params={"customer": owner_id})
    intent = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"})
    authorized = _authorizations(databases, account.id)
    key: RequestOptions = {"idempotency_key": f"confirm-{intent.id}"}

    first, retried = _refused_twice(
        lambda: client.v1.payment_intents.confirm(
            intent.id,
            params={"payment_method": method_id, "return_url": RETURN_URL},
            options=key,
        ),
        lambda: client.v1.payment_intents.update(intent.id, params={"customer": owner_id}),
    )

    assert first.http_status == 400
    assert first.error is not None
    assert (first.error.code, first.error.param) == ("parameter_invalid", "payment_method")
    assert f"belongs to the Customer {owner_id}" in str(first.user_message)
    assert not _replayed(first)
    assert _replayed(retried)
    assert retried.json_body == first.json_body
    assert _authorizations(databases, account.id) == authorized
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
