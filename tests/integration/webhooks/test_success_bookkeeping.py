"""What a success writes to its endpoint's row: nothing, on a busy endpoint, unless a run of
failures, 429s honoured, or a success on record older than SUCCESS_NOTED_WITHIN must change;
and the rule that a failure made before the latest success starts no run holds all the same,
whichever order successes and failures are made, recorded and committed in."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import text

from remit.webhooks.domain import SUCCESS_NOTED_WITHIN, EndpointStatus
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.integration.webhooks.test_concurrent_workers import (
    attempts_to,
    lock_job,
    one_at_a_time,
    pending_job_ids,
)
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio

WITHIN = SUCCESS_NOTED_WITHIN.total_seconds()


@dataclass(frozen=True)
class EndpointRow:
    # The transaction that wrote the row's current version: unchanged, nothing wrote it.
    version: str
    last_succeeded_at: datetime | None
    failing_since: datetime | None
    rate_limits_honoured: int
    status: str


async def endpoint_row(bench: Bench, endpoint_id: str) -> EndpointRow:
    async with bench.engine.begin() as db:
        row = (
            await db.execute(
                text(
                    "SELECT xmin::text AS version, last_succeeded_at, failing_since, "
                    "rate_limits_honoured, status FROM webhook_endpoints WHERE id = :id"
                ),
                {"id": endpoint_id},
            )
        ).one()
    return EndpointRow(**row._mapping)


def answering(status: dict[str, int]) -> Callable[[int], Reply]:
    """A receiver script answering whatever `status["now"]` says at the time."""
    return lambda _: Reply(status["now"])


async def test_successes_within_a_second_of_the_one_on_record_leave_the_row_alone(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    await bench.record()
    await bench.worker.drain()
    first = await endpoint_row(bench, endpoint.id)
    assert first.last_succeeded_at == bench.clock.now()

    for _ in range(3):
        bench.clock.advance(WITHIN / 4)
        await bench.record()
        await bench.worker.drain()
    assert await endpoint_row(bench, endpoint.id) == first

    bench.clock.advance(WITHIN / 4)  # a full SUCCESS_NOTED_WITHIN after the one on record
    await bench.record()
    await bench.worker.drain()
    later = await endpoint_row(bench, endpoint.id)
    assert later.version != first.version
    assert later.last_succeeded_at == bench.clock.now()
    assert len(receiver.received) == 5


async def test_a_failure_made_before_a_success_that_wrote_nothing_starts_no_run(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The row holds a success made at t. A's POST, made at t + 0.3 s, fails slowly; B's, made
    at t + 0.6 s, succeeds and is recorded first, writing nothing (the row's success is recent
    enough). A's failure, recorded last, must still count as made before the latest success:
    the row's success is older than A's failure, and only the allowance of
    SUCCESS_NOTED_WITHIN ties A's failure to B."""
    failure_answered = asyncio.Event()
    receiver = await start_receiver([Reply(), Reply(500, hold=failure_answered), Reply()])
    endpoint = await bench.endpoint(receiver.url)
    for _ in range(3):
        await bench.record()
    a, b = one_at_a_time(bench), one_at_a_time(bench)
    assert await a.run_once() == 1
    on_record = await endpoint_row(bench, endpoint.id)

    bench.clock.advance(0.3 * WITHIN)
    failing = asyncio.create_task(a.run_once())
    await receiver.wait_for(2)
    bench.clock.advance(0.3 * WITHIN)
    assert await b.run_once() == 1
    assert await endpoint_row(bench, endpoint.id) == on_record  # B wrote nothing

    failure_answered.set()
    assert await failing == 1

    after = await endpoint_row(bench, endpoint.id)
    assert after.failing_since is None
    assert after.last_succeeded_at == on_record.last_succeeded_at


async def test_a_success_does_not_wait_for_a_concurrent_failure_and_the_failure_starts_no_run(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Both POSTs in flight at once, A's failure made before B's success. A's attempt is
    recorded first but not committed (its job's row is held), so it holds the endpoint's row;
    B's success is recorded meanwhile. B must not queue behind A on the endpoint's row (it has
    nothing to write there), and once A commits, the endpoint must not be failing: A was made
    before B's success."""
    failure_answered, success_answered = asyncio.Event(), asyncio.Event()
    receiver = await start_receiver(
        [Reply(), Reply(500, hold=failure_answered), Reply(hold=success_answered)]
    )
    endpoint = await bench.endpoint(receiver.url)
    for _ in range(3):
        await bench.record()
    a, b = one_at_a_time(bench), one_at_a_time(bench)
    assert await a.run_once() == 1
    failing_job, _ = await pending_job_ids(bench.engine)

    bench.clock.advance(0.2 * WITHIN)
    failing = asyncio.create_task(a.run_once())
    await receiver.wait_for(2)
    bench.clock.advance(0.3 * WITHIN)
    succeeding = asyncio.create_task(b.run_once())
    await receiver.wait_for(3)

    async with bench.engine.connect() as holder:
        await holder.begin()
        await lock_job(holder, failing_job)
        failure_answered.set()
        # A has recorded its failure (the endpoint's row included) and waits to complete.
        await until_a_session_waits_on_a_lock(bench.engine, contender=failing)
        success_answered.set()
        assert await asyncio.wait_for(succeeding, timeout=30) == 1
        await holder.rollback()
    assert await failing == 1

    assert [r.http_status for r in await attempts_to(bench, endpoint.id)] == [200, 500, 200]
    assert (await endpoint_row(bench, endpoint.id)).failing_since is None


async def test_a_success_right_after_the_one_on_record_still_ends_a_run_that_began_before_it(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A's success, made at t, is slow; B's failure at t + 0.2 s is recorded first and starts a
    run, which A's success, made before it, does not end. C succeeds at t + 0.5 s, within a
    second of A's success on record: it must still write, and end the run B began."""
    success_answered = asyncio.Event()
    receiver = await start_receiver([Reply(hold=success_answered), Reply(500), Reply()])
    endpoint = await bench.endpoint(receiver.url)
    for _ in range(3):
        await bench.record()
    a, b = one_at_a_time(bench), one_at_a_time(bench)
    succeeding = asyncio.create_task(a.run_once())
    await receiver.wait_for(1)
    bench.clock.advance(0.2 * WITHIN)
    assert await b.run_once() == 1
    failed_at = bench.clock.now()
    success_answered.set()
    assert await succeeding == 1
    failing = await endpoint_row(bench, endpoint.id)
    assert failing.failing_since == failed_at
    assert failing.last_succeeded_at == failed_at - SUCCESS_NOTED_WITHIN * 0.2

    bench.clock.advance(0.3 * WITHIN)
    assert await b.run_once() == 1
    assert (await endpoint_row(bench, endpoint.id)).failing_since is None


async def test_a_429_recorded_while_a_success_was_in_flight_is_given_back(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """B's success read the endpoint (no 429 honoured) before its POST; A's 429, made and
    recorded while B's POST was in flight, takes one of the endpoint's honoured 429s. B's
    success, recorded after, gives it back although the row's success is recent: the row is
    judged when B is recorded, not when B read it."""
    success_answered = asyncio.Event()
    receiver = await start_receiver(
        [Reply(), Reply(hold=success_answered), Reply(429, headers={"Retry-After": "1"})]
    )
    endpoint = await bench.endpoint(receiver.url)
    for _ in range(3):
        await bench.record()
    a, b = one_at_a_time(bench), one_at_a_time(bench)
    assert await a.run_once() == 1

    bench.clock.advance(0.2 * WITHIN)
    succeeding = asyncio.create_task(b.run_once())
    await receiver.wait_for(2)
    bench.clock.advance(0.2 * WITHIN)
    assert await a.run_once() == 1
    assert (await endpoint_row(bench, endpoint.id)).rate_limits_honoured == 1

    success_answered.set()
    assert await succeeding == 1
    assert (await endpoint_row(bench, endpoint.id)).rate_limits_honoured == 0


async def fail_hourly(bench: Bench, hours: int) -> None:
    """An event an hour, for `hours` hours; the worker runs every hour (retries included)."""
    for _ in range(hours):
        await bench.record()
        await bench.worker.drain()
        bench.clock.advance(3600)


async def test_an_endpoint_failing_for_days_then_succeeding_starts_over(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Two days of failures, then a success: the run ends. A failure within a second of that
    success starts no run (it counts as made before the latest success); the next one starts
    it, and the endpoint is disabled three days after that one, not earlier."""
    status = {"now": 503}
    receiver = await start_receiver(answering(status))
    endpoint = await bench.endpoint(receiver.url)
    started = bench.clock.now()
    await fail_hourly(bench, 48)
    assert (await endpoint_row(bench, endpoint.id)).failing_since == started

    status["now"] = 200
    await bench.record()
    await bench.worker.drain()  # every pending retry succeeds too
    succeeded = await endpoint_row(bench, endpoint.id)
    assert succeeded.failing_since is None
    assert succeeded.last_succeeded_at == bench.clock.now()

    status["now"] = 503
    bench.clock.advance(0.5 * WITHIN)
    await bench.record()
    await bench.worker.drain()
    assert (await endpoint_row(bench, endpoint.id)).failing_since is None
    bench.clock.advance(300)  # its first retry
    await bench.worker.drain()
    run_start = bench.clock.now()
    assert (await endpoint_row(bench, endpoint.id)).failing_since == run_start

    await fail_hourly(bench, 72)
    assert (await endpoint_row(bench, endpoint.id)).status == EndpointStatus.ENABLED.value
    await fail_hourly(bench, 1)
    disabled = await endpoint_row(bench, endpoint.id)
    assert disabled.status == EndpointStatus.DISABLED.value
    assert disabled.failing_since == run_start


async def test_an_endpoint_succeeding_busily_then_failing_is_disabled_three_days_on(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A burst of successes, most of which write nothing, then failures from ten minutes on:
    the run starts at the first failure and disables the endpoint three days later."""
    status = {"now": 200}
    receiver = await start_receiver(answering(status))
    endpoint = await bench.endpoint(receiver.url)
    for _ in range(5):
        await bench.record()
        await bench.worker.drain()
        bench.clock.advance(0.2 * WITHIN)
    assert len(receiver.received) == 5

    status["now"] = 503
    bench.clock.advance(600)
    first_failure = bench.clock.now()
    await fail_hourly(bench, 72)
    failing = await endpoint_row(bench, endpoint.id)
    assert failing.failing_since == first_failure
    assert failing.status == EndpointStatus.ENABLED.value
    await fail_hourly(bench, 1)
    assert (await endpoint_row(bench, endpoint.id)).status == EndpointStatus.DISABLED.value
