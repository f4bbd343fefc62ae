"""Deliveries waiting for a slot of their endpoint: parked with no job, woken one per slot let go.

A delivery job that finds every slot of its endpoint taken parks its delivery (a row of
`webhook_parked`) and ends; nothing runs for it while it waits. Whatever lets a slot of the
endpoint go (an attempt recorded, a job given up, a wait for a pause) wakes the endpoint's
oldest parked delivery in the same transaction, by staging its job. So a thousand deliveries
waiting on a busy endpoint cost nothing until a slot frees, then one job each.

No wake-up is lost to a race between a park and a slot let go. The parker, holding its
endpoint's slot-takers' lock, takes a key-share lock on every slot it found taken before it
parks: a slot-holder letting its slot go (a DELETE) waits for the parker's commit, and its
wake-up, a statement of its own run after that DELETE, reads a snapshot that has the parked
delivery in it. A slot let go before the parker locked it is missing from what the parker
locked: the parker takes the free slot instead (`park_behind_taken_slots` says so).

A slot let go by its lease running out (its worker died) wakes no one by itself: the periodic
sweep wakes, for each endpoint, as many parked deliveries as it has slots free
(`wake_where_slots_are_free`), and catches any wake-up that went astray (a worker of an
earlier version lets slots go without waking anyone). A woken delivery that finds the
endpoint busy again (a new delivery took the slot first) parks again, in its old place.
"""

from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.storage.fastsql import Statement
from remit.webhooks.outbox import DELIVER_JOB
from remit.worker.jobs import NOTIFY_CHANNEL

# Every slot of the endpoint still taken by another delivery, each locked against being let
# go (a DELETE) until this transaction ends. FOR KEY SHARE is the weakest lock a DELETE waits
# for.
_LOCK_TAKEN_SLOTS = Statement(
    "SELECT delivery_id FROM webhook_inflight"
    " WHERE endpoint_id = %(endpoint_id)s AND leased_until > %(now)s"
    " AND delivery_id <> %(delivery_id)s"
    " FOR KEY SHARE"
)
# A delivery parked already (a duplicate job of it parked first) keeps its place.
_PARK = Statement(
    "INSERT INTO webhook_parked (delivery_id, endpoint_id, account_id, attempt, max_attempts,"
    " due_at, parked_at)"
    " VALUES (%(delivery_id)s, %(endpoint_id)s, %(account_id)s, %(attempt)s, %(max_attempts)s,"
    " %(due_at)s, %(now)s)"
    " ON CONFLICT (delivery_id) DO NOTHING"
)


def _wake(chosen: str) -> Statement:
    """Wake the parked deliveries `chosen` (a query of their delivery ids, locked FOR UPDATE
    SKIP LOCKED: two wakers never wake one delivery twice), staging the job of each as
    `remit.worker.jobs.stage_job` does, with the NOTIFY that wakes the workers."""
    return Statement(
        f"""
        WITH chosen AS ({chosen}),
        woken AS (
            DELETE FROM webhook_parked AS parked USING chosen
            WHERE parked.delivery_id = chosen.delivery_id
            RETURNING parked.delivery_id, parked.account_id, parked.attempt, parked.max_attempts
        ), job AS (
            INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)
            SELECT %(job_kind)s,
                   jsonb_build_object('delivery_id', woken.delivery_id, 'attempt', woken.attempt),
                   woken.account_id, %(now)s, woken.max_attempts, %(now)s
            FROM woken
            RETURNING kind
        )
        SELECT (SELECT count(*) FROM job) AS woken,
               (SELECT pg_notify(%(jobs_channel)s, job.kind) FROM job LIMIT 1) AS notified
        """  # noqa: S608 (no request text: the fragments are this module's own)
    )


_OLDEST_OF_ENDPOINT: Final = (
    "SELECT delivery_id FROM webhook_parked WHERE endpoint_id = {endpoint}"
    " ORDER BY due_at, delivery_id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_WAKE_NEXT = _wake(_OLDEST_OF_ENDPOINT.format(endpoint="%(endpoint_id)s"))
_WAKE_NEXT_OF_DELIVERYS_ENDPOINT = _wake(
    _OLDEST_OF_ENDPOINT.format(
        endpoint="(SELECT endpoint_id FROM webhook_deliveries WHERE id = %(delivery_id)s)"
    )
)
# For each endpoint with parked deliveries, as many of its oldest as it has slots free.
_WAKE_WHERE_SLOTS_ARE_FREE = _wake(
    """
    SELECT next.delivery_id
    FROM (
        SELECT endpoints.endpoint_id,
               %(limit)s - (SELECT count(*) FROM webhook_inflight AS slot
                            WHERE slot.endpoint_id = endpoints.endpoint_id
                              AND slot.leased_until > %(now)s) AS free
        FROM (SELECT DISTINCT endpoint_id FROM webhook_parked) AS endpoints
    ) AS room
    CROSS JOIN LATERAL (
        SELECT delivery_id FROM webhook_parked AS parked
        WHERE parked.endpoint_id = room.endpoint_id
        ORDER BY parked.due_at, parked.delivery_id
        LIMIT greatest(room.free, 0)
        FOR UPDATE SKIP LOCKED
    ) AS next
    """
)


def _wake_params(now: datetime) -> dict[str, object]:
    return {"now": now, "job_kind": DELIVER_JOB, "jobs_channel": NOTIFY_CHANNEL}


async def park_behind_taken_slots(
    db: AsyncConnection,
    *,
    delivery_id: int,
    endpoint_id: str,
    account_id: str,
    attempt: int,
    max_attempts: int,
    due_at: datetime,
    limit: int,
    now: datetime,
) -> bool:
    """Park the delivery if its endpoint's `limit` slots are all still taken by others; False
    if one was let go meanwhile (take it instead: no one would wake this delivery for it).

    Call it in the transaction that found every slot taken, after its endpoint's row was
    locked for slot-takers (`InflightRepository.try_acquire`), so no other slot is taken
    meanwhile: then the slots locked here are all those whose letting go could wake it."""
    params = {"endpoint_id": endpoint_id, "delivery_id": delivery_id, "now": now}
    if len(await _LOCK_TAKEN_SLOTS.rows(db, params)) < limit:
        return False
    await _PARK.run(
        db,
        {**params, "account_id": account_id, "attempt": attempt, "max_attempts": max_attempts,
         "due_at": due_at},
    )  # fmt: skip
    return True


async def wake_next(db: AsyncConnection, endpoint_id: str, now: datetime) -> None:
    """Wake the endpoint's oldest parked delivery, if any: call it once a slot of the endpoint
    has been let go (or the waker was woken for one it will not use), in the same transaction.

    Deferred (`remit.storage.fastsql`): in a `deferring` block it goes out with the next
    statement that needs an answer, after the slot's DELETE; being a statement of its own, it
    reads what committed while that DELETE waited."""
    await _WAKE_NEXT.defer(db, {**_wake_params(now), "endpoint_id": endpoint_id})


async def wake_next_of_deliverys_endpoint(
    db: AsyncConnection, delivery_id: int, now: datetime
) -> None:
    """`wake_next` for the endpoint of delivery `delivery_id`."""
    await _WAKE_NEXT_OF_DELIVERYS_ENDPOINT.defer(
        db, {**_wake_params(now), "delivery_id": delivery_id}
    )


async def wake_where_slots_are_free(db: AsyncConnection, *, limit: int, now: datetime) -> int:
    """Wake, for every endpoint, as many parked deliveries as it has slots free (of `limit`,
    leases run out counting as free); returns how many were woken. Deliveries woken by a
    slot let go whose jobs have not run yet are not known here: a sweep may wake more than
    will find a slot, and those park again."""
    row = await _WAKE_WHERE_SLOTS_ARE_FREE.first(db, {**_wake_params(now), "limit": limit})
    assert row is not None
    return int(row["woken"])
