"""Engines and units of work. One RPC is one transaction that rolls back unless committed.

Reads open their connection with `engine.begin()` too, so that they end in COMMIT: psycopg
drops every prepared statement of a connection when it rolls back, and the hot path depends on
its statements staying prepared.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection, event, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from remit.config import database_pool_timeout_s
from remit.storage import connecting, direct, fastsql, kept
from remit.storage.embedded import to_sqlalchemy_url

_RECYCLE_S = 1800


def session_options(statement_timeout_s: float | None, url: str = "") -> str | None:
    """The libpq `options` that set a session's statement timeout when it connects: sent with
    the connection's startup packet, so it costs no statement, per connection or transaction.
    Options the database URL gives (`?options=-c search_path=...`) are kept ahead of it: given
    to the driver, these options replace the URL's."""
    if statement_timeout_s is None:
        return None
    timeout = f"-c statement_timeout={round(statement_timeout_s * 1000)}"
    given = make_url(to_sqlalchemy_url(url)).query.get("options") if url else None
    if isinstance(given, tuple):  # the parameter given more than once
        given = " ".join(given)
    return f"{given} {timeout}" if given else timeout


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    application_name: str = "remit",
    statement_timeout_s: float | None = None,
    pool_timeout_s: float | None = None,
    keepalives: connecting.Keepalives = connecting.SERVICE_KEEPALIVES,
) -> AsyncEngine:
    """An engine on `url` for transactions, with a direct pool beside it (`remit.storage.direct`,
    at most half of `pool_size` connections, and at least 2) for single autocommitted
    statements. `statement_timeout_s`: how long PostgreSQL lets one statement of either run
    (`config.statement_timeout_s`, for the services); None: no limit (the admin commands).

    A unit of work waits at most `pool_timeout_s` (REMIT_DATABASE_POOL_TIMEOUT_S by default)
    for a connection of either pool: past that the database is not keeping up, and a queue that
    grows without bound would only make every request slower, and the process's memory larger,
    until all of them time out. The wait running out is a temporary fault
    (`driver_errors.pool_wait_timed_out`): the caller is told to retry. `keepalives`: how long
    a connection whose server went silent lasts (`connecting.LONG_KEEPALIVES` for a command
    whose statements may run long)."""
    wait_s = database_pool_timeout_s() if pool_timeout_s is None else pool_timeout_s
    options = session_options(statement_timeout_s, url)
    # Every connection of both pools (and so of the kept ones) is bounded as
    # `remit.storage.connecting` says: a partitioned database fails a unit of work within the
    # connect timeout, or a dead connection's statement within the keepalives' wait.
    libpq = connecting.libpq_arguments(url, keepalives=keepalives)
    if options is not None:
        libpq["options"] = options
    connect_args: dict[str, object] = {
        "application_name": application_name,
        "prepare_threshold": 5,
        **libpq,
    }
    engine = create_async_engine(
        to_sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=wait_s,
        # No ping before every checkout: it is one more round trip per transaction on the hot
        # path. A connection the server dropped fails its next statement, SQLAlchemy discards
        # it (and the pool's older ones), and the unit of work's error is retried by its caller
        # like any other; connections are also renewed every half hour.
        pool_pre_ping=False,
        pool_recycle=_RECYCLE_S,
        connect_args=connect_args,
    )
    # Single statements hold a connection for about a millisecond, so a few serve a busy
    # process; the bound keeps every process's two pools together well inside PostgreSQL's
    # default of 100 connections (the core, worker and acquirer share a cluster).
    direct.attach(
        engine,
        application_name=application_name,
        max_size=max(2, pool_size // 2),
        libpq=libpq,
        wait_s=wait_s,
    )
    kept.attach(engine, max_idle=pool_size, recycle_s=_RECYCLE_S)

    @event.listens_for(engine.sync_engine, "connect")
    def _set_session_defaults(dbapi_connection: object, _record: object) -> None:
        # A statement that waits this long on a lock is a bug; fail it rather than pile up.
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("SET lock_timeout = '10s'")
        cursor.close()
        dbapi_connection.commit()  # type: ignore[attr-defined]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _send_held_writes_first(connection: Connection, *_: object) -> None:
        # A SQLAlchemy statement in a `fastsql.deferring` block goes after the writes held
        # there (the unit reads its own writes, their checks run first).
        driver_connection = connection.connection.driver_connection
        if isinstance(driver_connection, psycopg.AsyncConnection) and fastsql.holds(
            driver_connection
        ):
            await_only(fastsql.send_held(driver_connection))

    return engine


@asynccontextmanager
async def batched_unit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction whose writes wait for each other (`fastsql.deferring`): deferred writes go
    out with the next statement that needs an answer, and the last of them with the COMMIT, in
    one round trip. Commits when the block ends normally, rolls back on any error.

    It runs on a connection kept checked out between units (`remit.storage.kept`), which spares
    the pool's checkout and check-in and SQLAlchemy's begin and commit on the hot path."""
    async with kept.transaction(engine) as connection, fastsql.deferring(connection, commit=True):
        yield connection


async def dispose(engine: AsyncEngine) -> None:
    """Close every connection of `engine`: kept, direct and pooled."""
    await kept.close(engine)
    await direct.close(engine)
    await engine.dispose()


@asynccontextmanager
async def single_statement(engine: AsyncEngine) -> AsyncIterator["psycopg.AsyncConnection[Any]"]:
    """A unit of work that is exactly one statement, run in autocommit: the statement is its own
    transaction, which saves the BEGIN and COMMIT round trips of `engine.begin()`. Only for
    work that is atomic as a single statement, sent through `remit.storage.fastsql`. The
    connection comes from the engine's direct pool (`remit.storage.direct`), not SQLAlchemy's."""
    async with direct.pool_of(engine).statement() as connection:
        yield connection
