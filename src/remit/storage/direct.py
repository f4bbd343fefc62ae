"""Autocommitted single statements on psycopg connections of their own, without SQLAlchemy.

A unit of work that is one statement (claiming a new idempotency key, storing the network's
answer with its recovery point, the vault's and the acquirer's records) needs no transaction
around it. Taking a connection from SQLAlchemy's pool for it costs about 115 µs of client CPU
on top of the statement (checkout, connection wrapper, switching into autocommit and back,
reset on return, each through the greenlet bridge); taking one from this pool costs a list pop
(`python -m bench statements`: 214 against 101 µs for a one-read unit). The payment path runs
several such units per payment in the core, the vault and the acquirer.

The pool belongs to an engine (`make_engine` registers one) and connects to the same database
with the same session settings. It has no background task: a connection is opened when none is
idle, and returned after the statement unless it is broken or was left mid-query or inside a
transaction (a connection the server dropped fails its statement, is closed, and the caller
retries like any failed unit); no more than `max_size` exist at once, and a statement waits at
most `wait_s` for one of them (else `ConnectionWaitTimeoutError`, a temporary fault:
`driver_errors`). Connections stay in autocommit for good, so a statement never ends in a
ROLLBACK (which would drop the connection's prepared statements). Like kept connections, they
forget their cached plans at a few spaced uses (`remit.storage.replanning`).
"""

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage import replanning
from remit.storage.driver_errors import ConnectionWaitTimeoutError

# Same as the engine's: a statement waiting this long on a lock is a bug.
SESSION_SETUP = "SET lock_timeout = '10s'"
PREPARE_THRESHOLD = 5


class DirectPool:
    """Autocommit psycopg connections to one database; `max_size` of them in use at most."""

    def __init__(
        self,
        conninfo: str,
        *,
        application_name: str,
        max_size: int,
        wait_s: float,
        libpq: Mapping[str, object] | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._application_name = application_name
        # libpq keywords (the engine's statement timeout, connect timeout and keepalives), as
        # its own connections have.
        self._libpq: dict[str, Any] = dict(libpq or {})
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._max_size = max_size
        self._wait_s = wait_s
        self._slots = asyncio.Semaphore(max_size)
        self._uses: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], int] = (
            weakref.WeakKeyDictionary()
        )

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            prepare_threshold=PREPARE_THRESHOLD,
            application_name=self._application_name,
            **self._libpq,
        )
        await connection.execute(SESSION_SETUP)
        return connection

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection for one autocommitted statement (or several independent ones)."""
        await self._take_slot()
        try:
            connection = self._idle.pop() if self._idle else await self._connect()
            try:
                uses = self._uses.get(connection, 0) + 1
                self._uses[connection] = uses
                await replanning.forget_plans_if_due(connection, uses)
                yield connection
            finally:
                await self._give_back(connection)
        finally:
            self._slots.release()

    async def _take_slot(self) -> None:
        if not self._slots.locked():
            # The hot path: a slot is free, taken without a timer.
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(self._wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise ConnectionWaitTimeoutError(
                f"all {self._max_size} direct connections in use for {self._wait_s:g}s"
            ) from None

    async def _give_back(self, connection: psycopg.AsyncConnection[Any]) -> None:
        reusable = (
            not connection.broken
            and not connection.closed
            and connection.info.transaction_status == pq.TransactionStatus.IDLE
        )
        if reusable:
            self._idle.append(connection)
        else:
            await connection.close()

    @property
    def idle_connections(self) -> list[psycopg.AsyncConnection[Any]]:
        return self._idle

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()


_pools: "weakref.WeakKeyDictionary[AsyncEngine, DirectPool]" = weakref.WeakKeyDictionary()


def attach(
    engine: AsyncEngine,
    *,
    application_name: str,
    max_size: int,
    wait_s: float,
    libpq: Mapping[str, object] | None = None,
) -> None:
    """Give `engine` a direct pool on its database (no connection is opened yet). Its idle
    connections are closed by `close`, or when the engine is garbage-collected."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = DirectPool(
        url, application_name=application_name, max_size=max_size, wait_s=wait_s, libpq=libpq
    )
    _pools[engine] = pool
    weakref.finalize(engine, _hang_up, pool.idle_connections)


def _hang_up(connections: list[psycopg.AsyncConnection[Any]]) -> None:
    # No event loop to await `close()` in: end each session at the libpq level, which is
    # synchronous and what `close()` does in the end.
    for connection in connections:
        connection.pgconn.finish()
    connections.clear()


def pool_of(engine: AsyncEngine) -> DirectPool:
    pool = _pools.get(engine)
    if pool is None:
        raise LookupError("this engine was not made by make_engine: it has no direct pool")
    return pool


async def close(engine: AsyncEngine) -> None:
    """Close the engine's idle direct connections (with `engine.dispose()`)."""
    pool = _pools.get(engine)
    if pool is not None:
        await pool.close()
