"""What recording an event writes, and whom it wakes, in the caller's transaction."""

from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import select, text

from remit.accounts.service import AccountsService
from remit.webhooks.deleted import END_JOB
from remit.webhooks.outbox import DELIVER_JOB, EVENTS_CHANNEL, record_event
from remit.webhooks.service import EndpointChanges
from remit.webhooks.tables import events, webhook_deliveries
from remit.worker.jobs import NOTIFY_CHANNEL
from remit.worker.runner import libpq_url
from remit.worker.tables import jobs
from tests.integration.webhooks.conftest import Bench
from tests.support.notifications import notifications

pytestmark = pytest.mark.anyio


@pytest.fixture
async def listener(bench: Bench) -> AsyncIterator[psycopg.AsyncConnection[object]]:
    url = libpq_url(bench.engine.url.render_as_string(hide_password=False))
    connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with connection:
        await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
        await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        yield connection


async def received(
    connection: psycopg.AsyncConnection[object], expected: int = 0
) -> list[tuple[str, str]]:
    """The `expected` notifications, and any further ones that follow them at once."""
    return sorted((n.channel, n.payload) for n in await notifications(connection, expected))


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
    assert await received(listener, 2) == [
        (EVENTS_CHANNEL, bench.account_id), (NOTIFY_CHANNEL, DELIVER_JOB)
    ]  # fmt: skip

    # Its delivery still pending, the delete stages the job that ends it.
    await bench.service.delete_endpoint(bench.account_id, endpoint.id)
    assert await received(listener, 1) == [(NOTIFY_CHANNEL, END_JOB)]
    # An event no endpoint wants stages no job: only `remit listen` streams hear of it.
    await bench.record()
    assert await received(listener, 1) == [(EVENTS_CHANNEL, bench.account_id)]
