"""Stripe's `setup_future_usage`: once a payment has gone through (succeeded, or authorized for
a later capture), its payment method is attached to the intent's customer, in the transaction
of the outcome, so that the customer's later payments can use it.

Only then: a decline, a failed or pending 3-D Secure challenge or a cancellation attaches
nothing. An intent without a customer attaches nothing either (Stripe lets the method be
attached afterwards).
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payment_methods.service import PaymentMethodHooks, save_for_future_usage_in
from remit.payments.charges import Charge, Refund
from remit.payments.domain import PaymentIntent, Status

_PAID = frozenset({Status.SUCCEEDED, Status.REQUIRES_CAPTURE})


class SaveForFutureUsage:
    """PaymentHooks that attach the payment method of a payment that has just gone through.

    Every other payment is decided on the intent as it stands, so the hot path, without
    `setup_future_usage`, sends nothing more."""

    def __init__(self, hooks: PaymentMethodHooks) -> None:
        # The payment-method hooks record payment_method.attached, as an explicit attach does.
        self._hooks = hooks

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        if (
            after.setup_future_usage is None
            or after.customer_id is None
            or after.status not in _PAID
            # A capture (requires_capture to succeeded) saved it at the authorization already.
            or (before is not None and before.status in _PAID)
        ):
            return
        assert after.payment_method_id is not None, after.id
        await save_for_future_usage_in(
            db,
            after.account_id,
            after.payment_method_id,
            after.customer_id,
            hooks=self._hooks,
            paid_intent_id=after.id,
        )

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        return None

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        return None
