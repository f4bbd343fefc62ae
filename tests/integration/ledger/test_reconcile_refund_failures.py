"""Reconciliation and refunds that end failed: the ledger gives their money back (a
refund_failure balance transaction), whether the acquirer refused them while they were pending
or they failed after they posted. Settled by the acquirer all the same, such a refund is an
outcome mismatch; not settled, both sides agree nothing moved. A refund the ledger booked as
made and the acquirer refused is missing at the acquirer, saying what it answered."""

from datetime import timedelta

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import postings as ledger
from remit.ledger.grpc import reconciliation_message
from remit.ledger.reconcile import Difference, Reconciliation, RowStatus, render_table
from remit.ledger.service import LedgerService
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.ledger.v1 import ledger_pb2 as pb
from tests.integration.ledger.conftest import T0
from tests.integration.ledger.fake_acquirer import (
    FakeAcquirer,
    serving,
    settled_operation,
    settlement_row,
)

pytestmark = pytest.mark.anyio
DAY = T0.date().isoformat()


async def reconcile_over(
    engine: AsyncEngine, clock: FixedClock, fake: FakeAcquirer, account_id: str
) -> Reconciliation:
    clock.advance(timedelta(days=1).total_seconds())  # the day is over
    with serving(fake) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            result = await service.reconcile(DAY, account_id)
            assert await service.get_reconciliation(result.id) == result
            return result


async def refunds(engine: AsyncEngine, account_id: str, clock: FixedClock) -> None:
    """ch_b's refunds: two the ledger posted and then booked as failed, two the acquirer
    refused while they were pending (their holds released), one posted and standing."""
    now = clock.now()
    async with engine.begin() as db:
        for charge_id, amount in (("ch_a", 1_000), ("ch_b", 2_000)):
            await ledger.record_charge_captured(
                db, account_id=account_id, charge_id=charge_id, gross_minor=amount,
                currency="usd", now=now, authorization_id=f"auth_{charge_id}",
            )  # fmt: skip
        for refund_id, amount in (("re_failed_settled", 300), ("re_failed", 200)):
            await ledger.record_refund(
                db, account_id=account_id, refund_id=refund_id, charge_id="ch_b",
                amount_minor=amount, currency="usd", now=now,
            )  # fmt: skip
            await ledger.record_refund_failed(
                db, account_id=account_id, refund_id=refund_id, now=now
            )
        for refund_id in ("re_released_settled", "re_released"):
            await ledger.record_refund_held(
                db, account_id=account_id, refund_id=refund_id, charge_id="ch_b",
                amount_minor=100, currency="usd", now=now,
            )  # fmt: skip
            await ledger.record_refund_released(
                db, account_id=account_id, refund_id=refund_id, now=now
            )
        await ledger.record_refund(
            db, account_id=account_id, refund_id="re_made", charge_id="ch_b",
            amount_minor=150, currency="usd", now=now,
        )  # fmt: skip


async def test_failed_refunds_are_reconciled_by_what_the_acquirer_did_with_them(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await refunds(core_engine, account_id, clock)
    rows = [
        settlement_row("capture", "ch_b", 2_000, account_id),
        settlement_row("refund", "re_failed_settled", 300, account_id),
        settlement_row("refund", "re_released_settled", 100, account_id),
    ]
    for row in rows:
        row.authorization_id = "auth_ch_b"
    refused = settled_operation("refund", "re_made", 150, account_id, T0)
    refused.approved = False
    refused.code = "charge_already_refunded"
    refused.ClearField("settled_at")
    refused_too = settled_operation("refund", "re_failed", 200, account_id, T0)
    refused_too.approved = False
    refused_too.ClearField("settled_at")
    fake = FakeAcquirer(rows, operations={"re_made": refused, "re_failed": refused_too})

    result = await reconcile_over(core_engine, clock, fake, account_id)

    found = sorted(
        (r.reference, r.status, r.ledger_transaction_id, r.ledger_amount, r.differences)
        for r in result.rows
    )
    assert found == [
        (
            "ch_a",
            RowStatus.MISSING_AT_ACQUIRER,
            "ch_a:capture",
            1_000,
            (Difference("outcome", "succeeded", "not found"),),
        ),
        ("ch_b", RowStatus.MATCHED, "ch_b:capture", 2_000, ()),
        (
            "re_failed_settled",
            RowStatus.OUTCOME_MISMATCH,
            "re_failed_settled:refund",
            300,
            (Difference("outcome", "failed", "settled"),),
        ),
        (
            "re_made",
            RowStatus.MISSING_AT_ACQUIRER,
            "re_made:refund",
            150,
            (Difference("outcome", "succeeded", "refused (charge_already_refunded)"),),
        ),
        (
            "re_released_settled",
            RowStatus.OUTCOME_MISMATCH,
            "re_released_settled:refund_hold",
            100,
            (Difference("outcome", "failed", "settled"),),
        ),
    ]
    # The refund the acquirer refused and the ledger booked as failed is left out: neither
    # moved its money. The one refused while pending was never sent with a reference, and
    # is not asked about.
    assert sorted(fake.looked_up) == ["ch_a", "re_failed", "re_made"]
    assert result.count(RowStatus.OUTCOME_MISMATCH) == 2
    assert "outcome mismatches 2" in render_table(result)
    message = reconciliation_message(result)
    assert message.outcome_mismatch_count == 2
    assert {row.status for row in message.rows if row.reference.startswith("re_")} == {
        pb.RECONCILIATION_ROW_STATUS_OUTCOME_MISMATCH,
        pb.RECONCILIATION_ROW_STATUS_MISSING_AT_ACQUIRER,
    }


async def test_a_refund_that_failed_and_settled_on_another_day_is_a_mismatch_on_that_day(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The refund was created and failed on DAY; the acquirer settled it the day after. DAY
    leaves it to that day, whose run finds the ledger's failed refund under the reference,
    though it was recorded the day before and, released before it posted, names no
    reference of its own."""
    await refunds(core_engine, account_id, clock)
    next_day = T0 + timedelta(days=1)
    fake = FakeAcquirer(
        [settlement_row("capture", "ch_b", 2_000, account_id)],
        operations={
            reference: settled_operation("refund", reference, amount, account_id, next_day)
            for reference, amount in (("re_failed_settled", 300), ("ch_a", 1_000))
        },
    )
    fake.operations["ch_a"].kind = fake.operations["re_failed_settled"].kind
    fake.operations["re_made"] = settled_operation("refund", "re_made", 150, account_id, T0)
    on_day = await reconcile_over(core_engine, clock, fake, account_id)
    assert sorted((r.reference, r.status, r.differences) for r in on_day.rows) == [
        # The acquirer holds a refund under the capture's reference: not what it settled.
        (
            "ch_a",
            RowStatus.MISSING_AT_ACQUIRER,
            (Difference("outcome", "succeeded", "settled a refund under it"),),
        ),
        ("ch_b", RowStatus.MATCHED, ()),
        # Not in the report, though the acquirer says it settled on DAY: the report was read
        # before it settled, and the row says so.
        (
            "re_made",
            RowStatus.MISSING_AT_ACQUIRER,
            (Difference("outcome", "succeeded", f"settled on {DAY}"),),
        ),
    ]

    clock.advance(timedelta(days=1).total_seconds())  # the next day is over too
    later = FakeAcquirer(
        [
            settlement_row("refund", "re_failed_settled", 300, account_id),
            settlement_row("refund", "re_released_settled", 100, account_id),
        ]
    )
    with serving(later) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                core_engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            result = await service.reconcile(next_day.date().isoformat(), account_id)
    assert sorted((r.reference, r.status, r.ledger_transaction_id) for r in result.rows) == [
        ("re_failed_settled", RowStatus.OUTCOME_MISMATCH, "re_failed_settled:refund"),
        ("re_released_settled", RowStatus.OUTCOME_MISMATCH, "re_released_settled:refund_hold"),
    ]
