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
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.runner import Worker
from tests.integration.webhooks.conftest import StartReceiver, make_bench
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
        env={**os.environ, "DATABASE_URL": databases.core_url, "REMIT_DEVELOPMENT": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await receiver.wait_for(1, timeout_s=30)
        # The real worker is mid-POST, its attempt not yet recorded: kill it outright.
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        never.set()  # lets the receiver finish the orphaned request when it shuts down
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert await bench.attempts(event_id) == []

    # Another worker takes the job once the dead one's lease has run out.
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
