"""Attempts an intent leaves behind end `failed`, never `pending` for good.

A confirmation makes its charge, `pending`, before 3-D Secure (docs/radar.md): the charge waits
with its intent in `requires_action`, and, once authenticated, in `requires_confirmation` when
the intent is confirmed manually. When the intent moves on without that attempt (it is
canceled; an update of its amount, currency, payment method or customer means it must be
confirmed and authenticated again; or it is confirmed again with a new attempt), nothing else
would ever finish the charge. It is finished here, in the transaction of the intent's change,
under the intent's row lock, which every path that could still go on with the attempt takes
too.

No money moves. The payment is sent to the network for authorization only when the intent goes
on with the attempt, to `processing`, and a cancel, an update or a confirmation never starts
from `processing`. (For a card whose issuer asks for authentication, remit's simulated network
answers a first, unauthenticated request with a soft decline, `authentication_required`; that
authorizes nothing either.) So the ledger has nothing to post or release.

What the charge then shows:
- `failure_code`: Stripe's `payment_intent_authentication_failure` while the cardholder had not
  authenticated (what Stripe reports when a cardholder leaves 3-D Secure unfinished, and what
  remit answers for a challenge answered after it expired); `payment_intent_payment_attempt_failed`
  for an authenticated attempt that was never confirmed. `failure_message` says what the intent
  did.
- `outcome`: `invalid` and `not_sent_to_network` (`remit.payments.never_authenticated`): Stripe
  authenticates before it sends a payment to the network, and this payment was never sent for
  authorization. Not `blocked`, which would say that Radar stopped it. The risk level and score
  stay Radar's.
- No event of its own (the rule for `charge.failed` is in `remit.payments.events`): Stripe has
  no charge for a payment that never got past authentication, so it sends no `charge.failed`
  for it, and nothing told of the pending charge either. Radar counts no decline for it
  (`attempt_settled`): the attempt was given up, not declined. (A challenge the cardholder
  fails ends its charge the same way, but Radar counts that one: see
  `remit.radar.authentication`.)
"""

from dataclasses import replace
from datetime import datetime
from enum import Enum
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments.charges import Charge, ChargeStatus
from remit.payments.domain import PaymentIntent, Status
from remit.payments.never_authenticated import (
    AUTHENTICATED_NOT_CONFIRMED,
    NOT_AUTHENTICATED,
    never_sent_outcome,
)
from remit.payments.ports import PaymentHooks
from remit.payments.repository import ChargeRepository
from remit.payments.risk import Authentication


class LeftBy(Enum):
    """How the intent moved on without the attempt: the end of the charge's failure_message."""

    CANCELED = "the PaymentIntent was canceled"
    UPDATED = "the PaymentIntent's amount, currency or payment method changed"
    USAGE_CHANGED = "the PaymentIntent's setup_future_usage changed"
    CUSTOMER_CHANGED = "the PaymentIntent's customer changed"
    CONFIRMED_AGAIN = "the PaymentIntent was confirmed again with a new payment attempt"


def left_by_update(before: PaymentIntent, after: PaymentIntent) -> LeftBy:
    """What an update that sent the intent back to be confirmed again changed, for the failed
    charge's message."""
    if (before.amount_minor, before.currency, before.payment_method_id) != (
        after.amount_minor,
        after.currency,
        after.payment_method_id,
    ):
        return LeftBy.UPDATED
    if before.setup_future_usage != after.setup_future_usage:
        return LeftBy.USAGE_CHANGED
    return LeftBy.CUSTOMER_CHANGED


# The statuses in which an intent's latest charge may be a pending attempt that is not at the
# network: waiting for its challenge, or authenticated and waiting for a manual confirmation.
# (`requires_payment_method`: no path leaves one there, but none may go on with one either.)
_WAITING: Final = frozenset(
    {Status.REQUIRES_ACTION, Status.REQUIRES_CONFIRMATION, Status.REQUIRES_PAYMENT_METHOD}
)


def authenticated_for(
    charge: Charge, intent: PaymentIntent, *, payment_method_id: str | None
) -> bool:
    """Whether the cardholder authenticated this attempt for a payment of `intent`'s amount,
    in its currency, with that payment method, for its customer: then a manual confirmation
    goes on with it. The issuer authenticated that payment and no other; and the attempt's
    charge, made for the customer the intent had then (whose card it was checked to be, and to
    whom a card set up for future use is saved), would be filed under that customer."""
    return (
        Authentication.from_json(charge.authentication).authenticated
        and charge.payment_method_id == payment_method_id
        and (charge.amount_minor, charge.currency) == (intent.amount_minor, intent.currency)
        and charge.customer_id == intent.customer_id
    )


def goes_on_with(intent: PaymentIntent, charge: Charge) -> bool:
    """Whether `intent`, as it stands, may still finish `charge`'s attempt."""
    if intent.latest_charge_id != charge.id:
        return False
    if intent.status in (Status.REQUIRES_ACTION, Status.PROCESSING):
        return True  # its challenge waits, or the network is being asked
    if intent.status is Status.REQUIRES_CONFIRMATION:
        return authenticated_for(charge, intent, payment_method_id=intent.payment_method_id)
    return False


def abandoned(charge: Charge, left_by: LeftBy, now: datetime) -> Charge:
    """The pending `charge` as failed, its intent having moved on without it."""
    if Authentication.from_json(charge.authentication).authenticated:
        code = AUTHENTICATED_NOT_CONFIRMED
        message = f"The payment was authenticated but never confirmed: {left_by.value}."
    else:
        code = NOT_AUTHENTICATED
        message = (
            "The payment was abandoned before 3-D Secure authentication was completed: "
            f"{left_by.value}."
        )
    return replace(
        charge,
        status=ChargeStatus.FAILED,
        failure_code=code,
        failure_message=message,
        outcome=never_sent_outcome(charge, f"{left_by.value} before it was completed."),
        network_result=None,
        updated_at=now,
    )


async def finish_left_behind(
    db: AsyncConnection,
    hooks: PaymentHooks,
    before: PaymentIntent,
    after: PaymentIntent,
    *,
    left_by: LeftBy,
    now: datetime,
) -> Charge | None:
    """Fail the attempt `before` waited on, if `after` no longer goes on with it; returns the
    failed charge. Called with the intent's row locked, in the transaction that saves `after`,
    before the hooks hear of the intent's change (the ledger's hook last)."""
    charge_id = before.latest_charge_id
    if charge_id is None or before.status not in _WAITING:
        return None
    if after.latest_charge_id == charge_id and after.status is Status.REQUIRES_ACTION:
        return None  # its challenge still waits (a change of metadata, say): nothing to read
    charges = ChargeRepository(db)
    charge = await charges.get(before.account_id, charge_id, for_update=True)
    if charge is None or charge.status is not ChargeStatus.PENDING or goes_on_with(after, charge):
        return None
    failed = abandoned(charge, left_by, now)
    await charges.save(failed)
    await hooks.charge_changed(db, charge, failed, after)
    return failed
