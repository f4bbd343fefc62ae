"""Ledger throughput and balance-read latency, on an embedded PostgreSQL of its own.

- postings per second, single: each ledger transaction (two postings) in its own database
  transaction, one after another, through `journal.post` (chain lock, idempotency check, row
  locks, guard check, hash, writes, commit);
- postings per second, batched: 100 ledger transactions per database transaction;
- balance read latency (`read_balance`, what GET /v1/balance runs) for an account with 10^4
  entries and one with 10^6, in the same run; next to it, the cost of recomputing the same
  balance from its entries (SUM over postings), which is what the running balance avoids.

The 10^4 and 10^6 entries are bulk-loaded with generate_series (two postings per
transaction) and the running balances set to their sums; bulk rows carry placeholder hashes
(this measures reads, not the chain). The cluster runs PostgreSQL's default durability (fsync
on, synchronous commit).
"""

import asyncio
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.result import Figure, percentile
from bench.scratch import scratch_database
from remit.accounts.service import AccountsService
from remit.ledger import journal
from remit.ledger.balances import read_balance
from remit.ledger.chart import AVAILABLE
from remit.ledger.domain import Posting, TransactionRequest
from remit.storage.engine import dispose, make_engine

NAME = "ledger"
SINGLE_TRANSACTIONS = 1_500
BATCHES = 20
BATCH_SIZE = 100
READS = 500
RECOMPUTES = 5
SMALL_ENTRIES = 10_000
LARGE_ENTRIES = 1_000_000


def _transfer(txid: str) -> TransactionRequest:
    return TransactionRequest(
        transaction_id=txid,
        postings=(Posting("acquirer_clearing", -100, "usd"), Posting("pending", 100, "usd")),
    )


async def _new_account(engine: AsyncEngine) -> str:
    return (await AccountsService(engine).create_account()).account.id


async def _single(engine: AsyncEngine, account_id: str) -> float:
    started = time.perf_counter()
    for n in range(SINGLE_TRANSACTIONS):
        async with engine.begin() as db:
            await journal.post(db, account_id, _transfer(f"single-{n}"), now=datetime.now(UTC))
    return 2 * SINGLE_TRANSACTIONS / (time.perf_counter() - started)


async def _batched(engine: AsyncEngine, account_id: str) -> float:
    started = time.perf_counter()
    for batch in range(BATCHES):
        async with engine.begin() as db:
            for n in range(BATCH_SIZE):
                await journal.post(
                    db, account_id, _transfer(f"batch-{batch}-{n}"), now=datetime.now(UTC)
                )
    return 2 * BATCHES * BATCH_SIZE / (time.perf_counter() - started)


async def _bulk_load(url: str, account_id: str, entries: int) -> None:
    """`entries` postings into the account's available balance, balances kept exact.

    On fresh connections: PostgreSQL caches the plans of its foreign-key checks per session,
    and a plan made while the tables were tiny (a sequential scan) turns a bulk insert into
    hours of work.
    """
    engine = make_engine(url, pool_size=1)
    try:
        await _bulk_insert(engine, account_id, entries // 2)
    finally:
        await dispose(engine)


async def _seed(engine: AsyncEngine, account_id: str) -> None:
    """One real posting, which creates the account's ledger accounts and chain head."""
    async with engine.begin() as db:
        seed = TransactionRequest(
            transaction_id="seed",
            postings=(Posting("acquirer_clearing", -1, "usd"), Posting(AVAILABLE, 1, "usd")),
        )
        await journal.post(db, account_id, seed, now=datetime.now(UTC))


async def _bulk_insert(engine: AsyncEngine, account_id: str, transactions: int) -> None:
    params = {"account": account_id, "n": transactions}
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO ledger_transactions (account_id, id, sequence, kind, metadata, "
                "payload_digest, hash, previous_hash, created_at) "
                "SELECT :account, 'bulk-' || g, 1 + g, 'posted', '{}'::jsonb, 'bulk', 'bulk', "
                "'bulk', now() FROM generate_series(1, :n) AS g"
            ),
            params,
        )
    async with engine.begin() as db:
        await db.execute(text("ANALYZE ledger_transactions"))
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO ledger_postings (account_id, transaction_id, ledger_account_id, "
                "amount_minor) "
                "SELECT :account, 'bulk-' || g, la.id, "
                "CASE WHEN la.name = 'available' THEN 1 ELSE -1 END "
                "FROM generate_series(1, :n) AS g CROSS JOIN ledger_accounts la "
                "WHERE la.account_id = :account ORDER BY g"
            ),
            params,
        )
        await db.execute(
            text(
                "UPDATE ledger_accounts SET posted_balance_minor = posted_balance_minor + "
                "CASE WHEN name = 'available' THEN :n ELSE -:n END WHERE account_id = :account"
            ),
            params,
        )
        await db.execute(
            text("UPDATE ledger_chains SET last_sequence = 1 + :n WHERE account_id = :account"),
            params,
        )
    async with engine.begin() as db:
        await db.execute(text("ANALYZE ledger_postings"))


async def _read_latencies_ms(engine: AsyncEngine, account_id: str) -> list[float]:
    samples = []
    async with engine.connect() as db:
        for _ in range(READS):
            started = time.perf_counter()
            balance = await read_balance(db, account_id, "usd")
            samples.append((time.perf_counter() - started) * 1000)
            await db.rollback()
        assert balance.available[0].amount > 0
    return samples


async def _recompute_ms(engine: AsyncEngine, account_id: str) -> float:
    query = text(
        "SELECT sum(p.amount_minor) FROM ledger_postings p JOIN ledger_accounts la "
        "ON la.id = p.ledger_account_id WHERE la.account_id = :a AND la.name = 'available'"
    )
    samples = []
    async with engine.connect() as db:
        for _ in range(RECOMPUTES):
            started = time.perf_counter()
            await db.execute(query, {"a": account_id})
            samples.append((time.perf_counter() - started) * 1000)
            await db.rollback()
    return statistics.median(samples)


async def _measure(url: str) -> list[Figure]:
    engine = make_engine(url, pool_size=2)
    figures: list[Figure] = []
    try:
        writer = await _new_account(engine)
        figures.append(
            Figure(
                NAME,
                "postings/s, single (1 ledger tx per commit)",
                await _single(engine, writer),
                "postings/s",
            )
        )
        figures.append(
            Figure(
                NAME,
                f"postings/s, batched ({BATCH_SIZE} ledger tx per commit)",
                await _batched(engine, writer),
                "postings/s",
            )
        )
        for entries in (SMALL_ENTRIES, LARGE_ENTRIES):
            account_id = await _new_account(engine)
            await _seed(engine, account_id)
            started = time.perf_counter()
            await _bulk_load(url, account_id, entries)
            load_s = time.perf_counter() - started
            samples = await _read_latencies_ms(engine, account_id)
            label = f"10^{len(str(entries)) - 1} entries"
            figures += [
                Figure(NAME, f"balance read p50, {label}", statistics.median(samples), "ms"),
                Figure(NAME, f"balance read p99, {label}", percentile(samples, 0.99), "ms"),
                Figure(
                    NAME,
                    f"recompute from entries, {label}",
                    await _recompute_ms(engine, account_id),
                    "ms",
                ),
                Figure(NAME, f"bulk load, {label}", load_s, "s"),
            ]
    finally:
        await dispose(engine)
    return figures


def run() -> list[Figure]:
    with scratch_database("remit_bench") as url:
        return asyncio.run(_measure(url))
