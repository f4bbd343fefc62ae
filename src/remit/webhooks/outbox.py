"""The events outbox: how every other service records an event.

`record_event` runs inside the caller's own transaction, next to the state change that causes
the event: the event row and one delivery job per subscribed endpoint commit together with that
change or not at all, so no event is lost and none describes a change that was rolled back.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.ids import new_id
from remit.core.jsonview import JsonObject
from remit.webhooks.domain import Event
from remit.webhooks.event_types import EVENT_TYPES, endpoint_wants
from remit.webhooks.repository import DeliveryRepository, EndpointRepository, EventRepository
from remit.worker.jobs import stage_job

DELIVER_JOB: Final = "webhooks.deliver"
# Wakes `remit listen` streams in the core process when an event commits.
EVENTS_CHANNEL: Final = "remit_events"


async def record_event(
    db: AsyncConnection,
    *,
    account_id: str,
    type: str,
    data_object: Mapping[str, object],
    now: datetime,
    previous_attributes: Mapping[str, object] | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    livemode: bool = False,
) -> str:
    """Insert an event (`evt_...`) holding `data_object` at the latest schema, and stage its
    deliveries; returns the event id. Commit is the caller's."""
    if type not in EVENT_TYPES:
        raise ValueError(f"remit does not emit events of type {type!r}")
    if not isinstance(data_object.get("object"), str):
        raise ValueError("data_object must be a resource's JSON, with its `object` key")
    event = Event(
        id=new_id("evt"),
        account_id=account_id,
        type=type,
        created_at=now,
        livemode=livemode,
        data_object=_json_object(data_object),
        previous_attributes=None
        if previous_attributes is None
        else _json_object(previous_attributes),
        request_id=request_id,
        idempotency_key=idempotency_key,
    )
    await EventRepository(db).insert(event)
    deliveries = DeliveryRepository(db)
    for endpoint in await EndpointRepository(db).enabled_for(account_id):
        if endpoint_wants(endpoint.enabled_events, type):
            delivery_id = await deliveries.insert(
                account_id=account_id, event_id=event.id, endpoint_id=endpoint.id, now=now
            )
            await stage_delivery_attempt(db, delivery_id, 1, account_id=account_id, now=now)
    await db.execute(
        text("SELECT pg_notify(:channel, :account)"),
        {"channel": EVENTS_CHANNEL, "account": account_id},
    )
    return event.id


async def stage_delivery_attempt(
    db: AsyncConnection,
    delivery_id: int,
    attempt_number: int,
    *,
    account_id: str,
    now: datetime,
    run_at: datetime | None = None,
) -> None:
    await stage_job(
        db,
        DELIVER_JOB,
        {"delivery_id": delivery_id, "attempt": attempt_number},
        now=now,
        run_at=run_at,
        account_id=account_id,
    )


def _json_object(value: Mapping[str, object]) -> JsonObject:
    return dict(value)  # type: ignore[arg-type]
