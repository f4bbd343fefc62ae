"""A worker asked to stop lets the deliveries it has in flight finish their POST and record it,
however slow the receiver, up to the delivery's timeout: cut off, a delivery would keep its
endpoint's slot and its job until their leases ran out (a minute), and then be sent again to a
receiver that may well have had it. Short timeouts here; the worker's own are sized from the
real one (tests/integration/worker/test_registry.py)."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from remit.webhooks.outbox import DELIVER_JOB
from remit.webhooks.sender import WebhookSender
from remit.webhooks.tables import webhook_inflight
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.leases import stop_drain_for
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio

# A delivery's POST timeout, as short as a test can make it.
TIMEOUT_S = 1.5


@pytest.fixture
async def worker(bench: Bench) -> AsyncIterator[Worker]:
    """The bench's worker as `remit.worker.registry` wires it, with a short POST timeout and
    the drain it sizes from it."""
    policy = UrlPolicy(allow_internal=True)
    parts = webhook_worker_parts(bench.engine, policy, clock=bench.clock,
                                 sender=WebhookSender(policy, timeout_s=TIMEOUT_S))  # fmt: skip
    try:
        yield Worker(
            engine=bench.engine,
            handlers=parts.handlers,
            clock=bench.clock,
            given_up=parts.given_up,
            network_kinds=parts.network_kinds,
            preparers=parts.preparers,
            stop_drain_s=stop_drain_for(parts.longest_step_s),
        )
    finally:
        await parts.close()


async def _stop_mid_post(worker: Worker, receiver: Receiver, answer: asyncio.Event) -> float:
    """Run the worker, stop it while the receiver holds the POST, then let the receiver
    `answer`; return how long the stop took. Held rather than delayed, the answer comes after
    the stop was asked whatever the machine's load, and well within the POST's timeout."""
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(None, stop))
    await asyncio.wait_for(receiver.arrived.wait(), timeout=10)
    asked = time.monotonic()
    stop.set()
    assert receiver.in_flight == 1, "the POST was answered before the stop was asked"
    answer.set()
    await asyncio.wait_for(running, timeout=worker.stop_drain_s + 5)
    return time.monotonic() - asked


async def _slots_and_pending_jobs(bench: Bench) -> tuple[int, int]:
    async with bench.engine.connect() as db:
        slots = await db.scalar(select(func.count()).select_from(webhook_inflight))
        pending = await db.scalar(
            select(func.count())
            .select_from(jobs)
            .where(jobs.c.kind == DELIVER_JOB, jobs.c.status == "pending")
        )
    return int(slots or 0), int(pending or 0)


async def test_a_delivery_in_flight_is_made_once_and_recorded(
    bench: Bench, worker: Worker, start_receiver: StartReceiver
) -> None:
    answer = asyncio.Event()
    receiver = await start_receiver([Reply(hold=answer)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()

    took = await _stop_mid_post(worker, receiver, answer)

    [attempt] = await bench.attempts(event_id)
    assert (attempt.http_status, attempt.succeeded) == (200, True)
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert len(receiver.received) == 1
    # Its slot let go and its job done: nothing waits for a lease to run out.
    assert await _slots_and_pending_jobs(bench) == (0, 0)
    # The stop waited for that delivery only, not out its whole drain: the drain (11.5 s) is
    # many times what the delivery, answered at once, takes, so no loaded machine closes the gap.
    assert worker.stop_drain_s > 5 * TIMEOUT_S
    assert took < worker.stop_drain_s


async def test_a_receiver_that_never_answers_times_out_before_the_stop_cuts_it(
    bench: Bench, worker: Worker, start_receiver: StartReceiver
) -> None:
    """The slowest receiver: the attempt ends at its timeout, inside the drain, and is recorded
    as a failure with its retry scheduled, as on any other day."""
    never = asyncio.Event()
    receiver = await start_receiver([Reply(hold=never)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    try:
        await _stop_mid_post(worker, receiver, asyncio.Event())
    finally:
        never.set()

    [attempt] = await bench.attempts(event_id)
    assert attempt.error == f"timeout after {TIMEOUT_S:g}s"
    assert attempt.next_retry_at is not None
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"
    # The retry's job is staged for its time; the slot is let go.
    assert await _slots_and_pending_jobs(bench) == (0, 1)
