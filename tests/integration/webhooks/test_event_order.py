"""Events of one instant are listed, paged, streamed and redelivered in the order they were
recorded (core migration 0087), not by their random ids: a payment's `payment_intent.created`,
`charge.succeeded` and `payment_intent.succeeded` share an instant on a clock that stands
still (as the database clock does while it catches up), and the events one transaction records
share its instant always."""

import asyncio

import pytest

import remit.webhooks.stream
from remit.payments.grpc import payment_intent_message
from remit.payments.service import PaymentsService
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from remit.webhooks.outbox import record_event
from remit.webhooks.repository import EventFilter
from remit.webhooks.service import EndpointChanges, PageArgs
from remit.webhooks.stream import EventNotifier, LiveEvents
from remit.worker.runner import libpq_url
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import pay
from tests.integration.webhooks.conftest import Bench
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

PAYMENTS = 12
"""Each payment's three events would list in the right order by chance once in six times, were
their order left to their ids: twelve payments, every one in order, leave nothing to chance."""

A_PAYMENTS_EVENTS = ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]


def _payments(bench: Bench) -> PaymentsService:
    """The payments service with the core's hooks, on the bench's clock, which stands still."""
    return PaymentsService(
        bench.engine,
        FakeNetwork(clock=bench.clock),
        FakeMethods(),
        present=payment_intent_message,
        hooks=payment_hooks(bench.clock),
        clock=bench.clock,
        radar=Radar(challenge_base_url="http://127.0.0.1"),
    )


async def test_a_payments_events_list_newest_first_in_the_order_they_were_recorded(
    bench: Bench,
) -> None:
    payments = _payments(bench)
    recorded: list[tuple[str, str]] = []
    for n in range(PAYMENTS):
        intent = await pay(payments, bench.account_id, f"order-{n}")
        assert intent.latest_charge_id is not None
        recorded += [
            ("payment_intent.created", intent.id),
            ("charge.succeeded", intent.latest_charge_id),
            ("payment_intent.succeeded", intent.id),
        ]

    listed, has_more = await bench.service.list_events(
        bench.account_id, EventFilter(), PageArgs(limit=100)
    )
    assert not has_more
    assert len({event.created_at for event in listed}) == 1, "one instant for every event"
    assert [(event.type, event.data_object["id"]) for event in listed] == recorded[::-1]


async def test_paging_one_event_at_a_time_neither_skips_nor_repeats_events_of_one_instant(
    bench: Bench,
) -> None:
    payments = _payments(bench)
    for n in range(3):
        await pay(payments, bench.account_id, f"paged-{n}")
    everything, _ = await bench.service.list_events(
        bench.account_id, EventFilter(), PageArgs(limit=100)
    )
    assert [e.type for e in everything] == A_PAYMENTS_EVENTS[::-1] * 3

    forward: list[str] = []
    has_more = True
    while has_more:
        page, has_more = await bench.service.list_events(
            bench.account_id,
            EventFilter(),
            PageArgs(limit=1, starting_after=forward[-1] if forward else None),
        )
        forward += [e.id for e in page]
    assert forward == [e.id for e in everything]

    backward = [forward[-1]]
    has_more = True
    while has_more:
        page, has_more = await bench.service.list_events(
            bench.account_id, EventFilter(), PageArgs(limit=1, ending_before=backward[-1])
        )
        backward += [e.id for e in page]
    assert backward == forward[::-1]


async def _record_in_one_transaction(bench: Bench, count: int) -> list[str]:
    """`count` events recorded by one transaction, all at its instant, in order."""
    async with bench.engine.begin() as db:
        return [
            await record_event(
                db,
                account_id=bench.account_id,
                type=("customer.created", "customer.updated")[n % 2],
                data_object={"id": f"cus_{n}", "object": "customer"},
                now=bench.clock.now(),
            )
            for n in range(count)
        ]


async def test_a_replay_hands_out_the_events_of_one_transaction_in_the_order_recorded(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay starting after one of a transaction's events goes on with those recorded
    after it, every one, read a few at a time (each read going on from the last event of the
    one before)."""
    monkeypatch.setattr(remit.webhooks.stream, "BATCH", 4)
    recorded = await _record_in_one_transaction(bench, 25)
    url = bench.engine.url.render_as_string(hide_password=False)
    notifier = EventNotifier(libpq_url(url))
    try:
        stream = await LiveEvents.open(
            bench.service, notifier, bench.account_id, types=[], starting_after=recorded[4]
        )
        events = stream.__aiter__()
        try:
            handed_out = [
                (await asyncio.wait_for(anext(events), timeout=10)).id for _ in recorded[5:]
            ]
        finally:
            await events.aclose()  # type: ignore[attr-defined]
    finally:
        await notifier.close()
    assert handed_out == recorded[5:]


async def test_a_redelivery_queues_the_events_of_one_transaction_in_the_order_recorded(
    bench: Bench,
) -> None:
    endpoint = await bench.endpoint("https://example.com/hook")
    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=True)
    )
    # Recorded while the endpoint is disabled: they have no delivery, and are the redelivery's.
    recorded = await _record_in_one_transaction(bench, 9)
    await bench.service.update_endpoint(
        bench.account_id, endpoint.id, EndpointChanges(disabled=False)
    )
    last_of_each_call: list[str] = []
    has_more = True
    while has_more:
        done = await bench.service.redeliver(
            bench.account_id,
            endpoint.id,
            None,
            starting_after=last_of_each_call[-1] if last_of_each_call else None,
            limit=3,
        )
        assert done.queued == 3
        assert done.last_event is not None
        last_of_each_call.append(done.last_event)
        has_more = done.has_more
    assert last_of_each_call == recorded[2::3]
