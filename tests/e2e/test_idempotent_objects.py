"""Every POST honours Idempotency-Key, not only payments: the SDKs resend a POST whose answer
was lost (a timeout, a dropped connection, a 5xx) with the same key, and the resend must answer
as the first time instead of making a second customer, payment method or token."""

from typing import Any

import pytest
import stripe

from tests.support.accounts import create_account
from tests.support.platform import RunningPlatform


def _client(platform: RunningPlatform, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )


@pytest.fixture
def client(platform: RunningPlatform) -> stripe.StripeClient:
    account = create_account(platform.core, token=platform.internal_token, raw_card_access=True)
    return _client(platform, account.secret_key)


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
    client: stripe.StripeClient,
) -> None:
    """The facade tokenizes the card in the vault on every request, so the retry carries a new
    vault token; the key still knows it for the same card."""

    def create(card: Any) -> stripe.PaymentMethod:
        return client.v1.payment_methods.create(
            params={"type": "card", "card": card, "metadata": {"n": "1"}},
            options={"idempotency_key": "pm-raw"},
        )

    first = create(_card("5555555555554444"))
    again = create(_card("5555555555554444"))
    assert again.id == first.id
    assert _replayed(again)
    for other in (_card("4242424242424242"), _card("5555555555554444", exp_year=2035)):
        with pytest.raises(stripe.IdempotencyError):
            create(other)


def test_a_token_retried_with_its_key_is_one_token(client: stripe.StripeClient) -> None:
    def create() -> stripe.Token:
        return client.v1.tokens.create(
            params={"card": _card("4242424242424242")}, options={"idempotency_key": "tok-once"}
        )

    first = create()
    again = create()
    assert (again.id, _replayed(again)) == (first.id, True)
    # The token is still unused: the replay did not spend or copy it.
    method = client.v1.payment_methods.create(params={"type": "card", "card": {"token": first.id}})
    assert method.card is not None
    assert method.card.last4 == "4242"


def test_a_key_used_for_a_customer_cannot_make_a_payment_method(
    client: stripe.StripeClient,
) -> None:
    client.v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "shared"})
    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.payment_methods.create(
            params={"type": "card", "card": _card("4242424242424242")},
            options={"idempotency_key": "shared"},
        )
    assert raised.value.http_status == 400


def test_a_refused_create_stores_nothing_under_its_key(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_methods.attach(
            "pm_missing", params={"customer": "cus_missing"}, options={"idempotency_key": "k"}
        )
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
