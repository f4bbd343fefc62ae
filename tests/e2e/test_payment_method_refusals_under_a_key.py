"""A payment method or customer request refused by the state of a payment method (not attached
to a customer, attached to another, spent on an intent) is answered for good under its
idempotency key, as Stripe stores any answer once the endpoint's work has begun: a retry with
the key after the state changed replays the refusal instead of answering a second way."""

import pytest
import stripe
from stripe import RequestOptions
from stripe.params import CustomerUpdateParams, PaymentMethodUpdateParams

RETURN_URL = "https://shop.example/return"


def _replayed(error: stripe.StripeError) -> bool:
    return error.headers is not None and error.headers.get("Idempotent-Replayed") == "true"


def _method(client: stripe.StripeClient) -> str:
    return client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}}
    ).id


def _customer(client: stripe.StripeClient) -> str:
    return client.v1.customers.create().id


def test_a_detach_refused_before_the_attach_is_replayed_after_it(
    client: stripe.StripeClient,
) -> None:
    method_id = _method(client)
    key: RequestOptions = {"idempotency_key": f"detach-{method_id}"}
    with pytest.raises(stripe.InvalidRequestError) as first:
        client.v1.payment_methods.detach(method_id, options=key)
    assert (first.value.http_status, first.value.code) == (400, "payment_method_unexpected_state")
    assert "not attached to a customer" in str(first.value.user_message)
    assert not _replayed(first.value)

    customer_id = _customer(client)
    client.v1.payment_methods.attach(method_id, params={"customer": customer_id})
    with pytest.raises(stripe.InvalidRequestError) as retried:
        client.v1.payment_methods.detach(method_id, options=key)

    assert _replayed(retried.value)
    assert retried.value.json_body == first.value.json_body
    assert client.v1.payment_methods.retrieve(method_id).customer == customer_id


def test_an_update_refused_before_the_attach_is_replayed_after_it(
    client: stripe.StripeClient,
) -> None:
    method_id = _method(client)
    key: RequestOptions = {"idempotency_key": f"update-{method_id}"}
    params: PaymentMethodUpdateParams = {"metadata": {"a": "1"}}
    with pytest.raises(stripe.InvalidRequestError) as first:
        client.v1.payment_methods.update(method_id, params=params, options=key)
    assert (first.value.http_status, first.value.code) == (400, "payment_method_unexpected_state")
    assert "You must save this PaymentMethod to a customer" in str(first.value.user_message)
    assert not _replayed(first.value)

    client.v1.payment_methods.attach(method_id, params={"customer": _customer(client)})
    with pytest.raises(stripe.InvalidRequestError) as retried:
        client.v1.payment_methods.update(method_id, params=params, options=key)

    assert _replayed(retried.value)
    assert retried.value.json_body == first.value.json_body
    metadata = client.v1.payment_methods.retrieve(method_id).metadata
    assert metadata is not None
    assert metadata.to_dict() == {}


def test_an_attach_refused_for_another_customers_method_is_replayed(
    client: stripe.StripeClient,
) -> None:
    """Once the first customer lets the method go, an attach would be refused another way (a
    detached method is never usable again): the retry still gets the first answer."""
    method_id = _method(client)
    owner_id = _customer(client)
    client.v1.payment_methods.attach(method_id, params={"customer": owner_id})
    other_id = _customer(client)
    key: RequestOptions = {"idempotency_key": f"attach-{method_id}"}
    with pytest.raises(stripe.InvalidRequestError) as first:
        client.v1.payment_methods.attach(method_id, params={"customer": other_id}, options=key)
    assert (first.value.http_status, first.value.code) == (400, "payment_method_unexpected_state")
    assert first.value.error is not None
    assert first.value.error.param == "payment_method"
    assert not _replayed(first.value)

    client.v1.payment_methods.detach(method_id)
    with pytest.raises(stripe.InvalidRequestError) as retried:
        client.v1.payment_methods.attach(method_id, params={"customer": other_id}, options=key)

    assert _replayed(retried.value)
    assert retried.value.json_body == first.value.json_body


def test_an_attach_of_a_spent_method_is_replayed(client: stripe.StripeClient) -> None:
    method_id = _method(client)
    client.v1.payment_intents.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "payment_method": method_id,
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    customer_id = _customer(client)
    key: RequestOptions = {"idempotency_key": f"attach-spent-{method_id}"}
    answers = []
    for attempt in range(2):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.payment_methods.attach(
                method_id, params={"customer": customer_id}, options=key
            )
        assert refused.value.http_status == 400
        assert refused.value.error is not None
        assert refused.value.error.param == "payment_method"
        assert "It may not be used again" in str(refused.value.user_message)
        assert _replayed(refused.value) is (attempt == 1)
        answers.append(refused.value.json_body)
    assert answers[0] == answers[1]


def test_a_customer_default_refused_before_the_attach_is_replayed_after_it(
    client: stripe.StripeClient,
) -> None:
    method_id = _method(client)
    customer_id = _customer(client)
    key: RequestOptions = {"idempotency_key": f"default-{customer_id}"}
    params: CustomerUpdateParams = {"invoice_settings": {"default_payment_method": method_id}}
    with pytest.raises(stripe.InvalidRequestError) as first:
        client.v1.customers.update(customer_id, params=params, options=key)
    assert first.value.http_status == 400
    assert first.value.error is not None
    assert first.value.error.param == "invoice_settings[default_payment_method]"
    assert not _replayed(first.value)

    client.v1.payment_methods.attach(method_id, params={"customer": customer_id})
    with pytest.raises(stripe.InvalidRequestError) as retried:
        client.v1.customers.update(customer_id, params=params, options=key)

    assert _replayed(retried.value)
    assert retried.value.json_body == first.value.json_body
    settings = client.v1.customers.retrieve(customer_id).invoice_settings
    assert settings is not None
    assert settings.default_payment_method is None


def test_a_customer_create_naming_another_default_is_validation_and_leaves_the_key_free(
    client: stripe.StripeClient,
) -> None:
    """A new customer holds no payment method but the one it is created with: a default
    naming any other is wrong whatever that method's state, so the key stays free for the
    corrected request."""
    method_id = _method(client)
    key: RequestOptions = {"idempotency_key": f"create-default-{method_id}"}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.create(
            params={"invoice_settings": {"default_payment_method": method_id}}, options=key
        )
    assert refused.value.error is not None
    assert refused.value.error.param == "invoice_settings[default_payment_method]"
    assert not _replayed(refused.value)

    fixed = client.v1.customers.create(
        params={
            "payment_method": method_id,
            "invoice_settings": {"default_payment_method": method_id},
        },
        options=key,
    )

    assert fixed.invoice_settings is not None
    assert fixed.invoice_settings.default_payment_method == method_id
