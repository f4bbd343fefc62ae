"""The database's clock, as a process tells it, does not go backwards at a read but within the
reads' error; past it, it is corrected at once."""

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, FixedClock
from remit.core_process import CORE
from remit.storage import database_clock
from remit.storage.database_clock import DatabaseClock

pytestmark = pytest.mark.anyio

START = datetime(2026, 1, 1, tzinfo=UTC)


class Sources:
    """The monotonic clock and the database's, both moved by the test."""

    def __init__(self) -> None:
        self.monotonic = 1000.0
        self.database = START

    def elapse(self, seconds: float) -> None:
        self.monotonic += seconds
        self.database += timedelta(seconds=seconds)

    def tick(self) -> float:
        return self.monotonic

    def reading(self) -> database_clock._Reading:
        # A quick read, taken at this instant of both clocks.
        return database_clock._Reading(self.database, self.monotonic, timedelta(0), 0.001)


@pytest.fixture
def sources(monkeypatch: pytest.MonkeyPatch) -> Sources:
    sources = Sources()

    async def read(engine: AsyncEngine, monotonic: object, host: Clock) -> database_clock._Reading:
        return sources.reading()

    monkeypatch.setattr(database_clock, "_read", read)
    return sources


async def _clock(sources: Sources) -> DatabaseClock:
    return await DatabaseClock.read_from(
        cast(AsyncEngine, object()), CORE, monotonic=sources.tick, host=FixedClock(START)
    )


async def test_a_reading_a_little_behind_holds_the_time_told_until_it_catches_up(
    sources: Sources,
) -> None:
    clock = await _clock(sources)
    sources.elapse(60)
    told = clock.now()
    assert told == START + timedelta(seconds=60)
    # The next read's error puts the database's time 5 ms behind the estimate carried forward.
    sources.database -= timedelta(milliseconds=5)
    await clock.read()
    assert clock.now() == told
    sources.elapse(0.004)
    assert clock.now() == told
    sources.elapse(0.002)
    assert clock.now() == told + timedelta(milliseconds=1)


async def test_a_reading_far_behind_is_stepped_back_to(sources: Sources) -> None:
    clock = await _clock(sources)
    sources.monotonic += 3600  # an hour the database's time does not bear out
    assert clock.now() == START + timedelta(seconds=3600)
    await clock.read()
    assert clock.now() == START
    sources.elapse(1)
    assert clock.now() == START + timedelta(seconds=1)
