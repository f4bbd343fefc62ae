"""Stripe's events for payment changes, recorded in the transaction of the change itself.

The hooks compare the object before and after a change and record the events Stripe sends for
it (payment_intent.succeeded, charge.refunded, charge.updated, ...), with `previous_attributes`
holding the old values of what changed (a changed hash by its changed keys: see
`remit.versioning.previous_attributes`).

Which failed attempts `charge.failed` tells of. This is the one place the rule is written
down; `_tells_of_its_failure` follows it. Stripe creates a charge for every payment it tries to
authorize, and for those it refuses itself before asking the network; it has none for a payment
that never got past 3-D Secure. remit makes the charge when the confirmation starts the attempt,
before any of that is known, so every attempt that fails ends with a failed charge, and the
event follows Stripe's charge:

- Declined by the issuer (`issuer_declined` / `declined_by_network`): `charge.failed`. So is
  the issuer's `authentication_required` soft decline when no challenge may follow it (an
  off-session payment, `error_on_requires_action`).
- Blocked by Radar, by a block rule or for the highest risk level (`blocked` /
  `not_sent_to_network`): `charge.failed`, as Stripe sends for its blocked charges. So is a
  card the acquirer blocks as too risky before the network (`card_declined` / `fraudulent`,
  `blocked` / `not_sent_to_network`, reason `highest_risk_level`).
- 3-D Secure asked for before the network (a Request 3D Secure rule,
  `request_three_d_secure`) where no challenge is possible: `authentication_required`,
  `invalid` / `not_sent_to_network`, and `charge.failed`; Stripe's card error for it names the
  failed charge (`error.charge`).
- A card the vault will not open (`payment_method_unexpected_state`, `invalid` /
  `not_sent_to_network`): `charge.failed`. So is a card number the network refuses before any
  issuer sees it (the acquirer's Luhn check: `incorrect_number`, `invalid` /
  `not_sent_to_network`).
- 3-D Secure started and never got past: the cardholder failed the challenge or answered it too
  late, or passed it with a card detached (or saved to another customer) meanwhile, or the
  intent moved on while the challenge waited or before it confirmed an authenticated attempt
  (`invalid` / `not_sent_to_network`): no `charge.failed`, since Stripe has no charge for it.
  The merchant hears of it from the intent (`payment_intent.payment_failed` with
  `payment_intent_authentication_failure` or the card's refusal, or the intent's own change);
  the charge shows it by its failure code
  (`remit.payments.never_authenticated.stopped_at_authentication`).
"""

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import Clock, SystemClock
from remit.core.jsonview import JsonObject, to_json
from remit.payments.charges import Charge, ChargeStatus, Refund, RefundStatus
from remit.payments.domain import CancellationReason, PaymentIntent, Status
from remit.payments.grpc import charge_message, payment_intent_message, refund_message
from remit.payments.never_authenticated import stopped_at_authentication
from remit.payments.requests import current_request
from remit.versioning.previous_attributes import changed_attributes
from remit.webhooks.outbox import record_event

_INTENT_EVENTS = {
    Status.REQUIRES_ACTION: "payment_intent.requires_action",
    Status.SUCCEEDED: "payment_intent.succeeded",
    Status.CANCELED: "payment_intent.canceled",
    Status.REQUIRES_CAPTURE: "payment_intent.amount_capturable_updated",
}


# Stripe tells of every change of a refund (its outcome, a cancel, new metadata) with both,
# each carrying the refund: an endpoint may subscribe to either.
_REFUND_UPDATED_EVENTS = ("refund.updated", "charge.refund.updated")


# What a merchant's update of a charge changes (POST /v1/charges/{id}): Stripe tells of it with
# charge.updated, apart from the events of the charge's money (captured, refunded...).
_DESCRIPTIVE_CHARGE_FIELDS = ("description", "metadata", "receipt_email", "shipping")


def _redescribed(before: Charge, after: Charge) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in _DESCRIPTIVE_CHARGE_FIELDS)


def _expired(before: Charge, after: Charge, intent: PaymentIntent) -> bool:
    """Whether the charge's authorization has just been released because it was left
    uncaptured too long (Stripe's `charge.expired`), not by a cancel."""
    return (
        not before.authorization_released
        and after.authorization_released
        and intent.cancellation_reason is CancellationReason.EXPIRED
    )


def _tells_of_its_failure(failed: Charge) -> bool:
    """Whether the attempt that just failed gets a `charge.failed`: the module's rule. Decided
    by the charge alone, so every way an attempt can end (the network's answer, the challenge
    page, an intent moving on) is held to the same rule."""
    return not stopped_at_authentication(failed)


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
            and _tells_of_its_failure(after)
        ):
            await self._emit(db, after.account_id, "charge.failed", after_json)
        if _expired(before, after, intent):
            await self._emit(db, after.account_id, "charge.expired", after_json)
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
            for event in _REFUND_UPDATED_EVENTS:
                await self._emit(db, after.account_id, event, after_json, previous)
        if after.status is RefundStatus.FAILED and before.status is not RefundStatus.FAILED:
            # Stripe's own event for a refund that failed, after the updates that show it
            # failing; like refund.created, it carries the refund alone.
            await self._emit(db, after.account_id, "refund.failed", after_json)
