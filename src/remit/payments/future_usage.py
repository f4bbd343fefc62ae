"""Stripe's `setup_future_usage`: once a payment has gone through (succeeded, or authorized for
a later capture), its payment method is attached to the intent's customer, in the transaction
of the outcome, so that the customer's later payments can use it.

Only then: a decline, a failed or pending 3-D Secure challenge or a cancellation attaches
nothing. An intent without a customer attaches nothing either: Stripe lets the method be
attached afterwards, so the payment method it spent is recorded as saved for future usage,
which lets an attach (or a customer created with it) take it, and nothing else.

With `off_session`, the payment was also the cardholder's agreement to later off-session
payments, and the network was told so: the payment method then keeps the network transaction
id of that payment, which its off-session payments cite (`StoredCredential`).
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payment_methods.service import (
    PaymentMethodHooks,
    record_future_usage_setup_in,
    save_for_future_usage_in,
)
from remit.payments.charges import Charge, ChargeStatus, Refund
from remit.payments.domain import PaymentIntent
from remit.payments.risk import Authentication


class SaveForFutureUsage:
    """PaymentHooks that attach the payment method of a payment that has just gone through.

    Every other payment is decided on the charge and intent as they stand, so the hot path,
    without `setup_future_usage`, sends nothing more. The work is done when the charge is
    authorized, the one change that takes the intent to succeeded or requires_capture (a
    later capture adds nothing): there the network's answer is at hand, and the customer is
    locked before the payment method, the order every attach takes."""

    def __init__(self, hooks: PaymentMethodHooks) -> None:
        # The payment-method hooks record payment_method.attached, as an explicit attach does.
        self._hooks = hooks

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        return None

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        if (
            intent.setup_future_usage is None
            or before is None
            or before.status is not ChargeStatus.PENDING
            or after.status is not ChargeStatus.SUCCEEDED
        ):
            return
        if intent.customer_id is not None:
            await save_for_future_usage_in(
                db,
                intent.account_id,
                after.payment_method_id,
                intent.customer_id,
                hooks=self._hooks,
                paid_intent_id=intent.id,
            )
        setup_transaction_id = (after.network_result or {}).get("network_transaction_id")
        off_session_setup = (
            setup_transaction_id
            if Authentication.from_json(after.authentication).setup_off_session
            and isinstance(setup_transaction_id, str)
            and setup_transaction_id
            else None
        )
        saved_by_intent_id = intent.id if intent.customer_id is None else None
        if off_session_setup is not None or saved_by_intent_id is not None:
            await record_future_usage_setup_in(
                db,
                intent.account_id,
                after.payment_method_id,
                saved_by_intent_id=saved_by_intent_id,
                off_session_setup_transaction_id=off_session_setup,
            )

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        return None
