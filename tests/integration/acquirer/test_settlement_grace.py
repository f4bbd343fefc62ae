"""A day's settlement report is whole only once every operation stamped with a time of that day
has committed: until the grace after midnight has passed, the day is reported only as partial."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.domain import Operation
from remit.acquirer.repository import SqlAcquirerRepository
from remit.acquirer.service import AcquirerService
from remit.acquirer.settlement_clock import settlement_grace
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from tests.integration.acquirer.support import authorization_request

pytestmark = pytest.mark.anyio

DAY = "2031-03-14"
MIDNIGHT = datetime(2031, 3, 15, tzinfo=UTC)


async def test_a_capture_stamped_before_midnight_and_committed_after_leaves_its_day_partial(
    acquirer_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A capture stamped at 23:59:59.8 commits after a report for its day is read at
    00:00:00.5: that report said it was whole, and missed the capture, which the next day's
    report does not list either. It is partial until the grace has passed, and then whole."""
    clock = FixedClock(MIDNIGHT - timedelta(minutes=5))
    service = AcquirerService(acquirer_engine, clock)
    held = await service.authorize(authorization_request(reference="held"))
    authorization_id = held.operation.authorization_id
    assert authorization_id is not None

    stamped, release = asyncio.Event(), asyncio.Event()
    insert = SqlAcquirerRepository.insert_operation_once

    async def held_before_commit(repository: SqlAcquirerRepository, operation: Operation) -> bool:
        stamped.set()  # the capture has taken its time; its transaction is still open
        await release.wait()
        return await insert(repository, operation)

    monkeypatch.setattr(SqlAcquirerRepository, "insert_operation_once", held_before_commit)
    clock.advance(5 * 60 - 0.2)  # 23:59:59.8
    late = asyncio.create_task(service.capture("late", authorization_id, 1000, keep_open=False))
    await stamped.wait()

    clock.advance(0.7)  # 00:00:00.5 the next day
    with pytest.raises(RemitError) as not_over:
        service.report_day(DAY, allow_partial=False)
    assert not_over.value.code == "day_not_over"
    early = service.report_day(DAY, allow_partial=True)
    assert early.partial
    assert (await service.settlement_page(early.day)).rows == []

    release.set()
    captured = await late
    assert captured.operation.settled_at == MIDNIGHT - timedelta(seconds=0.2)

    clock.advance((settlement_grace() - timedelta(seconds=0.5)).total_seconds())
    whole = service.report_day(DAY, allow_partial=False)
    assert not whole.partial
    rows = (await service.settlement_page(whole.day)).rows
    assert [row.reference for row in rows] == ["late"]


def test_the_grace_outlasts_any_transaction_the_settings_allow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection waited for, then three statements, each up to the statement timeout, and
    the database clock's reading error: from the settings, not a fixed number."""
    monkeypatch.setenv("REMIT_STATEMENT_TIMEOUT_S", "10")
    monkeypatch.setenv("REMIT_DATABASE_POOL_TIMEOUT_S", "2")
    assert settlement_grace() == timedelta(seconds=2 + 3 * 10 + 2)
    monkeypatch.setenv("REMIT_STATEMENT_TIMEOUT_S", "60")
    assert settlement_grace() == timedelta(seconds=2 + 3 * 60 + 2)
