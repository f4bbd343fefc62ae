"""Ending the unfinished deliveries of a deleted endpoint.

Nothing delivers to a deleted endpoint: a delivery job that finds its endpoint deleted fails its
delivery without a POST (`WebhookDeliverer.handle`), and the repair stages no job for one
(`remit.webhooks.repair`). Left at that, a delivery parked for a slot, or left with no job, or
backing off for hours, stayed pending until its event was purged 30 days later, and its event
counted it in `pending_webhooks` all that time. So the deletion ends them: each pending
delivery of the endpoint fails (`failed`, as a delivery whose job finds its endpoint deleted or
disabled does; deliveries of a deleted endpoint can be neither resent nor redelivered, so no
status of their own is needed to tell them apart), shows no retry to come, is parked no more,
and its queued jobs are removed in the same transaction: each would only have found it ended
once due (hours on, for a retry backing off), and stopped, the queue holding it until then.

Not in the delete's transaction: an endpoint can have very many pending deliveries (one
subscribed to every event of a busy account, failing for the three days it takes to be
disabled, then disabled with every delivery that has no job still pending), and one statement
ending them all would hold every one of their rows, and the delete's request, for as long as
that takes. The delete stages a job instead, in its transaction (`stage_ending`), that ends
them `BATCH` at a time, one transaction each (each job stages the next while it finds a whole
batch). The repair's periodic run ends what is left of any deleted endpoint's (endpoints deleted
before this job existed, or a delivery a job's batch passed over): `end_deliveries_of_deleted`.

A job of such a delivery already running (POSTing when the endpoint was deleted) records its
attempt; recorded after the delivery was ended, it moves nothing on: an attempt moves on only
a delivery still pending at that attempt (`record_attempt`). Recorded before, it moves it on
as any attempt does, and the delivery is ended after, the retry's job it staged removed with
the others. A job claimed before its removal finds the delivery ended and stops, so nothing
POSTs to the endpoint once its delete and that job have committed. Slots of the endpoint are
let go by the jobs that hold them, or expire with their lease.
"""

import logging
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock
from remit.storage.fastsql import Statement
from remit.webhooks.domain import DeliveryStatus
from remit.webhooks.outbox import DELIVER_JOB
from remit.worker.jobs import Job, stage_job
from remit.worker.runner import AfterCommit

log = logging.getLogger(__name__)

END_JOB: Final = "webhooks.end_deleted_endpoint_deliveries"
BATCH: Final = 1000


# One batch: the pending deliveries of deleted endpoints (of one, with `_END_ENDPOINT_BATCH`),
# locked in id order so that two batches never wait on each other's rows; each failed, with the
# retry its attempts show forgotten (as `DeliveryRepository.forget_retries_to_come` forgets it),
# parked no more; its queued jobs are removed after (`_UNQUEUE`). FOR NO KEY UPDATE: an attempt
# being inserted (its key-share lock on the delivery) is not waited for. A row that changed
# while this waited for its lock is read again, and passed over if it is no longer pending.
#
# Two statements, not one with an optional endpoint: once prepared (psycopg prepares a statement
# run five times), a generic plan for `(endpoint IS NULL OR endpoint = ...)` cannot use the
# index of pending deliveries by endpoint and id, and would read every pending delivery on each
# batch of one endpoint's job. That index (core migration 0075) holds them in the id order they
# are locked in, so a batch reads about as many as it ends; through the index by endpoint and
# status, each batch read and sorted all of the endpoint's left.
def _end_batch(endpoint_filter: str) -> Statement:
    return Statement(
        f"""
        WITH doomed AS (
            SELECT delivery.id
            FROM webhook_deliveries AS delivery
            JOIN webhook_endpoints AS endpoint ON endpoint.id = delivery.endpoint_id
            WHERE delivery.status = '{DeliveryStatus.PENDING.value}'
              AND endpoint.deleted_at IS NOT NULL{endpoint_filter}
            ORDER BY delivery.id
            LIMIT %(batch)s
            FOR NO KEY UPDATE OF delivery
        ), ended AS (
            UPDATE webhook_deliveries AS delivery
            SET status = '{DeliveryStatus.FAILED.value}', next_attempt_at = NULL,
                finished_at = %(now)s
            FROM doomed
            WHERE delivery.id = doomed.id AND delivery.status = '{DeliveryStatus.PENDING.value}'
            RETURNING delivery.id, delivery.last_attempt_at
        ), forgotten AS (
            UPDATE webhook_delivery_attempts AS attempt SET next_retry_at = NULL
            FROM ended
            WHERE attempt.delivery_id = ended.id
              AND attempt.next_retry_at > coalesce(ended.last_attempt_at, '-infinity')
        ), unparked AS (
            DELETE FROM webhook_parked AS parked USING ended WHERE parked.delivery_id = ended.id
        )
        SELECT CAST(coalesce(array_agg(id), '{{}}') AS text[]) AS ended FROM ended
        """  # noqa: S608 (no request text: the fragments are this module's own)
    )


# The queued jobs of the deliveries a batch ended (`ids`), each of which would only find its
# delivery ended once due (hours on, for a retry backing off) and stop. A statement of its own,
# after the batch's: its snapshot, taken once the batch had its locks, has every job staged by
# an attempt recorded while the batch waited for its delivery's row (a recording after it finds
# the delivery ended, and stages none). One pass over the pending jobs (by the partial index of
# pending jobs) for the whole batch: jobs have no index by delivery. A job being run (its
# claim's lease still running) is left to end itself: it may be POSTing, and records its
# attempt. One claimed while this waited for its row is read again, and passed over.
_UNQUEUE = Statement(
    "DELETE FROM jobs WHERE status = 'pending' AND kind = %(job_kind)s"
    " AND payload ->> 'delivery_id' = ANY(CAST(%(ids)s AS text[]))"
    " AND (locked_until IS NULL OR locked_until < now())"
)

# Those of every deleted endpoint (the repair's).
_END_BATCH = _end_batch("")
# Those of one endpoint (its job's), through the index of pending deliveries by endpoint and id.
_END_ENDPOINT_BATCH = _end_batch("\n              AND delivery.endpoint_id = %(endpoint_id)s")

# Through the index of deliveries by endpoint and status.
_HAS_PENDING = Statement(
    "SELECT 1 FROM webhook_deliveries WHERE endpoint_id = %(endpoint_id)s"
    " AND status = 'pending' LIMIT 1"
)


async def end_batch(
    db: AsyncConnection, *, now: datetime, endpoint_id: str | None = None, batch: int = BATCH
) -> int:
    """End at most `batch` pending deliveries of deleted endpoints (of `endpoint_id` only, when
    given), and remove their queued jobs, in the caller's transaction; returns how many."""
    params = {"now": now, "batch": batch}
    if endpoint_id is None:
        row = await _END_BATCH.first(db, params)
    else:
        row = await _END_ENDPOINT_BATCH.first(db, {**params, "endpoint_id": endpoint_id})
    assert row is not None
    ended: list[str] = row["ended"]
    if ended:
        await _UNQUEUE.run(db, {"job_kind": DELIVER_JOB, "ids": ended})
    return len(ended)


async def stage_ending(
    db: AsyncConnection, *, endpoint_id: str, account_id: str, now: datetime
) -> None:
    """Stage the job that ends the deleted endpoint's pending deliveries, in the transaction
    that deletes it; none if it has none (most endpoints deleted are idle). A delivery added
    by an event recorded as the endpoint is deleted, whose transaction read the endpoint
    before the delete committed, is not seen here: its own job ends it, finding the endpoint
    deleted (`WebhookDeliverer.handle`)."""
    if await _HAS_PENDING.first(db, {"endpoint_id": endpoint_id}) is not None:
        await stage_job(db, END_JOB, {"endpoint_id": endpoint_id}, now=now, account_id=account_id)


class EndingHandler:
    """The `END_JOB` handler: one batch in the job's transaction, and the job of the next batch
    staged in it while this one found a whole batch."""

    def __init__(self, clock: Clock, *, batch: int = BATCH) -> None:
        self._clock, self._batch = clock, batch

    async def __call__(self, db: AsyncConnection, job: Job) -> AfterCommit | None:
        endpoint_id = str(job.payload["endpoint_id"])
        now = self._clock.now()
        ended = await end_batch(db, now=now, endpoint_id=endpoint_id, batch=self._batch)
        if ended == self._batch:
            await stage_job(db, END_JOB, {"endpoint_id": endpoint_id}, now=now,
                            account_id=job.account_id)  # fmt: skip
        if not ended:
            return None

        def notice() -> None:
            log.info("ended %d pending deliveries of deleted webhook endpoint %s", ended,
                     endpoint_id)  # fmt: skip

        return notice


async def end_deliveries_of_deleted(
    engine: AsyncEngine, *, now: datetime, batch: int = BATCH
) -> int:
    """End every pending delivery of every deleted endpoint, a transaction per batch; returns
    how many. Said in the log when any were found: the job staged by each deletion ends them,
    so this finds only what it left (or what a deletion of an earlier version did)."""
    total = 0
    while True:
        async with engine.begin() as db:
            ended = await end_batch(db, now=now, batch=batch)
        total += ended
        if ended < batch:
            break
    if total:
        log.warning("ended %d pending deliveries of deleted webhook endpoints", total)
    return total
