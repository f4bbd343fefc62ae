"""A delivery job fails for good and failing its delivery fails too: the delivery stays pending
with no job. Each such failure is counted on the delivery with its reason, logged, and said first
in the job's error; the repair stages a job for it again GIVE_UP_TRIES times at most, not on a
cycle of hours for as long as the event is kept."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.webhooks import delivery, repair
from remit.webhooks.domain import GIVE_UP_TRIES
from remit.webhooks.repair import MARGIN, repair_deliveries_without_job
from remit.webhooks.tables import webhook_deliveries
from remit.worker.failed_jobs import read_failed_jobs
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.integration.webhooks.test_failing_delivery_jobs import _failing_worker, broken_renderer
from tests.integration.webhooks.test_waiting import delivery_of

pytestmark = pytest.mark.anyio


async def failing_let_go(db: AsyncConnection, *_: object, **__: object) -> None:
    """Letting the delivery's slot go fails on the server, as a lock wait that times out does:
    the transaction is aborted up to its last savepoint."""
    await db.execute(text("SELECT 1 / 0"))


async def one_attempt_per_job(bench: Bench) -> None:
    async with bench.engine.begin() as db:
        await db.execute(update(jobs).where(jobs.c.status == "pending").values(max_attempts=1))


async def test_a_delivery_whose_give_up_keeps_failing_is_repaired_a_bounded_number_of_times(
    bench: Bench,
    start_receiver: StartReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(delivery, "let_slot_go", failing_let_go)
    # Each job fails for good at its first failed run, the repaired ones too.
    monkeypatch.setattr(repair, "DEFAULT_MAX_ATTEMPTS", 1)
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    delivery_id = await delivery_of(bench, event_id, endpoint.id)
    await one_attempt_per_job(bench)
    worker, close = await _failing_worker(bench, broken_renderer)
    repaired = 0
    try:
        with caplog.at_level(logging.ERROR, logger=delivery.__name__):
            for _ in range(GIVE_UP_TRIES + 2):
                await worker.drain()  # its job fails for good; failing the delivery fails too
                assert await bench.delivery_status(event_id, endpoint.id) == "pending"
                bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())
                found = await repair_deliveries_without_job(bench.engine, now=bench.clock.now())
                repaired += len(found)
    finally:
        await close()

    assert repaired == GIVE_UP_TRIES - 1  # the first job was the record's own
    async with bench.engine.connect() as db:
        row = (
            await db.execute(
                select(
                    webhook_deliveries.c.give_up_failures, webhook_deliveries.c.give_up_error
                ).where(webhook_deliveries.c.id == delivery_id)
            )
        ).one()
        failed, has_more = await read_failed_jobs(db, limit=10)
    assert row.give_up_failures == GIVE_UP_TRIES
    assert row.give_up_error.startswith("DataError: ")
    assert "DivisionByZero" in row.give_up_error
    assert not has_more
    assert len(failed) == GIVE_UP_TRIES
    for job in failed:
        assert job.last_error is not None
        assert job.last_error.startswith("its give-up step failed (DataError: ")
        assert "BrokenRenderingError" in job.last_error  # the job's own error still follows
    lines = [r.getMessage() for r in caplog.records if r.name == delivery.__name__]
    assert len(lines) == GIVE_UP_TRIES
    assert all(line.startswith(f"webhook delivery {delivery_id} stays pending") for line in lines)
    assert "DivisionByZero" in lines[-1]
    assert lines[-1].endswith("the repair stages no further job for it")
    assert receiver.received == []
