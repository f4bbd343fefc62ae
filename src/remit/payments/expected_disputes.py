"""The dispute a captured payment's cardholder will raise, staged with the capture.

The network says so with the authorization (test card 4000000000000259: "charge succeeds, then
is disputed"), and the charge keeps its answer (`DISPUTE_EXPECTED_KEY`). When the charge is
captured, at once or by a separate capture, this hook stages the job that opens the dispute
(`remit.payments.disputing.OPEN_DISPUTE_JOB`) in the transaction of the capture's outcome: the
worker opens it once that commits, and never for a capture that rolled back. Every other
payment sends nothing more: the check reads the charge in hand.

The job does not open the dispute while a refund of the charge is unsettled (it may still fail,
and the dispute would then be too small): it ends, and the refund's settlement (succeeded,
failed or canceled, with the charge locked) stages it again here, once per refund.

Nor does it open one for a charge refunded in full: the cardholder has all their money back.
A refund the acquirer made may still fail afterwards and give its money back to the charge (and
to the merchant); if the charge has no dispute yet, its failure stages the job again here, once
per refund, and the job opens the dispute for what the charge then holds. (A disputed charge's
dispute takes that money instead: `remit.payments.disputed_refunds`.)
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import Clock, SystemClock
from remit.payments.charges import UNSETTLED_REFUNDS, Charge, Refund
from remit.payments.disputed_refunds import failed_after_it_succeeded
from remit.payments.disputing import OPEN_DISPUTE_JOB
from remit.payments.domain import PaymentIntent
from remit.payments.network import DISPUTE_EXPECTED_KEY
from remit.worker.jobs import stage_job


def _dispute_expected(charge: Charge) -> bool:
    return bool((charge.network_result or {}).get(DISPUTE_EXPECTED_KEY))


def disputed_once_captured(before: Charge | None, after: Charge) -> bool:
    """Whether this change captures a charge the network said would be disputed."""
    return (
        before is not None and not before.captured and after.captured and _dispute_expected(after)
    )


def settled_before_the_dispute(before: Refund | None, after: Refund, charge: Charge) -> bool:
    """Whether this change settles a refund of a captured charge the network said would be
    disputed and that has no dispute yet: one its dispute's job may have waited for."""
    return (
        before is not None
        and before.status in UNSETTLED_REFUNDS
        and after.status not in UNSETTLED_REFUNDS
        and charge.captured
        and not charge.disputed
        and _dispute_expected(charge)
    )


def failed_before_the_dispute(before: Refund | None, after: Refund, charge: Charge) -> bool:
    """Whether this change fails a refund the acquirer had made of a captured charge the network
    said would be disputed and that has no dispute yet: its dispute's job may have found the
    charge refunded in full and opened none, and the cardholder now has the money neither way."""
    return (
        failed_after_it_succeeded(before, after)
        and charge.captured
        and not charge.disputed
        and _dispute_expected(charge)
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
        # One dispute per charge: a resumed capture that records its outcome again stages
        # nothing more.
        await self._stage(db, after, dedupe_key=f"{OPEN_DISPUTE_JOB}:{after.id}")

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        if settled_before_the_dispute(before, after, charge):
            # Staged whether or not the job waited for this refund: a job that has not run yet
            # and this one open one dispute between them (the charge's lock and its dispute
            # id). Keyed by the refund, as its key by the charge may be taken by the first job
            # still.
            await self._stage(db, charge, dedupe_key=f"{OPEN_DISPUTE_JOB}:{charge.id}:{after.id}")
        elif failed_before_the_dispute(before, after, charge):
            # Staged whether or not a job found the charge refunded in full, as above. A key of
            # its own: the refund's settlement (pending to succeeded) took the refund's key
            # already, and a key stays taken once its job ran.
            await self._stage(
                db, charge, dedupe_key=f"{OPEN_DISPUTE_JOB}:{charge.id}:{after.id}:failed"
            )

    async def _stage(self, db: AsyncConnection, charge: Charge, *, dedupe_key: str) -> None:
        await stage_job(
            db,
            OPEN_DISPUTE_JOB,
            {"account_id": charge.account_id, "charge_id": charge.id},
            now=self._clock.now(),
            account_id=charge.account_id,
            dedupe_key=dedupe_key,
        )
