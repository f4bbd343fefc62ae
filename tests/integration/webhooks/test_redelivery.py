"""`redeliver`: every event not delivered to an endpoint is queued again, those recorded while
it was disabled (which have no delivery of their own) as well as those whose delivery failed,
each once, rendered at the endpoint's version, and only the endpoint's account's."""

import json
from datetime import timedelta

import grpc
import pytest
import stripe
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import RemitError
from remit.core.jsonview import JsonObject
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks import service as webhooks_service
from remit.webhooks.domain import EndpointStatus, Event
from remit.webhooks.repository import DeliveryRepository
from remit.webhooks.service import EndpointChanges, Redelivery
from remit.webhooks.tables import webhook_deliveries
from remit.worker.tables import jobs
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench, StartReceiver, make_bench
from tests.support.receiver import Received, Reply
from versions import KNOWN_VERSIONS

pytestmark = pytest.mark.anyio

# A version of the endpoint's own, older than the account's: what every delivery says.
ENDPOINT_VERSION = KNOWN_VERSIONS[3]


async def as_asked(_event: Event, event_json: JsonObject, _version: str) -> JsonObject:
    """A renderer that changes nothing but the version the event says it is at."""
    return event_json


def delivered_event_ids(received: list[Received]) -> list[str]:
    return [json.loads(r.body)["id"] for r in received]


async def has_delivery(bench: Bench, event_id: str, endpoint_id: str) -> bool:
    async with bench.engine.connect() as db:
        found = await DeliveryRepository(db).get(bench.account_id, event_id, endpoint_id)
    return found is not None


async def pending_jobs(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        count = await db.execute(select(func.count()).where(jobs.c.status == "pending"))
        return int(count.scalar_one())


async def run_until_no_job_is_left(bench: Bench) -> None:
    """Run the worker, jumping the clock to each job's time, until none is pending."""
    for _ in range(1000):
        await bench.worker.drain()
        async with bench.engine.connect() as db:
            next_at = (
                await db.execute(select(func.min(jobs.c.run_at)).where(jobs.c.status == "pending"))
            ).scalar_one()
        if next_at is None:
            return
        bench.clock.advance(max((next_at - bench.clock.now()).total_seconds(), 0.0))
    raise AssertionError("jobs kept coming")


async def endpoint_status(bench: Bench, endpoint_id: str) -> EndpointStatus:
    return (await bench.service.get_endpoint(bench.account_id, endpoint_id)).status


async def enable(bench: Bench, endpoint_id: str) -> None:
    await bench.service.update_endpoint(
        bench.account_id, endpoint_id, EndpointChanges(disabled=False)
    )


async def disable(bench: Bench, endpoint_id: str) -> None:
    await bench.service.update_endpoint(
        bench.account_id, endpoint_id, EndpointChanges(disabled=True)
    )


async def test_an_outage_that_disabled_the_endpoint_is_made_good_by_one_redelivery(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    """The merchant's server is down four days; on the third the endpoint is disabled for
    failing. Once it is up and the endpoint enabled again, `redeliver --since <outage start>`
    sends every event of the outage: those that failed, and those recorded while the endpoint
    was disabled, a payment's success among them."""
    healthy = True
    receiver = await start_receiver(lambda _: Reply(200 if healthy else 503))
    async with make_bench(core_engine, renderer=as_asked) as bench:
        endpoint = await bench.endpoint(receiver.url, api_version=ENDPOINT_VERSION)
        before = await bench.record("payment_intent.created")
        await bench.worker.drain()
        bench.clock.advance(3600)

        healthy = False
        outage_start = bench.clock.now()
        failed = [await bench.record("payment_intent.requires_action")]
        hours = 0
        while await endpoint_status(bench, endpoint.id) is EndpointStatus.ENABLED:
            await bench.worker.drain()
            bench.clock.advance(3600)
            hours += 1
            if hours == 30:
                failed.append(await bench.record("charge.updated"))
            assert hours <= 96, "the endpoint was never disabled"
        assert hours >= 72  # on the third day
        missed = []
        while hours < 96:
            missed.append(await bench.record("payment_intent.succeeded"))
            await bench.worker.drain()
            bench.clock.advance(3600)
            hours += 12
        await run_until_no_job_is_left(bench)
        for event_id in failed:
            assert await bench.delivery_status(event_id, endpoint.id) == "failed"
        for event_id in missed:
            assert not await has_delivery(bench, event_id, endpoint.id)

        healthy = True
        await enable(bench, endpoint.id)
        redelivery = await bench.service.redeliver(bench.account_id, endpoint.id, outage_start)
        assert redelivery == Redelivery(
            queued=len(failed) + len(missed), has_more=False, last_event=missed[-1]
        )
        seen_before = len(receiver.received)
        await bench.worker.drain()

        redelivered = receiver.received[seen_before:]
        assert sorted(delivered_event_ids(redelivered)) == sorted(failed + missed)
        for received in redelivered:
            event = stripe.Webhook.construct_event(received.body.decode(),
                                                   received.headers["Stripe-Signature"],
                                                   endpoint.secret, tolerance=0)  # fmt: skip
            assert event.api_version == ENDPOINT_VERSION
        for event_id in [before, *failed, *missed]:
            assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"


async def test_a_second_redelivery_queues_nothing_the_first_one_did(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """While the first redelivery's deliveries are pending, running it again queues none of
    them a second time: each event is sent once."""
    receiver = await start_receiver(lambda n: Reply(410) if n == 0 else Reply())
    endpoint = await bench.endpoint(receiver.url)
    gone = await bench.record()
    await bench.worker.drain()  # 410 Gone: that delivery failed and the endpoint is disabled
    assert await endpoint_status(bench, endpoint.id) is EndpointStatus.DISABLED
    missed = [await bench.record("payment_intent.succeeded"), await bench.record("payout.paid")]
    await bench.worker.drain()
    await enable(bench, endpoint.id)

    first = await bench.service.redeliver(bench.account_id, endpoint.id, None)
    second = await bench.service.redeliver(bench.account_id, endpoint.id, None)

    assert first.queued == 3
    assert second == Redelivery(queued=0, has_more=False, last_event=None)
    assert await pending_jobs(bench.engine) == 3
    await bench.worker.drain()
    assert sorted(delivered_event_ids(receiver.received[1:])) == sorted([gone, *missed])
    assert (await bench.service.redeliver(bench.account_id, endpoint.id, None)).queued == 0


async def test_only_events_the_endpoint_subscribes_to_are_queued(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url, events=("payment_intent.succeeded",))
    await disable(bench, endpoint.id)
    wanted = await bench.record("payment_intent.succeeded")
    await bench.record("payment_intent.created")
    await bench.record("customer.created")
    await enable(bench, endpoint.id)

    assert (await bench.service.redeliver(bench.account_id, endpoint.id, None)).queued == 1
    await bench.worker.drain()
    assert delivered_event_ids(receiver.received) == [wanted]


async def test_another_accounts_events_and_events_older_than_the_endpoint_are_never_queued(
    core_engine: AsyncEngine, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    async with make_bench(core_engine) as bench:
        older = await bench.record()
        bench.clock.advance(1)
        endpoint = await bench.endpoint(receiver.url)
        await disable(bench, endpoint.id)
        async with make_bench(core_engine, start=bench.clock.now()) as other:
            await other.endpoint(receiver.url)
            theirs = [await other.record(), await other.record("payment_intent.succeeded")]
            await other.worker.drain()
        ours = await bench.record()
        await enable(bench, endpoint.id)

        redelivery = await bench.service.redeliver(bench.account_id, endpoint.id, None)

        assert redelivery == Redelivery(queued=1, has_more=False, last_event=ours)
        async with core_engine.connect() as db:
            to_this_endpoint = await db.execute(
                select(webhook_deliveries.c.event_id).where(
                    webhook_deliveries.c.endpoint_id == endpoint.id
                )
            )
            assert [row.event_id for row in to_this_endpoint] == [ours]
        assert not await has_delivery(bench, older, endpoint.id)
        await bench.worker.drain()
        assert sorted(delivered_event_ids(receiver.received)) == sorted([*theirs, ours])


async def test_a_long_window_is_gone_through_batch_by_batch(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    await disable(bench, endpoint.id)
    missed = []
    for _ in range(5):
        missed.append(await bench.record())
        bench.clock.advance(1)
    await enable(bench, endpoint.id)

    pages = []
    starting_after = None
    while True:
        done = await bench.service.redeliver(
            bench.account_id, endpoint.id, None, starting_after=starting_after, limit=2
        )
        pages.append(done)
        if not done.has_more:
            break
        starting_after = done.last_event

    assert pages == [
        Redelivery(queued=2, has_more=True, last_event=missed[1]),
        Redelivery(queued=2, has_more=True, last_event=missed[3]),
        Redelivery(queued=1, has_more=False, last_event=missed[4]),
    ]
    await bench.worker.drain()
    assert sorted(delivered_event_ids(receiver.received)) == sorted(missed)


async def test_a_window_reaching_past_event_retention_is_refused(bench: Bench) -> None:
    endpoint = await bench.endpoint("https://example.com/h")
    with pytest.raises(RemitError, match="within the last 30 days") as refused:
        await bench.service.redeliver(
            bench.account_id, endpoint.id, bench.clock.now() - timedelta(days=30, seconds=1)
        )
    assert refused.value.param == "since"
    redelivery = await bench.service.redeliver(
        bench.account_id, endpoint.id, bench.clock.now() - timedelta(days=30)
    )
    assert redelivery.queued == 0


async def test_the_rpc_says_whether_more_remain_and_where_to_go_on(
    bench: Bench,
    stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub",
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhooks_service, "REDELIVERY_BATCH", 2)
    endpoint = await bench.endpoint("https://example.com/h")
    await disable(bench, endpoint.id)
    missed = []
    for _ in range(3):
        missed.append(await bench.record())
        bench.clock.advance(1)
    await enable(bench, endpoint.id)
    metadata = ((ACCOUNT_KEY, bench.account_id),)

    request = pb.RedeliverFailedEventsRequest(webhook_endpoint=endpoint.id)
    first = await stub.RedeliverFailedEvents(request, metadata=metadata)
    assert (first.events_queued, first.has_more) == (2, True)
    request.starting_after = first.last_event
    second = await stub.RedeliverFailedEvents(request, metadata=metadata)
    assert (second.events_queued, second.has_more, second.last_event) == (1, False, missed[2])

    request.starting_after = "evt_unknown"
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.RedeliverFailedEvents(request, metadata=metadata)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_resend_racing_a_redelivery_leaves_the_delivery_it_queued_pending(
    bench: Bench, start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event was recorded while the endpoint was disabled: it has no delivery. A resend
    finds none, and a redelivery queues one before the resend adds its own, failed: the
    resend makes its attempt on the delivery the redelivery queued and leaves it pending, on
    its schedule, with its job, which delivers it (a failed one put in its place would leave
    that job with nothing to do, and the event on no schedule at all)."""
    receiver = await start_receiver([Reply(500)])
    endpoint = await bench.endpoint(receiver.url)
    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=True)
    )
    event_id = await bench.record()
    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=False)
    )
    redeliveries: list[Redelivery] = []
    read = DeliveryRepository.get

    async def read_then_redeliver(
        repository: DeliveryRepository, account_id: str, event: str, endpoint_id: str
    ) -> object:
        found = await read(repository, account_id, event, endpoint_id)
        if not redeliveries:
            redeliveries.append(await bench.service.redeliver(bench.account_id, endpoint.id, None))
        return found

    monkeypatch.setattr(DeliveryRepository, "get", read_then_redeliver)
    attempt = (await bench.service.resend(bench.account_id, event_id, endpoint.id)).attempt
    monkeypatch.undo()
    assert [r.queued for r in redeliveries] == [1]
    assert attempt.http_status == 500
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"

    await bench.worker.drain()
    assert delivered_event_ids(receiver.received) == [event_id, event_id]
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
