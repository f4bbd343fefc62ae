"""A redelivery starts a failed delivery over; a job made for the delivery before that (still
retrying, parked, or POSTing its attempt) acts for the delivery it was made for, never for the
one started over.

Each test fails a delivery while its job still exists the one way that can happen: a resend
answered 410 Gone (which also disables the endpoint). The merchant enables the endpoint and
redelivers, which starts the delivery over, attempt 1 next, with a job of its own."""

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.domain import Delivery
from remit.webhooks.repository import DeliveryRepository
from remit.webhooks.service import EndpointChanges
from remit.webhooks.tables import webhook_parked
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS, Job, claim_jobs
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver, make_bench
from tests.integration.webhooks.test_parked_and_in_flight import slot_holder
from tests.integration.webhooks.test_waiting import (
    ONE_SLOT,
    delivered,
    delivery_of,
    parked,
    pending_jobs_of,
)
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


async def delivery_row(bench: Bench, event_id: str, endpoint_id: str) -> Delivery:
    async with bench.engine.connect() as db:
        delivery = await DeliveryRepository(db).get(bench.account_id, event_id, endpoint_id)
    assert delivery is not None
    return delivery


async def pending_attempts(engine: AsyncEngine) -> list[tuple[int, int]]:
    """The (attempt, generation) each pending job is for, oldest job first."""
    async with engine.connect() as db:
        rows = await db.execute(
            select(jobs.c.payload).where(jobs.c.status == "pending").order_by(jobs.c.id)
        )
        return [(int(row.payload["attempt"]), int(row.payload["generation"])) for row in rows]


@pytest.mark.parametrize("answer", [500, 200, 410])
async def test_an_attempt_posted_before_the_delivery_was_started_over_leaves_it_to_its_own_job(
    bench: Bench, start_receiver: StartReceiver, answer: int
) -> None:
    """The event's first job is POSTing when a resend, answered 410, fails the delivery and a
    redelivery starts it over. The first job's answer is then recorded: kept as an attempt,
    but the delivery started over is not moved on by it (attempts counted from 0 again, its
    attempt 1 matched the first job's by number), and no job of the generation before is
    staged. Moved on, the delivery would have had no job that acts for it: the one staged
    would be of the generation before, and the redelivery's would find attempt 1 made. Its own
    job makes its attempt (and finds the endpoint disabled if that answer was 410 too)."""
    answered = asyncio.Event()
    receiver = await start_receiver(
        lambda n: Reply(answer, hold=answered) if n == 0 else Reply(410) if n == 1 else Reply()
    )
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    posting = asyncio.create_task(one_job_at_a_time(bench).run_once())
    try:
        await receiver.wait_for(1)
        bench.clock.advance(1)
        await fail_by_a_resend_then_redeliver(bench, event_id, endpoint.id)
    finally:
        answered.set()
    assert await posting == 1

    started_over = await delivery_row(bench, event_id, endpoint.id)
    assert (started_over.status.value, started_over.attempts, started_over.generation) == (
        "pending", 0, 1,
    )  # fmt: skip
    assert await pending_attempts(bench.engine) == [(1, 1)]
    assert [a.http_status for a in await bench.attempts(event_id)] == [answer, 410]

    bench.clock.advance(1)
    await bench.worker.drain()
    if answer == 410:  # the endpoint was disabled again: the delivery started over fails
        assert delivered(receiver) == [event_id, event_id]
        assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    else:
        assert delivered(receiver) == [event_id, event_id, event_id]
        assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
        assert [a.http_status for a in await bench.attempts(event_id)] == [answer, 410, 200]


async def test_an_attempt_recorded_after_its_slot_was_taken_over_leaves_that_slot_alone(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """The first job's POST outlasts its slot's lease, and the redelivery's job takes the slot
    over and POSTs. When the first job's attempt is recorded the slot is the current job's:
    it stays so, and is not handed to the delivery parked behind it, which would POST beside
    it to an endpoint of one slot."""
    first_answered, current_answered = asyncio.Event(), asyncio.Event()

    def script(n: int) -> Reply:
        return {0: Reply(500, hold=first_answered), 1: Reply(410),
                2: Reply(hold=current_answered)}.get(n, Reply())  # fmt: skip

    receiver = await start_receiver(script)
    try:
        async with make_bench(core_engine, settings=ONE_SLOT) as bench:
            endpoint = await bench.endpoint(receiver.url)
            event_id = await bench.record()
            delivery_id = await delivery_of(bench, event_id, endpoint.id)
            first = asyncio.create_task(one_job_at_a_time(bench).run_once())
            await receiver.wait_for(1)
            await fail_by_a_resend_then_redeliver(bench, event_id, endpoint.id)
            bench.clock.advance(ONE_SLOT.slot_lease.total_seconds() + 1)
            current = asyncio.create_task(one_job_at_a_time(bench).run_once())
            await receiver.wait_for(3)
            current_job = await slot_holder(core_engine, delivery_id)
            waiting = await bench.record()
            await one_job_at_a_time(bench).drain()
            assert await parked(core_engine) == [await delivery_of(bench, waiting, endpoint.id)]

            first_answered.set()
            assert await first == 1
            assert await slot_holder(core_engine, delivery_id) == current_job
            assert len(await parked(core_engine)) == 1
            # The current job's, still POSTing: none was woken for the parked delivery.
            assert await pending_jobs_of(core_engine) == [delivery_id]

            current_answered.set()
            assert await current == 1
            await bench.worker.drain()
            assert delivered(receiver) == [event_id, event_id, event_id, waiting]
            assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
            assert await bench.delivery_status(waiting, endpoint.id) == "succeeded"
    finally:
        first_answered.set()
        current_answered.set()
