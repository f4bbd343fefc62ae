"""The payment flows through the official stripe SDK against the real platform."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import create_engine, text

from remit.grpcutil.internal_auth import internal_sync_channel
from remit.storage.embedded import to_sqlalchemy_url
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

# Automatic payment methods are on (since 2023-08-16), so confirming on creation needs one.
RETURN_URL = "https://shop.example/return"


def test_create_with_confirm_succeeds_with_a_captured_charge(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    assert intent.status == "succeeded"
    assert intent.amount_received == 2000
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.captured, charge.paid, charge.amount_captured) == (
        "succeeded",
        True,
        True,
        2000,
    )
    assert charge.payment_method_details is not None
    card = charge.payment_method_details.card
    assert card is not None
    assert (card.brand, card.last4) == ("visa", "4242")
    assert charge.outcome is not None
    assert charge.outcome.type == "authorized"


def test_latest_charge_expands_into_the_charge(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 900,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            "expand": ["latest_charge"],
        }
    )
    assert isinstance(intent.latest_charge, stripe.Charge)
    assert intent.latest_charge.amount == 900


def test_a_decline_is_a_card_error_carrying_the_intent(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.create(
            params={
                "amount": 1500,
                "currency": "usd",
                "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds",
                "confirm": True,
                "return_url": RETURN_URL,
            }
        )
    error = raised.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.error is not None
    assert error.error.decline_code == "insufficient_funds"
    assert error.error.payment_intent is not None
    intent_id = error.error.payment_intent.id
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.decline_code == "insufficient_funds"


def test_an_expired_card_is_declined_with_no_decline_code(client: stripe.StripeClient) -> None:
    """Stripe's `expired_card` is a code of its own, carrying no decline_code (stripe-wire.md
    section 9), in the error and in the intent's last payment error alike."""
    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.create(
            params={
                "amount": 1500,
                "currency": "usd",
                "payment_method": "pm_card_chargeDeclinedExpiredCard",
                "confirm": True,
                "return_url": RETURN_URL,
            }
        )
    error = raised.value
    assert (error.http_status, error.code) == (402, "expired_card")
    assert error.error is not None
    assert error.error.decline_code is None
    body: Any = error.json_body
    assert "decline_code" not in body["error"]
    assert error.error.payment_intent is not None
    intent = client.v1.payment_intents.retrieve(error.error.payment_intent.id)
    assert intent.last_payment_error is not None
    assert (intent.last_payment_error.code, intent.last_payment_error.decline_code) == (
        "expired_card",
        None,
    )


def test_an_update_clears_the_last_payment_error(client: stripe.StripeClient) -> None:
    """Stripe: the last payment error "will be cleared if the PaymentIntent is later updated
    for any reason", a metadata change included."""
    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.create(
            params={
                "amount": 1500,
                "currency": "usd",
                "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds",
                "confirm": True,
                "return_url": RETURN_URL,
            }
        )
    assert raised.value.error is not None
    assert raised.value.error.payment_intent is not None
    intent_id = raised.value.error.payment_intent.id
    updated = client.v1.payment_intents.update(intent_id, params={"metadata": {"retry": "1"}})
    assert (updated.status, updated.last_payment_error) == ("requires_payment_method", None)
    assert client.v1.payment_intents.retrieve(intent_id).last_payment_error is None


def test_a_refusal_by_the_intents_status_carries_the_intent(
    client: stripe.StripeClient,
) -> None:
    """Stripe's error object embeds the PaymentIntent of the request, so a client learns the
    status that refused it without another call."""
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    intents = client.v1.payment_intents
    refused_calls: list[Callable[[], object]] = [
        lambda: intents.capture(intent.id),
        lambda: intents.cancel(intent.id),
        lambda: intents.confirm(intent.id),
        lambda: intents.update(intent.id, params={"amount": 2500}),
    ]
    for refused_call in refused_calls:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            refused_call()
        error = refused.value.error
        assert error is not None
        assert error.code == "payment_intent_unexpected_state"
        assert error.payment_intent is not None
        assert (error.payment_intent.id, error.payment_intent.status) == (intent.id, "succeeded")
        assert error.payment_intent.amount == 2000


def test_a_confirmation_without_a_payment_method_carries_the_intent(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.confirm(intent.id, params={"return_url": RETURN_URL})
    error = refused.value.error
    assert error is not None
    assert (refused.value.http_status, error.code) == (400, "payment_intent_unexpected_state")
    assert "missing a payment method" in str(error.message)
    assert error.payment_intent is not None
    assert (error.payment_intent.id, error.payment_intent.status) == (
        intent.id,
        "requires_payment_method",
    )


def test_a_refusal_of_a_declined_intent_names_no_payment_method(
    client: stripe.StripeClient,
) -> None:
    """The intent it carries still holds its decline; that decline's card is not what the
    refusal is about."""
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            params={
                "amount": 1500,
                "currency": "usd",
                "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds",
                "confirm": True,
                "return_url": RETURN_URL,
            }
        )
    assert declined.value.error is not None
    assert declined.value.error.payment_intent is not None
    intent_id = declined.value.error.payment_intent.id
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.capture(intent_id)
    error = refused.value.error
    assert error is not None
    assert error.payment_intent is not None
    assert error.payment_intent.status == "requires_payment_method"
    assert error.payment_method is None


def test_manual_capture_of_part_then_refunds_of_part_and_the_rest(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            "capture_method": "manual",
        }
    )
    assert (intent.status, intent.amount_capturable) == ("requires_capture", 5000)
    captured = client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 3000})
    assert (captured.status, captured.amount_received) == ("succeeded", 3000)

    first = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})
    assert (first.status, first.amount) == ("succeeded", 1000)
    rest = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert rest.amount == 2000
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert again.value.code == "charge_already_refunded"

    charge = client.v1.charges.retrieve(str(captured.latest_charge), params={"expand": ["refunds"]})
    assert (charge.amount_refunded, charge.refunded) == (3000, True)
    assert charge.refunds is not None
    assert sorted(r.amount for r in charge.refunds.data) == [1000, 2000]
    listed = client.v1.refunds.list(params={"payment_intent": intent.id})
    assert [r.id for r in listed.data] == [rest.id, first.id]


def test_cancel_releases_an_authorization(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 700,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            "capture_method": "manual",
        }
    )
    canceled = client.v1.payment_intents.cancel(
        intent.id, params={"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status == "canceled"
    assert canceled.cancellation_reason == "requested_by_customer"
    assert canceled.amount_capturable == 0
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(intent.id)
    assert raised.value.code == "payment_intent_unexpected_state"
    assert "canceled" in str(raised.value.user_message)


def test_a_capture_after_the_authorization_expired_is_refused_though_the_expiry_job_is_late(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 700, "currency": "usd", "payment_method": "pm_card_visa",
                "confirm": True, "return_url": RETURN_URL, "capture_method": "manual"}
    )  # fmt: skip
    engine = create_engine(to_sqlalchemy_url(platform.env["DATABASE_URL"]))
    try:
        with engine.begin() as db:
            db.execute(
                text("UPDATE charges SET authorized_at = now() - interval '8 days' "
                     "WHERE payment_intent_id = :id"),
                {"id": intent.id},
            )  # fmt: skip
    finally:
        engine.dispose()
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(intent.id)
    assert raised.value.code == "charge_expired_for_capture"
    assert raised.value.error is not None
    assert raised.value.error.payment_intent is not None
    assert raised.value.error.payment_intent.status == "requires_capture"
    assert client.v1.payment_intents.retrieve(intent.id).amount_received == 0


def test_confirming_a_created_intent_and_updating_it(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(params={"amount": 300, "currency": "usd"})
    updated = client.v1.payment_intents.update(
        intent.id, params={"amount": 350, "description": "tea", "metadata": {"a": "1"}}
    )
    assert (updated.amount, updated.description, updated.metadata.to_dict()) == (
        350,
        "tea",
        {"a": "1"},
    )
    # Created without payment method types: automatic payment methods may redirect, so
    # confirming needs somewhere to send the customer back to.
    confirmed = client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_mastercard", "return_url": RETURN_URL}
    )
    assert (confirmed.status, confirmed.amount_received) == ("succeeded", 350)


def test_an_intent_created_or_updated_with_a_test_id_names_a_payment_method_of_its_card(
    client: stripe.StripeClient,
) -> None:
    """As with Stripe, a test id given without confirming becomes a payment method of the
    account, which the intent names and the payment is made with; a retry with the key makes
    no second one."""

    def create() -> stripe.PaymentIntent:
        return client.v1.payment_intents.create(
            params={"amount": 1200, "currency": "usd", "payment_method": "pm_card_visa"},
            options={"idempotency_key": "created-with-a-test-id"},
        )

    created, retried = create(), create()
    assert created.status == "requires_confirmation"
    assert isinstance(created.payment_method, str)
    assert created.payment_method.startswith("pm_")
    assert created.payment_method != "pm_card_visa"
    assert retried.payment_method == created.payment_method
    method = client.v1.payment_methods.retrieve(created.payment_method)
    assert method.type == "card"
    assert method.card is not None
    assert (method.card.brand, method.card.last4) == ("visa", "4242")
    assert [m.id for m in client.v1.payment_methods.list().data] == [method.id]

    confirmed = client.v1.payment_intents.confirm(
        created.id, params={"return_url": RETURN_URL, "expand": ["latest_charge"]}
    )
    assert (confirmed.status, confirmed.payment_method) == ("succeeded", method.id)
    assert isinstance(confirmed.latest_charge, stripe.Charge)
    assert confirmed.latest_charge.payment_method == method.id

    plain = client.v1.payment_intents.create(params={"amount": 800, "currency": "usd"})
    updated = client.v1.payment_intents.update(
        plain.id, params={"payment_method": "pm_card_mastercard"}
    )
    assert isinstance(updated.payment_method, str)
    assert updated.payment_method not in ("pm_card_mastercard", method.id)
    card = client.v1.payment_methods.retrieve(updated.payment_method).card
    assert card is not None
    assert (card.brand, card.last4) == ("mastercard", "4444")


def test_an_intent_naming_an_unknown_or_another_customers_payment_method_is_refused(
    client: stripe.StripeClient,
) -> None:
    """Refused when the intent is created or updated, as when it is confirmed, and nothing is
    stored: the same idempotency key may be used again for the corrected request."""

    def create(payment_method: str) -> stripe.PaymentIntent:
        return client.v1.payment_intents.create(
            params={"amount": 500, "currency": "usd", "payment_method": payment_method},
            options={"idempotency_key": "named-a-payment-method"},
        )

    def confirm(payment_method: str) -> stripe.PaymentIntent:
        return client.v1.payment_intents.create(
            params={"amount": 500, "currency": "usd", "payment_method": payment_method,
                    "confirm": True, "return_url": RETURN_URL},
        )  # fmt: skip

    refusals: dict[str, Any] = {}
    for step, attempt in (("create", create), ("confirm", confirm)):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            attempt("pm_doesnotexist")
        assert refused.value.error is not None
        refusals[step] = (
            refused.value.http_status,
            refused.value.code,
            refused.value.error.param,
            refused.value.user_message,
        )
    assert refusals["create"] == refusals["confirm"]
    assert refusals["create"] == (
        404,
        "resource_missing",
        "payment_method",
        "No such PaymentMethod: 'pm_doesnotexist'",
    )
    assert client.v1.payment_intents.list().data == []
    corrected = client.v1.payment_intents.create(
        params={"amount": 500, "currency": "usd"},
        options={"idempotency_key": "named-a-payment-method"},
    )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.update(corrected.id, params={"payment_method": "pm_doesnotexist"})
    assert (refused.value.code, refused.value.param) == ("resource_missing", "payment_method")

    owner = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    [saved] = client.v1.payment_methods.list(params={"customer": owner.id}).data
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(
            params={"amount": 500, "currency": "usd", "payment_method": saved.id}
        )
    assert (refused.value.http_status, refused.value.param) == (400, "payment_method")
    assert owner.id in str(refused.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.update(corrected.id, params={"payment_method": saved.id})
    assert (refused.value.http_status, refused.value.param) == (400, "payment_method")
    after = client.v1.payment_intents.retrieve(corrected.id)
    assert (after.status, after.payment_method) == ("requires_payment_method", None)
    assert [i.id for i in client.v1.payment_intents.list().data] == [corrected.id]


def test_list_auto_paging_walks_twenty_five_intents(client: stripe.StripeClient) -> None:
    made = [
        client.v1.payment_intents.create(params={"amount": 100 + n, "currency": "usd"}).id
        for n in range(25)
    ]
    seen = [pi.id for pi in client.v1.payment_intents.list(params={"limit": 4}).auto_paging_iter()]
    assert seen == made[::-1]


def test_created_filters_compare_whole_seconds_on_every_list(client: stripe.StripeClient) -> None:
    """`created` is whole seconds on the wire while objects keep their exact instant: an object
    shown as created at t is found by `created=t` and `created[lte]=t`, not by `created[gt]=t`.
    Each list reaches its rows by its own path, so several are checked."""
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1200,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    customer = client.v1.customers.create(params={"email": "whole@seconds.example"})
    assert isinstance(intent.latest_charge, str)
    lists: dict[str, tuple[Any, str, int]] = {
        "payment_intents": (client.v1.payment_intents, intent.id, intent.created),
        "charges": (client.v1.charges, intent.latest_charge, intent.created),
        "customers": (client.v1.customers, customer.id, customer.created),
    }
    for name, (service, object_id, t) in lists.items():

        def ids(created: object, service: Any = service) -> set[str]:
            return {o.id for o in service.list(params={"created": created, "limit": 100}).data}

        found = {
            "=t": object_id in ids(t),
            "lte": object_id in ids({"lte": t}),
            "gte": object_id in ids({"gte": t}),
            "gte+lte": object_id in ids({"gte": t, "lte": t}),
            "gt": object_id in ids({"gt": t}),
            "lt": object_id in ids({"lt": t}),
            "gt t-1": object_id in ids({"gt": t - 1}),
            "lt t+1": object_id in ids({"lt": t + 1}),
        }
        assert found == {
            "=t": True, "lte": True, "gte": True, "gte+lte": True,
            "gt": False, "lt": False, "gt t-1": True, "lt t+1": True,
        }, name  # fmt: skip
    # Bounds beyond what a timestamp holds leave nothing out, and are no server error.
    everything = client.v1.payment_intents.list(params={"created": {"gt": -(2**62), "lte": 2**62}})
    assert intent.id in {o.id for o in everything}


def test_the_same_idempotency_key_replays_and_other_parameters_are_refused(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    params: Any = {
        "amount": 1200,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
        "return_url": RETURN_URL,
    }
    options: Any = {"idempotency_key": "order-1234"}
    first = client.v1.payment_intents.create(params=params, options=options)
    again = client.v1.payment_intents.create(params=params, options=options)
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    charges = client.v1.charges.list(params={"payment_intent": first.id})
    assert len(charges.data) == 1
    mismatched: Any = {**params, "amount": 1300}
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(
            params=mismatched,
            options=options,
        )


def test_an_illegal_transition_names_the_current_status(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(intent.id)
    assert raised.value.http_status == 400
    assert raised.value.code == "payment_intent_unexpected_state"
    assert "requires_payment_method" in str(raised.value.user_message)


def test_an_update_may_not_take_metadata_past_fifty_keys(client: stripe.StripeClient) -> None:
    """Each request is limited to 50 keys, and so is what an update leaves on the object."""
    full = {f"k{n}": "v" for n in range(50)}
    intent = client.v1.payment_intents.create(
        params={"amount": 900, "currency": "usd", "metadata": full}
    )
    customer = client.v1.customers.create(params={"metadata": full})
    updates: dict[str, Any] = {
        "payment_intent": lambda metadata: client.v1.payment_intents.update(
            intent.id, params={"metadata": metadata}
        ),
        "customer": lambda metadata: client.v1.customers.update(
            customer.id, params={"metadata": metadata}
        ),
    }
    for name, update in updates.items():
        with pytest.raises(stripe.InvalidRequestError) as refused:
            update({"one_more": "v"})
        assert refused.value.error is not None
        assert refused.value.error.param == "metadata", name
        made_room = update({"k0": "", "one_more": "v"})
        assert made_room.metadata is not None
        assert len(made_room.metadata.to_dict()) == 50, name
        assert "one_more" in made_room.metadata.to_dict()


def _paid(client: stripe.StripeClient, amount: int, **params: Any) -> stripe.PaymentIntent:
    """A payment of `amount` created with confirm=true, by pm_card_visa unless `params` name
    another payment method."""
    defaults = {
        "amount": amount,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
        "return_url": RETURN_URL,
    }
    created: Any = {**defaults, **params}
    return client.v1.payment_intents.create(params=created)


def _saved_cards(client: stripe.StripeClient, customer_id: str) -> list[str]:
    """The customer's payment methods, as both of Stripe's list endpoints give them."""
    listed = client.v1.payment_methods.list(params={"customer": customer_id, "type": "card"})
    of_customer = client.v1.customers.payment_methods.list(customer_id)
    assert [m.id for m in of_customer.data] == [m.id for m in listed.data]
    return [m.id for m in listed.data]


def test_setup_future_usage_saves_the_card_to_the_customer_for_the_next_payment(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(params={"email": "saves@example.com"})
    intent = _paid(client, 2500, customer=customer.id, setup_future_usage="off_session")
    assert (intent.status, intent.setup_future_usage) == ("succeeded", "off_session")
    saved = str(intent.payment_method)
    assert saved.startswith("pm_")
    assert saved != "pm_card_visa"
    assert _saved_cards(client, customer.id) == [saved]
    assert client.v1.payment_methods.retrieve(saved).customer == customer.id

    again = _paid(client, 1200, customer=customer.id, payment_method=saved, off_session=True)
    assert (again.status, again.payment_method) == ("succeeded", saved)


def test_a_declined_card_is_not_saved_and_the_card_confirmed_after_it_is(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(params={"email": "declined@example.com"})
    with pytest.raises(stripe.CardError) as raised:
        _paid(
            client,
            1500,
            customer=customer.id,
            payment_method="pm_card_visa_chargeDeclined",
            setup_future_usage="on_session",
        )
    assert raised.value.error is not None
    assert raised.value.error.payment_intent is not None
    assert _saved_cards(client, customer.id) == []
    # setup_future_usage given on the confirmation replaces the intent's.
    confirmed = client.v1.payment_intents.confirm(
        raised.value.error.payment_intent.id,
        params={"payment_method": "pm_card_mastercard", "setup_future_usage": "off_session"},
    )
    assert (confirmed.status, confirmed.setup_future_usage) == ("succeeded", "off_session")
    assert _saved_cards(client, customer.id) == [confirmed.payment_method]


def test_setup_future_usage_with_manual_capture_saves_the_card_at_requires_capture(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(params={"email": "capture@example.com"})
    intent = _paid(
        client,
        4000,
        customer=customer.id,
        setup_future_usage="off_session",
        capture_method="manual",
    )
    assert intent.status == "requires_capture"
    assert _saved_cards(client, customer.id) == [intent.payment_method]
    captured = client.v1.payment_intents.capture(intent.id)
    assert captured.status == "succeeded"
    assert _saved_cards(client, customer.id) == [intent.payment_method]


def test_setup_future_usage_cleared_by_an_update_saves_nothing(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(params={"email": "cleared@example.com"})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 800,
            "currency": "usd",
            "customer": customer.id,
            "setup_future_usage": "on_session",
        }
    )
    assert intent.setup_future_usage == "on_session"
    updated = client.v1.payment_intents.update(intent.id, params={"setup_future_usage": ""})
    assert updated.setup_future_usage is None
    confirmed = client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_visa", "return_url": RETURN_URL}
    )
    assert confirmed.status == "succeeded"
    assert _saved_cards(client, customer.id) == []


def test_setup_future_usage_cleared_by_the_confirmation_saves_nothing(
    client: stripe.StripeClient,
) -> None:
    """`setup_future_usage=` on the confirmation clears it as on an update (stripe-python types
    the confirm parameter with `Literal[""]` too)."""
    customer = client.v1.customers.create(params={"email": "cleared-at-confirm@example.com"})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 800,
            "currency": "usd",
            "customer": customer.id,
            "setup_future_usage": "on_session",
        }
    )
    confirmed = client.v1.payment_intents.confirm(
        intent.id,
        params={
            "payment_method": "pm_card_visa",
            "return_url": RETURN_URL,
            "setup_future_usage": "",
        },
    )
    assert (confirmed.status, confirmed.setup_future_usage) == ("succeeded", None)
    assert _saved_cards(client, customer.id) == []


def test_a_charge_copies_billing_details_and_the_intents_receipt_email_and_shipping(
    client: stripe.StripeClient,
) -> None:
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"token": "tok_visa"},
            "billing_details": {
                "name": "Jenny Rosen",
                "email": "jenny@example.com",
                "address": {"line1": "1 Main St", "city": "Paris", "country": "FR"},
            },
        }
    )
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1700,
            "currency": "usd",
            "payment_method": method.id,
            "confirm": True,
            "return_url": RETURN_URL,
            "receipt_email": "receipts@example.com",
            "statement_descriptor_suffix": "ORDER 6735",
            "shipping": {
                "name": "Jenny Rosen",
                "address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
            },
        }
    )
    assert intent.shipping is not None
    assert intent.shipping.name == "Jenny Rosen"
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    billing = charge.billing_details
    assert (billing.name, billing.email, billing.phone) == (
        "Jenny Rosen",
        "jenny@example.com",
        None,
    )
    assert billing.address is not None
    assert (billing.address.line1, billing.address.city, billing.address.country) == (
        "1 Main St",
        "Paris",
        "FR",
    )
    assert charge.receipt_email == "receipts@example.com"
    assert charge.statement_descriptor_suffix == "ORDER 6735"
    assert charge.statement_descriptor is None
    assert charge.shipping is not None
    assert charge.shipping.name == "Jenny Rosen"
    assert charge.shipping.address is not None
    assert charge.shipping.address.line1 == "2 Rue Royale"


def test_a_charge_keeps_its_copy_when_the_intent_is_updated_afterwards(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(
        client,
        1200,
        capture_method="manual",
        receipt_email="first@example.com",
        description="first",
    )
    updated = client.v1.payment_intents.update(
        intent.id,
        params={"receipt_email": "second@example.com", "description": "second", "shipping": ""},
    )
    assert (updated.receipt_email, updated.description, updated.shipping) == (
        "second@example.com",
        "second",
        None,
    )
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.receipt_email, charge.description) == ("first@example.com", "first")


def test_a_charge_with_a_test_card_has_billing_details_with_null_fields(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(client, 1100)
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    billing = charge.billing_details
    assert billing is not None
    assert (billing.name, billing.email, billing.phone) == (None, None, None)
    # The address is there all the same, as Stripe shows it: each part null.
    assert billing.address is not None
    assert set(billing.address.to_dict().values()) == {None}
    assert (charge.receipt_email, charge.statement_descriptor_suffix, charge.shipping) == (
        None,
        None,
        None,
    )


def test_a_capture_updates_the_intents_metadata_and_the_charges_descriptor(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(
        client,
        1500,
        capture_method="manual",
        metadata={"order": "6735", "gift": "yes"},
        statement_descriptor_suffix="AUTHORIZED",
    )
    assert intent.status == "requires_capture"
    params: Any = {
        "metadata": {"gift": "", "shipped": "2026-12-06"},
        "statement_descriptor_suffix": "ORDER 6735",
    }
    options: Any = {"idempotency_key": "capture-6735"}
    captured = client.v1.payment_intents.capture(intent.id, params=params, options=options)
    assert captured.status == "succeeded"
    assert captured.metadata.to_dict() == {"order": "6735", "shipped": "2026-12-06"}
    # The retry of the same capture replays its answer: the metadata is merged once.
    again = client.v1.payment_intents.capture(intent.id, params=params, options=options)
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert again.metadata.to_dict() == {"order": "6735", "shipped": "2026-12-06"}
    retrieved = client.v1.payment_intents.retrieve(intent.id)
    assert retrieved.metadata.to_dict() == {"order": "6735", "shipped": "2026-12-06"}
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.captured, charge.statement_descriptor_suffix) == (True, "ORDER 6735")


def test_metadata_emptied_by_a_capture_is_cleared(client: stripe.StripeClient) -> None:
    intent = _paid(client, 800, capture_method="manual", metadata={"order": "1"})
    captured = client.v1.payment_intents.capture(
        intent.id, params={"metadata": "", "statement_descriptor": "REMIT STORE"}
    )
    assert captured.metadata.to_dict() == {}
    assert isinstance(intent.latest_charge, str)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.statement_descriptor == "REMIT STORE"


def _void_at_the_acquirer(platform: RunningPlatform, charge_id: str) -> None:
    """Release a charge's authorization at the acquirer behind the platform's back (as an
    issuer's expiry of the hold would): the network then refuses to capture it."""
    engine = create_engine(to_sqlalchemy_url(platform.env["DATABASE_URL"]))
    try:
        with engine.connect() as db:
            authorization_id = db.execute(
                text("SELECT authorization_id FROM charges WHERE id = :id"), {"id": charge_id}
            ).scalar_one()
    finally:
        engine.dispose()
    with internal_sync_channel(platform.acquirer.target, platform.internal_access) as channel:
        voided = acquirer_pb2_grpc.AcquirerServiceStub(channel).Void(
            acquirer_pb2.VoidRequest(
                authorization_id=authorization_id, reference=f"{charge_id}_released"
            ),
            timeout=10,
        )
    assert voided.operation.approved


def test_a_capture_the_network_refuses_changes_nothing(
    client: stripe.StripeClient, platform: RunningPlatform
) -> None:
    """Stripe's capture is all or nothing: refused by the network, it leaves the intent's
    metadata and the charge's descriptors as they were, and so does its retry."""
    intent = _paid(
        client,
        1500,
        capture_method="manual",
        metadata={"order": "6735", "gift": "yes"},
        statement_descriptor_suffix="AUTHORIZED",
    )
    assert intent.status == "requires_capture"
    assert isinstance(intent.latest_charge, str)
    _void_at_the_acquirer(platform, intent.latest_charge)
    params: Any = {
        "metadata": {"gift": "", "shipped": "2026-12-06"},
        "statement_descriptor": "REMIT STORE",
        "statement_descriptor_suffix": "ORDER 6735",
    }
    options: Any = {"idempotency_key": "capture-refused-6735"}
    for attempt in ("first", "retry"):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            client.v1.payment_intents.capture(intent.id, params=params, options=options)
        assert (raised.value.http_status, raised.value.code) == (400, "authorization_voided")
        replayed = (raised.value.headers or {}).get("Idempotent-Replayed")
        assert replayed == (None if attempt == "first" else "true")
        retrieved = client.v1.payment_intents.retrieve(intent.id)
        assert (retrieved.status, retrieved.amount_received) == ("requires_capture", 0)
        assert retrieved.metadata.to_dict() == {"order": "6735", "gift": "yes"}
        charge = client.v1.charges.retrieve(intent.latest_charge)
        assert (charge.captured, charge.statement_descriptor) == (False, None)
        assert charge.statement_descriptor_suffix == "AUTHORIZED"


def test_an_application_fee_on_a_capture_is_refused_naming_it(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(client, 800, capture_method="manual")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.capture(intent.id, params={"application_fee_amount": 100})
    assert raised.value.http_status == 400
    assert raised.value.param == "application_fee_amount"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_a_confirmation_gives_the_intent_and_its_charge_receipt_email_and_shipping(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 1300, "currency": "usd", "payment_method": "pm_card_visa"}
    )
    confirmed = client.v1.payment_intents.confirm(
        intent.id,
        params={
            "return_url": RETURN_URL,
            "receipt_email": "jenny@example.com",
            "shipping": {
                "name": "Jenny Rosen",
                "address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
            },
            "expand": ["latest_charge"],
        },
    )
    assert confirmed.status == "succeeded"
    assert confirmed.receipt_email == "jenny@example.com"
    assert confirmed.shipping is not None
    assert confirmed.shipping.name == "Jenny Rosen"
    charge = confirmed.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert charge.receipt_email == "jenny@example.com"
    assert charge.shipping is not None
    assert charge.shipping.name == "Jenny Rosen"
    assert charge.shipping.address is not None
    assert charge.shipping.address.line1 == "2 Rue Royale"


def test_a_confirmation_with_empty_receipt_email_and_shipping_clears_them(
    client: stripe.StripeClient,
) -> None:
    """Stripe's `receipt_email=` and `shipping=` on confirm unset them: the intent and the
    charge its confirmation makes have neither."""
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1300,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "receipt_email": "jenny@example.com",
            "shipping": {
                "name": "Jenny Rosen",
                "address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
            },
        }
    )
    assert intent.receipt_email == "jenny@example.com"
    assert intent.shipping is not None
    confirmed = client.v1.payment_intents.confirm(
        intent.id,
        params={
            "return_url": RETURN_URL,
            "receipt_email": "",
            "shipping": "",
            "expand": ["latest_charge"],
        },
    )
    assert (confirmed.status, confirmed.receipt_email, confirmed.shipping) == (
        "succeeded",
        None,
        None,
    )
    charge = confirmed.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert (charge.receipt_email, charge.shipping) == (None, None)
    retrieved = client.v1.payment_intents.retrieve(intent.id)
    assert (retrieved.receipt_email, retrieved.shipping) == (None, None)


def test_a_confirmation_clearing_one_keeps_the_other(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1400,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "receipt_email": "jenny@example.com",
            "shipping": {"name": "Jenny Rosen", "address": {"line1": "2 Rue Royale"}},
        }
    )
    confirmed = client.v1.payment_intents.confirm(
        intent.id, params={"return_url": RETURN_URL, "shipping": ""}
    )
    assert (confirmed.receipt_email, confirmed.shipping) == ("jenny@example.com", None)
    assert isinstance(confirmed.latest_charge, str)
    charge = client.v1.charges.retrieve(confirmed.latest_charge)
    assert (charge.receipt_email, charge.shipping) == ("jenny@example.com", None)


def test_a_succeeded_intent_takes_new_metadata_and_description_and_nothing_else(
    client: stripe.StripeClient,
) -> None:
    """An order number added after the payment is the common case: once the money has moved,
    the description and metadata may still change, but not the amount or the payment method."""
    intent = _paid(client, 1500, metadata={"cart": "c-1"})
    updated = client.v1.payment_intents.update(
        intent.id, params={"metadata": {"order": "6735"}, "description": "Order 6735"}
    )
    assert (updated.status, updated.description) == ("succeeded", "Order 6735")
    assert updated.metadata.to_dict() == {"cart": "c-1", "order": "6735"}
    assert client.v1.payment_intents.retrieve(intent.id).metadata.to_dict() == {
        "cart": "c-1",
        "order": "6735",
    }
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.update(intent.id, params={"amount": 2000})
    assert refused.value.code == "payment_intent_unexpected_state"
    assert "succeeded" in str(refused.value.user_message)
    assert client.v1.payment_intents.retrieve(intent.id).amount == 1500


def test_a_canceled_intent_takes_no_update_at_all(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(params={"amount": 1500, "currency": "usd"})
    client.v1.payment_intents.cancel(intent.id)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.update(intent.id, params={"metadata": {"order": "6735"}})
    assert refused.value.code == "payment_intent_unexpected_state"
    assert client.v1.payment_intents.retrieve(intent.id).metadata.to_dict() == {}


def test_a_charge_update_describes_the_charge_and_a_retrieve_shows_it(
    client: stripe.StripeClient,
) -> None:
    """The order number added after the payment, on the charge itself: the answer is the charge
    as a retrieve shows it, charge.updated tells of it, and the intent keeps its own."""
    intent = _paid(client, 1300, metadata={"cart": "c-1"})
    assert isinstance(intent.latest_charge, str)
    charge_id = intent.latest_charge
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "https://example.com/hooks", "enabled_events": ["charge.updated"]}
    )
    assert endpoint.enabled_events == ["charge.updated"]

    updated = client.v1.charges.update(
        charge_id,
        params={
            "description": "Order 6735",
            "metadata": {"order": "6735", "cart": ""},
            "receipt_email": "receipts@example.com",
            "shipping": {"name": "Jenny Rosen", "address": {"line1": "2 Rue Royale"}},
            "expand": ["refunds"],
        },
    )

    retrieved = client.v1.charges.retrieve(charge_id, params={"expand": ["refunds"]})
    assert updated.to_dict() == retrieved.to_dict()
    assert (retrieved.description, retrieved.metadata.to_dict()) == (
        "Order 6735",
        {"order": "6735"},
    )
    assert retrieved.receipt_email == "receipts@example.com"
    assert retrieved.shipping is not None
    assert retrieved.shipping.name == "Jenny Rosen"
    assert (retrieved.status, retrieved.amount_captured) == ("succeeded", 1300)
    [event] = client.v1.events.list(params={"type": "charge.updated"}).data
    assert event.data.object["id"] == charge_id
    assert event.data.previous_attributes is not None
    assert event.data.previous_attributes["description"] is None
    kept = client.v1.payment_intents.retrieve(intent.id)
    assert (kept.description, kept.metadata.to_dict()) == (None, {"cart": "c-1"})


def test_a_charge_update_clears_what_it_is_given_empty(client: stripe.StripeClient) -> None:
    intent = _paid(
        client,
        1400,
        description="Order 6735",
        receipt_email="receipts@example.com",
        metadata={"order": "6735"},
        shipping={"name": "Jenny Rosen", "address": {"line1": "2 Rue Royale"}},
    )
    assert isinstance(intent.latest_charge, str)
    # The SDK's types know no empty shipping, which Stripe's wire format takes as "clear it".
    emptied: Any = {"description": "", "receipt_email": "", "shipping": "", "metadata": ""}
    cleared = client.v1.charges.update(intent.latest_charge, params=emptied)
    assert (cleared.description, cleared.receipt_email, cleared.shipping) == (None, None, None)
    assert cleared.metadata.to_dict() == {}


def test_a_charge_update_with_a_malformed_receipt_email_is_refused_naming_it(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(client, 1500, receipt_email="receipts@example.com")
    assert isinstance(intent.latest_charge, str)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.charges.update(intent.latest_charge, params={"receipt_email": "jenny@"})
    assert refused.value.http_status == 400
    assert (refused.value.code, refused.value.param) == ("email_invalid", "receipt_email")
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.receipt_email == "receipts@example.com"


def test_a_charge_description_is_held_to_the_intents_limit(client: stripe.StripeClient) -> None:
    intent = _paid(client, 1500)
    assert isinstance(intent.latest_charge, str)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.charges.update(intent.latest_charge, params={"description": "d" * 1001})
    assert (refused.value.http_status, refused.value.param) == (400, "description")
    assert client.v1.charges.retrieve(intent.latest_charge).description is None


def test_a_charge_update_refuses_the_parameters_remit_does_not_take(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(client, 1600)
    assert isinstance(intent.latest_charge, str)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.charges.update(intent.latest_charge, params={"transfer_group": "order-6735"})
    assert refused.value.http_status == 400
    assert refused.value.user_message == "Received unknown parameter: transfer_group"


def test_a_charge_update_retried_with_its_key_replays_and_other_parameters_are_refused(
    client: stripe.StripeClient,
) -> None:
    intent = _paid(client, 1700)
    assert isinstance(intent.latest_charge, str)
    options: Any = {"idempotency_key": "charge-update-6735"}
    first = client.v1.charges.update(
        intent.latest_charge, params={"description": "Order 6735"}, options=options
    )
    again = client.v1.charges.update(
        intent.latest_charge, params={"description": "Order 6735"}, options=options
    )
    assert again.to_dict() == first.to_dict()
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.charges.update(
            intent.latest_charge, params={"description": "Order 6736"}, options=options
        )
    assert client.v1.charges.retrieve(intent.latest_charge).description == "Order 6735"


def _declined(client: stripe.StripeClient, **params: Any) -> stripe.ErrorObject:
    """The error of a payment pm_card_visa_chargeDeclined (4000 0000 0000 0002) declines."""
    with pytest.raises(stripe.CardError) as raised:
        _paid(client, 1500, payment_method="pm_card_visa_chargeDeclined", **params)
    assert raised.value.error is not None
    return raised.value.error


def _declined_card(method: object) -> tuple[str, str]:
    """The brand and last4 of a payment error's payment method, which must be the object."""
    assert isinstance(method, stripe.PaymentMethod)
    assert method.card is not None
    return method.card.brand, method.card.last4


def test_a_decline_shows_the_payment_method_object_in_the_error_and_its_intent(
    client: stripe.StripeClient,
) -> None:
    error = _declined(client)
    assert _declined_card(error.payment_method) == ("visa", "0002")
    assert isinstance(error.payment_method, stripe.PaymentMethod)
    assert error.payment_method.id.startswith("pm_")
    assert error.payment_intent is not None
    failed = error.payment_intent.last_payment_error
    assert failed is not None
    assert _declined_card(failed.payment_method) == ("visa", "0002")
    assert isinstance(failed.payment_method, stripe.PaymentMethod)
    assert failed.payment_method.id == error.payment_method.id


def test_a_declined_intent_shows_its_payment_method_object_on_retrieve_cancel_and_list(
    client: stripe.StripeClient,
) -> None:
    """(An update clears the decline: see test_an_update_clears_the_last_payment_error.)"""
    first, second = _declined(client), _declined(client)
    assert first.payment_intent is not None
    assert second.payment_intent is not None
    intent_id = first.payment_intent.id
    retrieved = client.v1.payment_intents.retrieve(intent_id)
    # An account pinned before 2019-02-11 sees it as well (Stripe never showed it as an id).
    old = client.v1.payment_intents.retrieve(intent_id, options={"stripe_version": "2018-11-08"})
    canceled = client.v1.payment_intents.cancel(second.payment_intent.id)
    for intent in (retrieved, old, canceled):
        assert intent.last_payment_error is not None
        assert _declined_card(intent.last_payment_error.payment_method) == ("visa", "0002")
    # Every item of every page an auto-paged list walks.
    listed = list(client.v1.payment_intents.list(params={"limit": 1}).auto_paging_iter())
    assert [intent.id for intent in listed] == [second.payment_intent.id, intent_id]
    for intent in listed:
        assert intent.last_payment_error is not None
        assert _declined_card(intent.last_payment_error.payment_method) == ("visa", "0002")


def test_a_create_leaves_out_metadata_keys_given_empty(
    client: stripe.StripeClient, account: TestAccount, platform: RunningPlatform
) -> None:
    """An empty value names a key to unset; a new object has none to unset."""
    body = {"metadata[order]": "A-1", "metadata[note]": ""}
    headers = {"Authorization": f"Bearer {account.secret_key}"}
    for path, extra in (
        ("/v1/payment_intents", {"amount": "1000", "currency": "usd"}),
        ("/v1/customers", {}),
    ):
        response = httpx.post(platform.api_base + path, data={**extra, **body}, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["metadata"] == {"order": "A-1"}


def _network_transaction_id(charge: stripe.Charge) -> str | None:
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    return charge.payment_method_details.card.network_transaction_id


def test_a_charge_that_reached_the_network_shows_its_network_transaction_id(
    client: stripe.StripeClient, platform: RunningPlatform, account: TestAccount
) -> None:
    """`payment_method_details.card.network_transaction_id` is the network's id of the
    transaction, as its authorization answer gave it: approved or declined by the network
    alike. A charge never sent to the network (blocked before it) has none. gRPC callers read
    the same value, and so does an account pinned to an old version (Stripe added the field
    without a version change)."""
    paid = client.v1.charges.retrieve(str(_paid(client, 1200).latest_charge))
    approved = _network_transaction_id(paid)
    assert approved is not None
    assert approved.isdigit()
    declined = client.v1.charges.retrieve(str(_declined(client).charge))
    assert declined.outcome is not None
    assert declined.outcome.network_status == "declined_by_network"
    assert _network_transaction_id(declined) not in (None, approved)
    with pytest.raises(stripe.CardError) as blocked:
        _paid(client, 1200, payment_method="pm_card_chargeDeclinedFraudulent")
    assert blocked.value.error is not None
    never_sent = client.v1.charges.retrieve(str(blocked.value.error.charge))
    assert never_sent.outcome is not None
    assert never_sent.outcome.network_status == "not_sent_to_network"
    assert _network_transaction_id(never_sent) is None

    old = client.v1.charges.retrieve(paid.id, options={"stripe_version": "2015-01-26"})
    assert _network_transaction_id(old) == approved
    metadata = (("remit-account-id", account.id),)
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        over_grpc = {
            charge_id: stub.GetCharge(
                payments_pb2.GetChargeRequest(id=charge_id), metadata=metadata, timeout=10
            ).charge.payment_method_details.card
            for charge_id in (paid.id, declined.id, never_sent.id)
        }
    assert over_grpc[paid.id].network_transaction_id == approved
    assert over_grpc[declined.id].network_transaction_id == _network_transaction_id(declined)
    assert not over_grpc[never_sent.id].HasField("network_transaction_id")


def test_the_search_remit_does_not_serve_is_an_unrecognized_url(
    client: stripe.StripeClient,
) -> None:
    """Not "No such payment_intent: 'search'", which would say the endpoint exists."""
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.search(params={"query": "status:'succeeded'"})
    assert refused.value.http_status == 404
    assert str(refused.value.user_message).startswith(
        "Unrecognized request URL (GET: /v1/payment_intents/search)."
    )
