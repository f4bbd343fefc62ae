"""The worker's repair stages a job for a pending delivery that nothing would attempt again, and
for no other: never one parked, in flight, with a job, or of a disabled endpoint; and a job it
stages beside another for the same attempt makes no second POST."""

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks import repair
from remit.webhooks.outbox import stage_delivery_attempt
from remit.webhooks.repair import MARGIN, repair_deliveries_without_job
from remit.webhooks.service import EndpointChanges
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.alone import run_alone
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.integration.webhooks.test_parked_and_in_flight import park, take_slot
from tests.integration.webhooks.test_waiting import another_worker, delivery_of, pending_jobs_of
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def lose_the_jobs_of(engine: AsyncEngine, delivery_id: int) -> None:
    """What an operator's deletion (or a process of an earlier version) leaves: no job."""
    async with engine.begin() as db:
        await db.execute(
            delete(jobs).where(jobs.c.payload["delivery_id"].as_integer() == delivery_id)
        )


async def repair_now(bench: Bench) -> list[int]:
    return await repair_deliveries_without_job(bench.engine, now=bench.clock.now())


async def test_a_delivery_whose_job_was_lost_is_attempted_again_once_overdue_by_the_margin(
    bench: Bench, start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = await start_receiver([Reply(500)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()  # attempt 1 fails; attempt 2's job is staged
    delivery_id = await delivery_of(bench, event_id, endpoint.id)
    [due] = [a.next_retry_at for a in await bench.attempts(event_id)]
    assert due is not None
    await lose_the_jobs_of(bench.engine, delivery_id)

    bench.clock.advance((due + MARGIN - bench.clock.now()).total_seconds() - 1)
    assert await repair_now(bench) == []  # overdue, but not yet by the margin

    bench.clock.advance(2)
    with caplog.at_level(logging.WARNING, logger=repair.__name__):
        assert await repair_now(bench) == [delivery_id]
    [line] = [r.getMessage() for r in caplog.records if r.name == repair.__name__]
    assert line.startswith("staged a job for 1 webhook deliveries")
    assert await repair_now(bench) == []  # its job is pending now

    await bench.worker.drain()
    assert len(receiver.received) == 2
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert [a.attempt_number for a in await bench.attempts(event_id)] == [1, 2]


async def test_deliveries_with_a_way_forward_or_a_disabled_endpoint_are_left_alone(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Each overdue: one with its job (backing off), one parked, one whose attempt is in
    flight, one of a disabled endpoint. Only the one with none of these is repaired."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url, ["customer.created"])
    disabled = await bench.endpoint(receiver.url, ["payout.paid"])
    with_job, parked, in_flight, stranded = [
        await delivery_of(bench, await bench.record(), endpoint.id) for _ in range(4)
    ]
    of_disabled = await delivery_of(bench, await bench.record("payout.paid"), disabled.id)
    for lost in (parked, in_flight, stranded, of_disabled):
        await lose_the_jobs_of(bench.engine, lost)
    async with bench.engine.begin() as db:
        await db.execute(update(jobs).values(run_at=bench.clock.now() + timedelta(days=1)))
    await park(bench, endpoint.id, parked)
    bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())
    await take_slot(bench, endpoint.id, in_flight, job_id=999, lease=timedelta(seconds=45))
    await bench.service.update_endpoint(
        bench.account_id, disabled.id, EndpointChanges(disabled=True)
    )

    assert await repair_now(bench) == [stranded]
    assert sorted(await pending_jobs_of(bench.engine)) == sorted([with_job, stranded])
    assert await repair_now(bench) == []


async def test_a_repair_while_the_attempt_is_in_flight_stages_nothing(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The repair runs while the delivery's job POSTs, past the margin: the job is pending and
    holds the slot, so nothing is staged, and the attempt is POSTed once."""
    answer = asyncio.Event()
    receiver = await start_receiver([Reply(hold=answer)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    posting = asyncio.create_task(bench.worker.run_once())
    try:
        await receiver.wait_for(1)
        bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())
        assert await repair_now(bench) == []
    finally:
        answer.set()
    assert await posting == 1
    await bench.worker.drain()
    assert len(receiver.received) == 1
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"


async def test_a_repaired_job_and_a_real_one_run_together_post_the_attempt_once(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The job the repair staged and another for the same attempt (the lost one staged again,
    by hand or by a process of an earlier version) are claimed and run at once."""
    answer = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(hold=answer))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    delivery_id = await delivery_of(bench, event_id, endpoint.id)
    await lose_the_jobs_of(bench.engine, delivery_id)
    bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())
    assert await repair_now(bench) == [delivery_id]
    async with bench.engine.begin() as db:
        await stage_delivery_attempt(db, delivery_id, 1, generation=0,
                                     account_id=bench.account_id,
                                     now=bench.clock.now())  # fmt: skip
    assert await pending_jobs_of(bench.engine) == [delivery_id, delivery_id]

    both = asyncio.create_task(another_worker(bench).run_once())
    try:
        await receiver.wait_for(1)
        await asyncio.sleep(0.2)  # time for a second POST, were one to be made
    finally:
        answer.set()
    assert await both == 2
    await bench.worker.drain()
    assert len(receiver.received) == 1
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert [a.attempt_number for a in await bench.attempts(event_id)] == [1]


async def test_the_worker_runs_the_repair_periodically_one_copy_at_a_time(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The worker's task repairs a delivery left with no job, and skips its turn while another
    copy runs it."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    delivery_id = await delivery_of(bench, await bench.record(), endpoint.id)
    await lose_the_jobs_of(bench.engine, delivery_id)
    bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())
    parts = webhook_worker_parts(bench.engine, UrlPolicy(allow_internal=True), clock=bench.clock)
    other_copy_inside, other_copy_done = asyncio.Event(), asyncio.Event()

    async def running_elsewhere() -> None:
        other_copy_inside.set()
        await other_copy_done.wait()

    try:
        [task] = [p for p in parts.periodic if p.name == repair.TASK]
        assert task.interval_s == repair.INTERVAL_S
        other_copy = asyncio.create_task(run_alone(bench.engine, repair.TASK, running_elsewhere))
        await other_copy_inside.wait()
        await task.run()
        assert await pending_jobs_of(bench.engine) == []
        other_copy_done.set()
        await other_copy
        await task.run()
        assert await pending_jobs_of(bench.engine) == [delivery_id]
    finally:
        other_copy_done.set()
        await parts.close()


async def test_a_run_reads_every_batch_of_overdue_deliveries(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Batches of 2: the run goes on past full batches, repairing those behind the ones with
    a job."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    ids = []
    for _ in range(5):
        ids.append(await delivery_of(bench, await bench.record(), endpoint.id))
        bench.clock.advance(1)
    for lost in ids[2:]:
        await lose_the_jobs_of(bench.engine, lost)
    async with bench.engine.begin() as db:
        await db.execute(update(jobs).values(run_at=bench.clock.now() + timedelta(days=1)))
    bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())

    repaired = await repair_deliveries_without_job(bench.engine, now=bench.clock.now(), batch=2)
    assert repaired == ids[2:]
    async with bench.engine.connect() as db:
        due = select(jobs.c.payload).where(jobs.c.run_at <= bench.clock.now())
        payloads = (await db.execute(due)).all()
    assert sorted(p.payload["delivery_id"] for p in payloads) == ids[2:]
    assert {p.payload["attempt"] for p in payloads} == {1}


async def pending_webhooks(bench: Bench, event_id: str) -> int:
    return (await bench.service.get_event(bench.account_id, event_id)).pending_webhooks


async def test_a_disabled_endpoints_delivery_counts_as_pending_while_something_will_attempt_it(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """`pending_webhooks` counts the deliveries yet to be delivered that something will still
    attempt. Of a disabled endpoint's two deliveries, the one with a job is failed by it (the
    job finds the endpoint disabled) and stops counting; the one with no job is left pending,
    and counted, for the repair to stage its job once the endpoint is enabled again, which
    delivers it."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    with_job, without_job = await bench.record(), await bench.record()
    await lose_the_jobs_of(bench.engine, await delivery_of(bench, without_job, endpoint.id))
    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=True)
    )

    await bench.worker.drain()
    bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())
    assert await repair_now(bench) == []
    assert await bench.delivery_status(with_job, endpoint.id) == "failed"
    assert await pending_webhooks(bench, with_job) == 0
    assert await bench.delivery_status(without_job, endpoint.id) == "pending"
    assert await pending_webhooks(bench, without_job) == 1

    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=False)
    )
    assert await repair_now(bench) == [await delivery_of(bench, without_job, endpoint.id)]
    await bench.worker.drain()
    assert len(receiver.received) == 1
    assert await bench.delivery_status(without_job, endpoint.id) == "succeeded"
    assert await pending_webhooks(bench, without_job) == 0
