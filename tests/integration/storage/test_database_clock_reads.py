"""A process with no periodic tasks of its own (the core) keeps reading the database's clock."""

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core_process import CORE
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
