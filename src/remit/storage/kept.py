"""SQLAlchemy connections kept checked out between the hot path's units of work.

A unit through `engine.begin()` checks a connection out of SQLAlchemy's pool, begins, commits
and checks it back in (with a reset), each step a hop through SQLAlchemy's greenlet bridge:
about 180 µs of client CPU per unit on top of its statements, measured on this project's
standard machine against a unit whose statements go straight to psycopg. A payment runs two
such units. `remit.storage.engine.batched_unit` instead takes a connection kept here, lets
psycopg commit it (with the unit's last held writes, in one round trip), and keeps it for the
next unit; SQLAlchemy's own transaction handling runs only when a statement written with
SQLAlchemy Core began a transaction in the unit.

A kept connection is given back to SQLAlchemy's pool when it is older than the engine's
recycle period, when more than `max_idle` are idle, or when a unit could not end cleanly. A
broken one (the server went away) is closed with every idle one: they most likely share its
fate, as SQLAlchemy's pool assumes for its own connections.
"""

import time
from dataclasses import dataclass

from psycopg import pq
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.storage import fastsql


@dataclass
class Kept:
    connection: AsyncConnection
    born: float
    units: int = 0


# Units after which a kept connection's session forgets its cached plans (see below).
_REPLAN_AFTER_UNITS = frozenset({25, 100, 400, 1_600, 6_400, 25_600, 102_400})
_DISCARD_PLANS = fastsql.Statement("DISCARD PLANS")


async def replan_as_tables_grow(kept: Kept) -> None:
    """Forget the cached plans of `kept`'s session if this unit is one of a few spaced ones.

    PostgreSQL plans a statement a session runs often once and keeps the plan: prepared
    statements, foreign key checks and PL/pgSQL functions alike. A session that began on a
    young database planned against tables of a few rows, where one index looks as good as
    another. Measured at 16 payments in flight from a fresh database, a kept session went on
    reading an account's ledger transactions through the index on their sequence to find one
    by its id, a little further with every payment: the platform's CPU per payment grew by
    about a tenth with every thousand payments. Plans made after the tables have grown are
    right, so a kept session forgets its plans at geometrically spaced units of work: one
    re-planning each time, and nothing after the last."""
    kept.units += 1
    if kept.units in _REPLAN_AFTER_UNITS:
        await _DISCARD_PLANS.run(kept.connection, {})


class KeptConnections:
    """Checked-out connections of one engine, idle between units of work."""

    def __init__(self, engine: AsyncEngine, *, max_idle: int, recycle_s: float) -> None:
        self._engine = engine
        self._max_idle = max_idle
        self._recycle_s = recycle_s
        self._idle: list[Kept] = []

    async def take(self) -> Kept:
        while self._idle:
            kept = self._idle.pop()
            if time.monotonic() - kept.born < self._recycle_s:
                return kept
            await kept.connection.close()
        return Kept(await self._engine.connect(), time.monotonic())

    async def give_back(self, kept: Kept, *, clean: bool) -> None:
        """Keep `kept` for the next unit if its unit ended `clean` and it is in order."""
        raw = fastsql.driver(kept.connection)
        if raw.broken or raw.closed:
            await kept.connection.invalidate()
            await kept.connection.close()
            await self.close(invalidate=True)
            return
        usable = (
            clean
            and raw.info.transaction_status == pq.TransactionStatus.IDLE
            and not kept.connection.in_transaction()
            and len(self._idle) < self._max_idle
        )
        if usable:
            self._idle.append(kept)
        else:
            await kept.connection.close()

    async def close(self, *, invalidate: bool = False) -> None:
        """Give every idle connection back to the engine's pool (`invalidate`: to be closed)."""
        while self._idle:
            connection = self._idle.pop().connection
            if invalidate:
                await connection.invalidate()
            await connection.close()


_ATTRIBUTE = "_remit_kept_connections"


def attach(engine: AsyncEngine, *, max_idle: int, recycle_s: float) -> None:
    keeper = KeptConnections(engine, max_idle=max_idle, recycle_s=recycle_s)
    setattr(engine.sync_engine, _ATTRIBUTE, keeper)


def kept_of(engine: AsyncEngine) -> KeptConnections:
    keeper = getattr(engine.sync_engine, _ATTRIBUTE, None)
    if not isinstance(keeper, KeptConnections):
        raise LookupError("this engine was not made by make_engine: it keeps no connections")
    return keeper


async def close(engine: AsyncEngine) -> None:
    """Give the engine's idle kept connections back to its pool (before `engine.dispose()`)."""
    keeper = getattr(engine.sync_engine, _ATTRIBUTE, None)
    if isinstance(keeper, KeptConnections):
        await keeper.close()
