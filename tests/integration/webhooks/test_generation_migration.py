"""Core migration 0050's downgrade: deliveries lose their generation, and so do the jobs waiting
to make their attempts, or after an upgrade again (every delivery back at generation 0) a job
made for a delivery started over would never act for it."""

import pytest
from alembic import command
from sqlalchemy import select, text

from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from remit.webhooks.tables import webhook_deliveries
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import StartReceiver, make_bench
from tests.integration.webhooks.test_waiting import delivered
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_BEFORE = "0049_held_request_failures"


async def test_a_job_of_a_delivery_started_over_still_delivers_after_a_downgrade_and_upgrade(
    pg_cluster: EmbeddedCluster, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    with scratch_database(pg_cluster, "webhook_generation_down") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            async with make_bench(engine) as bench:
                await bench.endpoint(receiver.url)
                event_id = await bench.record()
                async with engine.begin() as db:
                    # Started over twice (two redeliveries of it failed): its job says so.
                    await db.execute(text("UPDATE webhook_deliveries SET generation = 2"))
                    await db.execute(
                        text("UPDATE jobs SET payload = payload || '{\"generation\": 2}'")
                    )
        finally:
            await dispose(engine)

        command.downgrade(alembic_config("core", url), _BEFORE)
        upgrade("core", url)

        engine = make_engine(url, pool_size=2)
        try:
            async with make_bench(engine) as bench:
                await bench.worker.drain()
            async with engine.connect() as db:
                status = (await db.execute(select(webhook_deliveries.c.status))).scalar_one()
                payloads = (await db.execute(select(jobs.c.payload))).scalars().all()
        finally:
            await dispose(engine)
    assert delivered(receiver) == [event_id]
    assert status == "succeeded"
    assert all("generation" not in payload or payload["generation"] == 0 for payload in payloads)
