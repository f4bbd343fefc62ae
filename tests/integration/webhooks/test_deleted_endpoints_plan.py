"""An endpoint's job ends its deliveries through the index of pending deliveries by endpoint and
id, even once the driver has prepared the statement and PostgreSQL plans it for any endpoint: a
batch reads about as many rows as it ends, in the id order it locks them in, not all of the
endpoint's pending deliveries sorted."""

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks import deleted
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio

_TYPES = {"endpoint_id": "text", "now": "timestamptz", "batch": "integer"}


def _literal(value: object) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return f"'{value}'" if isinstance(value, str) else str(value)


async def _generic_plan(
    engine: AsyncEngine, sql: str, values: dict[str, object], *, analyze: bool = False
) -> list[str]:
    """EXPLAIN of `sql` prepared and planned generically, as a prepared statement may be (run,
    with `analyze`, and rolled back)."""
    names = [name for name in _TYPES if f"%({name})s" in sql]
    for number, name in enumerate(names, start=1):
        sql = sql.replace(f"%({name})s", f"${number}")
    types = ", ".join(_TYPES[name] for name in names)
    # EXECUTE takes no parameters of its own: its arguments are literals.
    arguments = ", ".join(_literal(values[name]) for name in names)
    async with engine.connect() as db:
        await db.execute(text("SET plan_cache_mode = force_generic_plan"))
        await db.exec_driver_sql(f"PREPARE generic_end ({types}) AS {sql}")
        options = "(ANALYZE, COSTS OFF, TIMING OFF) " if analyze else ""
        plan = (
            (await db.exec_driver_sql(f"EXPLAIN {options}EXECUTE generic_end({arguments})"))
            .scalars()
            .all()
        )
        await db.rollback()
    return list(plan)


async def test_an_endpoint_s_batch_reads_its_deliveries_through_the_index(
    core_engine: AsyncEngine,
) -> None:
    values = {"endpoint_id": "we_plan", "now": datetime.now(UTC), "batch": deleted.BATCH}
    plan = await _generic_plan(core_engine, deleted._END_ENDPOINT_BATCH.sql, values)
    assert any("ix_webhook_deliveries_pending_endpoint" in line for line in plan), plan
    # Looked up by the endpoint's id itself, not by each deleted endpoint's in turn.
    assert any(re.search(r"Index Cond: .*endpoint_id = \$1", line) for line in plan), plan
    assert not any("Sort" in line for line in plan), plan


_LIVE_ENDPOINTS = 50


async def _add_pending(bench: Bench, endpoint_ids: str, count: int) -> None:
    """`count` pending deliveries, each of its own event, to the endpoints matching the
    pattern `endpoint_ids` in turn."""
    async with bench.engine.begin() as db:
        await db.execute(
            text(
                "WITH endpoint AS ("
                "  SELECT id, row_number() OVER (ORDER BY id) - 1 AS number,"
                "    count(*) OVER () AS endpoints"
                "  FROM webhook_endpoints WHERE id LIKE :pattern"
                "), event AS ("
                "  INSERT INTO events (id, account_id, type, created_at, livemode, data_object)"
                "  SELECT 'evt_' || md5(random()::text || n), :account_id, 'charge.succeeded',"
                "    now(), false, '{}'"
                "  FROM generate_series(1, :count) AS n"
                "  RETURNING id"
                ")"
                " INSERT INTO webhook_deliveries"
                " (account_id, event_id, endpoint_id, status, first_attempt_at)"
                " SELECT :account_id, event.id, endpoint.id, 'pending', now()"
                " FROM (SELECT id, row_number() OVER () AS n FROM event) AS event"
                " JOIN endpoint ON endpoint.number = event.n % endpoint.endpoints"
            ),
            {"pattern": endpoint_ids, "account_id": bench.account_id, "count": count},
        )


async def test_an_endpoint_s_batch_reads_about_as_many_rows_as_it_ends(bench: Bench) -> None:
    """Thousands of pending deliveries to the deleted endpoint, made after as many to 50 live
    ones: a batch of 100 reads about 100 rows, with no sort of all the endpoint's."""
    live = await bench.endpoint("https://live.example/hook")
    doomed = await bench.endpoint("https://doomed.example/hook")
    async with bench.engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO webhook_endpoints"
                " SELECT (jsonb_populate_record(e, jsonb_build_object('id', e.id || '_' || n))).*"
                " FROM webhook_endpoints AS e, generate_series(2, :count) AS n WHERE e.id = :id"
            ),
            {"id": live.id, "count": _LIVE_ENDPOINTS},
        )
    await _add_pending(bench, f"{live.id}%", 8000)
    await _add_pending(bench, doomed.id, 4000)
    async with bench.engine.begin() as db:
        await db.execute(
            text("UPDATE webhook_endpoints SET deleted_at = now() WHERE id = :id"),
            {"id": doomed.id},
        )
        await db.execute(text("ANALYZE webhook_deliveries"))
    batch = 100
    values = {"endpoint_id": doomed.id, "now": datetime.now(UTC), "batch": batch}
    plan = await _generic_plan(bench.engine, deleted._END_ENDPOINT_BATCH.sql, values, analyze=True)
    shown = "\n".join(plan)
    assert "Sort" not in shown, shown
    scans = [line for line in plan if "ix_webhook_deliveries_pending_endpoint" in line]
    assert len(scans) == 1, shown
    read = re.search(r"actual rows=(\d+) loops=1", scans[0])
    assert read is not None, shown
    assert batch <= int(read.group(1)) <= batch + 10, shown
    assert "Rows Removed by Filter" not in shown.split("CTE ended")[0], shown
