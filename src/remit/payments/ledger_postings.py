"""Every money movement of a payment posted to the ledger, in the transaction of the change.

Authorizations reserve the amount (a pending ledger transaction), captures post it (gross to
the merchant's pending balance, the fee to the platform, the fee the card network withheld
from the platform to the network), cancellations and expiries void it.
A refund holds its amount from its creation, and takes it out when the acquirer refunds (or
lets it go when the acquirer refuses, or the refund is canceled); its balance transaction is
written with the hold and stays the same through both. Each ledger call is
idempotent on the charge or refund id, so a resumed request never posts twice.
"""

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import Clock, SystemClock
from remit.ledger import postings as ledger
from remit.payments.authorization_age import authorization_expires_at
from remit.payments.charges import Charge, ChargeStatus, Refund, RefundStatus
from remit.payments.domain import PaymentIntent, Status
from remit.payments.network import NETWORK_FEE_KEY
from remit.payments.risk import Authentication, network_reference

# A refund that ends with its money still the merchant's: refused by the acquirer, or
# canceled while it waited on the customer.
_ENDED_UNREFUNDED = frozenset({RefundStatus.FAILED, RefundStatus.CANCELED})


def captured_network_fee(network_result: Mapping[str, object]) -> int | None:
    """The fee the network withheld from the charge's capture, as its answer reported it (the
    authorization's when it captured at once, the capture's otherwise: `NETWORK_FEE_KEY`);
    None for an answer that did not report one."""
    fee = network_result.get(NETWORK_FEE_KEY)
    return fee if isinstance(fee, int) and not isinstance(fee, bool) else None


class LedgerPostings:
    """PaymentHooks that keep the ledger in step with payments."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        released = (
            before is not None
            and before.status is Status.REQUIRES_CAPTURE
            and after.status is Status.CANCELED
        )
        if released and after.latest_charge_id is not None:
            await ledger.record_authorization_voided(
                db,
                account_id=after.account_id,
                charge_id=after.latest_charge_id,
                now=self._clock.now(),
            )

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        if before is None:
            return
        now = self._clock.now()
        authorized = (
            before.status is ChargeStatus.PENDING and after.status is ChargeStatus.SUCCEEDED
        )
        if authorized and not after.captured:
            await ledger.record_authorization(
                db,
                account_id=after.account_id,
                charge_id=after.id,
                amount_minor=after.amount_minor,
                currency=after.currency,
                now=now,
                # Reserved for as long as the network holds it: 7 days from when it made the
                # authorization, which may be days before it was recorded.
                expires_at=authorization_expires_at(after) if after.authorized_at else None,
            )
            return
        if after.captured and not before.captured:
            result = after.network_result or {}
            await ledger.record_charge_captured(
                db,
                account_id=after.account_id,
                charge_id=after.id,
                gross_minor=after.amount_captured_minor,
                currency=after.currency,
                now=now,
                bypass_pending=bool(result.get("bypass_pending")),
                network_fee_minor=captured_network_fee(result),
                # The reference the acquirer settled the capture under: the authorization's
                # when it captured at once (after 3-D Secure, the authenticated one's), the
                # separate capture's otherwise.
                acquirer_reference=(
                    network_reference(after.id, Authentication.from_json(after.authentication))
                    if authorized
                    else after.capture_reference
                ),
                authorization_id=after.authorization_id,
                description=after.description,
                balance_transaction_id=after.balance_transaction_id,
            )

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        now = self._clock.now()
        if before is None and after.status is RefundStatus.PENDING:
            # Held until the acquirer answers: a payout made meanwhile must not take the same
            # money (the refund debits the balance when it is created, as on Stripe, under the
            # balance transaction it shows from then on).
            await ledger.record_refund_held(
                db,
                account_id=after.account_id,
                refund_id=after.id,
                charge_id=after.charge_id,
                amount_minor=after.amount_minor,
                currency=after.currency,
                now=now,
                balance_transaction_id=after.balance_transaction_id,
            )
            return
        was = None if before is None else before.status
        if after.status is RefundStatus.SUCCEEDED and was is not RefundStatus.SUCCEEDED:
            await ledger.record_refund(
                db,
                account_id=after.account_id,
                refund_id=after.id,
                charge_id=after.charge_id,
                amount_minor=after.amount_minor,
                currency=after.currency,
                now=now,
                acquirer_reference=after.id,
                balance_transaction_id=after.balance_transaction_id,
            )
        elif after.status in _ENDED_UNREFUNDED and was is not after.status:
            if was is RefundStatus.SUCCEEDED:
                # Posted already: the money comes back with a refund_failure transaction.
                await ledger.record_refund_failed(
                    db,
                    account_id=after.account_id,
                    refund_id=after.id,
                    now=now,
                    balance_transaction_id=after.failure_balance_transaction_id,
                )
            else:
                # Failed or canceled before it was posted: its hold lets the money go back,
                # shown as a refund_failure transaction too.
                await ledger.record_refund_released(
                    db,
                    account_id=after.account_id,
                    refund_id=after.id,
                    now=now,
                    balance_transaction_id=after.failure_balance_transaction_id,
                )
