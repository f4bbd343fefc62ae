"""The events outbox: how every other service records an event.

`record_event` runs inside the caller's own transaction, next to the state change that causes
the event: the event row and one delivery job per subscribed endpoint commit together with that
change or not at all, so no event is lost and none describes a change that was rolled back.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.ids import new_id
from remit.storage.fastsql import Statement
from remit.webhooks.domain import DeliveryStatus, EndpointStatus
from remit.webhooks.event_types import ALL_EVENTS, EVENT_TYPES
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS, NOTIFY_CHANNEL, stage_job

DELIVER_JOB: Final = "webhooks.deliver"
# Wakes `remit listen` streams in the core process when an event commits.
EVENTS_CHANNEL: Final = "remit_events"

# One statement per event: the event; a pending delivery for every enabled endpoint of the
# account subscribed to its type (`enabled_events` holds the type or "*"); the first attempt of
# each as a job, staged as `stage_job` stages one; and the NOTIFYs that wake `remit listen`
# and, when a job was staged, the workers. The endpoints are read by this statement, so an
# endpoint whose creation committed before the event is recorded gets a delivery. The deliveries
# reference the event inserted by the same statement: foreign keys are checked at its end.
# The event's `seq` is the column's default, drawn from its sequence as the row is inserted: the
# events a transaction records, all stamped with one instant, are ordered as they were recorded
# (core migration 0087), as their delivery jobs are (by id, after their shared run_at).
# Every payment records several events, so it goes straight to the driver (remit.storage.fastsql).
_RECORD_EVENT = Statement(
    """
    WITH event AS (
        INSERT INTO events (id, account_id, type, created_at, livemode, data_object,
                            previous_attributes, request_id, idempotency_key, api_version)
        VALUES (%(id)s, %(account_id)s, %(type)s, %(now)s, %(livemode)s, %(data_object)s,
                %(previous_attributes)s, %(request_id)s, %(idempotency_key)s,
                (SELECT a.api_version FROM accounts AS a WHERE a.id = %(account_id)s))
        RETURNING id
    ), delivery AS (
        INSERT INTO webhook_deliveries (account_id, event_id, endpoint_id, status, attempts,
                                        first_attempt_at, next_attempt_at)
        SELECT %(account_id)s, event.id, endpoint.id, %(pending)s, 0, %(now)s, %(now)s
        FROM event CROSS JOIN webhook_endpoints AS endpoint
        WHERE endpoint.account_id = %(account_id)s
          AND endpoint.status = %(enabled)s
          AND endpoint.deleted_at IS NULL
          AND endpoint.enabled_events ?| CAST(ARRAY[%(all_events)s, %(type)s] AS text[])
        RETURNING id, generation
    ), job AS (
        INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)
        SELECT %(job_kind)s,
               jsonb_build_object('delivery_id', delivery.id, 'attempt', 1,
                                  'generation', delivery.generation),
               %(account_id)s, %(now)s, %(max_attempts)s, %(now)s
        FROM delivery
        RETURNING kind
    )
    SELECT pg_notify(%(events_channel)s, %(account_id)s) AS events_notified,
           (SELECT pg_notify(%(jobs_channel)s, job.kind) FROM job LIMIT 1) AS jobs_notified
    """,
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
    deliveries; returns the event id. Commit is the caller's."""
    if type not in EVENT_TYPES:
        raise ValueError(f"remit does not emit events of type {type!r}")
    if not isinstance(data_object.get("object"), str):
        raise ValueError("data_object must be a resource's JSON, with its `object` key")
    event_id = new_id("evt")
    await _RECORD_EVENT.defer(
        db,
        {
            "id": event_id,
            "account_id": account_id,
            "type": type,
            "now": now,
            "livemode": livemode,
            "data_object": dict(data_object),
            "previous_attributes": None
            if previous_attributes is None
            else dict(previous_attributes),
            "request_id": request_id,
            "idempotency_key": idempotency_key,
            "pending": DeliveryStatus.PENDING.value,
            "enabled": EndpointStatus.ENABLED.value,
            "all_events": ALL_EVENTS,
            "job_kind": DELIVER_JOB,
            "max_attempts": DEFAULT_MAX_ATTEMPTS,
            "events_channel": EVENTS_CHANNEL,
            "jobs_channel": NOTIFY_CHANNEL,
        },
    )
    return event_id


async def stage_delivery_attempt(
    db: AsyncConnection,
    delivery_id: int,
    attempt_number: int,
    *,
    generation: int,
    account_id: str,
    now: datetime,
    run_at: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> None:
    """The job of attempt `attempt_number` of the delivery's `generation`."""
    await stage_job(
        db,
        DELIVER_JOB,
        {"delivery_id": delivery_id, "attempt": attempt_number, "generation": generation},
        now=now,
        run_at=run_at,
        account_id=account_id,
        max_attempts=max_attempts,
    )


# Redelivery of events to one endpoint, in one statement: a fresh pending delivery for each
# event (attempt 1 next, its retry window starting now), a failed one started over in its next
# generation; and the first attempt of each as a job, staged as `_RECORD_EVENT` stages them.
# A delivery that is pending or has succeeded (another redelivery queued it since it was
# chosen) is left alone and gets no job: each event is queued once however many redeliveries
# run at once.
_QUEUE_AGAIN = Statement(
    """
    WITH delivery AS (
        INSERT INTO webhook_deliveries (account_id, event_id, endpoint_id, status, attempts,
                                        retry_step, first_attempt_at, next_attempt_at)
        SELECT %(account_id)s, event_id, %(endpoint_id)s, %(pending)s, 0, 0, %(now)s, %(now)s
        FROM unnest(CAST(%(event_ids)s AS text[])) AS event_id
        ON CONFLICT (event_id, endpoint_id) DO UPDATE
        SET status = EXCLUDED.status, attempts = 0, retry_step = 0,
            first_attempt_at = EXCLUDED.first_attempt_at,
            next_attempt_at = EXCLUDED.next_attempt_at, finished_at = NULL,
            generation = webhook_deliveries.generation + 1,
            give_up_failures = 0, give_up_error = NULL
        WHERE webhook_deliveries.status = %(failed)s
        RETURNING id, generation
    ), job AS (
        INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)
        SELECT %(job_kind)s,
               jsonb_build_object('delivery_id', delivery.id, 'attempt', 1,
                                  'generation', delivery.generation),
               %(account_id)s, %(now)s, %(max_attempts)s, %(now)s
        FROM delivery
        RETURNING kind
    )
    SELECT (SELECT count(*) FROM job) AS queued,
           (SELECT pg_notify(%(jobs_channel)s, job.kind) FROM job LIMIT 1) AS jobs_notified
    """
)


async def queue_again(
    db: AsyncConnection,
    *,
    account_id: str,
    endpoint_id: str,
    event_ids: Sequence[str],
    now: datetime,
) -> int:
    """Queue the events for delivery to the endpoint again, each from its first attempt,
    unless its delivery is pending or has succeeded; returns how many were queued. The events
    must be the account's: the caller chose them. Commit is the caller's."""
    if not event_ids:
        return 0
    row = await _QUEUE_AGAIN.first(
        db,
        {
            "account_id": account_id,
            "endpoint_id": endpoint_id,
            "event_ids": list(event_ids),
            "now": now,
            "pending": DeliveryStatus.PENDING.value,
            "failed": DeliveryStatus.FAILED.value,
            "job_kind": DELIVER_JOB,
            "max_attempts": DEFAULT_MAX_ATTEMPTS,
            "jobs_channel": NOTIFY_CHANNEL,
        },
    )
    assert row is not None
    return int(row["queued"])
