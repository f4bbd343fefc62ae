"""Every cent the acquirer settles is in the ledger under the same reference, and `reconcile`
says so: payments against the real acquirer and the real ledger (`money_trail`)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger.reconcile import Reconciliation, RowKind, RowStatus
from remit.payments.domain import CaptureMethod
from tests.integration.ledger.conftest import NewAccount
from tests.integration.ledger.money_trail import cancel, capture, money_trail, pay, refund

pytestmark = pytest.mark.anyio


def summary(result: Reconciliation) -> list[tuple[str, str, str, int | None, int | None]]:
    return sorted(
        (r.status.value, r.kind.value, r.currency, r.ledger_amount, r.acquirer_amount)
        for r in result.rows
    )


async def test_every_kind_of_movement_reconciles_with_lost_responses_and_odd_currencies(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    clock: FixedClock,
    new_account: NewAccount,
) -> None:
    """A sale, a partial capture (the rest released) with two partial refunds, a full refund
    and a capture whose responses were lost, a JPY and a KWD sale, a canceled authorization: each
    capture and refund is one settlement row and one balance transaction, matched; the
    released rest and the void are neither."""
    account = await new_account()
    async with money_trail(core_engine, acquirer_engine, clock) as trail:
        sale = await pay(trail, account, "sale", 1000)
        held = await pay(trail, account, "held", 1000, capture=CaptureMethod.MANUAL)
        await capture(trail, account, "held-capture", held.id, 600)
        await refund(trail, account, "held-refund-1", held.id, 100)
        await refund(trail, account, "held-refund-2", held.id, 200)
        trail.network.lose.append("refund")
        await refund(trail, account, "sale-refund", sale.id, None)
        yen = await pay(trail, account, "yen", 777, "jpy", capture=CaptureMethod.MANUAL)
        trail.network.lose.append("capture")
        await capture(trail, account, "yen-capture", yen.id, 555)
        await pay(trail, account, "dinar", 12_345, "kwd")
        canceled = await pay(trail, account, "canceled", 5000, capture=CaptureMethod.MANUAL)
        await cancel(trail, account, "cancel", canceled.id)
        trail.network.lose.append("authorize")
        await pay(trail, account, "yen-lost", 4321, "jpy")

        result = await trail.ledger.reconcile(clock.now().date().isoformat())
        verified = await trail.ledger.verify()
    assert summary(result) == [
        ("matched", "capture", "jpy", 555, 555),
        ("matched", "capture", "jpy", 4321, 4321),
        ("matched", "capture", "kwd", 12_345, 12_345),
        ("matched", "capture", "usd", 600, 600),
        ("matched", "capture", "usd", 1000, 1000),
        ("matched", "refund", "usd", 100, 100),
        ("matched", "refund", "usd", 200, 200),
        ("matched", "refund", "usd", 1000, 1000),
    ]
    assert result.ok
    assert verified.ok, verified.differences


async def test_a_capture_recorded_in_the_ledger_after_midnight_reconciles_on_its_settlement_day(
    core_engine: AsyncEngine, acquirer_engine: AsyncEngine, new_account: NewAccount
) -> None:
    """The acquirer settles a capture at 23:59:59.5; its response is lost and the core finds
    out by looking it up a second later, so the ledger records it on the next day. It is one
    capture, settled and recorded: the settlement day pairs it, and the next day does not
    count it again as missing at the acquirer."""
    day = datetime(2031, 5, 6, tzinfo=UTC)
    clock = FixedClock(day + timedelta(hours=23, minutes=59, seconds=59))
    account = await new_account()
    async with money_trail(core_engine, acquirer_engine, clock) as trail:
        held = await pay(trail, account, "held", 1000, capture=CaptureMethod.MANUAL)
        clock.advance(0.5)
        trail.network.lose.append("capture")
        trail.network.finding_out_s = 1.0
        await capture(trail, account, "held-capture", held.id, 1000)
        assert clock.now().date() == (day + timedelta(days=1)).date()
        await pay(trail, account, "next-day-sale", 2000)

        settlement_day = await trail.ledger.reconcile(day.date().isoformat())
        next_day = await trail.ledger.reconcile((day + timedelta(days=1)).date().isoformat())
    assert [(r.status, r.kind, r.reference) for r in settlement_day.rows] == [
        (RowStatus.MATCHED, RowKind.CAPTURE, f"{held.latest_charge_id}_capture")
    ]
    assert [(r.status, r.ledger_amount) for r in next_day.rows] == [(RowStatus.MATCHED, 2000)]
