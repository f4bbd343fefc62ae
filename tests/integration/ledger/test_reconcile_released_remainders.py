"""Reconciliation compares what a capture released of its authorization at the acquirer with
what the ledger released of the authorization's reservation: a partial capture reconciles
clean when both released the same remainder, and a row that says otherwise is flagged."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import postings as ledger
from remit.ledger.reconcile import RELEASED, Difference, RowStatus, render_table
from tests.integration.ledger.fake_acquirer import FakeAcquirer, settlement_row
from tests.integration.ledger.test_network_fees import reconcile_with

pytestmark = pytest.mark.anyio


async def _captured(
    engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    charge_id: str,
    captured: int,
    *,
    authorized: int | None,
) -> None:
    """`captured` of a charge, after an authorization of `authorized` (None: captured at once,
    with no authorization held first)."""
    now = clock.now()
    async with engine.begin() as db:
        if authorized is not None:
            await ledger.record_authorization(
                db, account_id=account_id, charge_id=charge_id, amount_minor=authorized,
                currency="usd", now=now,
            )  # fmt: skip
        await ledger.record_charge_captured(
            db, account_id=account_id, charge_id=charge_id, gross_minor=captured,
            currency="usd", now=now, network_fee_minor=0,
        )  # fmt: skip


async def test_a_partial_capture_reconciles_clean_and_a_release_that_differs_is_flagged(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    # 5000 held, 3000 captured: 2000 released, on both sides.
    await _captured(core_engine, account_id, clock, "ch_partial", 3000, authorized=5000)
    await _captured(core_engine, account_id, clock, "ch_full", 1000, authorized=1000)
    await _captured(core_engine, account_id, clock, "ch_sale", 700, authorized=None)
    # The acquirer says this capture released nothing: it kept the remainder held, while the
    # ledger released 1500 of it.
    await _captured(core_engine, account_id, clock, "ch_kept", 500, authorized=2000)
    # The acquirer released more than the ledger did (the held amounts differ).
    await _captured(core_engine, account_id, clock, "ch_more", 800, authorized=1000)
    # An acquirer that does not say what it released: not compared on it.
    await _captured(core_engine, account_id, clock, "ch_unsaid", 400, authorized=900)
    fake = FakeAcquirer(
        [
            settlement_row("capture", "ch_partial", 3000, account_id, released=2000),
            settlement_row("capture", "ch_full", 1000, account_id, released=0),
            settlement_row("capture", "ch_sale", 700, account_id, released=0),
            settlement_row("capture", "ch_kept", 500, account_id, released=0),
            settlement_row("capture", "ch_more", 800, account_id, released=700),
            settlement_row("capture", "ch_unsaid", 400, account_id),
        ]
    )
    result = await reconcile_with(core_engine, clock, fake, account_id)
    found = sorted((row.reference, row.status, row.differences) for row in result.rows)
    assert found == [
        ("ch_full", RowStatus.MATCHED, ()),
        ("ch_kept", RowStatus.AMOUNT_MISMATCH, (Difference(RELEASED, "1500", "0"),)),
        ("ch_more", RowStatus.AMOUNT_MISMATCH, (Difference(RELEASED, "200", "700"),)),
        ("ch_partial", RowStatus.MATCHED, ()),
        ("ch_sale", RowStatus.MATCHED, ()),
        ("ch_unsaid", RowStatus.MATCHED, ()),
    ]
    # The captured amounts agree on every row: only the release differs.
    assert all(row.ledger_amount == row.acquirer_amount for row in result.rows)
    assert "released 1500/0" in render_table(result)


async def test_a_capture_that_released_nothing_in_the_ledger_is_flagged_when_the_acquirer_did(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _captured(core_engine, account_id, clock, "ch_sale", 700, authorized=None)
    fake = FakeAcquirer([settlement_row("capture", "ch_sale", 700, account_id, released=300)])
    result = await reconcile_with(core_engine, clock, fake, account_id)
    (row,) = result.rows
    assert (row.status, row.differences) == (
        RowStatus.AMOUNT_MISMATCH,
        (Difference(RELEASED, "0", "300"),),
    )
