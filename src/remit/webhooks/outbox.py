"""The events outbox: how every other service records an event.

`record_event` runs inside the caller's own transaction, next to the state change that causes
the event: the event row and one delivery job per subscribed endpoint commit together with that
change or not at all, so no event is lost and none describes a change that was rolled back.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.ids import new_id
from remit.storage.fastsql import RowsStatement
from remit.webhooks.domain import DeliveryStatus, EndpointStatus
from remit.webhooks.event_types import ALL_EVENTS, EVENT_TYPES
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS, NOTIFY_CHANNEL, stage_job

DELIVER_JOB: Final = "webhooks.deliver"
# Wakes `remit listen` streams in the core process when an event commits.
EVENTS_CHANNEL: Final = "remit_events"

# One statement for the events a unit records one after the other (`RowsStatement`: a payment's
# outcome records charge.succeeded and then payment_intent.succeeded), in the order recorded:
# the events; for each, a pending delivery for every enabled endpoint of its account subscribed
# to its type (`enabled_events` holds the type or "*"); the first attempt of each as a job,
# staged as `stage_job` stages one; and the NOTIFYs that wake `remit listen`, once per account,
# and, when a job was staged, the workers. The endpoints are read by this statement, so an
# endpoint whose creation committed before the events are recorded gets its deliveries. The
# deliveries reference the events inserted by the same statement: foreign keys are checked at
# its end. Every payment records several events, so it goes straight to the driver
# (remit.storage.fastsql).
_RECORD_EVENTS = RowsStatement(
    """
    WITH given AS (
        SELECT *
        FROM unnest(CAST(%(id)s AS text[]), CAST(%(account_id)s AS text[]),
                    CAST(%(type)s AS text[]), CAST(%(created_at)s AS timestamptz[]),
                    CAST(%(livemode)s AS boolean[]), CAST(%(data_object)s AS jsonb[]),
                    CAST(%(previous_attributes)s AS jsonb[]), CAST(%(request_id)s AS text[]),
                    CAST(%(idempotency_key)s AS text[]))
             WITH ORDINALITY
             AS given (id, account_id, type, created_at, livemode, data_object,
                       previous_attributes, request_id, idempotency_key, position)
    ), event AS (
        INSERT INTO events (id, account_id, type, created_at, livemode, data_object,
                            previous_attributes, request_id, idempotency_key, api_version)
        SELECT given.id, given.account_id, given.type, given.created_at, given.livemode,
               given.data_object, given.previous_attributes, given.request_id,
               given.idempotency_key, account.api_version
        FROM given LEFT JOIN accounts AS account ON account.id = given.account_id
        ORDER BY given.position
        RETURNING id, account_id
    ), delivery AS (
        INSERT INTO webhook_deliveries (account_id, event_id, endpoint_id, status, attempts,
                                        first_attempt_at, next_attempt_at)
        SELECT given.account_id, event.id, endpoint.id, %(pending)s, 0, given.created_at,
               given.created_at
        FROM event
        JOIN given ON given.id = event.id
        JOIN webhook_endpoints AS endpoint ON endpoint.account_id = given.account_id
        WHERE endpoint.status = %(enabled)s
          AND endpoint.deleted_at IS NULL
          AND endpoint.enabled_events ?| ARRAY[CAST(%(all_events)s AS text), given.type]
        -- An earlier event's deliveries (and so their jobs) come first, as when each event
        -- was a statement of its own.
        ORDER BY given.position, endpoint.id
        RETURNING id, account_id, first_attempt_at
    ), job AS (
        INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)
        SELECT %(job_kind)s, jsonb_build_object('delivery_id', delivery.id, 'attempt', 1),
               delivery.account_id, delivery.first_attempt_at, %(max_attempts)s,
               delivery.first_attempt_at
        FROM delivery
        ORDER BY delivery.id
        RETURNING kind
    )
    SELECT pg_notify(%(events_channel)s, involved.account_id)
    FROM (SELECT DISTINCT account_id FROM event) AS involved
    UNION ALL
    SELECT pg_notify(%(jobs_channel)s, staged.kind)
    FROM (SELECT kind FROM job LIMIT 1) AS staged
    """,
    (
        "id",
        "account_id",
        "type",
        "created_at",
        "livemode",
        "data_object",
        "previous_attributes",
        "request_id",
        "idempotency_key",
    ),
    shared={
        "pending": DeliveryStatus.PENDING.value,
        "enabled": EndpointStatus.ENABLED.value,
        "all_events": ALL_EVENTS,
        "job_kind": DELIVER_JOB,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "events_channel": EVENTS_CHANNEL,
        "jobs_channel": NOTIFY_CHANNEL,
    },
    json=frozenset({"data_object", "previous_attributes"}),
)


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
    deliveries; returns the event id. Commit is the caller's. Inside a `fastsql.deferring`
    block the write is held, and events recorded one after the other are written together."""
    if type not in EVENT_TYPES:
        raise ValueError(f"remit does not emit events of type {type!r}")
    if not isinstance(data_object.get("object"), str):
        raise ValueError("data_object must be a resource's JSON, with its `object` key")
    event_id = new_id("evt")
    await _RECORD_EVENTS.defer_row(
        db,
        {
            "id": event_id,
            "account_id": account_id,
            "type": type,
            "created_at": now,
            "livemode": livemode,
            "data_object": dict(data_object),
            "previous_attributes": None
            if previous_attributes is None
            else dict(previous_attributes),
            "request_id": request_id,
            "idempotency_key": idempotency_key,
        },
    )
    return event_id


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
