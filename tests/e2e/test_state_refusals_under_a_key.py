"""A PaymentIntent request refused by the intent's state, or a refund refused by its
charge's, is answered for good under its idempotency key, as Stripe stores any answer once the
endpoint's work has begun: a retry with the key replays the refusal instead of doing the work
in a world changed since. Validation failures are not stored: the client may fix the request
and send it again."""

import pytest
import stripe
from stripe import RequestOptions

RETURN_URL = "https://shop.example/return"


def _replayed(error: stripe.StripeError) -> bool:
    return error.headers is not None and error.headers.get("Idempotent-Replayed") == "true"


def test_a_capture_refused_before_authorization_is_replayed_after_it(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
        }
    )
    key: RequestOptions = {"idempotency_key": f"capture-{intent.id}"}
    with pytest.raises(stripe.InvalidRequestError) as first:
        client.v1.payment_intents.capture(intent.id, options=key)
    assert first.value.code == "payment_intent_unexpected_state"
    assert not _replayed(first.value)

    confirmed = client.v1.payment_intents.confirm(intent.id, params={"return_url": RETURN_URL})
    assert confirmed.status == "requires_capture"
    with pytest.raises(stripe.InvalidRequestError) as retried:
        client.v1.payment_intents.capture(intent.id, options=key)
    assert retried.value.code == "payment_intent_unexpected_state"
    assert _replayed(retried.value)
    assert retried.value.error is not None
    assert retried.value.error.payment_intent is not None
    assert retried.value.error.payment_intent.status == "requires_confirmation"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_an_update_refused_by_the_status_is_replayed(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    key: RequestOptions = {"idempotency_key": f"update-{intent.id}"}
    for attempt in range(2):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.payment_intents.update(intent.id, params={"amount": 2500}, options=key)
        assert refused.value.code == "payment_intent_unexpected_state"
        assert _replayed(refused.value) is (attempt == 1)


def test_a_confirm_refused_by_the_status_is_replayed(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    key: RequestOptions = {"idempotency_key": f"confirm-{intent.id}"}
    for attempt in range(2):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.payment_intents.confirm(intent.id, options=key)
        assert refused.value.code == "payment_intent_unexpected_state"
        assert _replayed(refused.value) is (attempt == 1)


def test_a_capture_of_more_than_capturable_is_replayed(client: stripe.StripeClient) -> None:
    """More than the intent holds capturable is a refusal by its state, as a refund of more
    than is left of its charge is: the same 400 on the retry, replayed."""
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            "capture_method": "manual",
        }
    )
    key: RequestOptions = {"idempotency_key": f"too-much-{intent.id}"}
    answers = []
    for attempt in range(2):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.payment_intents.capture(
                intent.id, params={"amount_to_capture": 2500}, options=key
            )
        assert (refused.value.http_status, refused.value.code) == (400, "amount_too_large")
        assert refused.value.error is not None
        assert (refused.value.error.type, refused.value.error.param) == (
            "invalid_request_error",
            "amount_to_capture",
        )
        assert refused.value.error.payment_intent is not None
        assert refused.value.error.payment_intent.status == "requires_capture"
        assert _replayed(refused.value) is (attempt == 1)
        answers.append(refused.value.json_body)
    assert answers[0] == answers[1]
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_a_capture_of_nothing_is_validation_and_leaves_the_key_free(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            "capture_method": "manual",
        }
    )
    key: RequestOptions = {"idempotency_key": f"nothing-{intent.id}"}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 0}, options=key)
    assert refused.value.error is not None
    assert refused.value.error.param == "amount_to_capture"
    assert not _replayed(refused.value)

    fixed = client.v1.payment_intents.capture(
        intent.id, params={"amount_to_capture": 1500}, options=key
    )

    assert (fixed.status, fixed.amount_received) == ("succeeded", 1500)


def test_a_refund_refused_before_the_capture_is_replayed_after_it(
    client: stripe.StripeClient,
) -> None:
    """The charge's state refused the refund: its retry after the capture replays the same
    400, rather than refunding the payment the first request was told could not be."""
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
            "capture_method": "manual",
        }
    )
    key: RequestOptions = {"idempotency_key": f"refund-{intent.id}"}
    with pytest.raises(stripe.InvalidRequestError) as first:
        client.v1.refunds.create(params={"payment_intent": intent.id}, options=key)
    assert (first.value.http_status, first.value.code) == (400, "charge_not_refundable")
    assert first.value.error is not None
    assert (first.value.error.type, first.value.error.param) == (
        "invalid_request_error",
        "payment_intent",
    )
    assert not _replayed(first.value)

    assert client.v1.payment_intents.capture(intent.id).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as retried:
        client.v1.refunds.create(params={"payment_intent": intent.id}, options=key)

    assert _replayed(retried.value)
    assert retried.value.http_status == 400
    assert retried.value.json_body == first.value.json_body
    assert client.v1.refunds.list(params={"payment_intent": intent.id}).data == []


def test_a_refund_of_a_charge_refunded_already_names_the_payment_intent_it_was_asked_by(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    client.v1.refunds.create(params={"payment_intent": intent.id})
    key: RequestOptions = {"idempotency_key": f"again-{intent.id}"}
    for attempt in range(2):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.refunds.create(params={"payment_intent": intent.id}, options=key)
        assert (refused.value.code, refused.value.http_status) == ("charge_already_refunded", 400)
        assert refused.value.error is not None
        assert refused.value.error.param == "payment_intent"
        assert _replayed(refused.value) is (attempt == 1)
