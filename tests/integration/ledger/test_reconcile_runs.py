"""Which days reconciliation runs for, and which stored run is the day's result."""

import asyncio
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger import postings as ledger
from remit.ledger import reconcile
from remit.ledger.grpc import reconciliation_message
from remit.ledger.reconcile import render_table
from remit.ledger.service import LedgerService
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from tests.integration.ledger.conftest import T0, NewAccount
from tests.integration.ledger.fake_acquirer import FakeAcquirer, serving, settlement_row

pytestmark = pytest.mark.anyio
DAY = T0.date()


async def capture(engine: AsyncEngine, account_id: str, charge_id: str, clock: FixedClock) -> None:
    async with engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id=charge_id,
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
        )


async def stored(engine: AsyncEngine) -> set[tuple[str, str | None, bool]]:
    """(id, superseded_by, partial) of every stored run."""
    async with engine.connect() as db:
        rows = await db.execute(text("SELECT id, superseded_by, partial FROM reconciliations"))
        return {(row.id, row.superseded_by, row.partial) for row in rows}


async def test_a_day_not_begun_is_refused_and_nothing_is_stored(
    core_engine: AsyncEngine, clock: FixedClock
) -> None:
    fake = FakeAcquirer()
    with serving(fake) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                core_engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            with pytest.raises(RemitError) as refused:
                await service.reconcile((DAY + timedelta(days=1)).isoformat())
    assert refused.value.kind is ErrorKind.INVALID_ARGUMENT
    assert "has not begun" in refused.value.message
    assert fake.asked == []
    assert await stored(core_engine) == set()


async def test_today_runs_only_as_a_partial_result_and_says_so(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """At 09:30 the ledger holds a capture the acquirer's report does not list yet."""
    await capture(core_engine, account_id, "ch_early", clock)
    await capture(core_engine, account_id, "ch_in_flight", clock)
    fake = FakeAcquirer([settlement_row("capture", "ch_early", 1_000, account_id)])
    with serving(fake) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                core_engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            with pytest.raises(RemitError) as refused:
                await service.reconcile(DAY.isoformat(), account_id)
            assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
            assert await stored(core_engine) == set()

            partial = await service.reconcile(DAY.isoformat(), account_id, allow_partial=True)
            assert (await service.get_reconciliation(partial.id)).partial

            clock.advance(timedelta(days=1).total_seconds())
            fake.rows.append(settlement_row("capture", "ch_in_flight", 1_000, account_id))
            whole = await service.reconcile(DAY.isoformat(), account_id)
    assert partial.partial
    assert not partial.ok
    assert "PARTIAL" in render_table(partial).splitlines()[0]
    assert reconciliation_message(partial).partial
    assert not whole.partial
    assert whole.ok
    assert "PARTIAL" not in render_table(whole)
    assert await stored(core_engine) == {(partial.id, whole.id, True), (whole.id, None, False)}


async def test_a_new_run_supersedes_the_earlier_ones_of_its_day_and_scope(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    first_account, second_account = await new_account(), await new_account()
    clock.advance(timedelta(days=1).total_seconds())
    with serving(FakeAcquirer()) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                core_engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            everyone = await service.reconcile(DAY.isoformat())
            first = await service.reconcile(DAY.isoformat(), first_account)
            second = await service.reconcile(DAY.isoformat(), second_account)
            first_again = await service.reconcile(DAY.isoformat(), first_account)
            earlier_day = await service.reconcile((DAY - timedelta(days=1)).isoformat())
            shown = await service.get_reconciliation(first.id)
    assert shown.superseded_by == first_again.id
    assert reconciliation_message(shown).superseded_by == first_again.id
    assert not reconciliation_message(first_again).HasField("superseded_by")
    # Only the first account's run of the day was run again.
    assert await stored(core_engine) == {
        (everyone.id, None, False),
        (first.id, first_again.id, False),
        (second.id, None, False),
        (first_again.id, None, False),
        (earlier_day.id, None, False),
    }


async def test_two_runs_of_one_day_at_once_leave_one_result(core_engine: AsyncEngine) -> None:
    """The second run's transaction waits for the first to commit, then supersedes it;
    without the wait it would find no current run and add a second one."""
    async with core_engine.connect() as first_db, core_engine.connect() as second_db:
        await first_db.begin()
        first = await reconcile.store(first_db, day=DAY, account_id=None, rows=[], now=T0)
        await second_db.begin()
        second_store = asyncio.create_task(
            reconcile.store(second_db, day=DAY, account_id=None, rows=[], now=T0)
        )
        await asyncio.sleep(0.5)
        assert not second_store.done(), "the second run waits for the first"
        await first_db.commit()
        second = await second_store
        await second_db.commit()
    assert await stored(core_engine) == {(first.id, second.id, False), (second.id, None, False)}
