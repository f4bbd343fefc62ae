"""A delivery is parked or in flight, never both: a slot let go is never handed to a delivery
that holds one already, so no attempt is POSTed twice at once and no endpoint gets more
requests than it has slots. A parked delivery that ends is unparked, and a woken one that was
purged hands its slot on at once.

A job of a parked delivery runs when its transaction failed after its park committed (its
worker killed, its connection reset): the job runs again, as jobs do. A duplicate job of a
delivery in flight may park it too.
"""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.outbox import DELIVER_JOB
from remit.webhooks.parking import (
    hand_free_slots_to_parked,
    let_jobs_slot_go_now,
    park_behind_taken_slots,
)
from remit.webhooks.repository import InflightRepository
from remit.webhooks.tables import webhook_endpoints, webhook_inflight
from remit.worker.jobs import Job, claim_jobs
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver, make_bench
from tests.integration.webhooks.test_waiting import (
    ONE_SLOT,
    another_worker,
    delivered,
    delivery_of,
    parked,
    pending_jobs_of,
    slots_taken,
)
from tests.support.jobs import run_out_job_leases
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio

TWO_SLOTS = DeliverySettings(max_concurrent_per_endpoint=2)


async def take_slot(
    bench: Bench, endpoint_id: str, delivery_id: int, job_id: int, *, lease: timedelta
) -> None:
    """A slot of the endpoint taken for the delivery, held by job `job_id` (its run POSTs)."""
    now = bench.clock.now()
    async with bench.engine.begin() as db:
        assert await InflightRepository(db).try_acquire(
            endpoint_id=endpoint_id, delivery_id=delivery_id, job_id=job_id, limit=100,
            now=now, until=now + lease,
        )  # fmt: skip


async def let_go(bench: Bench, delivery_id: int, job_id: int) -> None:
    """The delivery's attempt recorded: its slot let go, and handed to a parked delivery."""
    now = bench.clock.now()
    async with bench.engine.begin() as db:
        await let_jobs_slot_go_now(db, delivery_id, job_id, now=now,
                                   lease_until=now + TWO_SLOTS.slot_lease)  # fmt: skip


async def slot_holder(engine: AsyncEngine, delivery_id: int) -> int | None:
    async with engine.connect() as db:
        held = await db.execute(
            select(webhook_inflight.c.job_id).where(webhook_inflight.c.delivery_id == delivery_id)
        )
        return held.scalar_one_or_none()


async def park(bench: Bench, endpoint_id: str, delivery_id: int) -> None:
    """Park the delivery, as a job of it that found every slot taken does."""
    now = bench.clock.now()
    async with bench.engine.begin() as db:
        assert await park_behind_taken_slots(
            db, delivery_id=delivery_id, endpoint_id=endpoint_id, account_id=bench.account_id,
            attempt=1, generation=0, max_attempts=25, due_at=now, limit=0, now=now,
        )  # fmt: skip


async def claim_the_job_of(bench: Bench, delivery_id: int) -> Job:
    async with bench.engine.begin() as db:
        await db.execute(
            update(jobs)
            .where(jobs.c.payload["delivery_id"].as_integer() != delivery_id)
            .values(run_at=bench.clock.now() + timedelta(days=1))
        )
        [job] = await claim_jobs(db, now=bench.clock.now(), limit=1)
    return job


async def run_in_a_transaction_that_fails_to_commit(bench: Bench, job: Job) -> None:
    """Run the job's handler (its own short transactions commit), then lose the job's
    transaction, as a worker killed before its COMMIT does: the job stays claimed, and is
    claimed again once its lease runs out."""
    handle = bench.worker.handlers[DELIVER_JOB]
    async with bench.engine.connect() as db:
        await db.begin()
        await handle(db, job)
        await db.rollback()
    await run_out_job_leases(bench.engine)


async def test_a_job_run_again_after_parking_its_delivery_takes_it_out_of_the_queue(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """Both slots are busy: the job parks its delivery, then its transaction is lost. Run
    again, it finds a slot free (the other holder's lease ran out) and POSTs. The other
    holder's attempt is then recorded, and its slot let go: the delivery is in flight, not
    waiting, so the slot is handed to no job of it (that job would take over the slot the
    first one POSTs under, and POST the same attempt while it does, a third request to an
    endpoint of two slots)."""
    answered = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(hold=answered) if n == 0 else Reply())
    async with make_bench(core_engine, settings=TWO_SLOTS) as bench:
        endpoint = await bench.endpoint(receiver.url)
        holders = [await delivery_of(bench, await bench.record(), endpoint.id) for _ in (1, 2)]
        await take_slot(bench, endpoint.id, holders[0], -1, lease=timedelta(seconds=1))
        await take_slot(bench, endpoint.id, holders[1], -2, lease=TWO_SLOTS.slot_lease)
        event_id = await bench.record()
        delivery_id = await delivery_of(bench, event_id, endpoint.id)
        job = await claim_the_job_of(bench, delivery_id)
        await run_in_a_transaction_that_fails_to_commit(bench, job)
        assert await parked(core_engine) == [delivery_id]

        bench.clock.advance(2)
        in_flight = asyncio.create_task(bench.worker.run_once())
        try:
            await receiver.wait_for(1)
            assert await parked(core_engine) == []
            await let_go(bench, holders[1], -2)
            assert await slot_holder(core_engine, delivery_id) == job.id
            await another_worker(bench).run_once()
        finally:
            answered.set()
            assert await in_flight == 1
        await bench.worker.drain()
        assert delivered(receiver) == [event_id]
        assert receiver.max_in_flight == 1
        assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"


async def test_a_job_run_again_after_parking_its_delivery_that_waits_out_a_pause_unparks_it(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """Run again, the job that parked its delivery finds the endpoint paused (a 429 asked for
    quiet): it waits in a new job, and its delivery is no longer parked, or a slot let go
    meanwhile would wake a second job of it."""
    receiver = await start_receiver()
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint(receiver.url)
        holder = await delivery_of(bench, await bench.record(), endpoint.id)
        await take_slot(bench, endpoint.id, holder, -1, lease=ONE_SLOT.slot_lease)
        event_id = await bench.record()
        delivery_id = await delivery_of(bench, event_id, endpoint.id)
        job = await claim_the_job_of(bench, delivery_id)
        await run_in_a_transaction_that_fails_to_commit(bench, job)
        assert await parked(core_engine) == [delivery_id]
        async with core_engine.begin() as db:
            await db.execute(
                update(webhook_endpoints).values(
                    rate_limited_until=bench.clock.now() + timedelta(seconds=60)
                )
            )

        await bench.worker.run_once()
        assert await parked(core_engine) == []
        assert await pending_jobs_of(core_engine) == [holder, delivery_id]


async def test_a_slot_let_go_skips_a_parked_delivery_that_holds_a_slot(
    core_engine: AsyncEngine,
) -> None:
    """A parked delivery whose own slot is still held (by a job of it POSTing) is passed over:
    the slot let go goes to the next one, and the held slot stays its holder's."""
    async with make_bench(core_engine, settings=TWO_SLOTS) as bench:
        endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
        holder, in_flight, waiting = [
            await delivery_of(bench, await bench.record(), endpoint.id) for _ in range(3)
        ]
        async with core_engine.begin() as db:
            await db.execute(jobs.delete())
        await take_slot(bench, endpoint.id, holder, -1, lease=TWO_SLOTS.slot_lease)
        await take_slot(bench, endpoint.id, in_flight, -2, lease=TWO_SLOTS.slot_lease)
        await park(bench, endpoint.id, in_flight)
        bench.clock.advance(1)
        await park(bench, endpoint.id, waiting)

        await let_go(bench, holder, -1)
        assert await pending_jobs_of(core_engine) == [waiting]
        assert await slot_holder(core_engine, in_flight) == -2
        assert await parked(core_engine) == [in_flight]
        assert await slots_taken(core_engine) == 2


async def test_the_sweep_skips_a_parked_delivery_that_holds_a_slot(
    core_engine: AsyncEngine,
) -> None:
    async with make_bench(core_engine, settings=TWO_SLOTS) as bench:
        endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
        in_flight, waiting = [
            await delivery_of(bench, await bench.record(), endpoint.id) for _ in range(2)
        ]
        async with core_engine.begin() as db:
            await db.execute(jobs.delete())
        await take_slot(bench, endpoint.id, in_flight, -2, lease=TWO_SLOTS.slot_lease)
        await park(bench, endpoint.id, in_flight)
        bench.clock.advance(1)
        await park(bench, endpoint.id, waiting)

        now = bench.clock.now()
        async with core_engine.begin() as db:
            assert await hand_free_slots_to_parked(
                db, limit=2, now=now, lease_until=now + TWO_SLOTS.slot_lease
            ) == 1  # fmt: skip
        assert await pending_jobs_of(core_engine) == [waiting]
        assert await slot_holder(core_engine, in_flight) == -2
        assert await slots_taken(core_engine) == 2


async def test_a_hand_over_never_takes_over_a_slot_taken_as_it_runs(
    core_engine: AsyncEngine,
) -> None:
    """A worker of an earlier version, which takes a slot without unparking its delivery, takes
    a parked delivery's slot while a hand-over wakes that delivery: the slot stays the job's
    that took it (the woken job finds it taken, as a duplicate job does), not the woken job's
    as well, which would POST beside it."""
    async with make_bench(core_engine, settings=TWO_SLOTS) as bench:
        endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
        holder, taking = [
            await delivery_of(bench, await bench.record(), endpoint.id) for _ in range(2)
        ]
        async with core_engine.begin() as db:
            await db.execute(jobs.delete())
        await take_slot(bench, endpoint.id, holder, -1, lease=TWO_SLOTS.slot_lease)
        await park(bench, endpoint.id, taking)
        now = bench.clock.now()

        async with core_engine.connect() as taker:
            await taker.begin()
            await taker.execute(
                text(
                    "INSERT INTO webhook_inflight (delivery_id, endpoint_id, leased_until, job_id)"
                    " VALUES (:delivery_id, :endpoint_id, :until, -2)"
                ),
                {"delivery_id": taking, "endpoint_id": endpoint.id,
                 "until": now + TWO_SLOTS.slot_lease},
            )  # fmt: skip
            hand_over = asyncio.create_task(let_go(bench, holder, -1))
            await until_a_session_waits_on_a_lock(core_engine, contender=hand_over)
            await taker.commit()
        await hand_over

        assert await slot_holder(core_engine, taking) == -2
        assert await slots_taken(core_engine) == 1


async def test_a_woken_job_whose_delivery_was_purged_hands_its_slot_on(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """The woken delivery's event was purged (older than 30 days) before its job ran: the job
    has nothing to do, and the slot it was woken with goes to the next parked delivery at
    once, not when its lease runs out."""
    receiver = await start_receiver()
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint(receiver.url)
        holder = await delivery_of(bench, await bench.record(), endpoint.id)
        async with core_engine.begin() as db:
            await db.execute(jobs.delete())
        await take_slot(bench, endpoint.id, holder, -1, lease=ONE_SLOT.slot_lease)
        purged, waiting = await bench.record(), await bench.record()
        await bench.worker.drain()
        assert await parked(core_engine) == [
            await delivery_of(bench, purged, endpoint.id),
            await delivery_of(bench, waiting, endpoint.id),
        ]
        await let_go(bench, holder, -1)
        async with core_engine.begin() as db:
            await db.execute(text("DELETE FROM events WHERE id = :id"), {"id": purged})

        await bench.worker.drain()
        assert delivered(receiver) == [waiting]
        assert await parked(core_engine) == []
        assert await slots_taken(core_engine) == 0


@pytest.mark.parametrize("answer", [200, 410])
async def test_a_parked_delivery_a_resend_ends_is_parked_no_more(
    core_engine: AsyncEngine, start_receiver: StartReceiver, answer: int
) -> None:
    """A resend delivers the parked delivery (or is answered 410 Gone, which fails it): it waits
    for no slot, and the next slot let go wakes no job for it."""
    receiver = await start_receiver([Reply(answer)])
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint(receiver.url)
        holder = await delivery_of(bench, await bench.record(), endpoint.id)
        async with core_engine.begin() as db:
            await db.execute(jobs.delete())
        await take_slot(bench, endpoint.id, holder, -1, lease=ONE_SLOT.slot_lease)
        event_id = await bench.record()
        await bench.worker.drain()
        assert await parked(core_engine) == [await delivery_of(bench, event_id, endpoint.id)]

        await bench.service.resend(bench.account_id, event_id, endpoint.id)
        assert await parked(core_engine) == []
        await let_go(bench, holder, -1)
        assert await pending_jobs_of(core_engine) == []
