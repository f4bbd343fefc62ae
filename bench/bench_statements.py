"""Client CPU per statement: SQLAlchemy Core against the driver-level path (remit.storage.fastsql).

One embedded PostgreSQL with the core schema; a charge row read by key (the same statement both
ways, as `ChargeRepository.get` sends it) 3,000 times on one connection in one transaction, and
the same for a one-column update by key. The figure is this process's CPU time per statement
(`time.process_time`), which is what the payment path pays in its own process; the database's
CPU is not in it.

Then the same read as a whole single-statement unit, connection taken and given back: from
SQLAlchemy's pool switched into autocommit for the unit (what `single_statement` did), and from
the engine's direct pool (`remit.storage.direct`, what it does now).

Last, a transaction of the read and one held write (the update), as the payment path's
`batched_unit` runs it: through `engine.begin()` (what it did) and on a connection kept checked
out between units (`remit.storage.kept`, what it does now).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import select, update

from bench.result import Figure
from bench.scratch import scratch_database
from remit.payments.repository import ChargeRepository
from remit.payments.tables import charges
from remit.storage import fastsql
from remit.storage.engine import batched_unit, dispose, make_engine, single_statement

NAME = "statements"
ROUNDS = 3_000
KEY = {"account_id": "acct_bench", "id": "ch_bench"}


async def _cpu_per_call(send: Callable[[], Awaitable[object]]) -> float:
    for _ in range(200):  # warm-up: compiled-statement caches and server-side prepares
        await send()
    started = time.process_time()
    for _ in range(ROUNDS):
        await send()
    return (time.process_time() - started) / ROUNDS * 1e6


async def _measure(url: str) -> list[Figure]:
    engine = make_engine(url, pool_size=1)
    fast = ChargeRepository.statements
    c = charges.c
    try:
        async with engine.begin() as db:

            async def core_select() -> object:
                query = select(charges).where(c.account_id == KEY["account_id"], c.id == KEY["id"])
                return (await db.execute(query)).first()

            async def core_update() -> object:
                return await db.execute(
                    update(charges)
                    .where(c.account_id == KEY["account_id"], c.id == KEY["id"])
                    .values(description="bench")
                )

            async def fast_select() -> object:
                return await fast.select.first(db, KEY)

            async def fast_update() -> object:
                return await fast.update(["description"]).run(db, {**KEY, "description": "bench"})

            timings = {
                "read by key, SQLAlchemy Core": await _cpu_per_call(core_select),
                "read by key, driver-level": await _cpu_per_call(fast_select),
                "update by key, SQLAlchemy Core": await _cpu_per_call(core_update),
                "update by key, driver-level": await _cpu_per_call(fast_update),
            }

        async def unit_through_sqlalchemy() -> object:
            async with engine.connect() as connection:
                db = await connection.execution_options(isolation_level="AUTOCOMMIT")
                return await fast.select.first(db, KEY)

        async def unit_through_direct_pool() -> object:
            async with single_statement(engine) as connection:
                return await fast.select.first(connection, KEY)

        units = {
            "SQLAlchemy checkout in autocommit": await _cpu_per_call(unit_through_sqlalchemy),
            "direct pool": await _cpu_per_call(unit_through_direct_pool),
        }

        async def read_and_held_write(db: fastsql.Db) -> object:
            found = await fast.select.first(db, KEY)
            await fast.update(["description"]).defer(db, {**KEY, "description": "bench"})
            return found

        async def transaction_through_begin() -> object:
            async with engine.begin() as db, fastsql.deferring(db, commit=True):
                return await read_and_held_write(db)

        async def transaction_on_a_kept_connection() -> object:
            async with batched_unit(engine) as db:
                return await read_and_held_write(db)

        transactions = {
            "engine.begin()": await _cpu_per_call(transaction_through_begin),
            "kept connection (batched_unit)": await _cpu_per_call(transaction_on_a_kept_connection),
        }
    finally:
        await dispose(engine)
    return [
        *(
            Figure(NAME, f"client CPU per statement: {name}", us, "µs")
            for name, us in timings.items()
        ),
        *(Figure(NAME, f"one-read unit, {name}", us, "µs") for name, us in units.items()),
        *(
            Figure(NAME, f"read + held write transaction, {name}", us, "µs")
            for name, us in transactions.items()
        ),
    ]


def run() -> list[Figure]:
    with scratch_database("remit_bench") as url:
        return asyncio.run(_measure(url))
