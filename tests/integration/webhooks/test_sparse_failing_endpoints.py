"""An endpoint that fails every delivery is disabled even when its deliveries come one at a
time. A lone delivery's retries span at most the three-day window, so the run of failures it
makes never reaches three days by itself, and a failure after a silence of more than a day
starts a run afresh: without more, an endpoint that gets an event every few days was never
disabled. A delivery's last attempt, with no other delivery of the endpoint pending to carry
the run on, disables it once the run has lasted as long as an on-time schedule
(ON_TIME_SCHEDULE_SPAN)."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.domain import (
    ON_TIME_SCHEDULE_SPAN,
    RETRY_GAPS,
    DisabledReason,
    EndpointStatus,
)
from remit.webhooks.repository import DeliveryRepository
from tests.integration.webhooks.conftest import Bench, StartReceiver, make_bench
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


@pytest.fixture
async def on_time_bench(core_engine: AsyncEngine) -> AsyncIterator[Bench]:
    """Retries with no jitter: each falls exactly where the schedule says."""
    async with make_bench(core_engine, settings=DeliverySettings(draw=lambda: 0.0)) as made:
        yield made


async def _run_until_finished(bench: Bench, endpoint_id: str, event_id: str, also_due: str) -> None:
    """Run the worker, jumping the clock to each retry of either delivery as it falls due,
    until the first is finished."""
    while True:
        await bench.worker.drain()
        async with bench.engine.connect() as db:
            repo = DeliveryRepository(db)
            wanted = await repo.get(bench.account_id, event_id, endpoint_id)
            other = await repo.get(bench.account_id, also_due, endpoint_id)
        assert wanted is not None
        assert other is not None
        if wanted.next_attempt_at is None:
            return
        due = min(at for at in (wanted.next_attempt_at, other.next_attempt_at) if at is not None)
        bench.clock.advance((due - bench.clock.now()).total_seconds())


async def _status(bench: Bench, endpoint_id: str) -> tuple[EndpointStatus, DisabledReason | None]:
    endpoint = await bench.service.get_endpoint(bench.account_id, endpoint_id)
    return endpoint.status, endpoint.disabled_reason


async def test_an_endpoint_getting_an_event_every_few_days_is_disabled(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda _: Reply(status=500))
    endpoint = await bench.endpoint(receiver.url)
    first = await bench.record()
    await bench.follow_schedule(first, endpoint.id)
    assert await bench.delivery_status(first, endpoint.id) == "failed"
    assert await _status(bench, endpoint.id) == (EndpointStatus.DISABLED, DisabledReason.FAILING)


async def test_the_last_attempt_disables_once_the_run_lasted_an_on_time_schedule(
    on_time_bench: Bench, start_receiver: StartReceiver
) -> None:
    """Exactly the span: the last attempt falls ON_TIME_SCHEDULE_SPAN after the first."""
    assert timedelta(hours=65, minutes=35) == ON_TIME_SCHEDULE_SPAN
    bench = on_time_bench
    receiver = await start_receiver(lambda _: Reply(status=500))
    endpoint = await bench.endpoint(receiver.url)
    started = bench.clock.now()
    event = await bench.record()
    await bench.follow_schedule(event, endpoint.id)
    attempts = await bench.attempts(event)
    assert attempts[-1].attempted_at - started == ON_TIME_SCHEDULE_SPAN
    assert await _status(bench, endpoint.id) == (EndpointStatus.DISABLED, DisabledReason.FAILING)


async def test_a_last_attempt_after_a_shorter_run_disables_nothing(
    on_time_bench: Bench, start_receiver: StartReceiver
) -> None:
    """The workers came late to the first attempt: the three-day window, counted from the
    delivery's creation, leaves room for fewer retries, and the run ends one step short of the
    on-time span (an hour late is enough to lose the last retry of the schedule)."""
    bench = on_time_bench
    receiver = await start_receiver(lambda _: Reply(status=500))
    endpoint = await bench.endpoint(receiver.url)
    event = await bench.record()
    bench.clock.advance(timedelta(hours=7).total_seconds())
    run_start = bench.clock.now()
    await bench.follow_schedule(event, endpoint.id)
    attempts = await bench.attempts(event)
    assert attempts[0].attempted_at == run_start
    assert attempts[-1].attempted_at - run_start < ON_TIME_SCHEDULE_SPAN
    assert await bench.delivery_status(event, endpoint.id) == "failed"
    assert await _status(bench, endpoint.id) == (EndpointStatus.ENABLED, None)


async def test_a_last_attempt_leaves_the_run_to_another_pending_delivery(
    on_time_bench: Bench, start_receiver: StartReceiver
) -> None:
    """Another delivery still pending carries the run on: the endpoint is disabled by the
    three-day rule, not before, as a busy endpoint is."""
    bench = on_time_bench
    receiver = await start_receiver(lambda _: Reply(status=500))
    endpoint = await bench.endpoint(receiver.url)
    started = bench.clock.now()
    first = await bench.record()
    await bench.worker.drain()
    bench.clock.advance(RETRY_GAPS[0].total_seconds() / 2)
    second = await bench.record()
    await _run_until_finished(bench, endpoint.id, first, also_due=second)
    assert bench.clock.now() - started == ON_TIME_SCHEDULE_SPAN
    assert await bench.delivery_status(first, endpoint.id) == "failed"
    assert await bench.delivery_status(second, endpoint.id) == "pending"
    assert await _status(bench, endpoint.id) == (EndpointStatus.ENABLED, None)
    # The second's last attempt comes 2.5 min later, with none pending after it.
    await bench.follow_schedule(second, endpoint.id)
    assert await _status(bench, endpoint.id) == (EndpointStatus.DISABLED, DisabledReason.FAILING)
