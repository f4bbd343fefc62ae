"""A capture after one the acquirer refused: the acquirer keeps the refusal under its reference
and refuses that reference for a capture of another amount, so each capture of a charge goes
under its own. Against the real acquirer and the real ledger (`money_trail`)."""

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger.verify import verify_ledger
from remit.payments.domain import CaptureMethod, Status
from remit.payments.service import Replay
from tests.integration.ledger.conftest import NewAccount
from tests.integration.ledger.money_trail import cancel, keyed, money_trail, pay, respond

pytestmark = pytest.mark.anyio


async def test_a_capture_after_a_refused_one_is_refused_in_turn_and_finishes(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    clock: FixedClock,
    new_account: NewAccount,
) -> None:
    """A cancel's void reaches the acquirer, not yet the core: a capture of 600 is refused
    (authorization_voided), and so is one of 500 after it, as its own request, finished with
    that refusal (not left held with an internal error, its intent blocked for captures);
    the cancel then finishes."""
    account = await new_account()
    async with money_trail(core_engine, acquirer_engine, clock) as trail:
        held = await pay(trail, account, "held", 1000, capture=CaptureMethod.MANUAL)
        assert held.latest_charge_id is not None
        charge, _ = await trail.payments.get_charge(account, held.latest_charge_id)
        assert charge.authorization_id is not None
        await trail.acquirer.void(f"{charge.id}_void", charge.authorization_id)

        for key, amount in (("cap1", 600), ("cap2", 500)):
            with pytest.raises(RemitError) as refused:
                await trail.payments.capture_payment_intent(
                    keyed(account, key, "CapturePaymentIntent"), held.id, amount, respond
                )
            assert (refused.value.kind, refused.value.code) == (
                ErrorKind.FAILED_PRECONDITION,
                "authorization_voided",
            ), key

        await cancel(trail, account, "cancel", held.id)
        assert (await trail.payments.get_payment_intent(account, held.id)).status is (
            Status.CANCELED
        )
        replayed = await trail.payments.capture_payment_intent(
            keyed(account, "cap2", "CapturePaymentIntent"), held.id, 500, respond
        )
        assert isinstance(replayed, Replay)
        assert replayed.code != 0
        still_held, _, _ = await trail.payments.held_requests(
            older_than=timedelta(0), account_id=account, limit=10
        )
        assert still_held == []
        after, _ = await trail.payments.get_charge(account, charge.id)
        assert (after.captured, after.capture_requested, after.authorization_released) == (
            False,
            False,
            True,
        )
        async with core_engine.connect() as db:
            report = await verify_ledger(db, account_id=account, now=clock.now())
        assert report.ok, (report.differences, report.chain_breaks)
