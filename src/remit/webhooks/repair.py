"""The worker's repair of webhook deliveries left pending with no job that will attempt them.

A pending delivery normally always has a way forward: a job staged for its next attempt, a
parked row that a slot let go wakes (`remit.webhooks.parking`), or a slot leased to a job
making its attempt right now. Each is committed before, or in the same transaction as, the
removal of the one before it (a job parks its delivery or takes a slot in a transaction of its
own while it is still pending, and ends in the one that stages what comes next). Some
deliveries still end up with none: processes of the version before core migration 0050 running
beside newer ones (README, "Upgrading past core migration 0050"), or a job an operator deleted.
Such a delivery was never attempted again, and its event counted a pending webhook for good.

Every `INTERVAL_S`, in one worker copy at a time (`remit.worker.alone`), a run reads the pending
deliveries whose attempt fell due more than `MARGIN` ago, `BATCH` at a time by due time and id
(through the partial index of pending deliveries, core migration 0068), and stages the job of
the next attempt, in the delivery's generation, for each one that is not parked, holds no slot
still leased, has no pending job (one being run is pending too) and whose endpoint is enabled.
A delivery of a disabled endpoint is left as a disabled endpoint's deliveries are, and picked
up once it is enabled again. One of a deleted endpoint is ended instead, before the batches
are read (`remit.webhooks.deleted`): nothing will ever deliver it. One left so because its
jobs failed for good and failing it failed too, GIVE_UP_TRIES times already
(`WebhookDeliverer.give_up`), is left alone: another job would most likely end the same way,
hours later, again and again. It stays pending, its count and the latest reason on its row
(`give_up_failures`, `give_up_error`), each failure logged and said on its job (`remit jobs
failed`); a resend that succeeds ends it.

The check and the staging are one statement, so they read one snapshot, which therefore
shows the delivery with a way forward, or with none because it has none. The margin keeps the
repair away from deliveries whose job the core's clock and the database's disagree about. And a
job staged beside another for the same attempt, had both been staged, is harmless anyway: the
delivery's row and its single slot let only one of them POST (`WebhookDeliverer.handle`), and
the other finds the attempt made and ends.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage.fastsql import Statement
from remit.webhooks.deleted import end_deliveries_of_deleted
from remit.webhooks.domain import GIVE_UP_TRIES, DeliveryStatus, EndpointStatus
from remit.webhooks.outbox import DELIVER_JOB
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS, NOTIFY_CHANNEL

log = logging.getLogger(__name__)

TASK: Final = "webhooks-repair-deliveries-without-job"
INTERVAL_S: Final = 300.0
# Far longer than any gap between a delivery falling due and its job being claimed on a
# healthy worker, and than the skew between the core's clock and the database's.
MARGIN: Final = timedelta(minutes=10)
BATCH: Final = 500
# How many of the repaired deliveries a run's log line names.
NAMED: Final = 5
_START: Final = datetime.min.replace(tzinfo=UTC)

# One batch: the page of overdue pending deliveries after the cursor, those of them with no
# way forward, a job staged for each (as `remit.worker.jobs.stage_job` stages one, with the
# NOTIFY that wakes the workers), and where the page ended. Statuses are written out, not
# bound, so that every plan can use the partial index.
REPAIR_BATCH = Statement(
    f"""
    WITH page AS (
        SELECT d.id, d.account_id, d.endpoint_id, d.attempts, d.generation, d.next_attempt_at,
               d.give_up_failures
        FROM webhook_deliveries AS d
        WHERE d.status = '{DeliveryStatus.PENDING.value}'
          AND d.next_attempt_at < %(due_before)s
          AND (d.next_attempt_at, d.id) > (%(after_at)s, CAST(%(after_id)s AS bigint))
        ORDER BY d.next_attempt_at, d.id
        LIMIT %(batch)s
    ), with_job AS MATERIALIZED (
        -- One pass over the pending jobs (by the partial index of pending jobs) for the whole
        -- page, whatever plan the page's size suggests: jobs have no index by delivery.
        SELECT DISTINCT CAST(job.payload ->> 'delivery_id' AS bigint) AS delivery_id
        FROM jobs AS job
        WHERE job.status = 'pending' AND job.kind = %(job_kind)s
          AND CAST(job.payload ->> 'delivery_id' AS bigint) IN (SELECT id FROM page)
    ), stranded AS (
        SELECT page.id, page.account_id, page.attempts, page.generation
        FROM page JOIN webhook_endpoints AS endpoint ON endpoint.id = page.endpoint_id
        WHERE endpoint.status = '{EndpointStatus.ENABLED.value}'
          AND endpoint.deleted_at IS NULL
          AND page.give_up_failures < %(give_up_tries)s
          AND NOT EXISTS (SELECT 1 FROM webhook_parked AS parked
                          WHERE parked.delivery_id = page.id)
          AND NOT EXISTS (SELECT 1 FROM webhook_inflight AS slot
                          WHERE slot.delivery_id = page.id AND slot.leased_until > %(now)s)
          AND NOT EXISTS (SELECT 1 FROM with_job WHERE with_job.delivery_id = page.id)
    ), job AS (
        INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)
        SELECT %(job_kind)s,
               jsonb_build_object('delivery_id', stranded.id, 'attempt', stranded.attempts + 1,
                                  'generation', stranded.generation),
               stranded.account_id, %(now)s, %(max_attempts)s, %(now)s
        FROM stranded
        RETURNING kind, CAST(payload ->> 'delivery_id' AS bigint) AS delivery_id
    ), last AS (
        SELECT next_attempt_at, id FROM page ORDER BY next_attempt_at DESC, id DESC LIMIT 1
    )
    SELECT (SELECT count(*) FROM page) AS read,
           (SELECT next_attempt_at FROM last) AS last_at,
           (SELECT id FROM last) AS last_id,
           (SELECT coalesce(array_agg(delivery_id ORDER BY delivery_id), '{{}}') FROM job)
               AS repaired,
           (SELECT pg_notify(%(jobs_channel)s, job.kind) FROM job LIMIT 1) AS notified
    """  # noqa: S608 (no request text: the fragments are this module's own)
)


def batch_params(
    now: datetime, after_at: datetime = _START, after_id: int = 0, batch: int = BATCH
) -> dict[str, object]:
    """The parameters of one batch: the page after (`after_at`, `after_id`)."""
    return {
        "due_before": now - MARGIN,
        "after_at": after_at,
        "after_id": after_id,
        "batch": batch,
        "now": now,
        "job_kind": DELIVER_JOB,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "jobs_channel": NOTIFY_CHANNEL,
        "give_up_tries": GIVE_UP_TRIES,
    }


async def repair_deliveries_without_job(
    engine: AsyncEngine, *, now: datetime, batch: int = BATCH
) -> list[int]:
    """Stage a job for every pending delivery overdue by `MARGIN` with nothing that will
    attempt it, a transaction per batch; returns their ids and logs how many, once."""
    # A deleted endpoint's deliveries are ended, not repaired: its deletion's job ends them,
    # and what that left (or a deletion of an earlier version did) is ended here.
    await end_deliveries_of_deleted(engine, now=now)
    repaired: list[int] = []
    after_at, after_id = _START, 0
    while True:
        async with engine.begin() as db:
            row = await REPAIR_BATCH.first(db, batch_params(now, after_at, after_id, batch))
        assert row is not None
        repaired += [int(delivery_id) for delivery_id in row["repaired"]]
        if int(row["read"]) < batch:
            break
        after_at, after_id = row["last_at"], int(row["last_id"])
    if repaired:
        named = ", ".join(str(delivery_id) for delivery_id in repaired[:NAMED])
        more = f" and {len(repaired) - NAMED} more" if len(repaired) > NAMED else ""
        log.warning("staged a job for %d webhook deliveries left pending with none that would "
                    "attempt them (deliveries %s%s)", len(repaired), named, more)  # fmt: skip
    return repaired
