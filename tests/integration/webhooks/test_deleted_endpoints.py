"""Deleting an endpoint ends its unfinished deliveries: failed, parked no more, no longer
counted by their events, and never POSTed; an attempt in flight as it is deleted is recorded
without moving its delivery back on."""

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks import deleted, delivery
from remit.webhooks.deleted import END_JOB, EndingHandler
from remit.webhooks.outbox import DELIVER_JOB
from remit.webhooks.repair import repair_deliveries_without_job
from remit.webhooks.repository import EndpointRepository
from remit.webhooks.tables import webhook_endpoints
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.integration.webhooks.test_parked_and_in_flight import park
from tests.integration.webhooks.test_repair import lose_the_jobs_of
from tests.integration.webhooks.test_waiting import another_worker, delivery_of, parked
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def pending_jobs(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        found = await db.execute(
            select(func.count()).select_from(jobs).where(jobs.c.status == "pending")
        )
        return int(found.scalar_one())


async def pending_webhooks(bench: Bench, event_id: str) -> int:
    return (await bench.service.get_event(bench.account_id, event_id)).pending_webhooks


async def test_deleting_an_endpoint_ends_its_pending_deliveries_and_nothing_posts_them(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Three deliveries backing off after a failed attempt, one parked for a slot and one
    left with no job: each ends with the delete's job, and none is POSTed again."""
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url)
    backing_off = [await bench.record() for _ in range(3)]
    await bench.worker.drain()  # each first attempt fails; the retries wait 5 minutes
    waiting_for_a_slot, without_job = await bench.record(), await bench.record()
    for event_id in (waiting_for_a_slot, without_job):
        await lose_the_jobs_of(bench.engine, await delivery_of(bench, event_id, endpoint.id))
    await park(bench, endpoint.id, await delivery_of(bench, waiting_for_a_slot, endpoint.id))
    every_event = [*backing_off, waiting_for_a_slot, without_job]
    assert [await pending_webhooks(bench, e) for e in every_event] == [1] * 5

    await bench.service.delete_endpoint(bench.account_id, endpoint.id)
    await bench.worker.drain()

    assert [await bench.delivery_status(e, endpoint.id) for e in every_event] == ["failed"] * 5
    assert [await pending_webhooks(bench, e) for e in every_event] == [0] * 5
    assert await parked(bench.engine) == []
    for event_id in backing_off:  # the retry they showed is never made
        assert [a.next_retry_at for a in await bench.attempts(event_id)] == [None]
    bench.clock.advance(timedelta(days=1).total_seconds())
    await bench.worker.drain()
    assert len(receiver.received) == 3
    assert await pending_jobs(bench.engine) == 0
    assert [await bench.delivery_status(e, endpoint.id) for e in every_event] == ["failed"] * 5


@pytest.mark.parametrize("answer", [200, 500, 410])
async def test_an_attempt_in_flight_as_its_endpoint_is_deleted_leaves_its_delivery_ended(
    bench: Bench, start_receiver: StartReceiver, answer: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The job POSTs as the endpoint is deleted and its delivery ended: the answer is recorded
    as an attempt, but the delivery stays failed, and no retry is staged or shown; a 410
    disables nothing (the endpoint is gone already), and says nothing of it."""
    answered = asyncio.Event()
    receiver = await start_receiver([Reply(answer, hold=answered)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    posting = asyncio.create_task(bench.worker.run_once())
    try:
        await receiver.wait_for(1)
        await bench.service.delete_endpoint(bench.account_id, endpoint.id)
        assert await another_worker(bench).drain() == 1  # the delete's job
        assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    finally:
        answered.set()
    with caplog.at_level(logging.WARNING, logger=delivery.__name__):
        assert await posting == 1
    assert [r for r in caplog.records if r.name == delivery.__name__] == []
    async with bench.engine.connect() as db:
        status = await db.execute(
            select(webhook_endpoints.c.status).where(webhook_endpoints.c.id == endpoint.id)
        )
        assert status.scalar_one() == "enabled"

    assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    assert await pending_webhooks(bench, event_id) == 0
    [attempt] = await bench.attempts(event_id)
    assert (attempt.http_status, attempt.next_retry_at) == (answer, None)
    assert await pending_jobs(bench.engine) == 0


async def test_the_deletes_job_ends_a_large_number_of_deliveries_batch_by_batch(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Batches of 2: each job ends one and stages the next while it found a whole batch."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    events = [await bench.record() for _ in range(5)]
    await bench.service.delete_endpoint(bench.account_id, endpoint.id)
    worker = Worker(engine=bench.engine, handlers={END_JOB: EndingHandler(bench.clock, batch=2)},
                    clock=bench.clock)  # fmt: skip

    assert await worker.drain() == 3
    assert [await bench.delivery_status(e, endpoint.id) for e in events] == ["failed"] * 5


async def test_the_repair_ends_what_a_deletion_left_pending(
    bench: Bench, start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """An endpoint deleted with no job to end its deliveries (by an earlier version): the
    repair's run ends them, and says so."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    events = [await bench.record() for _ in range(3)]
    async with bench.engine.begin() as db:
        assert await EndpointRepository(db).delete(bench.account_id, endpoint.id, bench.clock.now())

    with caplog.at_level(logging.WARNING, logger=deleted.__name__):
        assert await repair_deliveries_without_job(bench.engine, now=bench.clock.now()) == []
    assert [await bench.delivery_status(e, endpoint.id) for e in events] == ["failed"] * 3
    [line] = [r.getMessage() for r in caplog.records if r.name == deleted.__name__]
    assert line == "ended 3 pending deliveries of deleted webhook endpoints"
    await bench.worker.drain()  # their first jobs find them ended
    assert receiver.received == []


async def deliver_jobs(engine: AsyncEngine) -> list[tuple[int, str]]:
    """The delivery jobs kept, pending or ended: (delivery, status)."""
    async with engine.connect() as db:
        found = await db.execute(
            select(jobs.c.payload["delivery_id"].as_integer(), jobs.c.status).where(
                jobs.c.kind == DELIVER_JOB
            )
        )
        return sorted((int(row[0]), str(row[1])) for row in found)


async def test_the_batch_that_ends_deliveries_removes_their_queued_jobs(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Deliveries backing off for hours had their retries' jobs queued until then, each to find
    its delivery ended when due and stop: the batch that ends them removes those jobs. Another
    endpoint's delivery keeps its own."""
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url, events=["customer.created"])
    backing_off = [await bench.record() for _ in range(2)]
    await bench.worker.drain()  # each first attempt fails; the retries wait 5 minutes
    other = await bench.endpoint(receiver.url, events=["payout.paid"])
    kept = await delivery_of(bench, await bench.record("payout.paid"), other.id)
    retries = [await delivery_of(bench, e, endpoint.id) for e in backing_off]
    assert [d for d, status in await deliver_jobs(bench.engine) if status == "pending"] == [
        *retries,
        kept,
    ]

    await bench.service.delete_endpoint(bench.account_id, endpoint.id)
    ending = Worker(engine=bench.engine, handlers={END_JOB: EndingHandler(bench.clock)},
                    clock=bench.clock)  # fmt: skip
    assert await ending.drain() == 1

    assert [await bench.delivery_status(e, endpoint.id) for e in backing_off] == ["failed"] * 2
    assert [d for d, status in await deliver_jobs(bench.engine) if status == "pending"] == [kept]


async def test_the_repair_removes_the_queued_jobs_of_what_it_ends(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A deletion whose job did not end its deliveries (an earlier version's): the repair's
    batch that ends them removes their jobs too."""
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()  # the retry waits 5 minutes
    async with bench.engine.begin() as db:
        assert await EndpointRepository(db).delete(bench.account_id, endpoint.id, bench.clock.now())

    await repair_deliveries_without_job(bench.engine, now=bench.clock.now())

    assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    assert [status for _, status in await deliver_jobs(bench.engine)] == ["done"]
