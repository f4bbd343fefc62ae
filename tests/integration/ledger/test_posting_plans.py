"""A posting plans nothing once its connection is warm (core migration 0035_ledger_post_plans):
every statement of `ledger_post` keeps the plan it was given the first time, instead of one of
them being planned again on every call."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal
from remit.ledger.domain import Posting, TransactionRequest
from remit.storage import fastsql
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_SIGNATURE = (
    "ledger_post(text, text, text, text, timestamptz, jsonb, text, text, timestamptz, bytea, "
    "bytea, text[], text[], text[], boolean[], boolean[], bigint[], bigint[], bigint[], "
    "integer[], bigint[])"
)
# Enough postings for every plan of the path to settle: psycopg prepares the statement after
# five uses, and PostgreSQL's plan cache gives each statement five custom plans before it
# settles on a generic one.
_WARM_UP = 15


def _capture(number: int) -> TransactionRequest:
    """Shaped like a payment's capture: three ledger accounts, one of them guarded."""
    return TransactionRequest(
        transaction_id=f"ch_{number}:capture",
        postings=(
            Posting("acquirer_clearing", -1000, "usd"),
            Posting("pending", 941, "usd"),
            Posting("fees", 59, "usd"),
        ),
        metadata={"charge": f"ch_{number}"},
    )


async def _other_merchants(engine: AsyncEngine, count: int) -> None:
    """Merchants with their ledger accounts, analysed: the planner then sees a ledger the size
    of a deployment's rather than a test's few rows (on those, any plan is as cheap)."""
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
                "radar_enabled) "
                "SELECT 'acct_other_' || g, now(), 'usd', false, 290, 30, 2, false, false "
                "FROM generate_series(1, :count) AS g"
            ),
            {"count": count},
        )
        await db.execute(
            text(
                "INSERT INTO ledger_accounts (id, account_id, name, currency, non_negative, "
                "posted_balance_minor, pending_incoming_minor, pending_outgoing_minor, "
                "created_at, updated_at) "
                "SELECT 'la_other_' || g || '_' || n.name, 'acct_other_' || g, n.name, 'usd', "
                "n.name <> 'acquirer_clearing', 0, 0, 0, now(), now() "
                "FROM generate_series(1, :count) AS g "
                "CROSS JOIN (VALUES ('acquirer_clearing'), ('pending'), ('fees')) AS n(name)"
            ),
            {"count": count},
        )
        await db.execute(text("ANALYZE accounts, ledger_accounts"))


async def _post(db: AsyncConnection, account_id: str, number: int, clock: FixedClock) -> None:
    await journal.post(db, account_id, _capture(number), now=clock.now())
    await db.commit()


async def test_a_warm_connection_posts_without_planning_anything(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The server reports every plan it makes (`debug_print_plan`). Without the migration the
    balances update inside `ledger_post` was planned on every posting: its plan for the
    values at hand always looked cheaper than the generic one."""
    await _other_merchants(core_engine, 2000)
    planned: list[str] = []
    async with core_engine.connect() as db:
        fastsql.driver(db).add_notice_handler(
            lambda notice: planned.append(notice.message_primary or "")
        )
        await db.execute(text("SET debug_print_plan = on"))
        await db.execute(text("SET client_min_messages = log"))
        await db.commit()
        try:
            for number in range(_WARM_UP):
                await _post(db, account_id, number, clock)
            assert "plan:" in planned  # the reports do arrive
            planned.clear()
            for number in range(_WARM_UP, _WARM_UP + 5):
                await _post(db, account_id, number, clock)
        finally:
            await db.execute(text("RESET debug_print_plan"))
            await db.execute(text("RESET client_min_messages"))
            await db.commit()
    assert [message for message in planned if message == "plan:"] == []


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "ledger_post_plans") as url:
        yield url


def _definition(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT pg_get_functiondef(CAST(%s AS regprocedure))", (_SIGNATURE,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_the_migration_changes_ledger_post_and_takes_it_back(scratch_core: str) -> None:
    upgrade("core", scratch_core, "0034_reconciliation_runs")
    before = _definition(scratch_core)
    upgrade("core", scratch_core, "0035_ledger_post_plans")
    after = _definition(scratch_core)
    assert "SET plan_cache_mode TO 'force_generic_plan'" in after
    assert "IF false = ANY(v_found) THEN" in after
    assert "PERFORM ledger_wait_turn(p_account_id);" in after  # the turn stays first
    command.downgrade(alembic_config("core", scratch_core), "0034_reconciliation_runs")
    # Exactly the function as it was, to the byte (and without the setting).
    assert _definition(scratch_core) == before
    upgrade("core", scratch_core, "0035_ledger_post_plans")
    assert _definition(scratch_core) == after
