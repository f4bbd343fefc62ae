"""Core migration 0046's downgrade: the earlier version has no record of parked deliveries
and no sweep to wake them, so each parked delivery leaves with a delivery job of its own."""

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import delete, select

from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from remit.webhooks.outbox import DELIVER_JOB
from remit.webhooks.parking import park_behind_taken_slots
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import make_bench
from tests.integration.webhooks.test_waiting import delivery_of
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_BEFORE = "0045_review_closing_reason"


async def test_a_parked_delivery_has_a_deliver_job_after_the_downgrade(
    pg_cluster: EmbeddedCluster,
) -> None:
    with scratch_database(pg_cluster, "webhook_parked_down") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            async with make_bench(engine) as bench:
                endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
                delivery_id = await delivery_of(bench, await bench.record(), endpoint.id)
                now = datetime.now(UTC)
                async with engine.begin() as db:
                    # Its job ran and parked it (every slot taken): no job is left.
                    await db.execute(delete(jobs))
                    assert await park_behind_taken_slots(
                        db, delivery_id=delivery_id, endpoint_id=endpoint.id,
                        account_id=bench.account_id, attempt=3, generation=0, max_attempts=7,
                        due_at=now - timedelta(seconds=5), limit=0, now=now,
                    )  # fmt: skip
                account_id = bench.account_id
        finally:
            await dispose(engine)

        command.downgrade(alembic_config("core", url), _BEFORE)

        engine = make_engine(url, pool_size=2)
        try:
            async with engine.connect() as db:
                staged = (
                    await db.execute(
                        select(
                            jobs.c.kind, jobs.c.payload, jobs.c.account_id, jobs.c.status,
                            jobs.c.max_attempts, jobs.c.run_at <= datetime.now(UTC),
                        )
                    )
                ).all()  # fmt: skip
        finally:
            await dispose(engine)
        assert [tuple(row) for row in staged] == [
            (
                DELIVER_JOB,
                {"delivery_id": delivery_id, "attempt": 3},
                account_id,
                "pending",
                7,
                True,
            )
        ]
        upgrade("core", url)
