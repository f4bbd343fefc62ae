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
(`WebhookDeliverer.give_up`), gets no job: another would most likely end the same way, hours
later, again and again. The repair fails it instead, as the give-up would have (no retry to
come; its count and the latest reason stay on its row, `give_up_failures` and `give_up_error`),
in the same statement, under the same conditions: not parked, no slot still leased, no pending
job. Left pending, it counted in its event's `pending_webhooks` until the event was purged. The
failing does not touch the endpoint's slots (what the give-up lets go, a lease ends anyway),
so what made the give-up fail seldom makes it fail; if it does, the batch is read again
without it, the deliveries are left pending and said in the log, and no other batch of that
run tries it again: once a run at most.

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

from remit.core.logging import mask_sensitive
from remit.storage.fastsql import Statement
from remit.webhooks.deleted import end_deliveries_of_deleted
from remit.webhooks.domain import GIVE_UP_TRIES, DeliveryStatus, EndpointStatus
from remit.webhooks.outbox import DELIVER_JOB
from remit.worker.jobs import DEFAULT_MAX_ATTEMPTS, NOTIFY_CHANNEL, error_line

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
        -- The page's delivery jobs, by the index of pending delivery jobs by delivery (core
        -- migration 0078): its expression (the id as the payload's text) and predicate (the
        -- kind written out, not bound) as it has them, so that every plan can use it.
        SELECT DISTINCT CAST(job.payload ->> 'delivery_id' AS bigint) AS delivery_id
        FROM jobs AS job
        WHERE job.status = 'pending' AND job.kind = '{DELIVER_JOB}'
          AND job.payload ->> 'delivery_id' IN (SELECT CAST(id AS text) FROM page)
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
    ), given_up AS (
        -- A delivery whose give-up failed GIVE_UP_TRIES times, with no way forward either: it
        -- fails, as its give-up would have made it, whatever its endpoint's status.
        SELECT page.id FROM page
        WHERE %(end_given_up)s AND page.give_up_failures >= %(give_up_tries)s
          AND NOT EXISTS (SELECT 1 FROM webhook_parked AS parked
                          WHERE parked.delivery_id = page.id)
          AND NOT EXISTS (SELECT 1 FROM webhook_inflight AS slot
                          WHERE slot.delivery_id = page.id AND slot.leased_until > %(now)s)
          AND NOT EXISTS (SELECT 1 FROM with_job WHERE with_job.delivery_id = page.id)
    ), ended AS (
        -- Read again if it changed meanwhile: a redelivery started over counts no failure.
        UPDATE webhook_deliveries AS delivery
        SET status = '{DeliveryStatus.FAILED.value}', next_attempt_at = NULL,
            finished_at = %(now)s
        FROM given_up
        WHERE delivery.id = given_up.id AND delivery.status = '{DeliveryStatus.PENDING.value}'
          AND delivery.give_up_failures >= %(give_up_tries)s
        RETURNING delivery.id, delivery.last_attempt_at
    ), forgotten AS (
        -- No retry to come, as `DeliveryRepository.forget_retries_to_come` forgets it.
        UPDATE webhook_delivery_attempts AS attempt SET next_retry_at = NULL
        FROM ended
        WHERE attempt.delivery_id = ended.id
          AND attempt.next_retry_at > coalesce(ended.last_attempt_at, '-infinity')
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
           (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM ended) AS ended,
           (SELECT pg_notify(%(jobs_channel)s, job.kind) FROM job LIMIT 1) AS notified
    """  # noqa: S608 (no request text: the fragments are this module's own)
)


def batch_params(
    now: datetime,
    after_at: datetime = _START,
    after_id: int = 0,
    batch: int = BATCH,
    *,
    end_given_up: bool = True,
) -> dict[str, object]:
    """The parameters of one batch: the page after (`after_at`, `after_id`); the deliveries
    whose give-up failed GIVE_UP_TRIES times failed unless `end_given_up` is False."""
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
        "end_given_up": end_given_up,
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
    ended: list[int] = []
    end_given_up = True
    after_at, after_id = _START, 0
    while True:
        params = batch_params(now, after_at, after_id, batch, end_given_up=end_given_up)
        try:
            async with engine.begin() as db:
                row = await REPAIR_BATCH.first(db, params)
        except Exception as error:
            if not end_given_up:
                raise
            # Failing them may fail for what failed their give-ups: the batch is read again
            # without it, and they are left pending for this run.
            end_given_up = False
            log.error("failing the webhook deliveries whose give-up failed %d times failed "
                      "(%s); they stay pending until a later run", GIVE_UP_TRIES,
                      mask_sensitive(error_line(error)))  # fmt: skip
            continue
        assert row is not None
        repaired += [int(delivery_id) for delivery_id in row["repaired"]]
        ended += [int(delivery_id) for delivery_id in row["ended"]]
        if int(row["read"]) < batch:
            break
        after_at, after_id = row["last_at"], int(row["last_id"])
    if ended:
        named = ", ".join(str(delivery_id) for delivery_id in ended[:NAMED])
        more = f" and {len(ended) - NAMED} more" if len(ended) > NAMED else ""
        log.error("failed %d webhook deliveries whose give-up had failed %d times, as it would "
                  "have (deliveries %s%s; why on each, give_up_error)", len(ended),
                  GIVE_UP_TRIES, named, more)  # fmt: skip
    if repaired:
        named = ", ".join(str(delivery_id) for delivery_id in repaired[:NAMED])
        more = f" and {len(repaired) - NAMED} more" if len(repaired) > NAMED else ""
        log.warning("staged a job for %d webhook deliveries left pending with none that would "
                    "attempt them (deliveries %s%s)", len(repaired), named, more)  # fmt: skip
    return repaired
