"""A redelivery starts a failed delivery over; a job made for the delivery before that (still
retrying, or parked) acts for the delivery it was made for, never for the one started over.

Each test fails a delivery while its job still exists the one way that can happen: a resend
answered 410 Gone (which also disables the endpoint). The merchant enables the endpoint and
redelivers, which starts the delivery over, attempt 1 next, with a job of its own."""

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.service import EndpointChanges
from remit.webhooks.tables import webhook_parked
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS, Job, claim_jobs
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver, make_bench
from tests.integration.webhooks.test_waiting import delivered, delivery_of, parked
from tests.support.jobs import run_out_job_leases
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def fail_by_a_resend_then_redeliver(bench: Bench, event_id: str, endpoint_id: str) -> None:
    """The resend is answered 410: the delivery fails and the endpoint is disabled. Enabled
    again, the endpoint's redelivery starts the delivery over."""
    attempt = (await bench.service.resend(bench.account_id, event_id, endpoint_id)).attempt
    assert attempt.http_status == 410
    assert await bench.delivery_status(event_id, endpoint_id) == "failed"
    await bench.service.update_endpoint(
        bench.account_id, endpoint_id, EndpointChanges(disabled=False)
    )
    assert (await bench.service.redeliver(bench.account_id, endpoint_id, None)).queued == 1
    assert await bench.delivery_status(event_id, endpoint_id) == "pending"


def one_job_at_a_time(bench: Bench) -> Worker:
    """A worker that runs the job due first, alone: the older job (due as early as the new one,
    and staged before it) runs before the redelivery's."""
    return Worker(engine=bench.engine, handlers=bench.worker.handlers, clock=bench.clock,
                  given_up=bench.worker.given_up, concurrency=1)  # fmt: skip


async def claimed_by_a_worker_that_dies(engine: AsyncEngine, now: datetime) -> Job:
    async with engine.begin() as db:
        [job] = await claim_jobs(db, now=now, limit=1)
    await run_out_job_leases(engine)
    return job


async def job_status(engine: AsyncEngine, job_id: int) -> str:
    async with engine.connect() as db:
        status: str = (
            await db.execute(select(jobs.c.status).where(jobs.c.id == job_id))
        ).scalar_one()
    return status


async def test_an_earlier_job_failing_for_good_does_not_fail_the_delivery_started_over(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The event's first job crashes worker after worker, each time before its attempt, until
    its last. Then it is given up: that fails the delivery it was made for, which a
    redelivery has started over since; the delivery started over is left to its own job,
    which delivers it."""
    receiver = await start_receiver([Reply(410)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    for _ in range(DEFAULT_MAX_ATTEMPTS):
        earlier = await claimed_by_a_worker_that_dies(bench.engine, bench.clock.now())
    await fail_by_a_resend_then_redeliver(bench, event_id, endpoint.id)

    assert await one_job_at_a_time(bench).run_once() == 1  # claimed past its last attempt
    assert await job_status(bench.engine, earlier.id) == "failed"
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"

    await bench.worker.drain()
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert delivered(receiver) == [event_id, event_id]  # the resend, then the redelivery


async def test_an_earlier_job_run_again_makes_no_attempt_for_the_delivery_started_over(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The event's first job, its worker having died, runs again after the redelivery: it
    has nothing left to do. The redelivery's own job makes the attempt."""
    receiver = await start_receiver([Reply(410)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    earlier = await claimed_by_a_worker_that_dies(bench.engine, bench.clock.now())
    await fail_by_a_resend_then_redeliver(bench, event_id, endpoint.id)

    assert await one_job_at_a_time(bench).run_once() == 1
    assert await job_status(bench.engine, earlier.id) == "done"
    assert len(receiver.received) == 1  # the resend's

    await bench.worker.drain()
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert delivered(receiver) == [event_id, event_id]


async def test_a_delivery_started_over_while_parked_is_woken_as_the_one_started_over(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """The delivery was parked behind another's attempt when a resend failed it, which
    unparked it. Started over, its new job finds the slot still taken and parks it again: the
    job that wakes it is the new delivery's, and delivers it."""
    answered = asyncio.Event()
    receiver = await start_receiver(
        lambda n: Reply(hold=answered) if n == 0 else Reply(410) if n == 1 else Reply()
    )
    try:
        async with make_bench(
            core_engine, settings=DeliverySettings(max_concurrent_per_endpoint=1)
        ) as bench:
            endpoint = await bench.endpoint(receiver.url)
            in_flight_event = await bench.record()
            in_flight = asyncio.create_task(bench.worker.run_once())
            await receiver.wait_for(1)
            event_id = await bench.record()
            await one_job_at_a_time(bench).drain()
            assert await parked(core_engine) == [await delivery_of(bench, event_id, endpoint.id)]

            await fail_by_a_resend_then_redeliver(bench, event_id, endpoint.id)
            await one_job_at_a_time(bench).drain()  # parks it again
            assert len(await parked(core_engine)) == 1
            answered.set()
            assert await in_flight == 1
            await bench.worker.drain()

            assert delivered(receiver) == [in_flight_event, event_id, event_id]
            assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
            assert await parked(core_engine) == []
    finally:
        answered.set()


async def test_jobs_and_parked_deliveries_from_before_generations_still_deliver(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A job staged before deliveries had generations (or by a process of that version during
    an upgrade) says none, and a delivery such a process parked has none: each is matched by
    its attempt alone, as then, and delivers. The first one's attempt hands its slot to the
    parked one."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    staged_before, parked_before = await bench.record(), await bench.record()
    parked_id = await delivery_of(bench, parked_before, endpoint.id)
    now = bench.clock.now()
    async with bench.engine.begin() as db:
        await db.execute(text("UPDATE jobs SET payload = payload - 'generation'"))
        await db.execute(
            text("DELETE FROM jobs WHERE CAST(payload ->> 'delivery_id' AS bigint) = :id"),
            {"id": parked_id},
        )
        await db.execute(
            webhook_parked.insert().values(
                delivery_id=parked_id, endpoint_id=endpoint.id, account_id=bench.account_id,
                attempt=1, max_attempts=DEFAULT_MAX_ATTEMPTS, generation=None, due_at=now,
                parked_at=now,
            )
        )  # fmt: skip
    await bench.worker.drain()
    assert delivered(receiver) == [staged_before, parked_before]
    for event_id in (staged_before, parked_before):
        assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
