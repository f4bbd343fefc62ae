"""The dispute a captured payment's cardholder will raise, staged with the capture.

The network says so with the authorization (test card 4000000000000259: "charge succeeds, then
is disputed"), and the charge keeps its answer (`DISPUTE_EXPECTED_KEY`). When the charge is
captured, at once or by a separate capture, this hook stages the job that opens the dispute
(`remit.payments.disputing.OPEN_DISPUTE_JOB`) in the transaction of the capture's outcome: the
worker opens it once that commits, and never for a capture that rolled back. Every other
payment sends nothing more: the check reads the charge in hand.
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import Clock, SystemClock
from remit.payments.charges import Charge, Refund
from remit.payments.disputing import OPEN_DISPUTE_JOB
from remit.payments.domain import PaymentIntent
from remit.payments.network import DISPUTE_EXPECTED_KEY
from remit.worker.jobs import stage_job


def disputed_once_captured(before: Charge | None, after: Charge) -> bool:
    """Whether this change captures a charge the network said would be disputed."""
    return (
        before is not None
        and not before.captured
        and after.captured
        and bool((after.network_result or {}).get(DISPUTE_EXPECTED_KEY))
    )


class ExpectedDisputes:
    """PaymentHooks that stage the dispute of a captured charge the network said would be
    disputed."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        return None

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        if not disputed_once_captured(before, after):
            return
        await stage_job(
            db,
            OPEN_DISPUTE_JOB,
            {"account_id": after.account_id, "charge_id": after.id},
            now=self._clock.now(),
            account_id=after.account_id,
            # One dispute per charge: a resumed capture that records its outcome again stages
            # nothing more.
            dedupe_key=f"{OPEN_DISPUTE_JOB}:{after.id}",
        )

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        return None
