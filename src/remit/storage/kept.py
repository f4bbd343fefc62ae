"""SQLAlchemy connections kept checked out between the hot path's units of work.

A unit through `engine.begin()` checks a connection out of SQLAlchemy's pool, begins, commits
and checks it back in (with a reset), each step a hop through SQLAlchemy's greenlet bridge:
about 180 µs of client CPU per unit on top of its statements, measured on this project's
standard machine against a unit whose statements go straight to psycopg. A payment runs two
such units. `remit.storage.engine.batched_unit` instead takes a connection kept here, lets
psycopg commit it (with the unit's last held writes, in one round trip), and keeps it for the
next unit; SQLAlchemy's own transaction handling runs only when a statement written with
SQLAlchemy Core began a transaction in the unit.

Each unit sees its kept connection through a face of its own (`UnitConnection`), which stops
working when the unit ends: the connection serves the next unit next, and a reference kept past
its unit must fail rather than run a statement inside another unit's transaction.

A kept connection is given back to SQLAlchemy's pool when it is older than the engine's
recycle period, when more than `max_idle` are idle, when a unit could not end cleanly, or once
the engine is being disposed. One that SQLAlchemy invalidated is closed; one whose server went
away is closed with every idle kept one, which most likely share its fate (the connections idle
in SQLAlchemy's own pool are left to it: each fails once and is replaced).
"""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import psycopg
from psycopg import pq
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.storage import fastsql, replanning

log = logging.getLogger(__name__)


class UnitEndedError(RuntimeError):
    """A statement through a unit's connection after the unit ended."""


class UnitConnection(AsyncConnection):
    """A kept connection as one unit of work sees it; `end` retires it."""

    __slots__ = ()

    def __init__(self, kept: AsyncConnection) -> None:
        super().__init__(kept.engine)
        # Set directly, not through the constructor: that would register this face as the
        # connection's proxy in SQLAlchemy's registry, where it would outlive the unit.
        self.sync_connection = kept.sync_connection

    def end(self) -> None:
        self.sync_connection = None

    def _raise_for_not_started(self) -> NoReturn:
        raise UnitEndedError(
            "This unit of work has ended; its connection now serves other units. Keep no "
            "reference to a unit's connection past the unit."
        )


@dataclass
class Kept:
    connection: AsyncConnection
    # Taken once, when the connection is checked out: an invalidated SQLAlchemy connection
    # must not be asked for it again (that would check another one out behind its back).
    raw: "psycopg.AsyncConnection[Any]"
    born: float
    units: int = 0


async def _replan_as_tables_grow(kept: Kept) -> None:
    """Forget the cached plans of `kept`'s session if this unit is one of a few spaced ones
    (`remit.storage.replanning` says why)."""
    kept.units += 1
    await replanning.forget_plans_if_due(kept.connection, kept.units)


async def _discard(connection: AsyncConnection, *, invalidate: bool) -> None:
    """Give `connection` back to SQLAlchemy's pool (`invalidate`: to be closed). A failure
    here is logged, never raised: the connection is being given up anyway, and the unit's own
    outcome or error must reach its caller."""
    try:
        if invalidate and not connection.invalidated:
            await connection.invalidate()
        await connection.close()
    except Exception:
        log.warning("a kept database connection could not be given back cleanly", exc_info=True)


class KeptConnections:
    """Checked-out connections of one engine, idle between units of work."""

    def __init__(self, engine: AsyncEngine, *, max_idle: int, recycle_s: float) -> None:
        self._engine = engine
        self._max_idle = max_idle
        self._recycle_s = recycle_s
        self._idle: list[Kept] = []
        self._closed = False

    def _young(self, kept: Kept, now: float) -> bool:
        return now - kept.born < self._recycle_s

    async def take(self) -> Kept:
        now = time.monotonic()
        while self._idle:
            kept = self._idle.pop()
            if self._young(kept, now):
                return kept
            await _discard(kept.connection, invalidate=False)
        connection = await self._engine.connect()
        return Kept(connection, fastsql.driver(connection), now)

    async def give_back(self, kept: Kept, *, clean: bool) -> None:
        """Keep `kept` for the next unit if its unit ended `clean` and it is in order."""
        connection, raw = kept.connection, kept.raw
        lost = raw.broken or raw.closed
        if lost or connection.invalidated:
            await _discard(connection, invalidate=True)
            if lost:
                await self._drain(invalidate=True)
            return
        now = time.monotonic()
        usable = (
            clean
            and not self._closed
            and raw.info.transaction_status == pq.TransactionStatus.IDLE
            and connection.get_transaction() is None
            and len(self._idle) < self._max_idle
            and self._young(kept, now)
        )
        if usable:
            self._idle.append(kept)
        else:
            await _discard(connection, invalidate=False)
        # Connections idle under the top of the stack age too.
        for old in [k for k in self._idle if not self._young(k, now)]:
            self._idle.remove(old)
            await _discard(old.connection, invalidate=False)

    async def _drain(self, *, invalidate: bool) -> None:
        while self._idle:
            await _discard(self._idle.pop().connection, invalidate=invalidate)

    async def close(self) -> None:
        """Give every idle connection back to the engine's pool, and keep none from now on
        (a unit still running gives its connection back when it ends)."""
        self._closed = True
        await self._drain(invalidate=False)


async def _commit(kept: Kept) -> None:
    if kept.connection.get_transaction() is not None:
        # A statement through SQLAlchemy Core began its transaction: end it through SQLAlchemy
        # too, so that its state is reset (psycopg's COMMIT is a no-op when the unit's held
        # writes already went out with one).
        await kept.connection.commit()
    elif kept.raw.info.transaction_status != pq.TransactionStatus.IDLE:
        await kept.raw.commit()


async def _roll_back(kept: Kept) -> bool:
    """Roll the unit back; False when the connection is not fit for another unit."""
    connection = kept.connection
    if connection.invalidated:
        return False
    try:
        # Also a transaction SQLAlchemy holds inactive after a failed commit, which must be
        # rolled back before the connection runs anything again.
        if connection.get_transaction() is not None:
            await connection.rollback()
        if kept.raw.info.transaction_status != pq.TransactionStatus.IDLE:
            await kept.raw.rollback()
    except Exception:  # a statement left running, or a lost server: not reusable
        return False
    return not connection.invalidated


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction on a kept connection: committed when the block ends normally, rolled back
    on any error (a cancellation included); the connection is kept for the next unit when it
    ended in order."""
    keeper = kept_of(engine)
    taken = await keeper.take()
    clean = False
    unit = UnitConnection(taken.connection)
    try:
        await _replan_as_tables_grow(taken)
        yield unit
        unit.end()
        await _commit(taken)
        clean = True
    except BaseException:
        clean = await _roll_back(taken)
        raise
    finally:
        unit.end()
        await keeper.give_back(taken, clean=clean)


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
    """Give the engine's idle kept connections back to its pool and keep none from now on
    (before `engine.dispose()`)."""
    keeper = getattr(engine.sync_engine, _ATTRIBUTE, None)
    if isinstance(keeper, KeptConnections):
        await keeper.close()
