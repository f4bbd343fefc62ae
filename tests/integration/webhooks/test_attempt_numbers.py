"""A delivery's attempts are numbered one after another, whoever makes them: the worker (each
job's attempt), a resend by hand, or the worker again after a redelivery started the delivery
over. No two of a delivery's attempts share a number, even when recorded at the same moment."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks import delivery as delivery_module
from remit.webhooks import service as service_module
from remit.webhooks.delivery import RecordedAttempt
from remit.webhooks.repository import DeliveryRepository
from remit.webhooks.service import EndpointChanges
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio

# How long a test looks for a recording that waits for another's lock: only one that never
# comes to wait is looked for this long, however slowly a loaded machine gets it there.
LOCK_WAIT_LOOK_S = 30.0


async def next_retry(bench: Bench, event_id: str, endpoint_id: str) -> None:
    """Move the clock to the delivery's next attempt."""
    async with bench.engine.connect() as db:
        found = await DeliveryRepository(db).get(bench.account_id, event_id, endpoint_id)
    assert found is not None
    assert found.next_attempt_at is not None
    bench.clock.advance((found.next_attempt_at - bench.clock.now()).total_seconds())


async def numbers(bench: Bench, event_id: str) -> list[int]:
    return sorted(a.attempt_number for a in await bench.attempts(event_id))


async def until_one_waits_for_a_lock(engine: AsyncEngine) -> bool:
    """Whether a session of this database came to wait for a lock (within LOCK_WAIT_LOOK_S)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOCK_WAIT_LOOK_S
    while loop.time() < deadline:
        async with engine.connect() as db:
            waiting = await db.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            if waiting.scalar_one():
                return True
        await asyncio.sleep(0.01)
    return False


async def test_a_worker_attempt_after_a_resend_is_numbered_after_it(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The worker numbered its attempt by its job (the delivery's own count of the worker's
    attempts), a resend after every attempt stored: a resend between two worker attempts took
    the number the second one then took again."""
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()  # attempt 1 fails; the retry waits
    resent = await bench.service.resend(bench.account_id, event_id, endpoint.id)
    assert resent.attempt.attempt_number == 2

    await next_retry(bench, event_id, endpoint.id)
    await bench.worker.drain()

    assert len(receiver.received) == 3
    assert await numbers(bench, event_id) == [1, 2, 3]


async def test_a_redelivery_numbers_its_attempts_after_the_earlier_ones(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A redelivery starts the delivery over (its job makes attempt 1 of a new generation):
    what it stores is numbered after the attempts of the generation before."""
    receiver = await start_receiver(lambda n: Reply(410) if n == 0 else Reply(200))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()  # 410: the delivery fails, the endpoint is disabled
    assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=False)
    )
    assert (await bench.service.redeliver(bench.account_id, endpoint.id, None)).queued == 1
    await bench.worker.drain()

    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert await numbers(bench, event_id) == [1, 2]


Record = Callable[..., Awaitable[RecordedAttempt]]


async def test_a_worker_attempt_and_a_resend_recorded_together_take_two_numbers(
    bench: Bench, start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's retry has POSTed and is about to record its attempt when a resend of the
    same delivery records its own and holds its transaction open: the worker's recording waits
    for the resend's to commit, then numbers its attempt after it. Failures (500), so that
    neither ends the delivery."""
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()  # attempt 1 fails; the retry waits
    await next_retry(bench, event_id, endpoint.id)

    worker_posted, resend_recorded, resend_may_commit = (asyncio.Event() for _ in range(3))
    record_worker_attempt: Record = delivery_module.record_attempt
    record_resend: Record = delivery_module.record_manual_attempt

    async def worker_records_once_the_resend_has(*args: Any, **kwargs: Any) -> RecordedAttempt:
        worker_posted.set()
        await resend_recorded.wait()
        return await record_worker_attempt(*args, **kwargs)

    async def resend_records_then_holds(*args: Any, **kwargs: Any) -> RecordedAttempt:
        recorded = await record_resend(*args, **kwargs)
        resend_recorded.set()
        await resend_may_commit.wait()
        return recorded

    monkeypatch.setattr(delivery_module, "record_attempt", worker_records_once_the_resend_has)
    monkeypatch.setattr(service_module, "record_manual_attempt", resend_records_then_holds)

    worker = asyncio.create_task(bench.worker.drain())
    await worker_posted.wait()
    resend = asyncio.create_task(bench.service.resend(bench.account_id, event_id, endpoint.id))
    await resend_recorded.wait()
    # The worker's recording comes to wait for the resend's lock on the delivery.
    assert await until_one_waits_for_a_lock(bench.engine)
    resend_may_commit.set()
    resent = await resend
    await worker

    assert len(receiver.received) == 3
    assert resent.attempt.attempt_number == 2
    assert await numbers(bench, event_id) == [1, 2, 3]
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"


async def test_two_attempts_of_one_delivery_cannot_share_a_number(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Whatever writes them, the database refuses a second attempt of a delivery with the
    number of one already stored."""
    receiver = await start_receiver(lambda _: Reply(500))
    await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()
    [attempt] = await bench.attempts(event_id)
    with pytest.raises(IntegrityError):
        async with bench.engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO webhook_delivery_attempts (id, delivery_id, account_id, event_id,"
                    " endpoint_id, attempted_at, latency_ms, response_snippet, attempt_number,"
                    " succeeded) SELECT 'del_copy', delivery_id, account_id, event_id,"
                    " endpoint_id, attempted_at, latency_ms, response_snippet, attempt_number,"
                    " succeeded FROM webhook_delivery_attempts WHERE id = :id"
                ),
                {"id": attempt.id},
            )
