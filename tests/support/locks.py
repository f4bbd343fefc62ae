"""Waiting, in a test, until PostgreSQL shows what a concurrent step is doing."""

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def until_a_session_waits_on_a_lock(engine: AsyncEngine, timeout_s: float = 10.0) -> None:
    """Return once some session of this database waits on a lock (a row lock, a unique index
    entry held by an uncommitted insert, ...); fail after `timeout_s`."""
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
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no session ever waited on a lock")
