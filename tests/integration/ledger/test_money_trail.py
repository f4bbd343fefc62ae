"""Every cent the acquirer settles is in the ledger under the same reference, and `reconcile`
says so: payments against the real acquirer and the real ledger (`money_trail`)."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger.reconcile import Reconciliation
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
