"""What recording an event writes, and whom it wakes, in the caller's transaction."""

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.accounts.service import AccountsService
from remit.accounts.tables import accounts
from remit.storage import fastsql
from remit.webhooks.outbox import DELIVER_JOB, EVENTS_CHANNEL, record_event
from remit.webhooks.repository import EventFilter
from remit.webhooks.service import EndpointChanges, PageArgs
from remit.webhooks.tables import events, webhook_deliveries
from remit.worker.jobs import NOTIFY_CHANNEL
from remit.worker.runner import libpq_url
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio


@pytest.fixture
async def listener(bench: Bench) -> AsyncIterator[psycopg.AsyncConnection[object]]:
    url = libpq_url(bench.engine.url.render_as_string(hide_password=False))
    connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with connection:
        await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
        await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        yield connection


async def received(connection: psycopg.AsyncConnection[object]) -> list[tuple[str, str]]:
    """The notifications that arrive within a short wait."""
    notes = [(n.channel, n.payload) async for n in connection.notifies(timeout=0.5)]
    return sorted(notes)


async def test_an_event_gets_a_delivery_and_a_job_for_each_endpoint_subscribed_to_it(
    bench: Bench,
) -> None:
    everything = await bench.endpoint("https://example.com/all")
    exact = await bench.endpoint("https://example.com/exact", ["customer.created"])
    among = await bench.endpoint("https://example.com/among", ["payout.paid", "customer.created"])
    await bench.endpoint("https://example.com/other-type", ["payout.paid", "customer.updated"])
    disabled = await bench.endpoint("https://example.com/disabled")
    await bench.service.update_endpoint(bench.account_id, disabled.id,
                                        EndpointChanges(disabled=True))  # fmt: skip
    deleted = await bench.endpoint("https://example.com/deleted")
    await bench.service.delete_endpoint(bench.account_id, deleted.id)
    stranger = await AccountsService(bench.engine, bench.clock).create_account()
    await bench.service.create_endpoint(stranger.account.id, url="https://example.com/theirs",
                                        enabled_events=["*"])  # fmt: skip

    event_id = await bench.record("customer.created")

    async with bench.engine.begin() as db:
        delivered = (
            await db.execute(
                select(webhook_deliveries).where(webhook_deliveries.c.event_id == event_id)
            )
        ).all()
        staged = (await db.execute(select(jobs))).all()
        stored = (await db.execute(select(events).where(events.c.id == event_id))).one()
    assert sorted(d.endpoint_id for d in delivered) == sorted([everything.id, exact.id, among.id])
    assert {(d.account_id, d.status, d.attempts) for d in delivered} == {
        (bench.account_id, "pending", 0)
    }
    assert all(d.first_attempt_at == d.next_attempt_at == bench.clock.now() for d in delivered)
    assert sorted(
        (j.kind, j.payload["delivery_id"], j.payload["attempt"]) for j in staged
    ) == sorted((DELIVER_JOB, d.id, 1) for d in delivered)
    assert {(j.account_id, j.status, j.run_at) for j in staged} == {
        (bench.account_id, "pending", bench.clock.now())
    }
    assert (stored.type, stored.request_id, stored.idempotency_key) == (
        "customer.created", "req_abc", "key-1"
    )  # fmt: skip
    assert stored.data_object == {"id": "cus_123", "object": "customer", "balance": 0}
    assert stored.previous_attributes is None


async def test_an_endpoint_committed_before_an_event_is_recorded_gets_its_delivery(
    bench: Bench,
) -> None:
    async with bench.engine.begin() as db:
        await db.execute(text("SELECT 1"))  # the recording transaction is already under way
        endpoint = await bench.endpoint("https://example.com/late")
        event_id = await record_event(db, account_id=bench.account_id, type="payout.paid",
                                      data_object={"id": "po_1", "object": "payout"},
                                      now=bench.clock.now())  # fmt: skip
    assert await bench.delivery_status(event_id, endpoint.id) == "pending"


async def test_listeners_are_woken_once_the_event_commits_and_never_if_it_rolls_back(
    bench: Bench, listener: psycopg.AsyncConnection[object]
) -> None:
    endpoint = await bench.endpoint("https://example.com/h")
    await bench.record_then_roll_back()
    assert await received(listener) == []

    async with bench.engine.begin() as db:
        await record_event(db, account_id=bench.account_id, type="payout.paid",
                           data_object={"id": "po_1", "object": "payout"},
                           now=bench.clock.now())  # fmt: skip
        assert await received(listener) == []  # nothing before commit
    assert await received(listener) == [
        (EVENTS_CHANNEL, bench.account_id), (NOTIFY_CHANNEL, DELIVER_JOB)
    ]  # fmt: skip

    # An event no endpoint wants stages no job: only `remit listen` streams hear of it.
    await bench.service.delete_endpoint(bench.account_id, endpoint.id)
    await bench.record()
    assert await received(listener) == [(EVENTS_CHANNEL, bench.account_id)]


# --- events recorded one after the other in a unit: one statement -----------------------------


async def _record(
    db: AsyncConnection,
    account_id: str,
    event_type: str,
    now: datetime,
    previous: dict[str, object] | None = None,
) -> str:
    resource = event_type.split(".")[0]
    return await record_event(db, account_id=account_id, type=event_type,
                              data_object={"id": f"{resource}_1", "object": resource},
                              now=now, previous_attributes=previous,
                              request_id=f"req_{resource}",
                              idempotency_key=f"key-{resource}")  # fmt: skip


async def test_events_recorded_one_after_the_other_are_one_statement_with_their_own_deliveries(
    bench: Bench,
) -> None:
    everything = await bench.endpoint("https://example.com/all")
    charges = await bench.endpoint("https://example.com/charges", ["charge.succeeded"])
    first_at = bench.clock.now()
    then = first_at + timedelta(milliseconds=1)
    with fastsql.traced() as sent:
        async with bench.engine.begin() as db, fastsql.deferring(db):
            charge_event = await _record(db, bench.account_id, "charge.succeeded", first_at)
            intent_event = await _record(db, bench.account_id, "payment_intent.succeeded",
                                         then, previous={"status": "processing"})  # fmt: skip
    assert len(sent) == 1

    async with bench.engine.begin() as db:
        stored = {
            row.id: row
            for row in await db.execute(
                select(events).where(events.c.account_id == bench.account_id)
            )
        }
        delivered = (await db.execute(select(webhook_deliveries))).all()
        staged = (await db.execute(select(jobs))).all()
        api_version = (
            await db.execute(
                select(accounts.c.api_version).where(accounts.c.id == bench.account_id)
            )
        ).scalar_one()
    assert sorted(stored) == sorted([charge_event, intent_event])
    charge, intent = stored[charge_event], stored[intent_event]
    assert (charge.type, charge.created_at, charge.previous_attributes) == (
        "charge.succeeded", first_at, None
    )  # fmt: skip
    assert (intent.type, intent.created_at, intent.previous_attributes) == (
        "payment_intent.succeeded", then, {"status": "processing"}
    )  # fmt: skip
    assert charge.data_object == {"id": "charge_1", "object": "charge"}
    assert intent.data_object == {"id": "payment_intent_1", "object": "payment_intent"}
    assert (charge.request_id, charge.idempotency_key) == ("req_charge", "key-charge")
    assert (intent.request_id, intent.idempotency_key) == (
        "req_payment_intent", "key-payment_intent"
    )  # fmt: skip
    assert {(e.livemode, e.api_version) for e in (charge, intent)} == {(False, api_version)}

    # The endpoint subscribed to charge.succeeded only gets that event; each delivery is
    # scheduled from its own event's time, the earlier event's first.
    assert sorted((d.event_id, d.endpoint_id, d.first_attempt_at) for d in delivered) == sorted([
        (charge_event, everything.id, first_at),
        (charge_event, charges.id, first_at),
        (intent_event, everything.id, then),
    ])  # fmt: skip
    assert max(d.id for d in delivered if d.event_id == charge_event) < min(
        d.id for d in delivered if d.event_id == intent_event
    )
    assert sorted(
        (j.kind, j.payload["delivery_id"], j.payload["attempt"], j.account_id, j.run_at)
        for j in staged
    ) == sorted((DELIVER_JOB, d.id, 1, bench.account_id, d.first_attempt_at) for d in delivered)


async def test_events_of_two_accounts_in_one_statement_wake_listeners_of_both(
    bench: Bench, listener: psycopg.AsyncConnection[object]
) -> None:
    await bench.endpoint("https://example.com/h")
    other = (await AccountsService(bench.engine, bench.clock).create_account()).account.id
    with fastsql.traced() as sent:
        async with bench.engine.begin() as db, fastsql.deferring(db):
            await _record(db, bench.account_id, "charge.succeeded", bench.clock.now())
            await _record(db, other, "charge.succeeded", bench.clock.now())
            await _record(db, bench.account_id, "payment_intent.succeeded", bench.clock.now())
    assert len(sent) == 1
    assert await received(listener) == sorted([
        (EVENTS_CHANNEL, bench.account_id), (EVENTS_CHANNEL, other), (NOTIFY_CHANNEL, DELIVER_JOB)
    ])  # fmt: skip

    # Events that no endpoint wants stage no job: only `remit listen` streams hear of them.
    async with bench.engine.begin() as db, fastsql.deferring(db):
        await _record(db, other, "charge.succeeded", bench.clock.now())
        await _record(db, other, "charge.refunded", bench.clock.now())
    assert await received(listener) == [(EVENTS_CHANNEL, other)]


async def test_events_written_by_one_statement_are_listed_by_time_then_id(bench: Bench) -> None:
    """The list's order is the events' (created, id), whichever statement wrote them."""
    first_at = bench.clock.now()
    later = first_at + timedelta(seconds=1)
    async with bench.engine.begin() as db, fastsql.deferring(db):
        recorded = [
            (first_at, await _record(db, bench.account_id, "charge.succeeded", first_at)),
            (later, await _record(db, bench.account_id, "payment_intent.succeeded", later)),
            (later, await _record(db, bench.account_id, "charge.refunded", later)),
            (first_at, await _record(db, bench.account_id, "charge.captured", first_at)),
        ]
    newest_first = [event_id for _, event_id in sorted(recorded, reverse=True)]
    listed, has_more = await bench.service.list_events(
        bench.account_id, EventFilter(), PageArgs(limit=3)
    )
    assert [e.id for e in listed] == newest_first[:3]
    assert has_more
    rest, has_more = await bench.service.list_events(
        bench.account_id, EventFilter(), PageArgs(limit=3, starting_after=listed[-1].id)
    )
    assert [e.id for e in rest] == newest_first[3:]
    assert not has_more
