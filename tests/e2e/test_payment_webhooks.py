"""Payments and webhooks together: each payment change reaches a real HTTP endpoint as the
events Stripe sends for it, signed so that `stripe.Webhook.construct_event` verifies them, and
each event names the request (and idempotency key) that caused it."""

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar

import pytest
import stripe

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform
from tests.support.receiver import Receiver

pytestmark = pytest.mark.anyio

RETURN_URL = "https://shop.example/return"
T = TypeVar("T")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    await running.start()
    yield running
    await running.stop()


async def sdk(call: Callable[[], T]) -> T:
    """An SDK call off the event loop, so the receiver keeps answering meanwhile."""
    return await asyncio.to_thread(call)


def subscribe(client: stripe.StripeClient, receiver: Receiver, **params: Any) -> str:
    wanted: Any = {"url": receiver.url, "enabled_events": ["*"], **params}
    endpoint = client.v1.webhook_endpoints.create(params=wanted)
    assert endpoint.secret is not None
    return endpoint.secret


async def delivered(
    receiver: Receiver, secret: str, count: int, timeout_s: float = 30.0
) -> dict[str, stripe.Event]:
    """The first `count` deliveries, each verified with the endpoint's secret, by type."""
    await receiver.wait_for(count, timeout_s=timeout_s)
    await asyncio.sleep(0.3)  # anything beyond `count` would be a surprise: let it arrive
    events = [
        stripe.Webhook.construct_event(item.body.decode(), item.headers["Stripe-Signature"], secret)
        for item in receiver.received
    ]
    by_type = {event.type: event for event in events}
    assert len(by_type) == len(events), [event.type for event in events]
    return by_type


def previous(event: stripe.Event) -> dict[str, Any]:
    attributes = event.data.previous_attributes
    assert attributes is not None
    return attributes.to_dict()


def request_of(event: stripe.Event) -> tuple[str | None, str | None]:
    request = event.request
    assert request is not None
    return request.id, request.idempotency_key


async def test_a_confirmed_payment_sends_created_succeeded_and_charge_succeeded(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    secret = subscribe(client, receiver)
    intent = await sdk(
        lambda: client.v1.payment_intents.create(
            params={"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "return_url": RETURN_URL},
            options={"idempotency_key": "order-77"},
        )
    )  # fmt: skip
    assert intent.last_response is not None
    request_id = intent.last_response.request_id

    events = await delivered(receiver, secret, 3)
    assert set(events) == {
        "payment_intent.created",
        "payment_intent.succeeded",
        "charge.succeeded",
    }
    for event in events.values():
        assert request_of(event) == (request_id, "order-77")
        assert event.api_version == "2026-10-28.endive"
        assert event.livemode is False
    created = events["payment_intent.created"].data.object
    succeeded = events["payment_intent.succeeded"].data
    assert created["id"] == succeeded.object["id"] == intent.id
    assert succeeded.object["status"] == "succeeded"
    assert succeeded.object["amount_received"] == 2500
    # The authorization is made while the intent is `processing` (a recovery point).
    assert previous(events["payment_intent.succeeded"])["status"] == "processing"
    charge = events["charge.succeeded"].data.object
    assert (charge["id"], charge["payment_intent"]) == (intent.latest_charge, intent.id)
    assert (charge["paid"], charge["captured"], charge["amount"]) == (True, True, 2500)

    # The events API returns the same events, newest first.
    listed = await sdk(lambda: client.v1.events.list(params={"limit": 10}))
    assert {event.id for event in listed.data} == {event.id for event in events.values()}
    assert listed.data[-1].type == "payment_intent.created"


async def test_a_decline_sends_payment_failed_and_charge_failed(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    secret = subscribe(client, receiver)

    def decline() -> stripe.CardError:
        try:
            client.v1.payment_intents.create(
                params={"amount": 1500, "currency": "usd", "confirm": True,
                        "payment_method": "pm_card_visa_chargeDeclined", "return_url": RETURN_URL},
                options={"idempotency_key": "order-declined"},
            )  # fmt: skip
        except stripe.CardError as error:
            return error
        raise AssertionError("the card was not declined")

    error = await sdk(decline)
    events = await delivered(receiver, secret, 3)
    assert set(events) == {
        "payment_intent.created",
        "payment_intent.payment_failed",
        "charge.failed",
    }
    for event in events.values():
        assert request_of(event) == (error.request_id, "order-declined")
    failed = events["payment_intent.payment_failed"].data.object
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "card_declined"
    assert failed["last_payment_error"]["decline_code"] == "generic_decline"
    charge = events["charge.failed"].data.object
    assert (charge["status"], charge["paid"], charge["failure_code"]) == (
        "failed",
        False,
        "card_declined",
    )
    assert charge["payment_intent"] == failed["id"]


def _failed_attempt(client: stripe.StripeClient, key: str, **params: Any) -> stripe.CardError:
    """A confirmed payment of 1500 usd that fails with a card error."""
    payment: Any = {"amount": 1500, "currency": "usd", "confirm": True, "return_url": RETURN_URL,
                    **params}  # fmt: skip
    try:
        client.v1.payment_intents.create(params=payment, options={"idempotency_key": key})
    except stripe.CardError as error:
        return error
    raise AssertionError("the payment did not fail")


def _add_rule(client: stripe.StripeClient, rule: str) -> None:
    client.raw_request("post", "/v1/radar/rules", rule=rule)


async def _charge_failed_of(
    client: stripe.StripeClient, receiver: Receiver, key: str, **params: Any
) -> tuple[stripe.CardError, dict[str, Any]]:
    """The error of a failing payment and the charge its `charge.failed` webhook carries,
    delivered with payment_intent.created and payment_intent.payment_failed."""
    secret = subscribe(client, receiver)
    error = await sdk(lambda: _failed_attempt(client, key, **params))
    events = await delivered(receiver, secret, 3)
    assert set(events) == {
        "payment_intent.created",
        "payment_intent.payment_failed",
        "charge.failed",
    }
    for event in events.values():
        assert request_of(event) == (error.request_id, key)
    charge: dict[str, Any] = events["charge.failed"].data.object.to_dict()
    assert error.error is not None
    assert (charge["id"], charge["status"]) == (error.error.charge, "failed")
    return error, charge


def _outcome(charge: dict[str, Any]) -> tuple[str, str, str | None]:
    outcome = charge["outcome"]
    return outcome["type"], outcome["network_status"], outcome["reason"]


async def test_a_radar_block_sends_charge_failed_with_a_blocked_outcome(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    """Stripe creates a failed charge for a payment Radar blocks, and tells of it."""
    error, charge = await _charge_failed_of(
        client, receiver, "order-blocked", payment_method="pm_card_chargeDeclinedFraudulent"
    )
    assert (error.code, charge["failure_code"]) == ("card_declined", "card_declined")
    assert _outcome(charge) == ("blocked", "not_sent_to_network", "highest_risk_level")


async def test_an_issuer_asking_for_authentication_sends_charge_failed_when_no_challenge_may_follow(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    """No challenge may follow the issuer's soft decline: the payment fails as Stripe's does,
    with a failed charge the card error names."""
    error, charge = await _charge_failed_of(
        client,
        receiver,
        "order-no-challenge",
        payment_method="pm_card_authenticationRequired",
        error_on_requires_action=True,
        automatic_payment_methods={"enabled": False},
    )
    assert (error.code, charge["failure_code"]) == (
        "authentication_required",
        "authentication_required",
    )
    assert _outcome(charge) == ("issuer_declined", "declined_by_network", "authentication_required")


@pytest.mark.parametrize(
    ("asked_by", "params"),
    [
        (
            "a Request 3D Secure rule",
            {"error_on_requires_action": True, "automatic_payment_methods": {"enabled": False}},
        ),
        (
            "the merchant",
            {
                "off_session": True,
                "payment_method_options": {"card": {"request_three_d_secure": "any"}},
            },
        ),
    ],
)
async def test_3ds_asked_for_before_the_network_without_a_challenge_sends_charge_failed(
    client: stripe.StripeClient, receiver: Receiver, asked_by: str, params: dict[str, Any]
) -> None:
    """3-D Secure was to come before the network, and this payment could offer no challenge:
    it fails with `authentication_required` and a failed charge, which says that the issuer
    never saw the payment rather than that it declined it."""
    if asked_by == "a Request 3D Secure rule":
        await sdk(lambda: _add_rule(client, "Request 3D Secure if :amount_in_usd: > 10"))
    error, charge = await _charge_failed_of(
        client, receiver, "order-3ds-first", payment_method="pm_card_visa", **params
    )
    assert (error.code, charge["failure_code"]) == (
        "authentication_required",
        "authentication_required",
    )
    assert _outcome(charge) == ("invalid", "not_sent_to_network", None)
    assert charge["outcome"]["seller_message"] == (
        "This payment was not sent to the card network: it needed 3-D Secure authentication, "
        "which could not be asked of the cardholder for this payment."
    )


async def test_a_manual_capture_sends_amount_capturable_updated_then_charge_captured(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    secret = subscribe(client, receiver)
    intent = await sdk(
        lambda: client.v1.payment_intents.create(
            params={"amount": 4000, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "return_url": RETURN_URL, "capture_method": "manual"}
        )
    )  # fmt: skip
    authorized = await delivered(receiver, secret, 3)
    assert set(authorized) == {
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "charge.succeeded",
    }
    assert (
        authorized["payment_intent.amount_capturable_updated"].data.object["amount_capturable"]
        == 4000
    )
    assert authorized["charge.succeeded"].data.object["captured"] is False

    receiver.received.clear()
    captured = await sdk(
        lambda: client.v1.payment_intents.capture(
            intent.id, params={"amount_to_capture": 3000}, options={"idempotency_key": "cap-1"}
        )
    )
    assert captured.last_response is not None
    events = await delivered(receiver, secret, 2)
    assert set(events) == {"charge.captured", "payment_intent.succeeded"}
    charge_captured = events["charge.captured"]
    assert request_of(charge_captured) == (captured.last_response.request_id, "cap-1")
    assert charge_captured.data.object["amount_captured"] == 3000
    assert charge_captured.data.object["captured"] is True
    assert previous(charge_captured)["captured"] is False
    assert events["payment_intent.succeeded"].data.object["amount_received"] == 3000


async def test_a_refund_sends_charge_refunded_refund_created_and_both_refund_updates(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    intent = await sdk(
        lambda: client.v1.payment_intents.create(
            params={"amount": 1800, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "return_url": RETURN_URL}
        )
    )  # fmt: skip
    # Subscribed only now: the endpoint sees the refund's events and nothing before them.
    secret = subscribe(client, receiver)
    refund = await sdk(
        lambda: client.v1.refunds.create(
            params={"payment_intent": intent.id, "amount": 500},
            options={"idempotency_key": "refund-1"},
        )
    )
    assert refund.last_response is not None
    events = await delivered(receiver, secret, 4)
    assert set(events) == {
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "charge.refund.updated",
    }
    for event in events.values():
        assert request_of(event) == (refund.last_response.request_id, "refund-1")
    created = events["refund.created"].data.object
    assert (created["id"], created["amount"], created["charge"]) == (
        refund.id,
        500,
        intent.latest_charge,
    )
    # Created before the network is asked, then updated with the outcome.
    assert created["status"] == "pending"
    assert events["refund.updated"].data.object["status"] == "succeeded"
    assert events["charge.refund.updated"].data.to_dict() == events["refund.updated"].data.to_dict()
    refunded = events["charge.refunded"].data
    assert refunded.object["amount_refunded"] == 500
    assert refunded.object["refunded"] is False  # a partial refund
    assert previous(events["charge.refunded"])["amount_refunded"] == 0


async def test_a_merchants_update_of_a_charge_or_a_refund_names_its_request_in_the_event(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    intent = await sdk(
        lambda: client.v1.payment_intents.create(
            params={"amount": 1300, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "return_url": RETURN_URL}
        )
    )  # fmt: skip
    refund = await sdk(lambda: client.v1.refunds.create(params={"payment_intent": intent.id}))
    secret = subscribe(client, receiver, enabled_events=["charge.updated", "refund.updated"])
    charge = await sdk(
        lambda: client.v1.charges.update(
            str(intent.latest_charge),
            params={"description": "order 12"},
            options={"idempotency_key": "describe-12"},
        )
    )
    updated = await sdk(
        lambda: client.v1.refunds.update(
            refund.id, params={"metadata": {"ticket": "T-12"}}, options={"idempotency_key": "t-12"}
        )
    )
    assert charge.last_response is not None
    assert updated.last_response is not None

    events = await delivered(receiver, secret, 2)
    assert request_of(events["charge.updated"]) == (charge.last_response.request_id, "describe-12")
    assert request_of(events["refund.updated"]) == (updated.last_response.request_id, "t-12")


async def test_an_endpoint_may_subscribe_to_charge_refund_updated_alone_at_its_own_version(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    """Stripe's charge.refund.updated, which carries the refund, for a change of its metadata:
    rendered at the endpoint's version (before 2017-05-25 an event's `request` is the id)."""
    intent = await sdk(
        lambda: client.v1.payment_intents.create(
            params={"amount": 1200, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "return_url": RETURN_URL}
        )
    )  # fmt: skip
    refund = await sdk(lambda: client.v1.refunds.create(params={"payment_intent": intent.id}))
    secret = subscribe(
        client, receiver, enabled_events=["charge.refund.updated"], api_version="2017-02-14"
    )
    updated = await sdk(
        lambda: client.v1.refunds.update(refund.id, params={"metadata": {"ticket": "T-9"}})
    )
    assert updated.last_response is not None

    events = await delivered(receiver, secret, 1)
    event = events["charge.refund.updated"]
    assert event.api_version == "2017-02-14"
    assert event["request"] == updated.last_response.request_id
    assert (event.data.object["object"], event.data.object["id"]) == ("refund", refund.id)
    assert event.data.object["metadata"].to_dict() == {"ticket": "T-9"}
    assert previous(event) == {"metadata": {"ticket": None}}  # a key added (since 2015-01-26)

    listed = await sdk(lambda: client.v1.events.list(params={"type": "charge.refund.*"}))
    assert [(e.id, e.type) for e in listed.data] == [
        (event.id, "charge.refund.updated"),
        (listed.data[1].id, "charge.refund.updated"),  # the refund's outcome
    ]
    assert listed.data[1].data.object["status"] == "succeeded"


async def test_endpoints_receive_only_the_events_they_enabled(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    secret = subscribe(client, receiver, enabled_events=["charge.succeeded"])
    await sdk(
        lambda: client.v1.payment_intents.create(
            params={"amount": 900, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "return_url": RETURN_URL}
        )
    )  # fmt: skip
    events = await delivered(receiver, secret, 1)
    assert list(events) == ["charge.succeeded"]


def remit_trigger(platform: RunningPlatform, account: TestAccount, event_type: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-m", "remit", "trigger", event_type, "--api-key", account.secret_key],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


@pytest.mark.parametrize(
    "event_type",
    [
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "charge.refunded",
        "charge.refund.updated",
        "charge.updated",
        "payment_intent.canceled",
        "payment_method.detached",
        "payment_method.updated",
        "customer.updated",
    ],
)
async def test_remit_trigger_fires_the_event_through_real_objects(
    platform: RunningPlatform,
    client: stripe.StripeClient,
    account: TestAccount,
    receiver: Receiver,
    event_type: str,
) -> None:
    secret = subscribe(client, receiver, enabled_events=[event_type])
    output = await asyncio.to_thread(remit_trigger, platform, account, event_type)
    assert "Trigger succeeded" in output
    events = await delivered(receiver, secret, 1)
    [event] = events.values()
    assert event.type == event_type
    # The object in the event is a real one the account can read back.
    fetched = await sdk(lambda: client.v1.events.retrieve(event.id))
    assert fetched.data.object["id"] == event.data.object["id"]


def _declined_card(intent: Any) -> tuple[str, str, str]:
    """The object, brand and last4 of the payment method an intent's last error shows."""
    method = intent["last_payment_error"]["payment_method"]
    assert not isinstance(method, str), method
    return method["object"], method["card"]["brand"], method["card"]["last4"]


async def test_payment_failed_shows_the_payment_method_object_in_the_webhook_and_the_events_api(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    secret = subscribe(client, receiver, enabled_events=["payment_intent.payment_failed"])

    def decline() -> stripe.CardError:
        try:
            client.v1.payment_intents.create(
                params={"amount": 1500, "currency": "usd", "confirm": True,
                        "payment_method": "pm_card_visa_chargeDeclined", "return_url": RETURN_URL}
            )  # fmt: skip
        except stripe.CardError as error:
            return error
        raise AssertionError("the card was not declined")

    error = await sdk(decline)
    assert error.error is not None
    assert isinstance(error.error.payment_method, stripe.PaymentMethod)
    events = await delivered(receiver, secret, 1)
    delivered_intent = events["payment_intent.payment_failed"].data.object
    assert _declined_card(delivered_intent) == ("payment_method", "visa", "0002")
    assert delivered_intent["last_payment_error"]["payment_method"]["id"] == (
        error.error.payment_method.id
    )

    listed = await sdk(
        lambda: client.v1.events.list(params={"type": "payment_intent.payment_failed"})
    )
    [listed_event] = listed.data
    assert _declined_card(listed_event.data.object) == ("payment_method", "visa", "0002")


async def test_deleting_a_customer_sends_payment_method_detached_for_each_card_it_held(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    """A merchant keeping saved cards in sync from webhooks drops every card of a deleted
    customer: each gets its payment_method.detached, as an explicit detach sends it."""
    secret = subscribe(
        client, receiver, enabled_events=["payment_method.detached", "customer.deleted"]
    )
    customer = await sdk(lambda: client.v1.customers.create())
    first, second, third = [
        await sdk(
            lambda: client.v1.payment_methods.attach(
                "pm_card_visa", params={"customer": customer.id}
            )
        )
        for _ in range(3)
    ]
    await sdk(lambda: client.v1.payment_methods.detach(first.id))
    deleted = await sdk(lambda: client.v1.customers.delete(customer.id))
    assert deleted.deleted is True

    await receiver.wait_for(4, timeout_s=30.0)
    await asyncio.sleep(0.3)  # anything beyond these four would be a surprise: let it arrive
    events = [
        stripe.Webhook.construct_event(item.body.decode(), item.headers["Stripe-Signature"], secret)
        for item in receiver.received
    ]
    detached = [event for event in events if event.type == "payment_method.detached"]
    assert sorted(event.data.object["id"] for event in detached) == sorted(
        [first.id, second.id, third.id]
    )
    for event in detached:
        assert event.data.object["customer"] is None
        assert previous(event) == {"customer": customer.id}
    assert [event.data.object["id"] for event in events if event.type == "customer.deleted"] == [
        customer.id
    ]
    for method in (second, third):
        retrieved = await sdk(partial(client.v1.payment_methods.retrieve, method.id))
        assert retrieved.customer is None

    # The events API lists them, newest first: the deletion after the detaches it made.
    def listed() -> list[stripe.Event]:
        return client.v1.events.list(params={"limit": 10}).data

    newest_first = await sdk(listed)
    assert [event.type for event in newest_first] == [
        "customer.deleted",
        "payment_method.detached",
        "payment_method.detached",
        "payment_method.detached",
        *(["payment_method.attached"] * 3),
        "customer.created",
    ]
    # Every delivery succeeded, so no event waits for a webhook any more (the worker records
    # a success just after the receiver answers).
    for _ in range(100):
        if all(event.pending_webhooks == 0 for event in newest_first[:4]):
            break
        await asyncio.sleep(0.05)
        newest_first = await sdk(listed)
    assert [event.pending_webhooks for event in newest_first[:4]] == [0, 0, 0, 0]

    # A delete again is a 404 (DELETE takes no idempotency key) and sends nothing.
    with pytest.raises(stripe.InvalidRequestError) as again:
        await sdk(lambda: client.v1.customers.delete(customer.id))
    assert again.value.http_status == 404
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 4
    assert [event.id for event in await sdk(listed)] == [event.id for event in newest_first]
