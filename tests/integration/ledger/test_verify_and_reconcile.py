"""Verification catches tampering; reconciliation catches what the acquirer disagrees with."""

from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.ledger import postings as ledger
from remit.ledger.grpc import reconciliation_message
from remit.ledger.reconcile import Difference, Reconciliation, RowKind, RowStatus, render_table
from remit.ledger.service import LedgerService
from remit.ledger.verify import DifferenceKind
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from tests.integration.ledger.conftest import T0, NewAccount
from tests.integration.ledger.fake_acquirer import (
    FakeAcquirer,
    serving,
    settled_operation,
    settlement_row,
)

pytestmark = pytest.mark.anyio
DAY = T0.date().isoformat()


async def some_history(engine: AsyncEngine, account_id: str, clock: FixedClock) -> None:
    async with engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_a",
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
        )
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_b",
            gross_minor=2_000,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )
        await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id="re_a",
            charge_id="ch_b",
            amount_minor=300,
            currency="usd",
            now=clock.now(),
        )


async def tamper(engine: AsyncEngine, statement: str) -> None:
    async with engine.begin() as db:
        # What someone with direct database access could do: switch the append-only triggers
        # off for this transaction and edit history.
        await db.execute(text("SET LOCAL session_replication_role = replica"))
        await db.execute(text(statement))


async def test_an_untouched_ledger_verifies(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await some_history(core_engine, account_id, clock)
    report = await LedgerService(core_engine, clock).verify()
    assert report.ok
    assert report.transactions_checked == 4


async def test_verify_detects_a_tampered_entry(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await some_history(core_engine, account_id, clock)
    await tamper(
        core_engine,
        "UPDATE ledger_postings SET amount_minor = amount_minor + 1 "
        "WHERE id = (SELECT min(id) FROM ledger_postings WHERE transaction_id = 'ch_b:capture')",
    )
    report = await LedgerService(core_engine, clock).verify()
    assert not report.ok
    kinds = {d.kind for d in report.differences}
    assert DifferenceKind.UNBALANCED_TRANSACTION in kinds
    assert DifferenceKind.BALANCE_MISMATCH in kinds
    assert [b.transaction_id for b in report.chain_breaks] == ["ch_b:capture"]


async def test_verify_detects_an_account_whose_chain_head_is_gone(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Without its chain head, an account's next posting fails: verify says so first."""
    await some_history(core_engine, account_id, clock)
    async with core_engine.begin() as db:
        await db.execute(text("SET LOCAL session_replication_role = replica"))
        await db.execute(text("DELETE FROM ledger_chains WHERE account_id = :a"), {"a": account_id})
    report = await LedgerService(core_engine, clock).verify()
    assert not report.ok
    [head] = report.chain_breaks
    assert (head.account_id, head.transaction_id, head.sequence, head.actual_hash) == (
        account_id,
        "",
        4,
        "",
    )
    assert head.expected_hash


async def test_verify_detects_a_tampered_balance(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await some_history(core_engine, account_id, clock)
    await tamper(
        core_engine,
        "UPDATE ledger_accounts SET posted_balance_minor = posted_balance_minor + 100 "
        "WHERE name = 'available'",
    )
    report = await LedgerService(core_engine, clock).verify()
    mismatches = [d for d in report.differences if d.kind is DifferenceKind.BALANCE_MISMATCH]
    assert [(d.ledger_account, d.actual_minor - d.expected_minor) for d in mismatches] == [
        ("available", 100)
    ]
    assert any(d.kind is DifferenceKind.BALANCE_TRANSACTION_MISMATCH for d in report.differences)
    assert report.chain_breaks == []


async def test_verify_detects_a_deleted_transaction(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await some_history(core_engine, account_id, clock)
    await tamper(core_engine, "DELETE FROM ledger_postings WHERE transaction_id = 're_a:refund'")
    await tamper(core_engine, "DELETE FROM ledger_transactions WHERE id = 're_a:refund'")
    report = await LedgerService(core_engine, clock).verify()
    assert report.chain_breaks, "the chain head no longer sits on the last transaction"


async def reconcile_with(
    engine: AsyncEngine, clock: FixedClock, fake: FakeAcquirer, account_id: str | None
) -> Reconciliation:
    """Reconcile DAY the next day, once it is over, as the nightly run does."""
    clock.advance(timedelta(days=1).total_seconds())
    with serving(fake) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            result = await service.reconcile(DAY, account_id)
            assert await service.get_reconciliation(result.id) == result
            return result


async def test_reconciliation_passes_on_a_clean_day(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await some_history(core_engine, account_id, clock)
    fake = FakeAcquirer(
        [
            settlement_row("capture", "ch_a", 1_000, account_id, fee=12),
            settlement_row("capture", "ch_b", 2_000, account_id, fee=24),
            settlement_row("refund", "re_a", 300, account_id),
        ]
    )
    result = await reconcile_with(core_engine, clock, fake, account_id)
    assert result.ok
    assert result.count(RowStatus.MATCHED) == 3
    assert fake.asked == [(DAY, account_id)]


async def test_reconciliation_finds_each_of_three_injected_discrepancies(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await some_history(core_engine, account_id, clock)
    fake = FakeAcquirer(
        [
            # ch_a's capture is missing at the acquirer,
            settlement_row("capture", "ch_b", 2_001, account_id),  # one cent off,
            settlement_row("refund", "re_a", 300, account_id),
            settlement_row("refund", "re_unknown", 450, account_id),  # a refund nobody knows.
        ]
    )
    result = await reconcile_with(core_engine, clock, fake, account_id)
    found = {(r.status, r.kind, r.reference) for r in result.rows}
    assert found == {
        (RowStatus.MISSING_AT_ACQUIRER, RowKind.CAPTURE, "ch_a"),
        (RowStatus.AMOUNT_MISMATCH, RowKind.CAPTURE, "ch_b"),
        (RowStatus.MATCHED, RowKind.REFUND, "re_a"),
        (RowStatus.MISSING_IN_LEDGER, RowKind.REFUND, "re_unknown"),
    }
    assert not result.ok


async def test_a_pair_is_compared_as_the_look_ups_compare_it_and_says_what_differs(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    """Under the right references, the acquirer settled ch_a in another currency, ch_b and its
    refund against another authorization, and ch_c for another merchant: none of them is the
    movement the ledger recorded, as the core's look-ups would have refused each. Each is a
    mismatch that names the field and what each side holds; the amounts alone looked equal."""
    account_id, other = await new_account(), await new_account()
    async with core_engine.begin() as db:
        for charge_id, amount in (("ch_a", 1_000), ("ch_b", 2_000), ("ch_c", 500)):
            await ledger.record_charge_captured(
                db, account_id=account_id, charge_id=charge_id, gross_minor=amount,
                currency="usd", now=clock.now(), authorization_id=f"auth_{charge_id}",
            )  # fmt: skip
        await ledger.record_refund(
            db, account_id=account_id, refund_id="re_b", charge_id="ch_b", amount_minor=300,
            currency="usd", now=clock.now(),
        )  # fmt: skip
    rows = [
        settlement_row("capture", "ch_a", 1_000, account_id, currency="eur"),
        settlement_row("capture", "ch_b", 2_000, account_id),
        settlement_row("refund", "re_b", 300, account_id),
        settlement_row("capture", "ch_c", 500, other),
    ]
    rows[1].authorization_id = rows[2].authorization_id = "auth_elsewhere"
    rows[3].authorization_id = "auth_ch_c"
    # Over every account: scoped to one, the other merchant's row is not in its report.
    result = await reconcile_with(core_engine, clock, FakeAcquirer(rows), None)
    found = {(r.reference, r.status, r.differences) for r in result.rows}
    assert found == {
        ("ch_a", RowStatus.AMOUNT_MISMATCH, (Difference("currency", "usd", "eur"),)),
        (
            "ch_b",
            RowStatus.AMOUNT_MISMATCH,
            (Difference("authorization_id", "auth_ch_b", "auth_elsewhere"),),
        ),
        (
            "re_b",
            RowStatus.AMOUNT_MISMATCH,
            (Difference("authorization_id", "auth_ch_b", "auth_elsewhere"),),
        ),
        ("ch_c", RowStatus.AMOUNT_MISMATCH, (Difference("merchant_id", account_id, other),)),
    }
    assert "currency usd/eur" in render_table(result)
    shown = {row.reference: row for row in reconciliation_message(result).rows}
    assert [(d.field, d.ledger, d.acquirer) for d in shown["ch_a"].differences] == [
        ("currency", "usd", "eur")
    ]


async def test_a_capture_the_acquirer_settled_twice_is_not_matched_away(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Two settlement rows under one reference are two movements of money: one pairs with the
    ledger's capture, the other has nothing in the ledger. Keyed on the reference alone, the
    second row would replace the first and the day would reconcile clean."""
    await some_history(core_engine, account_id, clock)
    fake = FakeAcquirer(
        [
            settlement_row("capture", "ch_a", 1_000, account_id),
            settlement_row("capture", "ch_a", 1_000, account_id),
            settlement_row("capture", "ch_b", 2_000, account_id),
            settlement_row("refund", "re_a", 300, account_id),
        ]
    )
    result = await reconcile_with(core_engine, clock, fake, account_id)
    found = sorted((r.status.value, r.kind.value, r.reference) for r in result.rows)
    assert found == [
        ("matched", "capture", "ch_a"),
        ("matched", "capture", "ch_b"),
        ("matched", "refund", "re_a"),
        ("missing_in_ledger", "capture", "ch_a"),
    ]
    assert not result.ok


async def test_an_item_the_acquirer_settled_on_another_day_is_left_to_that_day(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The acquirer's report does not list three of the day's ledger items. Asked by
    reference, it settled ch_a the day before (that day's reconciliation pairs it), refused
    re_a, and never saw ch_b: the two it did not settle are missing at the acquirer."""
    await some_history(core_engine, account_id, clock)
    refused = settled_operation("refund", "re_a", 300, account_id, T0)
    refused.approved = False
    refused.ClearField("settled_at")
    fake = FakeAcquirer(
        operations={
            "ch_a": settled_operation("capture", "ch_a", 1_000, account_id, T0 - timedelta(days=1)),
            "re_a": refused,
        }
    )
    result = await reconcile_with(core_engine, clock, fake, account_id)
    assert sorted((r.status.value, r.kind.value, r.reference) for r in result.rows) == [
        ("missing_at_acquirer", "capture", "ch_b"),
        ("missing_at_acquirer", "refund", "re_a"),
    ]
    assert sorted(fake.looked_up) == ["ch_a", "ch_b", "re_a"]


async def reconcile_day(
    engine: AsyncEngine, clock: FixedClock, fake: FakeAcquirer, day: str, account_id: str | None
) -> list[tuple[str, RowStatus, tuple[Difference, ...]]]:
    with serving(fake) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            result = await service.reconcile(day, account_id)
    return sorted((r.reference, r.status, r.differences) for r in result.rows)


async def test_an_item_settled_on_another_day_is_compared_on_that_day(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    """The ledger recorded ch_a and ch_b on DAY; the acquirer settled them the day after, ch_a
    for another amount, ch_b for another merchant. The look-up only says which day's run pairs
    an item: DAY leaves both to the next day, whose run over every account finds what differs,
    once. A run over the one account leaves ch_b on DAY, missing at the acquirer: its run of
    the next day does not list the other merchant's row."""
    account_id, other = await new_account(), await new_account()
    await some_history(core_engine, account_id, clock)
    next_day = T0 + timedelta(days=1)
    operations = {
        "ch_a": settled_operation("capture", "ch_a", 999, account_id, next_day),
        "ch_b": settled_operation("capture", "ch_b", 2_000, other, next_day),
    }
    on_day = FakeAcquirer(
        [settlement_row("refund", "re_a", 300, account_id)], operations=operations
    )
    on_next_day = FakeAcquirer(
        [
            settlement_row("capture", "ch_a", 999, account_id),
            settlement_row("capture", "ch_b", 2_000, other),
        ]
    )
    clock.advance(timedelta(days=2).total_seconds())  # both days are over

    assert await reconcile_day(core_engine, clock, on_day, DAY, None) == [
        ("re_a", RowStatus.MATCHED, ())
    ]
    assert await reconcile_day(
        core_engine, clock, on_next_day, next_day.date().isoformat(), None
    ) == [
        ("ch_a", RowStatus.AMOUNT_MISMATCH, (Difference("amount", "1000", "999"),)),
        ("ch_b", RowStatus.AMOUNT_MISMATCH, (Difference("merchant_id", account_id, other),)),
    ]
    assert await reconcile_day(core_engine, clock, on_day, DAY, account_id) == [
        (
            "ch_b",
            RowStatus.MISSING_AT_ACQUIRER,
            (Difference("outcome", "succeeded", f"settled for {other}"),),
        ),
        ("re_a", RowStatus.MATCHED, ()),
    ]


async def test_a_settlement_row_of_a_kind_reconcile_does_not_know_stops_it(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A row the acquirer added in a later version (a chargeback, say) moved money too; left
    out, the day would reconcile clean without it. Nothing is stored: the run fails."""
    await some_history(core_engine, account_id, clock)
    unknown = settlement_row("capture", "dp_1", 500, account_id)
    unknown.kind = 7  # type: ignore[assignment]
    fake = FakeAcquirer(
        [
            settlement_row("capture", "ch_a", 1_000, account_id),
            settlement_row("capture", "ch_b", 2_000, account_id),
            settlement_row("refund", "re_a", 300, account_id),
            unknown,
        ]
    )
    with pytest.raises(RemitError) as raised:
        await reconcile_with(core_engine, clock, fake, account_id)
    assert "dp_1" in raised.value.message
    async with core_engine.connect() as db:
        assert (await db.execute(text("SELECT count(*) FROM reconciliations"))).scalar() == 0


async def test_refunds_the_acquirer_has_not_made_are_left_out_of_reconciliation(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A refund shows its balance transaction from its creation, before the acquirer refunds
    it; one still waiting for its answer, or refused, has nothing the acquirer could settle,
    and is neither looked up nor reported missing there."""
    await some_history(core_engine, account_id, clock)
    async with core_engine.begin() as db:
        for refund_id in ("re_waiting", "re_refused"):
            await ledger.record_refund_held(
                db,
                account_id=account_id,
                refund_id=refund_id,
                charge_id="ch_b",
                amount_minor=100,
                currency="usd",
                now=clock.now(),
            )
        await ledger.record_refund_released(
            db, account_id=account_id, refund_id="re_refused", now=clock.now()
        )
    fake = FakeAcquirer(
        [
            settlement_row("capture", "ch_a", 1_000, account_id, fee=12),
            settlement_row("capture", "ch_b", 2_000, account_id, fee=24),
            settlement_row("refund", "re_a", 300, account_id),
        ]
    )
    result = await reconcile_with(core_engine, clock, fake, account_id)
    assert result.ok
    assert result.count(RowStatus.MATCHED) == 3
    assert fake.looked_up == []
