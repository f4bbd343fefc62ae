"""The dispute's share of a refund that fails after its charge was disputed.

A charge is disputed for what it held when the dispute opened: captured less refunded
(`remit.payments.disputing`). A refund made before then that the acquirer reports failed
afterwards gives its money back to the charge and to the merchant's balance (the ledger's hook,
`LedgerPostings`), which leaves the cardholder with neither the refund nor a dispute of it. As
the dispute covers what the charge still holds, this hook has the dispute take that money, in
the transaction of the failure (`disputing.take_failed_refund`).

Only a failure after success concerns a dispute: a refund that fails or is canceled before it
settles holds the dispute back until it does (`expected_disputes`), and a disputed charge takes
no new refund. A failure after success before the charge's dispute opened stages its job again
instead (`expected_disputes` too), which opens it for what the charge then holds.
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import Clock, SystemClock
from remit.payments.charges import Charge, Refund, RefundStatus
from remit.payments.disputing import take_failed_refund
from remit.payments.domain import PaymentIntent


def failed_after_it_succeeded(before: Refund | None, after: Refund) -> bool:
    """Whether this change fails a refund the acquirer had made: its money comes back."""
    return (
        before is not None
        and before.status is RefundStatus.SUCCEEDED
        and after.status is RefundStatus.FAILED
    )


class DisputedRefunds:
    """PaymentHooks that give a disputed charge's dispute the money of a refund that failed
    after it succeeded. Before the ledger's hooks: the dispute's posting, as every posting,
    runs after the other writes of the transaction."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        return None

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        return None

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        if not (failed_after_it_succeeded(before, after) and charge.disputed):
            return
        await take_failed_refund(db, charge, after, self._clock.now())
