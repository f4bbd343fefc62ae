"""Deliveries waiting for a slot of their endpoint: parked with no job, each slot let go handed
to the oldest of them.

A delivery job that finds every slot of its endpoint taken parks its delivery (a row of
`webhook_parked`) and ends; nothing runs for it while it waits. Whatever lets a slot of the
endpoint go (an attempt recorded, a job given up, a wait for a pause, a woken job with nothing
left to do) hands it over in the same transaction: the endpoint's oldest parked delivery is
woken (its job staged) and the slot becomes that job's (a row of `webhook_inflight` naming the
job, leased as a slot taken is), so it is taken before the woken job has even run. A new
delivery that comes meanwhile finds the slot taken and parks behind the others: under constant
demand parked deliveries go oldest first, never overtaken by new ones. So a thousand
deliveries waiting on a busy endpoint cost nothing until a slot frees, then one job each.

No hand-over is lost to a race between a park and a slot let go. The parker, holding its
endpoint's slot-takers' lock, takes a key-share lock on every slot it found taken (a handed-
over one included) before it parks. Letting a slot go first locks it FOR UPDATE, which waits
for the parker's commit; the hand-over, a statement of its own run after that lock, reads a
snapshot that has the parked delivery in it. A slot let go before the parker locked it is
missing from what the parker locked: the parker takes the free slot instead
(`park_behind_taken_slots` says so).

A delivery is parked or in flight, never both. A job that goes on with its delivery's attempt
(takes a slot, or waits in a new job) unparks the delivery first: a job's park commits before
the job does, and the job runs again if its own transaction fails. A delivery that ends (fails,
or is delivered by a resend) is unparked too. A hand-over passes over a parked delivery that
holds a slot still leased, and never takes over such a slot: two jobs would POST one attempt at
once, and the endpoint would get one request more than its slots.

A slot whose lease ran out (its worker died, or a woken job was not run within the lease) is
handed to no one by itself: the periodic sweep hands each endpoint's free slots to its oldest
parked deliveries, one each (`hand_free_slots_to_parked`), counting under the endpoint's
slot-takers' lock so that two sweeps never hand out one slot twice. It also catches any
wake-up that went astray (a worker of an earlier version lets slots go without handing them
over). Only then can a new delivery find a slot free while others are parked, and take it.
"""

from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.storage import fastsql
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
# A parker's job unparked the delivery already, under the endpoint's lock every parker holds
# (`InflightRepository.try_acquire`), so it is found parked here only by a caller that did not:
# it keeps its place, and the attempt it is woken for is the parker's, which holds the
# delivery's row, read as it is now, until it commits.
_PARK = Statement(
    "INSERT INTO webhook_parked (delivery_id, endpoint_id, account_id, attempt, max_attempts,"
    " generation, due_at, parked_at)"
    " VALUES (%(delivery_id)s, %(endpoint_id)s, %(account_id)s, %(attempt)s, %(max_attempts)s,"
    " %(generation)s, %(due_at)s, %(now)s)"
    " ON CONFLICT (delivery_id) DO UPDATE"
    " SET attempt = EXCLUDED.attempt, max_attempts = EXCLUDED.max_attempts,"
    " generation = EXCLUDED.generation"
    " WHERE (webhook_parked.attempt, webhook_parked.generation)"
    " IS DISTINCT FROM (EXCLUDED.attempt, EXCLUDED.generation)"
)


def _hand_over(chosen: str, *, before: str = "") -> Statement:
    """Wake the parked deliveries `chosen` (a query of their delivery ids, locked FOR UPDATE
    SKIP LOCKED: two wakers never wake one delivery twice), staging the job of each as
    `remit.worker.jobs.stage_job` does, with the NOTIFY that wakes the workers, and give each
    woken job a slot of its delivery's endpoint, leased until `lease_until`. `before`: common
    table expressions `chosen` reads."""
    return Statement(
        f"""
        WITH {before}
        chosen AS ({chosen}),
        woken AS (
            DELETE FROM webhook_parked AS parked USING chosen
            WHERE parked.delivery_id = chosen.delivery_id
            RETURNING parked.delivery_id, parked.endpoint_id, parked.account_id,
                      parked.attempt, parked.max_attempts, parked.generation
        ), job AS (
            INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)
            SELECT %(job_kind)s,
                   jsonb_strip_nulls(jsonb_build_object(
                       'delivery_id', woken.delivery_id, 'attempt', woken.attempt,
                       'generation', woken.generation)),
                   woken.account_id, %(now)s, woken.max_attempts, %(now)s
            FROM woken
            RETURNING id, kind, CAST(payload ->> 'delivery_id' AS bigint) AS delivery_id
        ), slot AS (
            -- A slot of the delivery's whose lease ran out is the woken job's now. One still
            -- leased stays its job's: `chosen` passes over a delivery holding one, but a
            -- worker of an earlier version takes a slot without unparking its delivery
            -- (`InflightRepository.try_acquire`), and may commit one after `chosen` looked.
            INSERT INTO webhook_inflight (delivery_id, endpoint_id, leased_until, job_id)
            SELECT woken.delivery_id, woken.endpoint_id, %(lease_until)s, job.id
            FROM woken JOIN job ON job.delivery_id = woken.delivery_id
            ON CONFLICT (delivery_id) DO UPDATE
            SET leased_until = EXCLUDED.leased_until, job_id = EXCLUDED.job_id
            WHERE webhook_inflight.leased_until <= %(now)s
        )
        SELECT (SELECT count(*) FROM job) AS woken,
               (SELECT pg_notify(%(jobs_channel)s, job.kind) FROM job LIMIT 1) AS notified
        """  # noqa: S608 (no request text: the fragments are this module's own)
    )


# Deliveries to wake are parked ones holding no slot still leased. One that holds one is in
# flight: a job of it parked it while another job of it POSTs (a duplicate job), or took a slot
# without unparking it (a worker of an earlier version). That slot's job makes the attempt; a
# job woken for the delivery would take over the slot and POST the same attempt beside it. It is
# passed over, not unparked: the slot's job may be one of the delivery before a redelivery
# started it over, and the parked attempt still the one to make once that slot is let go.
_HOLDS_NO_SLOT: Final = """
    NOT EXISTS (SELECT 1 FROM webhook_inflight AS own
                WHERE own.delivery_id = parked.delivery_id AND own.leased_until > %(now)s)
"""


# The delivery's slot (held by job `job_id`, or by any job), locked against the key-share
# lock of a parker: letting it go waits for the park to commit.
_LOCK_SLOT: Final = "SELECT 1 FROM webhook_inflight WHERE delivery_id = %(delivery_id)s{held}"
_HELD_BY_JOB: Final = " AND job_id = %(job_id)s"
_LOCK_ANY_SLOT = Statement(_LOCK_SLOT.format(held="") + " FOR UPDATE")
_LOCK_JOBS_SLOT = Statement(_LOCK_SLOT.format(held=_HELD_BY_JOB) + " FOR UPDATE")


def _let_go(held: str) -> Statement:
    """The delivery's slot let go and, if its lease still ran, handed to its endpoint's oldest
    parked delivery (other than itself: a duplicate job of it may have parked it)."""
    return _hand_over(
        f"""
        SELECT parked.delivery_id FROM webhook_parked AS parked
        WHERE parked.endpoint_id = (SELECT endpoint_id FROM let_go WHERE still_leased)
          AND parked.delivery_id <> %(delivery_id)s
          AND {_HOLDS_NO_SLOT}
        ORDER BY parked.due_at, parked.delivery_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """,  # noqa: S608 (this module's own fragment)
        before=f"""
        let_go AS (
            DELETE FROM webhook_inflight WHERE delivery_id = %(delivery_id)s{held}
            RETURNING endpoint_id, leased_until > %(now)s AS still_leased
        ),
        """,  # noqa: S608 (this module's own fragment)
    )


_LET_GO_OF_ANY_SLOT = _let_go("")
_LET_GO_OF_JOBS_SLOT = _let_go(_HELD_BY_JOB)

# The endpoints that have parked deliveries, locked as slot-takers lock them
# (`remit.webhooks.repository.InflightRepository.try_acquire`), in one order, so that two
# sweeps never wait on each other's.
_LOCK_ENDPOINTS_WITH_PARKED = Statement(
    "SELECT id FROM webhook_endpoints"
    " WHERE id IN (SELECT endpoint_id FROM webhook_parked)"
    " ORDER BY id FOR NO KEY UPDATE"
)
# For each of those endpoints, as many of its oldest parked deliveries as it has slots free.
# Read after the lock: every slot taken or handed over before it is counted.
_HAND_FREE_SLOTS_TO_PARKED = _hand_over(
    f"""
    SELECT next.delivery_id
    FROM (
        SELECT endpoint_id,
               %(limit)s - (SELECT count(*) FROM webhook_inflight AS slot
                            WHERE slot.endpoint_id = locked.endpoint_id
                              AND slot.leased_until > %(now)s) AS free
        FROM unnest(CAST(%(endpoints)s AS text[])) AS locked (endpoint_id)
    ) AS room
    CROSS JOIN LATERAL (
        SELECT delivery_id FROM webhook_parked AS parked
        WHERE parked.endpoint_id = room.endpoint_id
          AND {_HOLDS_NO_SLOT}
        ORDER BY parked.due_at, parked.delivery_id
        LIMIT greatest(room.free, 0)
        FOR UPDATE SKIP LOCKED
    ) AS next
    """  # noqa: S608 (this module's own fragment)
)


def _hand_over_params(now: datetime, lease_until: datetime) -> dict[str, object]:
    return {
        "now": now,
        "lease_until": lease_until,
        "job_kind": DELIVER_JOB,
        "jobs_channel": NOTIFY_CHANNEL,
    }


async def park_behind_taken_slots(
    db: AsyncConnection,
    *,
    delivery_id: int,
    endpoint_id: str,
    account_id: str,
    attempt: int,
    generation: int,
    max_attempts: int,
    due_at: datetime,
    limit: int,
    now: datetime,
) -> bool:
    """Park the delivery if its endpoint's `limit` slots are all still taken by others; False
    if one was let go meanwhile (take it instead: no one would hand it to this delivery).

    Call it in the transaction that found every slot taken, after its endpoint's row was
    locked for slot-takers (`InflightRepository.try_acquire`), so no other slot is taken
    meanwhile: then the slots locked here are all those whose letting go could wake it."""
    params = {"endpoint_id": endpoint_id, "delivery_id": delivery_id, "now": now}
    if len(await _LOCK_TAKEN_SLOTS.rows(db, params)) < limit:
        return False
    await _PARK.run(
        db,
        {**params, "account_id": account_id, "attempt": attempt, "max_attempts": max_attempts,
         "generation": generation, "due_at": due_at},
    )  # fmt: skip
    return True


async def let_slot_go(
    db: AsyncConnection,
    delivery_id: int,
    *,
    now: datetime,
    lease_until: datetime,
    job_id: int | None = None,
) -> None:
    """Let the delivery's slot go (only if job `job_id` holds it, when given) and, if its lease
    still ran, hand it to the endpoint's oldest parked delivery, whose woken job holds it
    until `lease_until`. A slot whose lease ran out may have been counted free and taken
    already: it is handed to no one.

    Deferred (`remit.storage.fastsql`): in a `deferring` block both statements go out with the
    next statement that needs an answer, in order; the hand-over, a statement of its own, reads
    what committed while the lock before it waited."""
    params = {**_hand_over_params(now, lease_until), "delivery_id": delivery_id}
    if job_id is None:
        await _LOCK_ANY_SLOT.defer(db, params)
        await _LET_GO_OF_ANY_SLOT.defer(db, params)
        return
    params["job_id"] = job_id
    await _LOCK_JOBS_SLOT.defer(db, params)
    await _LET_GO_OF_JOBS_SLOT.defer(db, params)


async def let_jobs_slot_go_now(
    db: AsyncConnection, delivery_id: int, job_id: int, *, now: datetime, lease_until: datetime
) -> None:
    """`let_slot_go` for the slot job `job_id` holds, sent at once in one round trip."""
    async with fastsql.deferring(db):
        await let_slot_go(db, delivery_id, now=now, lease_until=lease_until, job_id=job_id)


async def hand_free_slots_to_parked(
    db: AsyncConnection, *, limit: int, now: datetime, lease_until: datetime
) -> int:
    """Hand every free slot (of `limit` per endpoint, leases run out counting as free) to its
    endpoint's oldest parked deliveries, one each, woken with it until `lease_until`; returns
    how many were woken. Slots handed over already, whose woken jobs have not run yet, are
    taken, not free.

    It holds, until the caller's transaction ends, the slot-takers' lock of every endpoint
    with parked deliveries: call it in a transaction of its own."""
    locked = await _LOCK_ENDPOINTS_WITH_PARKED.rows(db, {})
    if not locked:
        return 0
    row = await _HAND_FREE_SLOTS_TO_PARKED.first(
        db,
        {
            **_hand_over_params(now, lease_until),
            "limit": limit,
            "endpoints": [found["id"] for found in locked],
        },
    )
    assert row is not None
    return int(row["woken"])
