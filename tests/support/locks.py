"""Waiting, in a test, until PostgreSQL shows what a concurrent step is doing."""

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def until_a_session_waits_on_a_lock(
    engine: AsyncEngine,
    timeout_s: float = 30.0,
    *,
    contender: "asyncio.Task[Any] | None" = None,
    sessions: int = 1,
) -> None:
    """Return once some session of this database waits on a lock (a row lock, a unique index
    entry held by an uncommitted insert, ...); fail after `timeout_s`. `contender`, the task
    expected to wait: if it ends without ever being seen waiting, fail at once and say how it
    ended, instead of timing out blind. `sessions`: how many must be waiting at once (one
    already waits; this one is the next)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        async with engine.begin() as db:
            waiting = (
                await db.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        if waiting >= sessions:
            return
        if contender is not None and contender.done():
            outcome = contender.exception() or contender.result()
            raise AssertionError(f"the contender ended without waiting on a lock: {outcome!r}")
        await asyncio.sleep(0.02)
    activity = await _activity(engine)
    raise AssertionError(f"never {sessions} session(s) waiting on a lock; sessions: {activity}")


async def _activity(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.begin() as db:
        rows = await db.execute(
            text(
                "SELECT application_name, state, wait_event_type, wait_event, left(query, 80) "
                "FROM pg_stat_activity WHERE datname = current_database()"
            )
        )
        return [tuple(row) for row in rows]
