"""A process's clock: the database's time, not its host's.

What the core and the worker decide by the time, they decide against times that other
processes wrote or that every process must agree on: a request's lease (`locked_until`), a
job's due time, when funds become available, when an authorization (7 days from
`charges.authorized_at`), a ledger reservation or a 3-D Secure challenge expires, how old an
idempotency key or a vault card is. On its host's clock, a core whose clock ran X ahead took
over requests another core was still running once X passed their lease, one X behind refused
the retries of an abandoned request for X longer, and either stamped authorizations and their
expiry's due time X off; a worker X ahead voided authorizations, ended
challenges and made funds available X early, and deleted idempotency keys a retry still
needed.

So their clock is the database's, which every process shares: read when the process starts
and every minute after (`READ_EVERY_S`), and carried forward between reads on a steady clock of
the host's (`elapsed_s`), which a change of the wall clock (an NTP step, an operator's `date`)
does not move. Between reads it drifts only as fast as the host's oscillator does (parts per
million). On Linux that clock is CLOCK_BOOTTIME, which goes on counting while the host is
suspended (a VM paused, a laptop asleep); the monotonic clock, used where there is no such
clock, stops then, and the time told would run late by the suspension (and the leases written
by it be short by as much) until the next read.

A read is taken somewhere within its round trip, so it is off by up to half of it. One whose
round trip took longer than `MAX_ROUND_TRIP_S` (a database or network under strain) is not let
replace an estimate it agrees with to within that error: the estimate carried forward is the
better of the two. One that disagrees with it by more is taken (the estimate is then surely
wrong, by more than the reading can be). A read that fails (the database out of reach) leaves
the time carried forward from the last one. No request waits on a read: it runs beside them,
and the statements of a payment stay as many as they were.

A read replaces the estimate, and a quick one's error (up to half its round trip) can put the
new estimate a few milliseconds behind what the clock told just before: two stamps taken one
after the other (a charge's `created`, a lease) would go backwards. So the time told never falls
behind the last time told: it holds still until the new estimate catches up. Only a reading more
than `MAX_HOLD_S` behind is stepped back to at once: the reads' error does not reach that far
(two quick reads are off by half a second each at most), so the estimate was wrong (a suspension
the monotonic clock did not count, the database's clock stepped), the times told by it were
wrong by as much already, and holding still for that long would stamp every lease, due time and
`created` of those seconds or hours with one frozen instant, leases cut short by as much.

The commands that record or check times in the core's database themselves (`remit accounts
create`, `remit reconcile`, `remit balance-release-failures retry`) read it once
(`command_clock`): they run for seconds.

Each read also compares the host's clock with the database's. The process does not depend on
it, but other processes on the host may (the logs' times, the vault's and the acquirer's own
records): a gap past a bound (REMIT_CORE_MAX_CLOCK_SKEW_S, for the commands too, and
REMIT_WORKER_MAX_CLOCK_SKEW_S, 5 seconds) is a warning, not a refusal, said once when it is
found, reminded every minute while it lasts, and once when it ends, as an outage is
(`remit.storage.outages`).

Tests pass their own clock (`remit.core.clock.FixedClock`) instead.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import DEFAULT_MAX_CLOCK_SKEW_S, core_max_clock_skew_s
from remit.core.clock import Clock, SystemClock
from remit.storage.outages import REMIND_EVERY_S, OutageLog

log = logging.getLogger(__name__)

READ_EVERY_S: Final = 60.0
# The longest round trip of a read that may replace an estimate it agrees with (see above).
MAX_ROUND_TRIP_S: Final = 1.0
# How far behind the time told a new reading may be for the clock to hold still until it catches
# up, rather than step back to it (see above).
MAX_HOLD_S: Final = 1.0
# How many times more a first reading slower than MAX_ROUND_TRIP_S is taken (`read_from`).
_FIRST_READ_RETRIES: Final = 3


def elapsed_s() -> float:
    """Seconds on the host's steady clock that counts time suspended: CLOCK_BOOTTIME (Linux),
    else the monotonic clock, which does not."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        return time.monotonic()
    return time.clock_gettime(boottime)


@dataclass(frozen=True)
class ClockUser:
    """The process that tells the time by the database's clock, as its warnings name it."""

    process: str  # "core", "worker"
    skew_setting: str  # the environment variable of its bound on the host's clock's gap
    decides: str  # what it decides by the time, for the warning


@dataclass(frozen=True)
class _Reading:
    database: datetime  # the database's time...
    monotonic: float  # ...at this instant of the host's steady clock (`elapsed_s`)
    host_ahead: timedelta  # how far the host's clock was ahead of the database's (or behind)
    round_trip_s: float  # the read's: `database` is off by up to half of it


async def _read(engine: AsyncEngine, monotonic: Callable[[], float], host: Clock) -> _Reading:
    async with engine.begin() as db:  # a read that commits keeps the prepared statements
        sent = monotonic()
        database = (await db.execute(text("SELECT clock_timestamp()"))).scalar_one()
        received = monotonic()
        host_now = host.now()
    assert isinstance(database, datetime)
    # Taken somewhere during the round trip: its middle is the best guess, off by at most half.
    middle = (sent + received) / 2
    database_at_host_now = database + timedelta(seconds=received - middle)
    return _Reading(
        database.astimezone(UTC), middle, host_now - database_at_host_now, received - sent
    )


def _gap(host_ahead: timedelta) -> str:
    seconds = host_ahead.total_seconds()
    return f"{abs(seconds):.1f}s {'ahead of' if seconds > 0 else 'behind'}"


class _SkewLog:
    """Says when the host's clock is further from the database's than `bound`: once when the
    gap is found, a reminder every `remind_every_s` while it lasts, once when it ends."""

    def __init__(
        self,
        user: ClockUser,
        bound: timedelta,
        monotonic: Callable[[], float],
        remind_every_s: float,
    ) -> None:
        self._user = user
        self._bound = bound
        self._monotonic = monotonic
        self._remind_every_s = remind_every_s
        self._since: float | None = None
        self._reminded = 0.0

    def observe(self, host_ahead: timedelta) -> None:
        now = self._monotonic()
        if abs(host_ahead) <= self._bound:
            if self._since is not None:
                log.info("the host's clock agrees with the database's again (%s it, within "
                         "%gs) after %.0fs", _gap(host_ahead), self._bound.total_seconds(),
                         now - self._since)  # fmt: skip
                self._since = None
            return
        if self._since is None:
            self._since = self._reminded = now
            said = "is"
        elif now - self._reminded >= self._remind_every_s:
            self._reminded = now
            said = f"is still, after {now - self._since:.0f}s,"
        else:
            return
        user = self._user
        log.warning("the host's clock %s %s the database's, more than the %gs allowed "
                    "(%s): the %s runs on and decides %s by the database's clock, but other "
                    "processes on this host may tell the time by its clock; correct the host's "
                    "time synchronization (NTP)", said, _gap(host_ahead),
                    self._bound.total_seconds(), user.skew_setting, user.process,
                    user.decides)  # fmt: skip


class DatabaseClock:
    """A `remit.core.clock.Clock` that tells the database's time; made by `read_from`, so it
    has always read it once."""

    def __init__(
        self,
        engine: AsyncEngine,
        reading: _Reading,
        *,
        monotonic: Callable[[], float],
        host: Clock,
        skew: _SkewLog,
    ) -> None:
        self._engine = engine
        self._reading = reading
        self._monotonic = monotonic
        self._host = host
        self._skew = skew
        self._told: datetime | None = None  # the last time `now` told: it never falls behind it
        skew.observe(reading.host_ahead)

    @classmethod
    async def read_from(
        cls,
        engine: AsyncEngine,
        user: ClockUser,
        *,
        max_skew: timedelta = timedelta(seconds=DEFAULT_MAX_CLOCK_SKEW_S),
        monotonic: Callable[[], float] = elapsed_s,
        host: Clock | None = None,
        remind_every_s: float = REMIND_EVERY_S,
    ) -> "DatabaseClock":
        """`host` is the host's clock, which is only compared with the database's; `monotonic`
        the steady clock that carries the time forward (`elapsed_s`, or a test's)."""
        host_clock = host or SystemClock()
        reading = await _read(engine, monotonic, host_clock)
        # A first reading has no estimate to be checked against, and is off by up to half its
        # round trip: a slow one is read again, a few times at most, and the quickest kept.
        for _ in range(_FIRST_READ_RETRIES):
            if reading.round_trip_s <= MAX_ROUND_TRIP_S:
                break
            again = await _read(engine, monotonic, host_clock)
            if again.round_trip_s < reading.round_trip_s:
                reading = again
        skew = _SkewLog(user, max_skew, monotonic, remind_every_s)
        return cls(engine, reading, monotonic=monotonic, host=host_clock, skew=skew)

    def now(self) -> datetime:
        estimate = self._at(self._monotonic())
        if self._told is not None and estimate < self._told:
            return self._told  # a read's error put the estimate behind: hold until it catches up
        self._told = estimate
        return estimate

    def _at(self, monotonic: float) -> datetime:
        since = monotonic - self._reading.monotonic
        return self._reading.database + timedelta(seconds=since)

    async def read(self) -> None:
        """Read the database's time again, and compare the host's with it; a slow read that
        agrees with the estimate within its error leaves the estimate (see the module's
        docstring)."""
        reading = await _read(self._engine, self._monotonic, self._host)
        if reading.round_trip_s > MAX_ROUND_TRIP_S:
            off = abs(self._at(reading.monotonic) - reading.database)
            if off <= timedelta(seconds=reading.round_trip_s / 2):
                log.debug("the database's clock read in %.1fs agrees with the time carried "
                          "forward, which is kept", reading.round_trip_s)  # fmt: skip
                return
        self._reading = reading
        if self._told is not None:
            behind = self._told - self._at(self._monotonic())
            if behind > timedelta(seconds=MAX_HOLD_S):
                # Past the reads' error: the time told was wrong, and is stepped back from.
                log.info("the database's clock read %.1fs behind the time carried forward, "
                         "which is corrected", behind.total_seconds())  # fmt: skip
                self._told = None
        self._skew.observe(self._reading.host_ahead)

    async def keep_reading(self, every_s: float = READ_EVERY_S) -> None:
        """Read the database's time again every `every_s` until cancelled, for a process with
        no periodic tasks of its own (the core; the worker runs `read` among its own). A read
        that fails is logged as an outage is, and the time carried forward meanwhile."""
        outage = OutageLog(log, "reading the database's clock", meanwhile="carrying it forward")
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.read()
            except Exception as error:
                outage.failed(error)
            else:
                outage.succeeded()


# A command an operator runs against the core's database itself (`remit accounts create`,
# `remit reconcile`): part of the core, run on whatever host the operator is on.
COMMAND: Final = ClockUser(
    process="command",
    skew_setting="REMIT_CORE_MAX_CLOCK_SKEW_S",
    decides="every time it records or checks",
)


async def command_clock(engine: AsyncEngine) -> DatabaseClock:
    """The clock of a command that records or checks times in the core's database: read once,
    as a command runs for seconds."""
    return await DatabaseClock.read_from(
        engine, COMMAND, max_skew=timedelta(seconds=core_max_clock_skew_s())
    )
