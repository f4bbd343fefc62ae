"""Deliveries waiting on an endpoint cost nothing while they wait, and do not wake together.

A delivery that finds every slot of its endpoint taken parks, with no job, and the attempt that
lets a slot go hands it to the oldest parked one, waking it, ahead of any new delivery; a slot
freed by its lease running out (its worker died) is handed over by the periodic sweep, which
hands out no slot twice. Retries of deliveries that failed at once, and
deliveries that waited out an endpoint's pause (a 429's Retry-After), are spread over their
jitter.
"""

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.domain import RETRY_GAP_JITTER
from remit.webhooks.parking import hand_free_slots_to_parked, park_behind_taken_slots
from remit.webhooks.repository import DeliveryRepository, InflightRepository
from remit.webhooks.service import EndpointChanges
from remit.webhooks.tables import webhook_inflight, webhook_parked
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import FREE_EXPIRED_SLOTS, webhook_worker_parts
from remit.worker.jobs import claim_jobs
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver, make_bench
from tests.support.jobs import run_out_job_leases
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.receiver import Receiver, Reply

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


ONE_SLOT = DeliverySettings(max_concurrent_per_endpoint=1)


async def pending_jobs_of(engine: AsyncEngine) -> list[int]:
    """The delivery of each pending job, oldest job first."""
    async with engine.connect() as db:
        rows = await db.execute(
            select(jobs.c.payload).where(jobs.c.status == "pending").order_by(jobs.c.id)
        )
        return [int(row.payload["delivery_id"]) for row in rows]


async def jobs_staged(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        return int((await db.execute(select(func.count()).select_from(jobs))).scalar_one())


async def parked(engine: AsyncEngine) -> list[int]:
    """The parked deliveries, in the order they are woken."""
    async with engine.connect() as db:
        rows = await db.execute(
            select(webhook_parked.c.delivery_id).order_by(
                webhook_parked.c.due_at, webhook_parked.c.delivery_id
            )
        )
        return [row.delivery_id for row in rows]


async def slots_taken(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        taken = await db.execute(select(func.count()).select_from(webhook_inflight))
        return int(taken.scalar_one())


async def delivery_of(bench: Bench, event_id: str, endpoint_id: str) -> int:
    async with bench.engine.connect() as db:
        delivery = await DeliveryRepository(db).get(bench.account_id, event_id, endpoint_id)
    assert delivery is not None
    return delivery.id


def another_worker(bench: Bench, concurrency: int = 2) -> Worker:
    return Worker(engine=bench.engine, handlers=bench.worker.handlers, clock=bench.clock,
                  given_up=bench.worker.given_up, concurrency=concurrency)  # fmt: skip


def delivered(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["id"] for r in receiver.received]


async def test_with_one_slot_waiting_deliveries_park_and_are_woken_one_at_a_time_in_order(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """One slot, five deliveries. While the first is in flight the other four park: its job is
    the only one left. Each attempt that lets the slot go wakes the oldest parked delivery,
    whose job is then the only one; no job is ever staged just to look again."""
    answers = [asyncio.Event() for _ in range(5)]
    receiver = await start_receiver(lambda n: Reply(hold=answers[n]))
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint(receiver.url)
        events = [await bench.record()]
        in_flight = asyncio.create_task(bench.worker.run_once())
        await receiver.wait_for(1)
        for _ in range(4):
            bench.clock.advance(1)
            events.append(await bench.record())
        deliveries = [await delivery_of(bench, event_id, endpoint.id) for event_id in events]

        assert await another_worker(bench).drain() == 4
        assert await parked(core_engine) == deliveries[1:]
        assert await pending_jobs_of(core_engine) == [deliveries[0]]
        for n in range(1, 5):
            answers[n - 1].set()
            assert await in_flight == 1
            assert await pending_jobs_of(core_engine) == [deliveries[n]]
            assert await parked(core_engine) == deliveries[n + 1 :]
            in_flight = asyncio.create_task(bench.worker.run_once())
            await receiver.wait_for(n + 1)
            assert await pending_jobs_of(core_engine) == [deliveries[n]]
        answers[4].set()
        assert await in_flight == 1

        assert delivered(receiver) == events
        assert await pending_jobs_of(core_engine) == []
        assert await jobs_staged(core_engine) == 5 + 4  # the first attempts, and four wake-ups
        assert await slots_taken(core_engine) == 0
        assert receiver.max_in_flight == 1


async def test_deliveries_parked_behind_a_dead_workers_slot_are_woken_when_its_lease_runs_out(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """A worker takes a delivery's slot and dies before it lets it go. The deliveries parked
    behind that slot are woken by the sweep once the slot's lease has run out, before the
    dead worker's job comes round again."""
    receiver = await start_receiver()
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint(receiver.url)
        orphaned = await bench.record()
        now = bench.clock.now()
        async with core_engine.begin() as db:
            [job] = await claim_jobs(db, now=now, limit=1)
        async with core_engine.begin() as db:
            assert await InflightRepository(db).try_acquire(
                endpoint_id=endpoint.id,
                delivery_id=await delivery_of(bench, orphaned, endpoint.id),
                job_id=job.id,
                limit=1,
                now=now,
                until=now + ONE_SLOT.slot_lease,
            )
        waiting = []
        for _ in range(2):
            bench.clock.advance(1)
            waiting.append(await bench.record())
        await bench.worker.drain()
        assert len(await parked(core_engine)) == 2

        bench.clock.advance(ONE_SLOT.slot_lease.total_seconds())
        await bench.worker.drain()
        assert receiver.received == []  # nothing wakes them by itself
        await run_the_sweep(bench, ONE_SLOT)
        await bench.worker.drain()
        assert delivered(receiver) == waiting

        await run_out_job_leases(core_engine)
        await bench.worker.drain()
        assert delivered(receiver) == [*waiting, orphaned]
        assert await parked(core_engine) == []
        assert await slots_taken(core_engine) == 0


async def test_a_worker_that_dies_holding_a_woken_deliverys_job_loses_nothing(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """The wake-up is a job like any other: claimed by a worker that dies before running it,
    it is claimed again once its lease runs out, and the delivery goes."""
    answered = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(hold=answered) if n == 0 else Reply())
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint(receiver.url)
        await bench.record()
        in_flight = asyncio.create_task(bench.worker.run_once())
        await receiver.wait_for(1)
        waiting = await bench.record()
        await bench.worker.drain()
        assert await parked(core_engine) == [await delivery_of(bench, waiting, endpoint.id)]
        answered.set()
        assert await in_flight == 1
        async with core_engine.begin() as db:
            [woken] = await claim_jobs(db, now=bench.clock.now(), limit=1)  # then it dies
        await bench.worker.drain()
        assert len(receiver.received) == 1

        await run_out_job_leases(core_engine)
        await bench.worker.drain()
        assert delivered(receiver)[1:] == [waiting]
        assert await bench.delivery_status(waiting, endpoint.id) == "succeeded"
        assert await pending_jobs_of(core_engine) == []
        assert woken.payload["delivery_id"] == await delivery_of(bench, waiting, endpoint.id)


async def waiting_on_a_lock(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as db:
        rows = await db.execute(
            text(
                "SELECT query FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return [row.query for row in rows]


async def test_a_slot_let_go_while_a_delivery_parks_behind_it_still_wakes_it(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """The in-flight delivery's attempt is recorded between another delivery finding the slot
    taken and its park committing: letting the slot go waits for the park, and then wakes
    the parked delivery. (Without that wait it would look for parked deliveries, find none,
    and the parked one would wait for a slot nobody holds.)"""
    answered = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(hold=answered) if n == 1 else Reply())
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint(receiver.url)
        # A success on record: the next one leaves the endpoint's row alone (so the only lock
        # letting its slot go can wait for is the slot's own).
        await bench.record()
        await bench.worker.drain()
        in_flight_event = await bench.record()
        in_flight = asyncio.create_task(bench.worker.run_once())
        await receiver.wait_for(2)
        parking_event = await bench.record()
        parking = await delivery_of(bench, parking_event, endpoint.id)
        now = bench.clock.now()
        async with core_engine.begin() as db:
            # The parking delivery's job is the transaction below, which ends with its park.
            await db.execute(jobs.update().where(jobs.c.status == "pending",
                             jobs.c.payload["delivery_id"].as_integer() == parking)
                             .values(status="done", finished_at=now))  # fmt: skip

        async with core_engine.connect() as parker:
            await parker.begin()
            assert not await InflightRepository(parker).try_acquire(
                endpoint_id=endpoint.id, delivery_id=parking, job_id=0, limit=1, now=now,
                until=now + ONE_SLOT.slot_lease,
            )  # fmt: skip
            assert await park_behind_taken_slots(
                parker, delivery_id=parking, endpoint_id=endpoint.id,
                account_id=bench.account_id, attempt=1, generation=0, max_attempts=25,
                due_at=now, limit=1, now=now,
            )  # fmt: skip
            answered.set()
            await until_a_session_waits_on_a_lock(core_engine, contender=in_flight)
            assert any("webhook_inflight" in q for q in await waiting_on_a_lock(core_engine))
            await parker.commit()
        assert await in_flight == 1

        assert await pending_jobs_of(core_engine) == [parking]
        await bench.worker.drain()
        assert delivered(receiver)[1:] == [in_flight_event, parking_event]


async def test_deliveries_parked_on_an_endpoint_disabled_meanwhile_fail_rather_than_wait(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """Each woken delivery finds the endpoint disabled, fails, and wakes the next: none is left
    parked for ever, and redelivery sends them once it is enabled again."""
    answered = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(hold=answered) if n == 0 else Reply())
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint(receiver.url)
        await bench.record()
        in_flight = asyncio.create_task(bench.worker.run_once())
        await receiver.wait_for(1)
        waiting = [await bench.record(), await bench.record()]
        await another_worker(bench).drain()
        assert len(await parked(core_engine)) == 2
        await bench.service.update_endpoint(
            bench.account_id, endpoint.id, EndpointChanges(disabled=True)
        )
        answered.set()
        assert await in_flight == 1
        await bench.worker.drain()

        assert await parked(core_engine) == []
        assert await pending_jobs_of(core_engine) == []
        for event_id in waiting:
            assert await bench.delivery_status(event_id, endpoint.id) == "failed"
        await bench.service.update_endpoint(
            bench.account_id, endpoint.id, EndpointChanges(disabled=False)
        )
        assert (await bench.service.redeliver(bench.account_id, endpoint.id, None)).queued == 2
        await bench.worker.drain()
        assert sorted(delivered(receiver)[1:]) == sorted(waiting)


@contextlib.contextmanager
def all_answered_in_the_end(answers: list[asyncio.Event]) -> Iterator[None]:
    """Let every held request be answered when the block ends, passed or failed: a receiver
    stopping with requests still held waits for them."""
    try:
        yield
    finally:
        for answer in answers:
            answer.set()


async def run_until_a_post(worker: Worker, receiver: Receiver, posts: int) -> "asyncio.Task[int]":
    """Run `worker`'s due jobs, a batch at a time, until one of them POSTs (the receiver has
    had `posts` requests); hand back that batch's run, still in flight. A batch whose jobs
    all parked (or waited) ends at once, and the next one is run."""
    for _ in range(10):
        run = asyncio.create_task(worker.run_once())
        posted = asyncio.create_task(receiver.wait_for(posts))
        await asyncio.wait({run, posted}, return_when=asyncio.FIRST_COMPLETED)
        posted.cancel()
        if len(receiver.received) >= posts:
            return run
        assert await run > 0, "no job left to run, and none of them POSTed"
    raise AssertionError("ten batches ran and none of them POSTed")


async def test_under_saturation_a_slot_let_go_goes_to_the_oldest_parked_delivery(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """One slot, always wanted: each time it is let go, a new event's delivery is already
    queued, its job due before the wake-up's. The slot goes to the oldest parked delivery all
    the same (the new one finds it handed over, and parks behind the others), so the
    deliveries go in the order they first wanted the slot. A new delivery taking the slot let
    go would send the woken one back to its place, round after round, for as long as new
    events kept coming."""
    rounds = 4
    answers = [asyncio.Event() for _ in range(rounds + 3)]
    receiver = await start_receiver(lambda n: Reply(hold=answers[n]))
    with all_answered_in_the_end(answers):
        async with make_bench(core_engine, settings=ONE_SLOT) as bench:
            one_at_a_time = another_worker(bench, concurrency=1)
            await bench.endpoint(receiver.url)
            events = [await bench.record()]
            in_flight = await run_until_a_post(one_at_a_time, receiver, 1)
            for _ in range(2):
                bench.clock.advance(1)
                events.append(await bench.record())
            await bench.worker.drain()
            assert len(await parked(core_engine)) == 2

            for n in range(rounds):
                bench.clock.advance(1)
                events.append(await bench.record())  # queued before the slot is let go
                answers[n].set()
                assert await in_flight == 1
                in_flight = await run_until_a_post(one_at_a_time, receiver, n + 2)
            assert delivered(receiver) == events[: rounds + 1]

            for answer in answers:
                answer.set()
            assert await in_flight == 1
            await bench.worker.drain()
            assert delivered(receiver) == events
            assert await parked(core_engine) == []
            assert await slots_taken(core_engine) == 0
            assert receiver.max_in_flight == 1


async def run_the_sweep(bench: Bench, settings: DeliverySettings) -> None:
    parts = webhook_worker_parts(bench.engine, UrlPolicy(allow_internal=True),
                                 clock=bench.clock, settings=settings)  # fmt: skip
    try:
        [sweep] = [p for p in parts.periodic if p.name == FREE_EXPIRED_SLOTS]
        await sweep.run()
    finally:
        await parts.close()


async def test_the_sweep_wakes_no_delivery_for_a_slot_already_handed_to_a_woken_one(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """Two slots, both busy, three deliveries parked. One attempt ends and hands its slot to
    the oldest parked delivery, whose job has not run yet. The sweep finds no slot free and
    wakes no one: a second delivery woken for that slot would only find it taken and park
    again."""
    two_slots = DeliverySettings(max_concurrent_per_endpoint=2)
    answers = [asyncio.Event() for _ in range(2)]
    receiver = await start_receiver(lambda n: Reply(hold=answers[n]) if n < 2 else Reply())
    with all_answered_in_the_end(answers):
        async with make_bench(core_engine, settings=two_slots) as bench:
            one_at_a_time = another_worker(bench, concurrency=1)
            endpoint = await bench.endpoint(receiver.url)
            first = [await bench.record(), await bench.record()]
            in_flight = [await run_until_a_post(one_at_a_time, receiver, n) for n in (1, 2)]
            waiting = []
            for _ in range(3):
                bench.clock.advance(1)
                waiting.append(await delivery_of(bench, await bench.record(), endpoint.id))
            await bench.worker.drain()
            assert await parked(core_engine) == waiting

            answers[0].set()
            assert await in_flight[0] == 1
            still_posting = await delivery_of(bench, first[1], endpoint.id)
            assert await pending_jobs_of(core_engine) == [still_posting, waiting[0]]
            await run_the_sweep(bench, two_slots)
            assert await pending_jobs_of(core_engine) == [still_posting, waiting[0]]
            assert await parked(core_engine) == waiting[1:]

            answers[1].set()
            assert await in_flight[1] == 1
            await bench.worker.drain()
            assert sorted(delivered(receiver)[:2]) == sorted(first)
            assert len(receiver.received) == 5
            assert await parked(core_engine) == []
            assert await slots_taken(core_engine) == 0


async def test_two_sweeps_at_once_hand_a_free_slot_to_one_parked_delivery(
    core_engine: AsyncEngine,
) -> None:
    """Two workers' sweeps run at the same moment on an endpoint with one slot free and three
    deliveries parked. The second counts the endpoint's slots only once the first has
    committed, so it finds the slot handed over and wakes no one: two would each wake a
    delivery for the one slot."""
    async with make_bench(core_engine, settings=ONE_SLOT) as bench:
        endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
        waiting = []
        for _ in range(3):
            bench.clock.advance(1)
            waiting.append(await delivery_of(bench, await bench.record(), endpoint.id))
        now = bench.clock.now()
        lease_until = now + ONE_SLOT.slot_lease
        async with core_engine.begin() as db:
            # Their jobs ran and parked them behind a slot whose worker died since.
            await db.execute(jobs.delete())
            for delivery_id in waiting:
                assert await park_behind_taken_slots(
                    db, delivery_id=delivery_id, endpoint_id=endpoint.id,
                    account_id=bench.account_id, attempt=1, generation=0, max_attempts=25,
                    due_at=now, limit=0, now=now,
                )  # fmt: skip

        async def sweep() -> int:
            async with core_engine.begin() as db:
                return await hand_free_slots_to_parked(
                    db, limit=1, now=now, lease_until=lease_until
                )

        async with core_engine.connect() as first:
            await first.begin()
            assert await hand_free_slots_to_parked(
                first, limit=1, now=now, lease_until=lease_until
            ) == 1  # fmt: skip
            second = asyncio.create_task(sweep())
            await until_a_session_waits_on_a_lock(core_engine, contender=second)
            await first.commit()
        assert await second == 0

        assert await pending_jobs_of(core_engine) == waiting[:1]
        assert await parked(core_engine) == waiting[1:]
        assert await slots_taken(core_engine) == 1
