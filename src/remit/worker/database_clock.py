"""The worker's clock: the database's time, not its host's.

Whatever the worker decides by the time, it decides against times that other processes wrote or
that every process must agree on: a job's due time, a request's lease (`locked_until`, written
by the core), when funds become available, when an authorization, a ledger reservation or a
3-D Secure challenge expires, how old an idempotency key or a vault card is. On its host's clock,
a worker whose clock ran X ahead voided authorizations and ended challenges X early, made funds
available (to be paid out) X early, took over requests the core was still running once X passed
their lease, and deleted idempotency keys a retry still needed once X passed a day (the retry
then paid again).

So its clock is the database's, which every process shares: read when the worker starts and
every minute after (`READ_EVERY_S`), and carried forward between reads on the host's monotonic
clock, which a change of the wall clock (an NTP step, an operator's `date`) does not move.
Between reads it drifts only as fast as the host's oscillator does (parts per million). While
the host is suspended the monotonic clock stops: the time told runs late, never early, until the
next read. A read that fails (the database out of reach) leaves the time carried forward from
the last one.

Tests pass their own clock (`remit.core.clock.FixedClock`) instead.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.worker.runner import Periodic

READ_EVERY_S: Final = 60.0
TASK: Final = "read-the-database-clock"


@dataclass(frozen=True)
class _Reading:
    database: datetime  # the database's time...
    monotonic: float  # ...at this instant of the host's monotonic clock


async def _read(engine: AsyncEngine, monotonic: Callable[[], float]) -> _Reading:
    async with engine.connect() as db:
        sent = monotonic()
        database = (await db.execute(text("SELECT clock_timestamp()"))).scalar_one()
        received = monotonic()
    assert isinstance(database, datetime)
    # Taken somewhere during the round trip: its middle is the best guess, off by at most half.
    return _Reading(database.astimezone(UTC), (sent + received) / 2)


class DatabaseClock:
    """A `remit.core.clock.Clock` that tells the database's time; made by `read_from`, so it
    has always read it once."""

    def __init__(
        self, engine: AsyncEngine, reading: _Reading, monotonic: Callable[[], float]
    ) -> None:
        self._engine = engine
        self._reading = reading
        self._monotonic = monotonic

    @classmethod
    async def read_from(
        cls, engine: AsyncEngine, *, monotonic: Callable[[], float] = time.monotonic
    ) -> "DatabaseClock":
        return cls(engine, await _read(engine, monotonic), monotonic)

    def now(self) -> datetime:
        since = self._monotonic() - self._reading.monotonic
        return self._reading.database + timedelta(seconds=since)

    async def read(self) -> None:
        """Read the database's time again."""
        self._reading = await _read(self._engine, self._monotonic)

    def periodic(self) -> Periodic:
        """The worker's task that reads the database's time again every minute."""
        return Periodic(TASK, READ_EVERY_S, self.read)
