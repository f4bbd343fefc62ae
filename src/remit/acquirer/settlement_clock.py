"""The acquirer's time: the database's, and how long after a day its settlement is whole.

An operation settles at the time the acquirer stamps on it (`settled_at`), but a report sees it
only once its transaction commits, later. Stamped by each host's own clock, a capture stamped
late on day D by a host whose clock ran behind, or committed after a report for D read by a
host whose clock ran ahead, is in neither D's report nor D+1's. So the acquirer, like the core
and the worker, tells the time by the database's clock (`remit.storage.database_clock`): read
when it starts and every minute after, carried forward between reads, so that no authorization
pays a statement for it. `remit settlement-report` reads it once, from the acquirer's database,
and with it the grace the acquirer recorded when it started (`report_grace`).

Even on one clock a capture stamped at 23:59:59.8 may commit at 00:00:01: a report for its day
is whole only once every transaction that may have stamped a time of that day has ended
(`settlement_grace`), and partial until then.
"""

from datetime import timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.tables import settlement_grace_record
from remit.config import core_max_clock_skew_s, database_pool_timeout_s, statement_timeout_s
from remit.storage.database_clock import (
    MAX_HOLD_S,
    MAX_ROUND_TRIP_S,
    ClockUser,
    DatabaseClock,
)
from remit.storage.engine import make_engine

ACQUIRER: Final = ClockUser(
    process="acquirer",
    skew_setting="REMIT_CORE_MAX_CLOCK_SKEW_S",
    decides="every operation's time, when it settles, and which days are over",
)

# What may run after an operation's time is stamped, until it commits: an authorization runs
# one autocommitted statement; a capture, void or refund stamps once it holds its
# authorization's lock, then updates the authorization, inserts the operation and commits,
# three statements, each bounded by the statement timeout. Every operation stamps once it holds
# its connection, so neither waiting for one (bounded by the pool's wait) nor opening one (by
# the connect timeout, and set up) comes between a stamp and its commit; the grace still counts
# the pool's wait, as it did when an authorization stamped before taking its connection.
_STATEMENTS_AFTER_THE_STAMP: Final = 3
# How far two readings of the database's clock may disagree: a reading is off by up to half
# its round trip, and the time told holds still for up to MAX_HOLD_S rather than step back.
CLOCK_ERROR_S: Final = MAX_ROUND_TRIP_S + MAX_HOLD_S


def settlement_grace() -> timedelta:
    """How long after its end a day may still get settled operations committed: longer than any
    acquirer transaction can last after stamping its time, from the configured statement timeout
    (REMIT_STATEMENT_TIMEOUT_S) and pool wait (REMIT_DATABASE_POOL_TIMEOUT_S), plus the
    database clock's reading error."""
    return timedelta(
        seconds=database_pool_timeout_s()
        + _STATEMENTS_AFTER_THE_STAMP * statement_timeout_s()
        + CLOCK_ERROR_S
    )


async def record_settlement_grace(engine: AsyncEngine, grace: timedelta) -> None:
    """Record `grace` as the acquirer's, in its database, when the acquirer process starts:
    `remit settlement-report` reads that database from a shell whose settings may differ,
    and waits at least as long (`report_grace`), as does every acquirer process.

    The longest recorded is kept: acquirers started with different settings may run side by
    side (a rolling change of the statement timeout), and the one started last with a shorter
    grace must not shorten the wait for another's transactions. A lowered setting therefore
    shortens the wait only once the row is cleared (README, the acquirer's settings)."""
    grace_ms = round(grace.total_seconds() * 1000)
    statement = insert(settlement_grace_record).values(
        id=True, grace_ms=grace_ms, recorded_at=func.now()
    )
    excluded = statement.excluded
    longest = func.greatest(settlement_grace_record.c.grace_ms, excluded.grace_ms)
    async with engine.begin() as db:
        await db.execute(
            statement.on_conflict_do_update(
                index_elements=["id"], set_={"grace_ms": longest, "recorded_at": func.now()}
            )
        )


async def report_grace(engine: AsyncEngine) -> timedelta:
    """The grace a settlement report read straight from the acquirer's database waits: the
    longer of the one this process's settings give and the one the acquirer recorded when it
    started (`record_settlement_grace`; none before an acquirer of this version has). Taken
    from this process's settings alone, a shell with a shorter statement timeout than the
    acquirer's called a day whole while the acquirer's transactions might still commit on
    it."""
    async with engine.begin() as db:
        recorded_ms = await db.scalar(select(settlement_grace_record.c.grace_ms))
    own = settlement_grace()
    return own if recorded_ms is None else max(own, timedelta(milliseconds=recorded_ms))


def acquirer_process_engine(url: str) -> AsyncEngine:
    """The acquirer process's engine: each statement bounded by the statement timeout, each
    wait for a connection by the pool's (`make_engine`), the bounds `settlement_grace` counts
    on."""
    return make_engine(
        url,
        application_name="remit-acq",
        statement_timeout_s=statement_timeout_s(),
        pool_timeout_s=database_pool_timeout_s(),
    )


async def acquirer_clock(engine: AsyncEngine) -> DatabaseClock:
    """The database's clock, read once from the acquirer's database; the acquirer process reads
    it again every minute (`DatabaseClock.keep_reading`)."""
    return await DatabaseClock.read_from(
        engine, ACQUIRER, max_skew=timedelta(seconds=core_max_clock_skew_s())
    )
