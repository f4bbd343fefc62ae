"""Two workers at once on one endpoint, their steps ordered by hand with database locks the test
holds: a delivery is POSTed once per scheduled attempt, and the endpoint's record of failures
ends up as the attempts, in the order they were made, say."""

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.webhooks.outbox import stage_delivery_attempt
from remit.webhooks.repository import DeliveryRepository
from remit.webhooks.tables import webhook_inflight
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


def one_at_a_time(bench: Bench) -> Worker:
    """Another worker process's worth: its own claims, the same handlers and clock."""
    return Worker(engine=bench.engine, handlers=bench.worker.handlers, clock=bench.clock,
                  given_up=bench.worker.given_up, concurrency=1)  # fmt: skip


async def lock_job(holder: AsyncConnection, job_id: int) -> None:
    await holder.execute(select(jobs.c.id).where(jobs.c.id == job_id).with_for_update())


async def pending_job_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(jobs.c.id).where(jobs.c.status == "pending").order_by(jobs.c.id)
        )
        return [row.id for row in rows]


async def slots_held(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        held = await db.execute(select(func.count()).select_from(webhook_inflight))
        return int(held.scalar_one())


async def test_a_worker_that_read_a_delivery_before_another_recorded_it_does_not_post_again(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Two jobs for one attempt (as when a job's lease runs out while its worker is still at
    it). Worker B reads the delivery while A's attempt is made but not yet committed, and asks
    for the endpoint slot only once A has committed and let its slot go: B must see that the
    attempt is made, and not POST it a second time."""
    posted = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(hold=posted) if n == 0 else Reply())
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    async with bench.engine.begin() as db:
        delivery = await DeliveryRepository(db).get(bench.account_id, event_id, endpoint.id)
        assert delivery is not None
        await stage_delivery_attempt(db, delivery.id, 1, account_id=bench.account_id,
                                     now=bench.clock.now())  # fmt: skip
    first_job, _duplicate = await pending_job_ids(bench.engine)
    a, b = one_at_a_time(bench), one_at_a_time(bench)

    running_a = asyncio.create_task(a.run_once())
    await receiver.wait_for(1)
    async with bench.engine.connect() as holder:
        await holder.begin()
        # A's job cannot complete, so its attempt stays recorded but uncommitted.
        await lock_job(holder, first_job)
        posted.set()
        await until_a_session_waits_on_a_lock(bench.engine, contender=running_a)
        running_b = asyncio.create_task(b.run_once())
        # B has read the delivery (attempt 1 still to make) and waits on what A holds.
        await until_a_session_waits_on_a_lock(bench.engine, contender=running_b, sessions=2)
        await holder.rollback()
    assert await running_a == 1
    assert await running_b == 1

    assert len(receiver.received) == 1
    attempts = await bench.attempts(event_id)
    assert [(a.attempt_number, a.succeeded) for a in attempts] == [(1, True)]
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert await slots_held(bench.engine) == 0
