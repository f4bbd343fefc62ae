"""Connections to a database that does not answer fail within bounds, rather than hang.

A database host behind a network partition drops packets: a connection attempt to it gets no
answer, and without libpq's `connect_timeout` waits for the kernel's TCP timeouts (psycopg stops
at 130 s), holding the request and its pool slot all the while. Here the partitioned host is a
listener that completes TCP handshakes (the kernel does, for its backlog) and never says a word.
"""

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import ConfigError, database_connect_timeout_s
from remit.storage import direct, fastsql
from remit.storage.connecting import TCP_USER_TIMEOUT_MS
from remit.storage.driver_errors import database_out_of_reach, database_unavailable
from remit.storage.engine import batched_unit, dispose, make_engine, single_statement
from remit.storage.migrate import schema_revisions
from remit.worker.runner import Worker
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

# libpq's least connect timeout, which the setting cannot go under.
TIMEOUT_S = 2
# Far past the timeout, for a loaded machine's slack, and still far under the 130 s that psycopg
# waits without it (and the for ever of a connection whose server vanished).
WITHIN_S = 30.0


@pytest.fixture
def silent_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of a database that accepts TCP connections and never answers on them."""
    monkeypatch.setenv("REMIT_DATABASE_CONNECT_TIMEOUT_S", str(TIMEOUT_S))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # never accepted: the kernel completes the handshakes anyway
        port = listener.getsockname()[1]
        yield f"postgresql://remit:secret@127.0.0.1:{port}/remit"


@pytest.fixture
async def silent_engine(silent_host: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(silent_host, pool_size=1, statement_timeout_s=30)
    try:
        yield engine
    finally:
        await dispose(engine)


async def _fails_in_time(unit: Coroutine[Any, Any, None]) -> BaseException:
    started = time.monotonic()
    with pytest.raises(Exception) as raised:  # noqa: PT011 (what it is, is checked below)
        await asyncio.wait_for(unit, timeout=WITHIN_S)
    elapsed = time.monotonic() - started
    assert not isinstance(raised.value, TimeoutError), "the connection attempt hung"
    assert elapsed < WITHIN_S
    return raised.value


async def test_a_unit_of_work_on_a_silent_database_fails_as_an_outage_within_the_timeout(
    silent_engine: AsyncEngine,
) -> None:
    async def transaction() -> None:
        async with silent_engine.begin() as db:
            await db.execute(text("SELECT 1"))

    error = await _fails_in_time(transaction())
    assert isinstance(error, OperationalError)
    # What the services and the worker's loops read as the database out of reach: a temporary
    # fault, retried, logged as an outage.
    assert database_unavailable(error)
    assert database_out_of_reach(error)


async def test_the_direct_and_kept_connections_are_bounded_too(
    silent_engine: AsyncEngine,
) -> None:
    async def statement() -> None:
        async with single_statement(silent_engine) as connection:
            await connection.execute("SELECT 1")

    async def batched() -> None:
        async with batched_unit(silent_engine) as db:
            await db.execute(text("SELECT 1"))

    for unit in (statement(), batched()):
        error = await _fails_in_time(unit)
        assert database_out_of_reach(error)


async def test_the_worker_s_listener_gives_up_on_a_silent_database(
    silent_host: str, core_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the bound it would wait 130 s (psycopg's own) before falling back to polling,
    and without keepalives on a connection whose server vanished, for ever."""
    caplog.set_level(logging.INFO, logger="remit.worker.runner")
    stop = asyncio.Event()
    listening = asyncio.create_task(Worker(core_engine, {})._listen(silent_host, stop))
    try:
        deadline = time.monotonic() + WITHIN_S
        while not any("database unavailable" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the listener's connection attempt hung"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def test_the_migrations_connections_are_bounded(silent_host: str) -> None:
    started = time.monotonic()
    with pytest.raises(OperationalError) as raised:
        await asyncio.to_thread(schema_revisions, "core", silent_host)
    assert time.monotonic() - started < WITHIN_S
    assert database_out_of_reach(raised.value)


def _bounds(parameters: dict[str, str]) -> dict[str, str]:
    names = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
             "keepalives_count", "tcp_user_timeout")  # fmt: skip
    return {name: parameters.get(name, "") for name in names}


async def test_both_pools_connections_carry_the_bounds(databases: WorkerDatabases) -> None:
    engine = make_engine(databases.core_url, pool_size=1)
    try:
        async with engine.begin() as db:
            pooled = fastsql.driver(db).info.get_parameters()
        async with single_statement(engine) as connection:
            direct_ = connection.info.get_parameters()
    finally:
        await direct.close(engine)
        await dispose(engine)
    expected = {
        "connect_timeout": "5",
        "keepalives": "1",
        "keepalives_idle": "10",
        "keepalives_interval": "5",
        "keepalives_count": "3",
        "tcp_user_timeout": str(TCP_USER_TIMEOUT_MS),
    }
    assert _bounds(pooled) == expected
    assert _bounds(direct_) == expected


async def test_the_database_url_s_own_values_are_kept(databases: WorkerDatabases) -> None:
    separator = "&" if "?" in databases.core_url else "?"
    url = f"{databases.core_url}{separator}connect_timeout=7&keepalives_idle=99"
    engine = make_engine(url, pool_size=1, statement_timeout_s=5)
    try:
        async with engine.begin() as db:
            pooled = fastsql.driver(db).info.get_parameters()
            assert await db.scalar(text("SHOW statement_timeout")) == "5s"
        async with single_statement(engine) as connection:
            direct_ = connection.info.get_parameters()
    finally:
        await direct.close(engine)
        await dispose(engine)
    for parameters in (pooled, direct_):
        bounds = _bounds(parameters)
        assert (bounds["connect_timeout"], bounds["keepalives_idle"]) == ("7", "99")
        # One keepalive key the URL sets leaves the others to it too: a user timeout of ours
        # would end the connection before its probes are done.
        assert (bounds["keepalives_count"], bounds["tcp_user_timeout"]) == ("", "")


def test_the_setting_is_whole_seconds_from_libpq_s_least() -> None:
    assert database_connect_timeout_s({}) == 5
    assert database_connect_timeout_s({"REMIT_DATABASE_CONNECT_TIMEOUT_S": "2"}) == 2
    for bad in ("1", "0", "-3", "2.5", "soon", "301"):
        with pytest.raises(ConfigError, match="REMIT_DATABASE_CONNECT_TIMEOUT_S"):
            database_connect_timeout_s({"REMIT_DATABASE_CONNECT_TIMEOUT_S": bad})
