"""A worker process killed with SIGKILL in the middle of a delivery loses no event."""

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.jsonview import JsonObject
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS
from remit.worker.runner import Worker
from tests.integration.webhooks.conftest import StartReceiver, make_bench
from tests.support.jobs import run_out_job_leases
from tests.support.postgres import WorkerDatabases
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def test_a_worker_killed_mid_delivery_loses_no_event(
    core_engine: AsyncEngine, databases: WorkerDatabases, start_receiver: StartReceiver
) -> None:
    never = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(hold=never) if n == 0 else Reply())
    async with make_bench(core_engine, start=datetime.now(UTC)) as bench:
        endpoint = await bench.endpoint(receiver.url)
        event_id = await bench.record()
    worker = subprocess.Popen(  # noqa: ASYNC220 (starting it is instant; waiting is not done here)
        [sys.executable, "-m", "remit", "worker"],
        env={
            **os.environ,
            "DATABASE_URL": databases.core_url,
            "REMIT_DEVELOPMENT": "1",
            "REMIT_INTERNAL_TOKEN": "crash-test-token",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await receiver.wait_for(1, timeout_s=30)
        # The real worker is mid-POST, its attempt not yet recorded: kill it outright.
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        never.set()  # lets the receiver finish the orphaned request when it shuts down
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert await bench.attempts(event_id) == []

    # Another worker takes the job once the dead one's lease has run out.
    await run_out_job_leases(core_engine)
    policy = UrlPolicy(allow_internal=True)
    later = FixedClock(datetime.now(UTC) + timedelta(seconds=61))
    parts = webhook_worker_parts(core_engine, policy, clock=later)
    try:
        survivor = Worker(engine=core_engine, handlers=parts.handlers, clock=later)
        assert await survivor.drain() >= 1
    finally:
        await parts.close()

    assert len(receiver.received) == 2
    redelivered = receiver.received[1]
    event = stripe.Webhook.construct_event(redelivered.body.decode(),
                                           redelivered.headers["Stripe-Signature"],
                                           endpoint.secret, tolerance=0)  # fmt: skip
    assert event.id == event_id
    [attempt] = await bench.attempts(event_id)
    assert attempt.succeeded
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"


async def test_a_delivery_whose_job_fails_for_good_fails_rather_than_stay_pending(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """A job whose handler raises every time (here: its event cannot be rendered) is failed
    once its attempts run out; the delivery it was to make fails with it, or it would stay
    pending for ever with no job left to move it on."""
    receiver = await start_receiver()
    async with make_bench(core_engine) as bench:
        endpoint = await bench.endpoint(receiver.url)
        event_id = await bench.record()

        async def unrenderable(*_: object) -> JsonObject:
            raise RuntimeError("rendering is broken")

        parts = webhook_worker_parts(
            core_engine, UrlPolicy(allow_internal=True), clock=bench.clock, renderer=unrenderable
        )
        try:
            worker = Worker(
                engine=core_engine,
                handlers=parts.handlers,
                clock=bench.clock,
                given_up=parts.given_up,
            )
            for _ in range(DEFAULT_MAX_ATTEMPTS - 1):
                await worker.drain()
                assert await bench.delivery_status(event_id, endpoint.id) == "pending"
                bench.clock.advance(3600)  # past the job's longest backoff
            await worker.drain()
        finally:
            await parts.close()
        assert await bench.delivery_status(event_id, endpoint.id) == "failed"
        assert receiver.received == []
