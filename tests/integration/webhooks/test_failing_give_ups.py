"""A delivery job fails for good and failing its delivery fails too: the delivery stays pending
with no job. Each such failure is counted on the delivery with its reason, logged, and said first
in the job's error; the repair stages a job for it again GIVE_UP_TRIES times at most, not on a
cycle of hours for as long as the event is kept, and then fails it itself: left pending, it
counted in its event's pending webhooks until the event was purged."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.webhooks import delivery, repair
from remit.webhooks.domain import GIVE_UP_TRIES
from remit.webhooks.repair import MARGIN, repair_deliveries_without_job
from remit.webhooks.tables import webhook_deliveries, webhook_endpoints, webhook_inflight
from remit.worker.failed_jobs import read_failed_jobs
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.integration.webhooks.test_failing_delivery_jobs import _failing_worker, broken_renderer
from tests.integration.webhooks.test_parked_and_in_flight import take_slot
from tests.integration.webhooks.test_waiting import delivery_of

pytestmark = pytest.mark.anyio


async def failing_let_go(db: AsyncConnection, *_: object, **__: object) -> None:
    """Letting the delivery's slot go fails on the server, as a lock wait that times out does:
    the transaction is aborted up to its last savepoint."""
    await db.execute(text("SELECT 1 / 0"))


async def one_attempt_per_job(bench: Bench) -> None:
    async with bench.engine.begin() as db:
        await db.execute(update(jobs).where(jobs.c.status == "pending").values(max_attempts=1))


async def test_a_delivery_whose_give_up_keeps_failing_is_repaired_a_few_times_then_failed(
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
        with caplog.at_level(logging.ERROR):
            for _ in range(GIVE_UP_TRIES + 2):
                await worker.drain()  # its job fails for good; failing the delivery fails too
                if repaired < GIVE_UP_TRIES - 1:
                    assert await bench.delivery_status(event_id, endpoint.id) == "pending"
                bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())
                found = await repair_deliveries_without_job(bench.engine, now=bench.clock.now())
                repaired += len(found)
    finally:
        await close()

    assert repaired == GIVE_UP_TRIES - 1  # the first job was the record's own
    # Then the repair failed it, as its give-up would have, once.
    assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    [ended] = [r.getMessage() for r in caplog.records if r.name == repair.__name__]
    assert ended.startswith("failed 1 webhook deliveries whose give-up had failed")
    assert f"deliveries {delivery_id};" in ended
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
    assert lines[-1].endswith("the repair will fail it")
    assert receiver.received == []


async def given_up_without_job(bench: Bench, endpoint_id: str, event_id: str) -> int:
    """A delivery whose give-up failed GIVE_UP_TRIES times: pending, with no job, overdue."""
    delivery_id = await delivery_of(bench, event_id, endpoint_id)
    async with bench.engine.begin() as db:
        await db.execute(delete(jobs))
        await db.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery_id)
            .values(give_up_failures=GIVE_UP_TRIES, give_up_error="DataError: it failed")
        )
    bench.clock.advance((MARGIN + timedelta(minutes=1)).total_seconds())
    return delivery_id


async def test_the_repair_fails_a_delivery_whose_give_up_kept_failing_keeping_the_reason(
    bench: Bench, start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    delivery_id = await given_up_without_job(bench, endpoint.id, event_id)
    # A disabled endpoint's delivery too: its give-up would have failed it all the same.
    async with bench.engine.begin() as db:
        await db.execute(update(webhook_endpoints).values(status="disabled"))
    with caplog.at_level(logging.ERROR, logger=repair.__name__):
        for _ in range(3):
            assert await repair_deliveries_without_job(bench.engine, now=bench.clock.now()) == []
    async with bench.engine.connect() as db:
        row = (
            await db.execute(
                select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
            )
        ).one()
        staged = (await db.execute(select(jobs))).all()
    assert (row.status, row.next_attempt_at, row.finished_at) == (
        "failed", None, bench.clock.now()
    )  # fmt: skip
    assert (row.give_up_failures, row.give_up_error) == (GIVE_UP_TRIES, "DataError: it failed")
    assert staged == []
    [line] = [r.getMessage() for r in caplog.records if r.name == repair.__name__]
    assert f"deliveries {delivery_id};" in line
    assert receiver.received == []


async def test_a_delivery_the_repair_cannot_fail_either_is_left_and_logged_once_a_run(
    bench: Bench, start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """What failed its give-up fails the repair's failing of it too: it stays pending, said in
    the log once a run, and the other deliveries of the batch are repaired all the same."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    given_up_event = await bench.record()
    stranded_event = await bench.record()
    stranded = await delivery_of(bench, stranded_event, endpoint.id)
    given_up = await given_up_without_job(bench, endpoint.id, given_up_event)
    async with bench.engine.begin() as db:
        await db.execute(text(_REFUSE_FAILING))
    try:
        with caplog.at_level(logging.ERROR, logger=repair.__name__):
            repaired = await repair_deliveries_without_job(
                bench.engine, now=bench.clock.now(), batch=1
            )
            assert repaired == [stranded]
            [line] = [r.getMessage() for r in caplog.records if r.name == repair.__name__]
            assert "refused to fail" in line
            assert line.endswith("they stay pending until a later run")
            caplog.clear()
            assert await repair_deliveries_without_job(bench.engine, now=bench.clock.now()) == []
            assert len([r for r in caplog.records if r.name == repair.__name__]) == 1
    finally:
        async with bench.engine.begin() as db:
            await db.execute(text("DROP TRIGGER refuse_failing ON webhook_deliveries"))
            await db.execute(text("DROP FUNCTION refuse_failing()"))
    assert await bench.delivery_status(given_up_event, endpoint.id) == "pending"
    assert await repair_deliveries_without_job(bench.engine, now=bench.clock.now()) == []
    assert await bench.delivery_status(given_up_event, endpoint.id) == "failed"
    assert given_up != stranded


_REFUSE_FAILING = """
CREATE FUNCTION refuse_failing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'failed' THEN
        RAISE EXCEPTION 'refused to fail delivery %', NEW.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_failing BEFORE UPDATE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION refuse_failing();
"""


async def test_the_repair_fails_a_given_up_delivery_only_once_its_slot_is_free(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A give-up that fails rolls back the letting go of the slot its job held, which stays
    leased until its lease runs out. The repair fails no delivery holding a slot still leased
    (it reads that in the snapshot its failing acts on, and nothing can take a slot for a
    delivery with neither a job nor a parked row meanwhile): when it fails one, no slot of the
    endpoint is counted as the delivery's, so there is none left to free."""
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    delivery_id = await given_up_without_job(bench, endpoint.id, event_id)
    await take_slot(bench, endpoint.id, delivery_id, job_id=999, lease=timedelta(seconds=45))

    assert await repair_deliveries_without_job(bench.engine, now=bench.clock.now()) == []
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"

    bench.clock.advance(45)
    assert await repair_deliveries_without_job(bench.engine, now=bench.clock.now()) == []
    assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    async with bench.engine.connect() as db:
        leased = await db.execute(
            select(webhook_inflight.c.delivery_id).where(
                webhook_inflight.c.endpoint_id == endpoint.id,
                webhook_inflight.c.leased_until > bench.clock.now(),
            )
        )
        assert leased.all() == []
