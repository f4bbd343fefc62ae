"""Taking a delivery slot locks its endpoint's row against other slot-takers, but not against
recording an event: the event's statement inserts a delivery whose foreign key to the endpoint
takes a key-share lock, and recording events is on every payment's path."""

import asyncio

import pytest
from sqlalchemy import text

from remit.storage.fastsql import Statement
from remit.webhooks import repository
from tests.integration.webhooks.conftest import Bench, StartReceiver

pytestmark = pytest.mark.anyio


async def test_an_event_is_recorded_while_a_slot_of_its_endpoint_is_being_taken(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    lock: Statement = repository._LOCK_ENDPOINT_FOR_SLOTS
    async with bench.engine.begin() as taking:
        assert await lock.first(taking, {"endpoint_id": endpoint.id}) is not None
        # Before the slot-taker's lock allowed key-share locks, this waited for its commit.
        event_id = await asyncio.wait_for(bench.record(), timeout=30)
    async with bench.engine.begin() as db:
        deliveries = (
            await db.execute(
                text("SELECT count(*) FROM webhook_deliveries WHERE event_id = :e"), {"e": event_id}
            )
        ).scalar_one()
    assert deliveries == 1
