"""Deliveries that wait together do not wake together: retries of deliveries that failed at
once, and deliveries that waited out an endpoint's pause (a 429's Retry-After), are spread
over their jitter."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks.domain import RETRY_GAP_JITTER
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def pending_job_times(engine: AsyncEngine) -> list[datetime]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(jobs.c.run_at).where(jobs.c.status == "pending").order_by(jobs.c.run_at)
        )
        return [row.run_at for row in rows]


async def test_deliveries_that_failed_together_retry_spread_over_a_tenth_of_the_gap(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda _: Reply(503))
    await bench.endpoint(receiver.url)
    for _ in range(20):
        await bench.record()
    failed_at = bench.clock.now()
    await bench.worker.drain()
    assert len(receiver.received) == 20

    retries = await pending_job_times(bench.engine)
    assert len(retries) == 20
    gap = timedelta(minutes=5)
    assert all(failed_at + gap <= at <= failed_at + gap * (1 + RETRY_GAP_JITTER) for at in retries)
    # Spread over the 30 s of the jitter, not all at one instant.
    assert len(set(retries)) == 20
    assert retries[-1] - retries[0] > timedelta(seconds=15)


async def test_deliveries_waiting_out_a_pause_wake_spread_over_its_jitter(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A receiver asks for a minute of quiet while twenty deliveries are waiting: the one it
    answered tries again after the minute, as asked; the others wake over the six seconds
    after it (a tenth of the pause), not all at its last instant."""
    receiver = await start_receiver(
        lambda n: Reply(429, headers={"Retry-After": "60"}) if n == 0 else Reply()
    )
    await bench.endpoint(receiver.url)
    await bench.record()
    await bench.worker.drain()
    paused_until = bench.clock.now() + timedelta(seconds=60)
    for _ in range(20):
        await bench.record()
    await bench.worker.drain()
    assert len(receiver.received) == 1

    wake_ups = await pending_job_times(bench.engine)
    assert wake_ups[0] == paused_until  # the one that was answered 429
    waiting = wake_ups[1:]
    assert len(waiting) == 20
    assert all(paused_until <= at < paused_until + timedelta(seconds=6) for at in waiting)
    assert len(set(waiting)) == 20
    assert waiting[-1] - waiting[0] > timedelta(seconds=3)

    bench.clock.advance(66)
    await bench.worker.drain()
    assert len(receiver.received) == 22  # the 429, then every one of the 21
