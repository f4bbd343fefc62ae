"""The events outbox and API, retention, and recovery (resend, redeliver)."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from remit.core.errors import RemitError
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks.domain import DisabledReason, EndpointStatus
from remit.webhooks.repository import EventFilter, TimeRange
from remit.webhooks.service import EndpointChanges, PageArgs
from remit.webhooks.tables import events, webhook_deliveries
from remit.worker.tables import jobs
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.integration.webhooks.test_delivery import disable_notices
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def test_an_event_recorded_in_a_rolled_back_transaction_never_exists(bench: Bench) -> None:
    await bench.endpoint("https://example.com/h")

    await bench.record_then_roll_back()
    async with bench.engine.connect() as db:
        for table in (events, webhook_deliveries, jobs):
            assert (await db.execute(select(func.count()).select_from(table))).scalar_one() == 0


async def test_events_are_listed_newest_first_and_filtered(bench: Bench) -> None:
    created = []
    for event_type in ("customer.created", "payment_intent.created", "payment_intent.succeeded"):
        created.append(await bench.record(event_type))
        bench.clock.advance(10)
    everything, has_more = await bench.service.list_events(
        bench.account_id, EventFilter(), PageArgs(limit=2)
    )
    assert [e.id for e in everything] == created[::-1][:2]
    assert has_more
    rest, has_more = await bench.service.list_events(
        bench.account_id, EventFilter(), PageArgs(limit=2, starting_after=everything[-1].id)
    )
    assert [e.id for e in rest] == [created[0]]
    assert not has_more

    family, _ = await bench.service.list_events(
        bench.account_id, EventFilter(types=["payment_intent.*"]), PageArgs()
    )
    assert [e.type for e in family] == ["payment_intent.succeeded", "payment_intent.created"]
    first = (await bench.service.get_event(bench.account_id, created[0])).created_at
    early, _ = await bench.service.list_events(
        bench.account_id, EventFilter(created=TimeRange(lte=first)), PageArgs()
    )
    assert [e.id for e in early] == [created[0]]


@pytest.mark.parametrize("types", [["*"], ["*", "charge.refunded"], ["charge.refunded", "*"]])
async def test_the_star_type_filter_lists_every_event(bench: Bench, types: list[str]) -> None:
    """`type=*` (or "*" among `types[]`) is Stripe's wildcard for every type, as it is for
    `remit listen`, not a type named "*"."""
    created = [await bench.record(t) for t in ("customer.created", "payment_intent.created")]
    listed, _ = await bench.service.list_events(
        bench.account_id, EventFilter(types=types), PageArgs()
    )
    assert sorted(e.id for e in listed) == sorted(created)


async def test_events_are_kept_thirty_days(bench: Bench) -> None:
    event_id = await bench.record()
    bench.clock.advance(timedelta(days=30, seconds=1).total_seconds())
    with pytest.raises(RemitError, match="No such event"):
        await bench.service.get_event(bench.account_id, event_id)
    purge = next(p for p in _parts_periodic(bench) if p.name == "webhooks-purge-old-events")
    await purge.run()
    async with bench.engine.connect() as db:
        assert (await db.execute(select(func.count()).select_from(events))).scalar_one() == 0


def _parts_periodic(bench: Bench) -> list:  # type: ignore[type-arg]
    from remit.webhooks.urls import UrlPolicy
    from remit.webhooks.worker import webhook_worker_parts

    return webhook_worker_parts(bench.engine, UrlPolicy(True), clock=bench.clock).periodic


async def test_another_accounts_events_and_endpoints_are_invisible(bench: Bench) -> None:
    event_id = await bench.record()
    endpoint = await bench.endpoint("https://example.com/h")
    with pytest.raises(RemitError, match="No such event"):
        await bench.service.get_event("acct_someoneelse", event_id)
    with pytest.raises(RemitError, match="No such webhook_endpoint"):
        await bench.service.get_endpoint("acct_someoneelse", endpoint.id)


async def _enable(bench: Bench, endpoint_id: str) -> None:
    """Enable an endpoint that its failures disabled, as its owner does once it is mended."""
    disabled = await bench.service.get_endpoint(bench.account_id, endpoint_id)
    assert disabled.status is EndpointStatus.DISABLED
    await bench.service.update_endpoint(
        bench.account_id, endpoint_id, EndpointChanges(disabled=False)
    )


async def test_failed_deliveries_are_redelivered_on_request(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    healthy = False
    receiver = await start_receiver(lambda _: Reply(200 if healthy else 500))
    endpoint = await bench.endpoint(receiver.url)
    failed = [await bench.record(), await bench.record()]
    for event_id in failed:
        await bench.follow_schedule(event_id, endpoint.id)
        assert await bench.delivery_status(event_id, endpoint.id) == "failed"
    delivered_before = len(receiver.received)
    # Both failed their whole schedules, the last with nothing pending after it: disabled.
    await _enable(bench, endpoint.id)

    healthy = True
    redelivery = await bench.service.redeliver(bench.account_id, endpoint.id, since=None)
    assert redelivery.queued == 2
    await bench.worker.drain()
    assert len(receiver.received) == delivered_before + 2
    for event_id in failed:
        assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    failed_list, _ = await bench.service.list_events(
        bench.account_id, EventFilter(delivery_success=False), PageArgs()
    )
    assert failed_list == []


async def test_redelivery_since_a_time_skips_older_events(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url)
    old = await bench.record()
    await bench.follow_schedule(old, endpoint.id)
    # Its whole schedule failed with nothing pending after it: the endpoint was disabled.
    await _enable(bench, endpoint.id)
    cutoff = bench.clock.now()
    recent = await bench.record()
    await bench.follow_schedule(recent, endpoint.id)
    # And again by the recent event's.
    with pytest.raises(RemitError, match="disabled"):
        await bench.service.redeliver(bench.account_id, endpoint.id, cutoff)
    await _enable(bench, endpoint.id)
    assert (await bench.service.redeliver(bench.account_id, endpoint.id, cutoff)).queued == 1
    assert await bench.delivery_status(recent, endpoint.id) == "pending"
    assert await bench.delivery_status(old, endpoint.id) == "failed"


async def test_resend_delivers_now_and_ends_the_pending_schedule(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver([Reply(500)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()
    bench.clock.advance(1)
    attempt = (await bench.service.resend(bench.account_id, event_id, endpoint.id)).attempt
    assert attempt.succeeded
    assert attempt.attempt_number == 2
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    bench.clock.advance(3600)
    await bench.worker.drain()
    assert len(receiver.received) == 2  # the scheduled retry found nothing left to do
    by_endpoint, _ = await bench.service.list_attempts(
        bench.account_id, event_id=None, endpoint_id=endpoint.id, args=PageArgs()
    )
    assert [a.http_status for a in by_endpoint] == [200, 500]


async def test_a_resend_answered_410_disables_the_endpoint_and_says_so_as_the_worker_does(
    bench: Bench,
    start_receiver: StartReceiver,
    stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub",
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The endpoint answers the resend 410 Gone: the endpoint is disabled, as an attempt of
    the worker's answered so disables it, and the core logs it as the worker does. The reply
    says so too, for `remit webhooks resend` to tell the operator; a resend that disables
    nothing says nothing."""
    caplog.set_level(logging.WARNING)
    receiver = await start_receiver([Reply(), Reply(), Reply(410)])
    endpoint = await bench.endpoint(receiver.url)
    event_id = await bench.record()
    await bench.worker.drain()
    request = pb.ResendEventRequest(event=event_id, webhook_endpoint=endpoint.id)
    metadata = ((ACCOUNT_KEY, bench.account_id),)

    delivered = await stub.ResendEvent(request, metadata=metadata)
    assert delivered.delivery_attempt.http_status == 200
    assert not delivered.HasField("webhook_endpoint_disabled_reason")
    assert disable_notices(caplog) == []

    gone = await stub.ResendEvent(request, metadata=metadata)
    assert gone.delivery_attempt.http_status == 410
    assert gone.webhook_endpoint_disabled_reason == "gone"
    disabled = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert disabled.status is EndpointStatus.DISABLED
    assert disabled.disabled_reason is DisabledReason.GONE
    assert disable_notices(caplog) == [
        f"webhook endpoint {endpoint.id} answered 410 Gone; disabled (disabled_reason gone)"
    ]


async def test_an_endpoint_update_changes_only_what_is_named(bench: Bench) -> None:
    endpoint = await bench.service.create_endpoint(
        bench.account_id, url="https://example.com/h", enabled_events=["*"],
        description="orders", metadata={"a": "1", "b": "2"},
    )  # fmt: skip
    updated = await bench.service.update_endpoint(
        bench.account_id,
        endpoint.id,
        EndpointChanges(
            enabled_events=["payout.paid"],
            unset_metadata_keys=["a"],
            set_metadata={"c": "3"},
            disabled=True,
        ),
    )
    assert updated.enabled_events == ("payout.paid",)
    assert dict(updated.metadata) == {"b": "2", "c": "3"}
    assert updated.description == "orders"
    assert updated.status is EndpointStatus.DISABLED
    assert updated.secret == endpoint.secret
    with pytest.raises(RemitError) as bad:
        await bench.service.update_endpoint(
            bench.account_id, endpoint.id, EndpointChanges(enabled_events=["nope"])
        )
    assert bad.value.param == "enabled_events[0]"


async def test_redelivery_sends_only_events_the_endpoint_subscribes_to(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """A resend may send an endpoint an event it does not subscribe to, once, by hand; should it
    fail, redelivering the endpoint's failures leaves it out, as deliveries leave it out."""
    receiver = await start_receiver(lambda _: Reply(500))
    endpoint = await bench.endpoint(receiver.url, events=("customer.created",))
    unsubscribed = await bench.record("payout.paid")
    attempt = (await bench.service.resend(bench.account_id, unsubscribed, endpoint.id)).attempt
    assert not attempt.succeeded
    assert await bench.delivery_status(unsubscribed, endpoint.id) == "failed"
    subscribed = await bench.record("customer.created")
    await bench.follow_schedule(subscribed, endpoint.id)
    assert await bench.delivery_status(subscribed, endpoint.id) == "failed"
    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=False)
    )
    assert (await bench.service.redeliver(bench.account_id, endpoint.id, None)).queued == 1
    assert await bench.delivery_status(subscribed, endpoint.id) == "pending"
    assert await bench.delivery_status(unsubscribed, endpoint.id) == "failed"


async def test_an_endpoint_may_subscribe_to_payment_method_updated_and_charge_expired(
    bench: Bench,
) -> None:
    """Both are in Stripe's enabled_events, and remit emits both (a payment method's update, an
    authorization left to expire)."""
    wanted = ["payment_method.updated", "charge.expired"]
    endpoint = await bench.service.create_endpoint(
        bench.account_id, url="https://example.com/h", enabled_events=wanted
    )
    assert list(endpoint.enabled_events) == wanted
