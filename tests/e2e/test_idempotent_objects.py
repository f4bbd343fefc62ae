"""Every POST honours Idempotency-Key, not only payments: the SDKs resend a POST whose answer
was lost (a timeout, a dropped connection, a 5xx) with the same key, and the resend must answer
as the first time instead of making a second customer, payment method or token."""

from typing import Any

import psycopg
import pytest
import stripe

from remit.worker.runner import libpq_url
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases


def _client(platform: RunningPlatform, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )


@pytest.fixture
def raw_account(platform: RunningPlatform) -> TestAccount:
    return create_account(platform.core, token=platform.internal_token, raw_card_access=True)


@pytest.fixture
def client(platform: RunningPlatform, raw_account: TestAccount) -> stripe.StripeClient:
    return _client(platform, raw_account.secret_key)


def _vault_cards(databases: WorkerDatabases, account_id: str) -> int:
    """How many cards the vault holds for the account (deleted ones are shredded, not held)."""
    with psycopg.connect(libpq_url(databases.vault_url), autocommit=True) as db:
        row = db.execute(
            "SELECT count(*) FROM cards WHERE account_id = %s AND deleted_at IS NULL",
            (account_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _card_kept(databases: WorkerDatabases, method_id: str) -> bool:
    """The payment method's card is still at the vault (for a payment method already spent on
    its payment, which another payment may not use to show it)."""
    with psycopg.connect(libpq_url(databases.core_url), autocommit=True) as db:
        row = db.execute(
            "SELECT vault_token FROM payment_methods WHERE id = %s", (method_id,)
        ).fetchone()
    assert row is not None
    with psycopg.connect(libpq_url(databases.vault_url), autocommit=True) as db:
        card = db.execute(
            "SELECT 1 FROM cards WHERE token = %s AND deleted_at IS NULL", (row[0],)
        ).fetchone()
    return card is not None


def _pays(client: stripe.StripeClient, method_id: str) -> bool:
    """The payment method's card is still at the vault: a payment with it goes through."""
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1200,
            "currency": "usd",
            "payment_method": method_id,
            "confirm": True,
            "return_url": "https://shop.example/return",
        }
    )
    return intent.status == "succeeded"


def _replayed(obj: stripe.StripeObject) -> bool:
    assert obj.last_response is not None
    return obj.last_response.headers.get("Idempotent-Replayed") == "true"


def _card(number: str, exp_year: int = 2034) -> Any:
    return {"number": number, "exp_month": 12, "exp_year": exp_year, "cvc": "739"}


def test_a_customer_created_twice_with_one_key_is_one_customer(
    client: stripe.StripeClient,
) -> None:
    def create(email: str) -> stripe.Customer:
        return client.v1.customers.create(
            params={"email": email, "metadata": {"order": "7"}},
            options={"idempotency_key": "cus-once"},
        )

    first = create("ada@example.com")
    again = create("ada@example.com")
    assert again.id == first.id
    assert not _replayed(first)
    assert _replayed(again)
    for answer in (first, again):
        assert answer.last_response is not None
        assert answer.last_response.headers.get("Idempotency-Key") == "cus-once"
    assert [c.id for c in client.v1.customers.list().data] == [first.id]
    with pytest.raises(stripe.IdempotencyError) as mismatch:
        create("grace@example.com")
    assert mismatch.value.http_status == 400
    assert mismatch.value.headers is not None
    assert mismatch.value.headers.get("Idempotency-Key") == "cus-once"
    assert [c.id for c in client.v1.customers.list().data] == [first.id]


def test_updates_attach_and_detach_replay_under_their_keys(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"name": "Ada"})
    updated = client.v1.customers.update(
        customer.id, params={"name": "Ada L."}, options={"idempotency_key": "cus-upd"}
    )
    # A later change by another request is not undone by the retry: it only replays.
    client.v1.customers.update(customer.id, params={"name": "Ada King"})
    replayed = client.v1.customers.update(
        customer.id, params={"name": "Ada L."}, options={"idempotency_key": "cus-upd"}
    )
    assert (updated.name, replayed.name, _replayed(replayed)) == ("Ada L.", "Ada L.", True)
    assert client.v1.customers.retrieve(customer.id).name == "Ada King"

    method = client.v1.payment_methods.create(
        params={"type": "card", "card": _card("4242424242424242")}
    )
    attached = client.v1.payment_methods.attach(
        method.id, params={"customer": customer.id}, options={"idempotency_key": "pm-att"}
    )
    again = client.v1.payment_methods.attach(
        method.id, params={"customer": customer.id}, options={"idempotency_key": "pm-att"}
    )
    assert (attached.customer, again.customer, _replayed(again)) == (customer.id, customer.id, True)

    detached = client.v1.payment_methods.detach(method.id, options={"idempotency_key": "pm-det"})
    # Without replay the second detach would be a 400: the method is no longer attached.
    again_detached = client.v1.payment_methods.detach(
        method.id, options={"idempotency_key": "pm-det"}
    )
    assert (detached.customer, again_detached.customer) == (None, None)
    assert _replayed(again_detached)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_methods.detach(method.id)


def test_a_raw_card_payment_method_retried_with_its_key_is_one_payment_method(
    client: stripe.StripeClient, databases: WorkerDatabases, raw_account: TestAccount
) -> None:
    """The facade tokenizes the card in the vault on every request, so the retry carries a new
    vault token; the key still knows it for the same card. The card stored again by a retry
    that only replays, or that the key refuses, is used by nothing and is deleted: the vault
    keeps the one card the payment method holds."""

    def create(card: Any) -> stripe.PaymentMethod:
        return client.v1.payment_methods.create(
            params={"type": "card", "card": card, "metadata": {"n": "1"}},
            options={"idempotency_key": "pm-raw"},
        )

    first = create(_card("5555555555554444"))
    assert _vault_cards(databases, raw_account.id) == 1
    again = create(_card("5555555555554444"))
    assert again.id == first.id
    assert _replayed(again)
    assert again.to_dict() == first.to_dict()
    assert _vault_cards(databases, raw_account.id) == 1
    for other in (_card("4242424242424242"), _card("5555555555554444", exp_year=2035)):
        with pytest.raises(stripe.IdempotencyError):
            create(other)
    assert _vault_cards(databases, raw_account.id) == 1
    assert _pays(client, first.id)
    assert [m.id for m in client.v1.payment_methods.list().data] == [first.id]


def test_a_payment_with_raw_card_data_retried_with_its_key_keeps_one_card(
    client: stripe.StripeClient, databases: WorkerDatabases, raw_account: TestAccount
) -> None:
    """payment_method_data with raw card fields: the facade stores the card at the vault on
    every request, so the retry's copy, which the replay does not use, is deleted; so is the
    copy of a retry the key refuses. One payment, one payment method, one card."""

    def pay(card: Any) -> stripe.PaymentIntent:
        params: Any = {
            "amount": 1700,
            "currency": "usd",
            "confirm": True,
            "payment_method_data": {"type": "card", "card": card},
            "return_url": "https://shop.example/return",
        }
        return client.v1.payment_intents.create(
            params=params, options={"idempotency_key": "pi-raw"}
        )

    first = pay(_card("4242424242424242"))
    assert first.status == "succeeded"
    again = pay(_card("4242424242424242"))
    assert (again.id, again.payment_method, _replayed(again)) == (
        first.id,
        first.payment_method,
        True,
    )
    with pytest.raises(stripe.IdempotencyError):
        pay(_card("5555555555554444"))
    assert _vault_cards(databases, raw_account.id) == 1
    assert [m.id for m in client.v1.payment_methods.list().data] == [first.payment_method]
    assert [i.id for i in client.v1.payment_intents.list().data] == [first.id]
    assert _card_kept(databases, str(first.payment_method))


def test_a_token_retried_with_its_key_is_one_token(
    client: stripe.StripeClient, databases: WorkerDatabases, raw_account: TestAccount
) -> None:
    def create(number: str = "4242424242424242") -> stripe.Token:
        return client.v1.tokens.create(
            params={"card": _card(number)}, options={"idempotency_key": "tok-once"}
        )

    first = create()
    again = create()
    assert (again.id, _replayed(again)) == (first.id, True)
    assert _vault_cards(databases, raw_account.id) == 1
    with pytest.raises(stripe.IdempotencyError):
        create("5555555555554444")
    assert _vault_cards(databases, raw_account.id) == 1
    # The token is still unused: the replay did not spend or copy it.
    method = client.v1.payment_methods.create(params={"type": "card", "card": {"token": first.id}})
    assert method.card is not None
    assert method.card.last4 == "4242"
    assert _pays(client, method.id)


def test_a_key_used_for_a_customer_cannot_make_a_payment_method(
    client: stripe.StripeClient, databases: WorkerDatabases, raw_account: TestAccount
) -> None:
    client.v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "shared"})
    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.payment_methods.create(
            params={"type": "card", "card": _card("4242424242424242")},
            options={"idempotency_key": "shared"},
        )
    assert raised.value.http_status == 400
    # The card the facade stored for the refused request is not kept.
    assert _vault_cards(databases, raw_account.id) == 0


def test_a_customer_created_again_with_a_test_card_makes_no_second_payment_method(
    client: stripe.StripeClient,
) -> None:
    """A test id becomes a new payment method of the account each time it is used; a retry
    that replays the customer uses nothing, so it makes none."""

    def create(email: str = "ada@example.com") -> stripe.Customer:
        return client.v1.customers.create(
            params={"email": email, "payment_method": "pm_card_visa"},
            options={"idempotency_key": "cus-pm"},
        )

    first = create()
    again = create()
    assert (again.id, _replayed(again)) == (first.id, True)
    with pytest.raises(stripe.IdempotencyError):
        create("grace@example.com")
    methods = client.v1.payment_methods.list(params={"limit": 10}).data
    assert [(m.customer, m.card.last4 if m.card else None) for m in methods] == [(first.id, "4242")]
    assert [c.id for c in client.v1.customers.list().data] == [first.id]


def test_a_refused_create_stores_nothing_under_its_key(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_methods.attach(
            "pm_missing", params={"customer": "cus_missing"}, options={"idempotency_key": "k"}
        )
    assert (missing.value.http_status, missing.value.param) == (404, "payment_method")
    customer = client.v1.customers.create(params={"name": "Ada"})
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": _card("4242424242424242")}
    )
    attached = client.v1.payment_methods.attach(
        method.id, params={"customer": customer.id}, options={"idempotency_key": "k"}
    )
    assert attached.customer == customer.id
    assert not _replayed(attached)


def test_a_webhook_endpoint_is_made_and_changed_once_under_its_key(
    client: stripe.StripeClient,
) -> None:
    """A duplicate endpoint would receive every event twice."""
    params: Any = {"url": "https://example.com/hooks", "enabled_events": ["charge.refunded"]}
    first = client.v1.webhook_endpoints.create(params=params, options={"idempotency_key": "we"})
    again = client.v1.webhook_endpoints.create(params=params, options={"idempotency_key": "we"})
    assert (again.id, again.secret, _replayed(again)) == (first.id, first.secret, True)
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [first.id]

    updated = client.v1.webhook_endpoints.update(
        first.id, params={"description": "orders"}, options={"idempotency_key": "we-upd"}
    )
    replayed = client.v1.webhook_endpoints.update(
        first.id, params={"description": "orders"}, options={"idempotency_key": "we-upd"}
    )
    assert (updated.description, replayed.description, _replayed(replayed)) == (
        "orders",
        "orders",
        True,
    )
