"""An endpoint's job ends its deliveries through the index of deliveries by endpoint and status,
even once the driver has prepared the statement and PostgreSQL plans it for any endpoint."""

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks import deleted

pytestmark = pytest.mark.anyio

_TYPES = {"endpoint_id": "text", "now": "timestamptz", "batch": "integer"}


def _literal(value: object) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return f"'{value}'" if isinstance(value, str) else str(value)


async def _generic_plan(engine: AsyncEngine, sql: str, values: dict[str, object]) -> list[str]:
    """EXPLAIN of `sql` prepared and planned generically, as a prepared statement may be."""
    names = [name for name in _TYPES if f"%({name})s" in sql]
    for number, name in enumerate(names, start=1):
        sql = sql.replace(f"%({name})s", f"${number}")
    types = ", ".join(_TYPES[name] for name in names)
    # EXECUTE takes no parameters of its own: its arguments are literals.
    arguments = ", ".join(_literal(values[name]) for name in names)
    async with engine.connect() as db:
        await db.execute(text("SET plan_cache_mode = force_generic_plan"))
        await db.exec_driver_sql(f"PREPARE generic_end ({types}) AS {sql}")
        plan = (
            (await db.exec_driver_sql(f"EXPLAIN EXECUTE generic_end({arguments})")).scalars().all()
        )
        await db.rollback()
    return list(plan)


async def test_an_endpoint_s_batch_reads_its_deliveries_through_the_index(
    core_engine: AsyncEngine,
) -> None:
    values = {"endpoint_id": "we_plan", "now": datetime.now(UTC), "batch": deleted.BATCH}
    plan = await _generic_plan(core_engine, deleted._END_ENDPOINT_BATCH.sql, values)
    assert any("ix_webhook_deliveries_endpoint_id_status" in line for line in plan), plan
    # Looked up by the endpoint's id itself, not by each deleted endpoint's in turn.
    assert any(re.search(r"Index Cond: .*endpoint_id = \$1", line) for line in plan), plan


async def test_the_repair_s_batch_still_plans(core_engine: AsyncEngine) -> None:
    values = {"now": datetime.now(UTC), "batch": deleted.BATCH}
    plan = await _generic_plan(core_engine, deleted._END_BATCH.sql, values)
    assert not any("$3" in line or "endpoint_id = $" in line for line in plan), plan
