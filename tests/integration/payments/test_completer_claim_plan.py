"""The completer's claim reads only unfinished keys: it looks at every unfinished key however old,
and the table holds up to 72 hours of finished ones, which it must not read on each pass."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments import idempotency

pytestmark = pytest.mark.anyio


async def test_the_completers_claim_reads_the_index_of_unfinished_keys(
    core_engine: AsyncEngine, account_id: str
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=2)
    async with core_engine.begin() as db:
        # 5,000 keys of two days ago, one in a thousand left at a recovery point.
        await db.execute(
            text(
                "INSERT INTO idempotency_keys (account_id, key, endpoint, request_digest, "
                "request_body, recovery_point, created_at, last_run_at) "
                "SELECT :account, 'plan-' || n, 'CreatePaymentIntent', '\\x00', '\\x00', "
                "CASE WHEN n % 1000 = 0 THEN 'attempt_created' ELSE 'finished' END, :at, :at "
                "FROM generate_series(1, 5000) AS n"
            ),
            {"account": account_id, "at": long_ago},
        )
        await db.execute(text("ANALYZE idempotency_keys"))

    now = datetime.now(UTC)
    query = idempotency.abandoned_keys(now=now, limit=20).compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    async with core_engine.connect() as db:
        plan = (await db.execute(text(f"EXPLAIN {query}"))).scalars().all()
        claimed = await idempotency.claim_abandoned(db, now=now, limit=20)
        await db.rollback()

    assert sorted(record.key for record in claimed) == sorted(
        f"plan-{n}" for n in (1000, 2000, 3000, 4000, 5000)
    )
    assert any("ix_idempotency_keys_unfinished" in line for line in plan), plan
    assert not any("Seq Scan on idempotency_keys" in line for line in plan), plan


async def test_the_claim_reads_the_index_even_when_planned_generically(
    core_engine: AsyncEngine,
) -> None:
    """The driver prepares a statement run often on one connection, and PostgreSQL may then
    plan it once for any parameters: a condition sent as a parameter cannot prove the partial
    index's predicate, so the claim would read the whole table on every pass."""
    now = datetime.now(UTC)
    compiled = idempotency.abandoned_keys(now=now, limit=20).compile(
        dialect=postgresql.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
    )
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    literals = ", ".join(
        f"'{value.isoformat()}'" if isinstance(value, datetime) else repr(value) for value in values
    )
    async with core_engine.connect() as db:
        await db.execute(text("SET plan_cache_mode = force_generic_plan"))
        await db.execute(text(f"PREPARE generic_claim AS {compiled.string}"))
        plan = (
            (await db.execute(text(f"EXPLAIN EXECUTE generic_claim({literals})"))).scalars().all()
        )
        await db.rollback()

    assert any("ix_idempotency_keys_unfinished" in line for line in plan), plan
