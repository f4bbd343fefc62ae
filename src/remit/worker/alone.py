"""Periodic tasks that one worker at a time should run, however many copies are running.

Most of the worker's periodic work claims rows (`FOR UPDATE SKIP LOCKED`), so copies share it
without help. A task that walks a data set instead (the vault sweep lists the old cards after
its mark) would be repeated by each copy, for nothing: such a task runs under a PostgreSQL
advisory lock, and a copy that finds it taken skips its turn.
"""

import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

# The first half of every such lock's two-part key, so that these locks cannot collide with
# other advisory locks on the database (the migrations' single-number keys among them).
_NAMESPACE: Final = 0x72656D74  # "remt"


def lock_key(name: str) -> int:
    """A task's lock number: stable across processes and runs (unlike `hash`), and within
    PostgreSQL's signed 32-bit range."""
    return zlib.crc32(name.encode()) - 2**31


async def run_alone(engine: AsyncEngine, name: str, task: Callable[[], Awaitable[None]]) -> bool:
    """Run `task` unless another copy is running the task of this name; True if it ran.

    The lock belongs to the database session, so a worker that dies mid-task releases it with
    its connection, and the next turn of any copy runs the task.
    """
    key = lock_key(name)
    async with engine.connect() as connection:
        if not await _try_lock(connection, key):
            log.debug("%s is running in another worker; skipping this turn", name)
            return False
        try:
            await task()
        finally:
            await _unlock(connection, name, key)
    return True


async def _try_lock(connection: AsyncConnection, key: int) -> bool:
    try:
        taken = bool(
            await connection.scalar(
                text("SELECT pg_try_advisory_lock(:namespace, :key)"),
                {"namespace": _NAMESPACE, "key": key},
            )
        )
        await connection.commit()
    except BaseException:
        # Interrupted after the server may have granted the lock (a cancellation at shutdown):
        # closing the session releases whatever it holds; it must not go back to the pool.
        await connection.invalidate()
        raise
    return taken


async def _unlock(connection: AsyncConnection, name: str, key: int) -> None:
    try:
        released = await connection.scalar(
            text("SELECT pg_advisory_unlock(:namespace, :key)"),
            {"namespace": _NAMESPACE, "key": key},
        )
        await connection.commit()
    except BaseException:
        # A session whose unlock did not go through (an error, or a cancellation at shutdown)
        # must not go back to the pool still holding the lock: closing it releases the lock.
        await connection.invalidate()
        raise
    if not released:
        log.error("the lock of %s was not held when it was to be released", name)
