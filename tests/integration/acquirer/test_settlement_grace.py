"""A day's settlement report is whole only once every operation stamped with a time of that day
has committed: until the grace after midnight has passed, the day is reported only as partial."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.domain import Operation
from remit.acquirer.repository import SqlAcquirerRepository
from remit.acquirer.service import AcquirerService
from remit.acquirer.settlement_clock import acquirer_process_engine, settlement_grace
from remit.acquirer.settlement_pages import ResumedReport, SettlementCursor
from remit.core.clock import FixedClock, SystemClock
from remit.core.errors import RemitError
from remit.storage.direct import DirectPool
from remit.storage.engine import dispose
from tests.integration.acquirer.support import authorization_request
from tests.support.postgres import WorkerDatabases

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


async def test_a_capture_whose_statement_hangs_after_its_stamp_ends_within_the_grace(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grace counts on the acquirer process's engine cutting every statement at the
    statement timeout: a capture whose statement hangs after it has taken its time (a lock
    held, a database under strain) ends, and with it the chance of a late commit on the day,
    within the grace of its stamp, not when the statement would have returned."""
    # Shorter than the settings take (a second at least), for a quick test: as the settings
    # would give it, to the grace and the engine both.
    monkeypatch.setattr("remit.acquirer.settlement_clock.statement_timeout_s", lambda: 0.2)
    monkeypatch.setattr("remit.acquirer.settlement_clock.database_pool_timeout_s", lambda: 0.1)
    grace = settlement_grace()
    engine = acquirer_process_engine(databases.acquirer_url)
    try:
        service = AcquirerService(engine, grace=grace)
        held = await service.authorize(authorization_request(reference="held"))
        authorization_id = held.operation.authorization_id
        assert authorization_id is not None
        stamped_at: list[float] = []

        async def hanging(repository: SqlAcquirerRepository, operation: Operation) -> bool:
            stamped_at.append(time.monotonic())  # the capture has taken its time
            await repository._sa.execute(text(f"SELECT pg_sleep({grace.total_seconds() + 2})"))
            raise AssertionError("the statement outlasted the statement timeout")

        monkeypatch.setattr(SqlAcquirerRepository, "insert_operation_once", hanging)
        with pytest.raises(Exception) as cut:  # noqa: PT011 (whichever error the driver's is)
            await service.capture("hung", authorization_id, 1000, keep_open=False)
        ended_at = time.monotonic()
    finally:
        await dispose(engine)
    assert not isinstance(cut.value, AssertionError)
    assert ended_at - stamped_at[0] < grace.total_seconds()


class _StampTimes:
    """The system's clock, noting on the monotonic clock when each time is stamped."""

    def __init__(self) -> None:
        self.taken_at: list[float] = []

    def now(self) -> datetime:
        self.taken_at.append(time.monotonic())
        return SystemClock().now()


async def test_a_sale_that_opens_a_connection_commits_within_the_grace_of_its_stamp(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no connection idle, a sale's statement waits for a new one to be opened, bounded
    by the connect timeout rather than the pool's wait, and set up: a sale stamped before that
    could commit after its day was reported whole. It takes its time once it holds the
    connection, as captures, voids and refunds do."""
    monkeypatch.setattr("remit.acquirer.settlement_clock.statement_timeout_s", lambda: 0.2)
    monkeypatch.setattr("remit.acquirer.settlement_clock.database_pool_timeout_s", lambda: 0.1)
    grace = settlement_grace()
    connect = DirectPool._connect

    async def slow_connect(pool: DirectPool) -> psycopg.AsyncConnection[Any]:
        await asyncio.sleep(grace.total_seconds() + 0.5)  # a database slow to accept
        return await connect(pool)

    monkeypatch.setattr(DirectPool, "_connect", slow_connect)
    clock = _StampTimes()
    engine = acquirer_process_engine(databases.acquirer_url)
    try:
        service = AcquirerService(engine, clock, grace=grace)
        sale = await service.authorize(authorization_request(reference="sale", capture=True))
        committed_by = time.monotonic()
    finally:
        await dispose(engine)
    assert sale.operation.settled_at is not None
    assert len(clock.taken_at) == 1
    assert committed_by - clock.taken_at[0] < grace.total_seconds()


def _resumed(*, partial: bool) -> ResumedReport:
    """A page token's content, as a caller could write it by hand: it is not authenticated."""
    cursor = SettlementCursor(settled_at=MIDNIGHT, operation_id="op_1", snapshot="1:1:")
    return ResumedReport(cursor, partial)


@pytest.mark.parametrize(
    ("value", "now"),
    [
        (DAY, MIDNIGHT - timedelta(hours=10)),  # today
        ("2031-03-20", MIDNIGHT),  # not begun
    ],
)
async def test_a_token_cannot_make_a_day_not_over_whole(
    acquirer_engine: AsyncEngine, value: str, now: datetime
) -> None:
    service = AcquirerService(acquirer_engine, FixedClock(now), grace=timedelta(seconds=97))
    with pytest.raises(RemitError):
        service.report_day(value, allow_partial=False, resumed=_resumed(partial=False))


async def test_a_token_cannot_make_a_day_within_its_grace_whole(
    acquirer_engine: AsyncEngine,
) -> None:
    grace = timedelta(seconds=97)
    service = AcquirerService(acquirer_engine, FixedClock(MIDNIGHT + timedelta(seconds=30)),
                              grace=grace)  # fmt: skip
    assert service.report_day(DAY, allow_partial=True, resumed=_resumed(partial=False)).partial
    with pytest.raises(RemitError):
        service.report_day(DAY, allow_partial=False, resumed=_resumed(partial=False))


async def test_a_report_judged_whole_a_moment_ago_stays_whole_on_a_clock_a_moment_behind(
    acquirer_engine: AsyncEngine,
) -> None:
    """Another replica's clock, or a re-reading, a second and a half behind the one that judged
    the first page just after the grace ended."""
    grace = timedelta(seconds=97)
    behind = MIDNIGHT + grace - timedelta(seconds=1.5)
    service = AcquirerService(acquirer_engine, FixedClock(behind), grace=grace)
    page = service.report_day(DAY, allow_partial=False, resumed=_resumed(partial=False))
    assert not page.partial
