"""A delivery whose job keeps failing after it took its endpoint slot still reaches the job's
attempt limit, and fails: the slot it holds does not send it round the "endpoint busy" path
(parked, then woken in a new job) for ever.

The clock is the test's: each cycle runs every due job, then moves to the next job's time (a
failed run's backoff, or a busy endpoint's short wait), as a worker would see it."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.jsonview import JsonObject
from remit.webhooks import delivery
from remit.webhooks.domain import WebhookEndpoint
from remit.webhooks.parking import let_slot_go
from remit.webhooks.rendering import Renderer
from remit.webhooks.tables import webhook_inflight
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver, make_bench

pytestmark = pytest.mark.anyio

# More than the attempt limit needs (one failed run per cycle), far fewer than a delivery sent
# round the busy path would take to fail.
MAX_CYCLES = DEFAULT_MAX_ATTEMPTS + 10


class BrokenRenderingError(RuntimeError):
    """What a version change with a bug raises for every event it renders."""


async def broken_renderer(*_: object) -> JsonObject:
    raise BrokenRenderingError("a version change fails on this event")


async def _next_job_at(engine: AsyncEngine) -> datetime | None:
    async with engine.connect() as db:
        next_at: datetime | None = (
            await db.execute(select(func.min(jobs.c.run_at)).where(jobs.c.status == "pending"))
        ).scalar_one()
    return next_at


async def _cycles_until_finished(
    bench: Bench, worker: Worker, event_id: str, endpoint: WebhookEndpoint
) -> int:
    """Cycles run until the delivery is no longer pending (MAX_CYCLES + 1 if it still is)."""
    for cycle in range(1, MAX_CYCLES + 1):
        await worker.drain()
        if await bench.delivery_status(event_id, endpoint.id) != "pending":
            return cycle
        next_at = await _next_job_at(bench.engine)
        assert next_at is not None, "a pending delivery with no job left to move it on"
        bench.clock.advance(max((next_at - bench.clock.now()).total_seconds(), 0.0))
    return MAX_CYCLES + 1


async def _failing_worker(
    bench: Bench, renderer: Renderer | None, settings: delivery.DeliverySettings | None = None
) -> tuple[Worker, Callable[[], Awaitable[None]]]:
    parts = webhook_worker_parts(
        bench.engine,
        UrlPolicy(allow_internal=True),
        clock=bench.clock,
        renderer=renderer,
        settings=settings,
    )
    worker = Worker(
        engine=bench.engine, handlers=parts.handlers, clock=bench.clock, given_up=parts.given_up
    )
    return worker, parts.close


async def _slots_held(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        return int(
            (await db.execute(select(func.count()).select_from(webhook_inflight))).scalar_one()
        )


async def _job_attempts(engine: AsyncEngine) -> list[tuple[str, int]]:
    async with engine.connect() as db:
        rows = await db.execute(select(jobs.c.status, jobs.c.attempts).order_by(jobs.c.id))
        return [(row.status, row.attempts) for row in rows]


async def test_a_delivery_whose_rendering_always_fails_gives_up_at_the_attempt_limit(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    async with make_bench(core_engine) as bench:
        endpoint = await bench.endpoint(receiver.url)
        event_id = await bench.record()
        worker, close = await _failing_worker(bench, broken_renderer)
        try:
            cycles = await _cycles_until_finished(bench, worker, event_id, endpoint)
        finally:
            await close()
        assert cycles <= DEFAULT_MAX_ATTEMPTS
        assert await bench.delivery_status(event_id, endpoint.id) == "failed"
        assert await _job_attempts(core_engine) == [("failed", DEFAULT_MAX_ATTEMPTS)]
        assert await _slots_held(core_engine) == 0
        assert receiver.received == []


async def test_a_delivery_whose_attempt_cannot_be_recorded_gives_up_at_the_attempt_limit(
    core_engine: AsyncEngine, start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The POST is made each time, then recording it fails (its transaction rolls back)."""

    async def unrecordable(*_: object, **__: object) -> None:
        raise RuntimeError("recording the attempt fails")

    monkeypatch.setattr(delivery, "record_attempt", unrecordable)
    receiver = await start_receiver()
    async with make_bench(core_engine) as bench:
        endpoint = await bench.endpoint(receiver.url)
        event_id = await bench.record()
        worker, close = await _failing_worker(bench, None)
        try:
            cycles = await _cycles_until_finished(bench, worker, event_id, endpoint)
        finally:
            await close()
        assert cycles <= DEFAULT_MAX_ATTEMPTS
        assert await bench.delivery_status(event_id, endpoint.id) == "failed"
        assert len(receiver.received) == DEFAULT_MAX_ATTEMPTS
        assert await _slots_held(core_engine) == 0


async def _fill_the_endpoints_slots(bench: Bench, endpoint: WebhookEndpoint) -> None:
    """Another delivery's attempt takes the endpoint's one slot, once the failing delivery's
    slot lease has run out (its retries have grown longer than that)."""
    bench.clock.advance(60)
    async with bench.engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO webhook_inflight (delivery_id, endpoint_id, leased_until)"
                " VALUES (-1, :endpoint_id, :until)"
            ),
            {"endpoint_id": endpoint.id, "until": bench.clock.now() + timedelta(minutes=1)},
        )


async def _pause_the_endpoint(bench: Bench, endpoint: WebhookEndpoint) -> None:
    """Another delivery's 429 pauses the endpoint for ten seconds, well within the failing
    delivery's slot lease."""
    async with bench.engine.begin() as db:
        await db.execute(
            text("UPDATE webhook_endpoints SET rate_limited_until = :until WHERE id = :id"),
            {"id": endpoint.id, "until": bench.clock.now() + timedelta(seconds=10)},
        )


@pytest.mark.parametrize("hold_up", [_fill_the_endpoints_slots, _pause_the_endpoint])
async def test_failed_runs_count_against_the_limit_across_a_wait_in_a_new_job(
    core_engine: AsyncEngine,
    start_receiver: StartReceiver,
    hold_up: Callable[[Bench, WebhookEndpoint], Awaitable[None]],
) -> None:
    """A failing delivery that finds its endpoint busy (it parks) or paused (it waits in a new
    job): the runs that failed before count against the limit of the job it is given next,
    and the slot the failed runs took is not left in its way."""
    receiver = await start_receiver()
    renders = 0

    async def counting_broken_renderer(*_: object) -> JsonObject:
        nonlocal renders
        renders += 1
        raise BrokenRenderingError("a version change fails on this event")

    settings = delivery.DeliverySettings(max_concurrent_per_endpoint=1)
    async with make_bench(core_engine, settings=settings) as bench:
        endpoint = await bench.endpoint(receiver.url)
        event_id = await bench.record()
        worker, close = await _failing_worker(bench, counting_broken_renderer, settings)
        try:
            for _ in range(3):  # three runs fail
                await worker.drain()
                next_at = await _next_job_at(core_engine)
                assert next_at is not None
                bench.clock.advance((next_at - bench.clock.now()).total_seconds())
            await hold_up(bench, endpoint)
            await worker.drain()  # the delivery parks, or waits in a job of its own
            assert renders == 3
            async with core_engine.begin() as db:
                # The other delivery lets its slot go, if it holds one, as an attempt does.
                now = bench.clock.now()
                await let_slot_go(db, -1, now=now, lease_until=now + settings.slot_lease)
            cycles = await _cycles_until_finished(bench, worker, event_id, endpoint)
        finally:
            await close()
        assert cycles <= DEFAULT_MAX_ATTEMPTS
        assert renders == DEFAULT_MAX_ATTEMPTS
        assert await bench.delivery_status(event_id, endpoint.id) == "failed"
        assert await _slots_held(core_engine) == 0
