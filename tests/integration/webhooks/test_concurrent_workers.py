"""Two workers at once on one endpoint, their steps ordered by hand with database locks the test
holds: a delivery is POSTed once per scheduled attempt, and the endpoint's record of failures
ends up as the attempts, in the order they were made, say."""

import asyncio
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.webhooks.domain import DeliveryAttempt
from remit.webhooks.outbox import stage_delivery_attempt
from remit.webhooks.repository import DeliveryRepository
from remit.webhooks.service import PageArgs
from remit.webhooks.tables import webhook_inflight
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.receiver import Reply
from tests.support.statements import statements_sent

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
        await stage_delivery_attempt(db, delivery.id, 1, generation=0,
                                     account_id=bench.account_id,
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


async def test_a_delivery_is_read_once_under_a_lock_that_waits_for_another_record_of_it(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The guarantee above comes from the one read of the delivery: it holds the row FOR SHARE,
    so it waits for a concurrent record of the attempt and reads what that record committed.
    No second read of the delivery costs a round trip on every delivery."""
    receiver = await start_receiver()
    await bench.endpoint(receiver.url)
    await bench.record()

    with statements_sent(bench.engine) as sent:
        assert await bench.worker.drain() == 1

    # Reads of the delivery itself (not the pending count's alias of its table, nor the lock
    # the recording of the attempt takes on its row, which reads nothing of it and travels with
    # the recording's other statements).
    reads = [
        sql
        for sql in sent
        if re.search(r"^\s*SELECT\b.*\bFROM webhook_deliveries\b(?! AS)", sql, re.S)
        and not sql.startswith("SELECT 1 FROM webhook_deliveries")
    ]
    assert len(reads) == 1
    assert "FOR SHARE OF webhook_deliveries" in reads[0]
    assert len(receiver.received) == 1


async def attempts_to(bench: Bench, endpoint_id: str) -> list[DeliveryAttempt]:
    """Oldest first."""
    found, _ = await bench.service.list_attempts(
        bench.account_id, event_id=None, endpoint_id=endpoint_id, args=PageArgs(limit=100)
    )
    return sorted(found, key=lambda attempt: attempt.attempted_at)


async def failing_since(bench: Bench, endpoint_id: str) -> datetime | None:
    return (await bench.service.get_endpoint(bench.account_id, endpoint_id)).failing_since


async def test_a_success_recorded_after_a_concurrent_failure_ends_the_run(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A fails one delivery while B, a second later, succeeds with another; B read the endpoint
    before A's failure was recorded (not failing then). The success, recorded last, must still
    end the run, or a healthy endpoint would stay on course to be disabled."""
    failure_answered, success_answered = asyncio.Event(), asyncio.Event()
    receiver = await start_receiver(
        lambda n: Reply(500, hold=failure_answered) if n == 0 else Reply(hold=success_answered)
    )
    endpoint = await bench.endpoint(receiver.url)
    await bench.record()
    await bench.record()
    a, b = one_at_a_time(bench), one_at_a_time(bench)
    failing = asyncio.create_task(a.run_once())
    await receiver.wait_for(1)
    bench.clock.advance(1)
    succeeding = asyncio.create_task(b.run_once())
    await receiver.wait_for(2)

    failure_answered.set()
    assert await failing == 1
    assert await failing_since(bench, endpoint.id) == bench.clock.now() - timedelta(seconds=1)
    success_answered.set()
    assert await succeeding == 1

    assert await failing_since(bench, endpoint.id) is None


async def test_a_failure_made_before_a_success_but_recorded_after_it_starts_no_run(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A's POST fails slowly; B's, made a second later, succeeds and is recorded first. The
    endpoint answered well after A's failure: that failure, recorded last, starts no run."""
    failure_answered = asyncio.Event()
    receiver = await start_receiver(
        lambda n: Reply(500, hold=failure_answered) if n == 0 else Reply()
    )
    endpoint = await bench.endpoint(receiver.url)
    await bench.record()
    await bench.record()
    a, b = one_at_a_time(bench), one_at_a_time(bench)
    failing = asyncio.create_task(a.run_once())
    await receiver.wait_for(1)
    bench.clock.advance(1)
    assert await b.run_once() == 1

    failure_answered.set()
    assert await failing == 1

    assert [r.http_status for r in await attempts_to(bench, endpoint.id)] == [500, 200]
    assert await failing_since(bench, endpoint.id) is None


async def test_a_failure_made_after_a_success_but_recorded_before_it_still_counts(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The other way round: the success was made first, so the failure made after it, though
    recorded first, is the start of a run the success does not end."""
    success_answered = asyncio.Event()
    receiver = await start_receiver(
        lambda n: Reply(hold=success_answered) if n == 0 else Reply(500)
    )
    endpoint = await bench.endpoint(receiver.url)
    await bench.record()
    await bench.record()
    a, b = one_at_a_time(bench), one_at_a_time(bench)
    succeeding = asyncio.create_task(a.run_once())
    await receiver.wait_for(1)
    bench.clock.advance(1)
    assert await b.run_once() == 1
    failed_at = bench.clock.now()

    success_answered.set()
    assert await succeeding == 1

    assert await failing_since(bench, endpoint.id) == failed_at
