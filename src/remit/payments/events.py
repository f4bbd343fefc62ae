"""Stripe's events for payment changes, recorded in the transaction of the change itself.

The hooks compare the object before and after a change and record the events Stripe sends for
it (payment_intent.succeeded, charge.refunded, charge.updated, ...), with `previous_attributes`
holding the old values of the top-level fields that changed.
"""

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import Clock, SystemClock
from remit.core.jsonview import JsonObject, to_json
from remit.payments.charges import Charge, ChargeStatus, Refund
from remit.payments.domain import PaymentIntent, Status
from remit.payments.grpc import charge_message, payment_intent_message, refund_message
from remit.payments.never_authenticated import ended_unauthenticated
from remit.payments.requests import current_request
from remit.webhooks.outbox import record_event

_INTENT_EVENTS = {
    Status.REQUIRES_ACTION: "payment_intent.requires_action",
    Status.SUCCEEDED: "payment_intent.succeeded",
    Status.CANCELED: "payment_intent.canceled",
    Status.REQUIRES_CAPTURE: "payment_intent.amount_capturable_updated",
}


# What a merchant's update of a charge changes (POST /v1/charges/{id}): Stripe tells of it with
# charge.updated, apart from the events of the charge's money (captured, refunded...).
_DESCRIPTIVE_CHARGE_FIELDS = ("description", "metadata", "receipt_email", "shipping")


def _redescribed(before: Charge, after: Charge) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in _DESCRIPTIVE_CHARGE_FIELDS)


def _failed_the_intent(charge: Charge, intent: PaymentIntent) -> bool:
    """Whether the failed charge is its intent's failed payment (declined: the intent back in
    `requires_payment_method` with it), which Stripe tells of with charge.failed. An attempt
    that ended before the network for want of 3-D Secure is not, whether its challenge failed
    or the intent left it behind (canceled, updated, confirmed again:
    `remit.payments.abandoned_attempts`): Stripe has no charge for a payment whose
    authentication was never completed, so it sends no event for one
    (`remit.payments.never_authenticated`); `payment_intent.payment_failed` tells of it."""
    return (
        intent.status is Status.REQUIRES_PAYMENT_METHOD
        and intent.latest_charge_id == charge.id
        and not ended_unauthenticated(charge.authentication)
    )


def changed_attributes(before: JsonObject, after: JsonObject) -> JsonObject:
    """Old values of the top-level fields that differ (Stripe's `previous_attributes`)."""
    return {key: before.get(key) for key, value in after.items() if before.get(key) != value}


def intent_json(intent: PaymentIntent) -> JsonObject:
    return to_json(payment_intent_message(intent))


def charge_json(charge: Charge) -> JsonObject:
    body = to_json(charge_message(charge))
    body.pop("refunds", None)  # not included unless expanded, since 2022-11-15
    return body


class PaymentEvents:
    """PaymentHooks that record events through the webhooks outbox."""

    def __init__(self, clock: Clock | None = None, record: Callable[..., object] = record_event):
        self._clock = clock or SystemClock()
        self._record = record

    async def _emit(
        self,
        db: AsyncConnection,
        account_id: str,
        event_type: str,
        data_object: JsonObject,
        previous: JsonObject | None = None,
    ) -> None:
        request = current_request.get()
        await self._record(  # type: ignore[misc]
            db,
            account_id=account_id,
            type=event_type,
            data_object=data_object,
            now=self._now(),
            previous_attributes=previous or None,
            request_id=None if request is None else request.request_id,
            idempotency_key=None if request is None else request.idempotency_key,
        )

    def _now(self) -> datetime:
        return self._clock.now()

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        after_json = intent_json(after)
        if before is None:
            await self._emit(db, after.account_id, "payment_intent.created", after_json)
            if after.status is Status.PROCESSING:
                return
        if before is not None and before.status is after.status:
            return
        previous = None if before is None else changed_attributes(intent_json(before), after_json)
        event = _INTENT_EVENTS.get(after.status)
        if after.status is Status.REQUIRES_PAYMENT_METHOD and after.last_payment_error:
            event = "payment_intent.payment_failed"
        if event is not None:
            await self._emit(db, after.account_id, event, after_json, previous)

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        if before is None:
            return  # a pending attempt: its outcome is the event
        after_json = charge_json(after)
        if _redescribed(before, after):
            previous = changed_attributes(charge_json(before), after_json)
            await self._emit(db, after.account_id, "charge.updated", after_json, previous)
        if before.status is ChargeStatus.PENDING and after.status is ChargeStatus.SUCCEEDED:
            await self._emit(db, after.account_id, "charge.succeeded", after_json)
            if after.captured:
                return
        if (
            before.status is ChargeStatus.PENDING
            and after.status is ChargeStatus.FAILED
            and _failed_the_intent(after, intent)
        ):
            await self._emit(db, after.account_id, "charge.failed", after_json)
        captured = (
            not before.captured and after.captured and before.status is ChargeStatus.SUCCEEDED
        )
        refunded = after.amount_refunded_minor > before.amount_refunded_minor and after.captured
        if not (captured or refunded):
            return
        # Rendered only for the events that carry it: most changes (an attempt's outcome) don't.
        previous = changed_attributes(charge_json(before), after_json)
        if captured:
            await self._emit(db, after.account_id, "charge.captured", after_json, previous)
        if refunded:
            await self._emit(db, after.account_id, "charge.refunded", after_json, previous)

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        after_json = to_json(refund_message(after))
        if before is None:
            await self._emit(db, after.account_id, "refund.created", after_json)
            return
        previous = changed_attributes(to_json(refund_message(before)), after_json)
        if previous:
            await self._emit(db, after.account_id, "refund.updated", after_json, previous)
