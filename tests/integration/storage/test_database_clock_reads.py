"""A process with no periodic tasks of its own (the core) keeps reading the database's clock."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core_process import CORE
from remit.storage import database_clock
from remit.storage.database_clock import DatabaseClock

pytestmark = pytest.mark.anyio


class Monotonic:
    """A monotonic clock a test moves."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


async def _database_now(engine: AsyncEngine) -> datetime:
    async with engine.connect() as db:
        value = (await db.execute(select(func.clock_timestamp()))).scalar_one()
    assert isinstance(value, datetime)
    return value


async def test_the_clock_reads_the_database_s_time_again_until_cancelled(
    core_engine: AsyncEngine,
) -> None:
    monotonic = Monotonic()
    clock = await DatabaseClock.read_from(core_engine, CORE, monotonic=monotonic)
    # An hour by the monotonic clock that the database's time does not bear out (a drift, a
    # host that slept): only a read again brings the clock back.
    monotonic.seconds += 3600
    drifted = clock.now()
    reading = asyncio.create_task(clock.keep_reading(every_s=0.01))
    try:
        for _ in range(500):
            if clock.now() < drifted:
                break
            await asyncio.sleep(0.01)
    finally:
        reading.cancel()
    assert abs(clock.now() - await _database_now(core_engine)) < timedelta(seconds=5)
    with pytest.raises(asyncio.CancelledError):
        await reading


class ScriptedMonotonic(Monotonic):
    """A monotonic clock a test moves, whose next readings it may script (a read's send and
    receipt, to give the read a round trip of its choosing)."""

    def __init__(self) -> None:
        super().__init__()
        self.next: list[float] = []

    def __call__(self) -> float:
        return self.next.pop(0) if self.next else self.seconds


@pytest.mark.skipif(not hasattr(time, "CLOCK_BOOTTIME"), reason="no CLOCK_BOOTTIME here")
async def test_time_the_host_spent_suspended_is_counted(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monotonic clock stops while the host is suspended: carried on it, the time told
    would run an hour late after an hour's suspension, until the next read."""
    suspended_s = 0.0
    clock_gettime = time.clock_gettime

    def after_suspension(clock_id: int) -> float:
        if clock_id == time.CLOCK_BOOTTIME:
            return clock_gettime(clock_id) + suspended_s
        return clock_gettime(clock_id)

    monkeypatch.setattr(time, "clock_gettime", after_suspension)
    clock = await DatabaseClock.read_from(core_engine, CORE)
    before = clock.now()
    suspended_s = 3600.0  # the host slept an hour: the monotonic clock did not count it
    assert clock.now() - before >= timedelta(seconds=3600)


async def test_a_slow_read_that_agrees_with_the_estimate_leaves_it(
    core_engine: AsyncEngine,
) -> None:
    monotonic = ScriptedMonotonic()
    clock = await DatabaseClock.read_from(core_engine, CORE, monotonic=monotonic)
    estimate = clock.now()
    # A round trip of 2 s around the same instant: the reading is off by up to 1 s, and
    # within that of the estimate.
    monotonic.next = [monotonic.seconds - 1.0, monotonic.seconds + 1.0]
    await clock.read()
    assert clock.now() == estimate


async def test_a_slow_read_that_refutes_the_estimate_is_taken(core_engine: AsyncEngine) -> None:
    monotonic = ScriptedMonotonic()
    clock = await DatabaseClock.read_from(core_engine, CORE, monotonic=monotonic)
    monotonic.seconds += 3600  # an hour the database's time does not bear out
    monotonic.next = [monotonic.seconds - 1.0, monotonic.seconds + 1.0]
    await clock.read()
    assert abs(clock.now() - await _database_now(core_engine)) < timedelta(seconds=5)


async def test_a_quick_read_is_always_taken(core_engine: AsyncEngine) -> None:
    monotonic = ScriptedMonotonic()
    clock = await DatabaseClock.read_from(core_engine, CORE, monotonic=monotonic)
    estimate = clock.now()
    await asyncio.sleep(0.01)  # the database's time moves on; the scripted clock does not
    await clock.read()
    assert clock.now() > estimate


async def test_a_slow_first_read_is_taken_again(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first reading has nothing to be checked against, and is off by up to half its round
    trip: one slower than a read may take is taken again, and the quicker one kept."""
    monotonic = Monotonic()
    slow_at, quick_at = datetime(2031, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, 0, 0, 2, tzinfo=UTC)
    readings = [
        database_clock._Reading(slow_at, monotonic.seconds, timedelta(0), 4.0),
        database_clock._Reading(quick_at, monotonic.seconds, timedelta(0), 0.01),
    ]
    taken: list[int] = []

    async def scripted(*_args: object) -> object:
        taken.append(len(taken))
        return readings[len(taken) - 1]

    monkeypatch.setattr(database_clock, "_read", scripted)
    clock = await DatabaseClock.read_from(core_engine, CORE, monotonic=monotonic)
    assert len(taken) == 2
    assert clock.now() == quick_at
