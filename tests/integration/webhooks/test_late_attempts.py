"""An attempt shows the retry that will follow it, or none: an attempt recorded after its
delivery moved on never shows the one its outcome would have called for, nor the one its
delivery was due before; and a delivery that ends without the retry its attempts show (a resend
delivered it, its endpoint was disabled, its job failed for good) shows it no more."""

import asyncio
from datetime import datetime, timedelta

import pytest

from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks.domain import RETRY_GAP_JITTER, retry_gap
from remit.webhooks.repository import DeliveryRepository
from remit.webhooks.service import EndpointChanges
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.integration.webhooks.test_restarted_deliveries import (
    claimed_by_a_worker_that_dies,
    fail_by_a_resend_then_redeliver,
    one_job_at_a_time,
)
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def test_a_worker_attempt_recorded_after_its_delivery_was_started_over_shows_no_retry(
    bench: Bench,
    start_receiver: StartReceiver,
    stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub",
) -> None:
    """The first job is POSTing when the delivery is failed and started over; its 500 is then
    recorded, moving nothing on and staging no retry: the attempt says so, over gRPC too."""
    answered = asyncio.Event()
    receiver = await start_receiver(
        lambda n: Reply(500, hold=answered) if n == 0 else Reply(410) if n == 1 else Reply()
    )
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    posting = asyncio.create_task(one_job_at_a_time(bench).run_once())
    try:
        await receiver.wait_for(1)
        bench.clock.advance(1)
        await fail_by_a_resend_then_redeliver(bench, event_id, endpoint.id)
    finally:
        answered.set()
    assert await posting == 1

    late = [a for a in await bench.attempts(event_id) if a.http_status == 500]
    assert [a.next_retry_at for a in late] == [None]
    listed = await stub.ListDeliveryAttempts(
        pb.ListDeliveryAttemptsRequest(event=event_id), metadata=((ACCOUNT_KEY, bench.account_id),)
    )
    assert [a.HasField("next_retry_at") for a in listed.data] == [False, False]


async def test_a_resend_recorded_after_the_scheduled_attempt_ended_the_delivery_shows_no_retry(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The resend POSTs while the worker's attempt is made and answered 410, which fails the
    delivery; the resend's 500 is recorded after: no retry will follow it."""
    answered = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(500, hold=answered) if n == 0 else Reply(410))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    resending = asyncio.create_task(bench.service.resend(bench.account_id, event_id, endpoint.id))
    try:
        await receiver.wait_for(1)
        assert await bench.worker.drain() == 1
        assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    finally:
        answered.set()
    resent = (await resending).attempt

    assert resent.http_status == 500
    assert resent.next_retry_at is None


async def test_a_resend_recorded_after_the_scheduled_attempt_failed_shows_the_retry_it_staged(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """The worker's attempt, made during the resend's POST, failed and scheduled the next
    one: that is the retry the resend's attempt shows, not the attempt already made."""
    answered = asyncio.Event()
    receiver = await start_receiver(lambda n: Reply(500, hold=answered) if n == 0 else Reply(503))
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    due_first = bench.clock.now()
    resending = asyncio.create_task(bench.service.resend(bench.account_id, event_id, endpoint.id))
    try:
        await receiver.wait_for(1)
        assert await bench.worker.drain() == 1
    finally:
        answered.set()
    resent = (await resending).attempt

    async with bench.engine.connect() as db:
        delivery = await DeliveryRepository(db).get(bench.account_id, event_id, endpoint.id)
    assert delivery is not None
    assert delivery.next_attempt_at is not None
    assert resent.next_retry_at == delivery.next_attempt_at
    gap = delivery.next_attempt_at - due_first
    assert retry_gap(1) <= gap <= retry_gap(1) * (1 + RETRY_GAP_JITTER) + timedelta(seconds=1)


async def failed_once(
    bench: Bench, start_receiver: StartReceiver, *later: Reply
) -> tuple[str, str]:
    """An event whose first attempt was answered 500: it shows its retry. The endpoint answers
    `later` after."""
    receiver = await start_receiver([Reply(500), *later])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()
    [first] = await bench.attempts(event_id)
    assert first.next_retry_at is not None
    return event_id, endpoint.id


async def retries_shown(bench: Bench, event_id: str) -> list[datetime | None]:
    return [attempt.next_retry_at for attempt in await bench.attempts(event_id)]


async def test_a_delivery_a_resend_delivered_shows_no_retry_to_come(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    event_id, endpoint_id = await failed_once(bench, start_receiver, Reply(200))
    bench.clock.advance(1)
    await bench.service.resend(bench.account_id, event_id, endpoint_id)
    assert await retries_shown(bench, event_id) == [None, None]


async def test_a_delivery_whose_endpoint_was_disabled_shows_no_retry_to_come(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Its retry's job finds the endpoint disabled and fails the delivery, with no attempt."""
    event_id, endpoint_id = await failed_once(bench, start_receiver)
    await bench.service.update_endpoint(
        bench.account_id, endpoint_id, EndpointChanges(disabled=True)
    )
    bench.clock.advance(retry_gap(1).total_seconds() * (1 + RETRY_GAP_JITTER) + 1)
    await bench.worker.drain()
    assert await bench.delivery_status(event_id, endpoint_id) == "failed"
    assert await retries_shown(bench, event_id) == [None]


async def test_a_delivery_whose_retry_job_failed_for_good_shows_no_retry_to_come(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Every run of the retry's job ends with its worker; claimed past its last attempt, it is
    given up, which fails the delivery."""
    event_id, endpoint_id = await failed_once(bench, start_receiver)
    bench.clock.advance(retry_gap(1).total_seconds() * (1 + RETRY_GAP_JITTER) + 1)
    for _ in range(DEFAULT_MAX_ATTEMPTS):
        await claimed_by_a_worker_that_dies(bench.engine, bench.clock.now())
    assert await bench.worker.run_once() == 1
    assert await bench.delivery_status(event_id, endpoint_id) == "failed"
    assert await retries_shown(bench, event_id) == [None]
