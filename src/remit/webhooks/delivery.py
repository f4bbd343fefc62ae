"""Delivering one event to one endpoint: the worker's `webhooks.deliver` job.

Each job makes one attempt. It reads what it needs and takes one of the endpoint's concurrency
slots in a short transaction of its own (the slot is the claim on the attempt: a delivery holds
at most one), POSTs with no transaction open (and, run by the worker, no connection held:
`WebhookDeliverer.prepare`), then records the attempt and stages the next one (if any) in the
job's own transaction, which also completes the job. A worker that dies mid-POST leaves both
its job lease and its slot lease to expire; another worker then makes the attempt again, so an
event is delivered at least once and never lost.

A run that fails after taking the slot (rendering, the POST or recording raised) rolls back its
work but not the slot: the job's retry takes that slot back (it holds it), so failed runs count
towards the job's attempt limit and the delivery fails once it is reached (`give_up`). A job
that finds every slot of the endpoint taken parks its delivery and ends: the delivery has no
job until a slot let go is handed to it, with a job that holds that slot
(`remit.webhooks.parking`). One that finds the endpoint
paused waits for the pause's end in a new job. Either way what follows inherits the attempts
its failed runs used.
"""

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, unix_seconds
from remit.core.ids import new_id
from remit.core.logging import mask_sensitive
from remit.core.stored_text import storable_text
from remit.storage import fastsql
from remit.webhooks.domain import (
    GIVE_UP_TRIES,
    MAX_HONOURED_RATE_LIMITS,
    AttemptOutcome,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    DisabledReason,
    EndpointStatus,
    NewAttempt,
    after_pause,
    disabled_message,
    next_attempt_after_failure,
    next_attempt_after_rate_limit,
    parse_retry_after,
    retry_after_deadline,
)
from remit.webhooks.outbox import stage_delivery_attempt
from remit.webhooks.parking import let_jobs_slot_go_now, let_slot_go, park_behind_taken_slots
from remit.webhooks.rendering import Renderer, render_event
from remit.webhooks.repository import (
    DeliveryContext,
    DeliveryRepository,
    EndpointRepository,
    InflightRepository,
)
from remit.webhooks.sender import HttpResult, WebhookSender
from remit.webhooks.signing import signature_header
from remit.worker.jobs import (
    Job,
    error_line,
    record_give_up_failure,
    recorded_error,
)
from remit.worker.runner import AfterCommit, JobStep

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliverySettings:
    # How many attempts may be in flight to one endpoint at once, across all workers: a small
    # share of a worker's delivery slots (`remit.worker.runner.Worker.network_slots`, 64 by
    # default), so that an endpoint that hangs holds few of them and every other endpoint
    # finds its own free. Its other deliveries park (`remit.webhooks.parking`), at no cost.
    max_concurrent_per_endpoint: int = 4
    # A slot is leased for longer than the HTTP timeout, and for less than the job lease, so a
    # crashed worker's slot is free again before its job is claimed again.
    slot_lease: timedelta = timedelta(seconds=45)
    # When every slot is taken the delivery parks, unless slots keep being let go between its
    # look and its park (PARK_TRIES times in a row): then it looks again after about this long.
    busy_retry: timedelta = timedelta(milliseconds=500)
    # Random draws in [0, 1) that place retries and wake-ups within their jitter (the retry
    # schedule's gaps, the end of an endpoint's pause): tests pass a seeded generator's.
    draw: Callable[[], float] = random.random


# How many times a delivery that found every slot taken, then one of them let go before it
# could park, tries again to take one or park before it falls back to looking again later.
PARK_TRIES: Final = 3


class Taken:
    """The delivery took a slot of its endpoint: its attempt is made now."""


class Parked:
    """The delivery was parked: it waits for a slot with no job."""


TAKEN: Final = Taken()
PARKED: Final = Parked()


def encode_payload(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def signed_request(
    ctx: DeliveryContext, renderer: Renderer | None, now: datetime
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt, signed afresh with every current secret."""
    wanted = ctx.event.rendered_version(ctx.endpoint.api_version, ctx.account_api_version)
    body = encode_payload(await render_event(ctx.event, renderer, wanted))
    header = signature_header(body, ctx.endpoint.signing_secrets(now), unix_seconds(now))
    return body, {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": header,
    }


def outcome_of(result: HttpResult, now: datetime) -> AttemptOutcome:
    # The snippet is whatever the endpoint answered, and the error may quote its address or its
    # server: either can hold a card number or a secret, which the attempt's row (and every
    # dump of it) must not. The sender masks the snippet before cutting it (`masked_snippet`),
    # so that a number straddling the cut is seen whole; masking again here costs little.
    # Either is stored as text, which cannot hold a NUL: one in either would fail the record
    # after the POST was made, and the job's retries would POST the attempt again and again
    # (`storable_text`; the sender's own already has none).
    return AttemptOutcome(
        http_status=result.http_status,
        latency_ms=result.latency_ms,
        response_snippet=storable_text(mask_sensitive(result.response_snippet)),
        error=None if result.error is None else storable_text(mask_sensitive(result.error)),
        retry_after=parse_retry_after(result.retry_after, now)
        if result.http_status == 429
        else None,
    )


class WebhookDeliverer:
    def __init__(
        self,
        engine: AsyncEngine,
        sender: WebhookSender,
        clock: Clock,
        *,
        renderer: Renderer | None = None,
        settings: DeliverySettings | None = None,
    ) -> None:
        self._engine = engine
        self._sender = sender
        self._clock = clock
        self._renderer = renderer
        self._settings = settings or DeliverySettings()

    async def handle(self, db: AsyncConnection, job: Job) -> AfterCommit | None:
        """The job handler: `db` is the job's transaction, committed with the job. Hands back
        the notice of an endpoint the attempt disabled, to log once that has committed."""
        step = await self.prepare(job)
        return await step(db)

    async def prepare(self, job: Job) -> JobStep:
        """The attempt up to its record: the slot taken (or the wait decided) in a short
        transaction of its own, and the POST, with no connection held. Hands back what is
        left, for the job's transaction (`remit.worker.runner.JobPreparer`): the worker opens
        that only once the endpoint has answered, so a slow endpoint holds no connection of
        the database pool, only one of the worker's delivery slots."""
        delivery_id = int(str(job.payload["delivery_id"]))
        attempt_number = int(str(job.payload["attempt"]))
        generation = job_generation(job)
        now = self._clock.now()
        async with self._engine.begin() as short:
            # The delivery's row is read under a share lock, held until the slot is taken. A
            # record of this attempt by another worker (a duplicate job) updates that row
            # before it lets its slot go: either it has, and the read waits for its commit and
            # sees the attempt made, or it has not, and it waits for this transaction while
            # its slot is still held, so no slot is taken here. Either way the attempt is not
            # POSTed twice, with no second read of the delivery.
            ctx = await DeliveryRepository(short).context(delivery_id, lock=True)
            if ctx is None:
                # Purged with its event. A slot handed to this job when it was woken goes to
                # the next parked delivery now, not once its lease runs out.
                await let_jobs_slot_go_now(short, delivery_id, job.id, now=now,
                                           lease_until=now + self._settings.slot_lease)  # fmt: skip
                return _nothing_left
            if not self._is_current(ctx, attempt_number, generation):
                # A slot handed to this job when it was woken would go unused: the next parked
                # delivery gets it.
                await self._let_go_of_own_slot(short, ctx, job, now)
                return _nothing_left
            if ctx.endpoint_deleted or ctx.endpoint.status is EndpointStatus.DISABLED:
                await DeliveryRepository(short).finish(delivery_id, DeliveryStatus.FAILED, now)
                # Parked deliveries of the endpoint fail too, each handed the slot of the one
                # before.
                await self._let_go_of_own_slot(short, ctx, job, now)
                return _nothing_left
            wait = await self._take_slot_or_wait(short, ctx, job, attempt_number, now)
        if isinstance(wait, Parked):
            return _nothing_left
        if isinstance(wait, datetime):
            waits_until = wait

            async def wait_in_a_new_job(db: AsyncConnection) -> AfterCommit | None:
                await stage_delivery_attempt(db, delivery_id, attempt_number,
                                             generation=ctx.delivery.generation,
                                             account_id=ctx.delivery.account_id, now=now,
                                             run_at=waits_until,
                                             max_attempts=attempts_left(job))  # fmt: skip
                return None

            return wait_in_a_new_job
        body, headers = await signed_request(ctx, self._renderer, now)
        result = await self._sender.post(ctx.endpoint.url, body, headers)

        async def record(db: AsyncConnection) -> AfterCommit | None:
            recorded_at = self._clock.now()
            recorded = await record_attempt(db, ctx, attempt_number, outcome_of(result, now),
                                            attempted_at=now, now=recorded_at, job_id=job.id,
                                            slot_lease_until=recorded_at
                                            + self._settings.slot_lease,
                                            draw=self._settings.draw())  # fmt: skip
            if recorded.disabled is None:
                return None
            return disabled_notice(ctx.endpoint.id, recorded.disabled)

        return record

    async def give_up(self, db: AsyncConnection, job: Job) -> None:
        """The job failed for good (its handler raised every time): the delivery it was to make
        fails, or it would stay pending for ever, with no job left to move it on, and its event
        would count a pending webhook for good.

        If failing it fails too, the delivery is left pending with no job, and the repair stages
        one again later (`remit.webhooks.repair`), which may end the same way: each such failure
        is counted on the delivery with its reason, logged, and said first in the job's error
        (`remit jobs failed`); once GIVE_UP_TRIES of them have failed, the repair stages no
        job for the delivery but fails it itself. The failure is not raised: the job's
        transaction, which fails the job, keeps the count."""
        delivery_id = int(str(job.payload["delivery_id"]))
        try:
            async with db.begin_nested():
                await self._fail_given_up(db, job, delivery_id)
        except Exception as error:
            # Rolled back to the savepoint, the job's transaction goes on: the failure is
            # counted on the delivery, and said on the job, in it.
            reason = error_line(error)
            failures = await DeliveryRepository(db).note_give_up_failed(
                delivery_id, generation=job_generation(job), reason=recorded_error(reason)
            )
            await record_give_up_failure(db, job, error)
            if failures is None:
                return
            after = (
                "the repair will fail it"
                if failures >= GIVE_UP_TRIES
                else "the repair will stage a job for it again"
            )
            log.error("webhook delivery %s stays pending: job %s failed for good and failing the "
                      "delivery failed too, %d of %d times (%s); %s", delivery_id, job.id,
                      failures, GIVE_UP_TRIES, mask_sensitive(reason), after)  # fmt: skip

    async def _fail_given_up(self, db: AsyncConnection, job: Job, delivery_id: int) -> None:
        # Only the job of the delivery's current attempt, in its current generation, ends it:
        # not a duplicate, nor a job of the delivery before a redelivery started it over (its
        # attempt 1 would match the delivery started over, attempt 1 next, by number alone).
        # The endpoint slot its handler may hold is let go at once.
        current = int(str(job.payload["attempt"])) - 1
        failed = await DeliveryRepository(db).finish(
            delivery_id,
            DeliveryStatus.FAILED,
            self._clock.now(),
            after=current,
            generation=job_generation(job),
        )
        if failed:
            now = self._clock.now()
            await let_slot_go(db, delivery_id, now=now,
                              lease_until=now + self._settings.slot_lease)  # fmt: skip
            log.error("webhook delivery %s failed: its job failed for good", delivery_id)

    @staticmethod
    def _is_current(ctx: DeliveryContext, attempt_number: int, generation: int | None) -> bool:
        # Not a job for an attempt already made (a duplicate), nor one made for the delivery
        # before a redelivery started it over (a job that says no generation is older than
        # generations, and is matched by its attempt alone).
        return (
            ctx.delivery.status is DeliveryStatus.PENDING
            and ctx.delivery.attempts == attempt_number - 1
            and (generation is None or ctx.delivery.generation == generation)
        )

    async def _take_slot_or_wait(
        self, db: AsyncConnection, ctx: DeliveryContext, job: Job, attempt: int, now: datetime
    ) -> Taken | Parked | datetime:
        """Take a slot of the endpoint; or park, every slot being taken; or when to look again,
        the endpoint being paused (or its slots let go too often to park)."""
        slots = InflightRepository(db)
        limited = ctx.endpoint.rate_limited_until
        if limited is not None and limited > now:
            # The job that waits in this one's place makes the attempt: the delivery, if a run
            # of this job parked it, waits for no slot (`remit.webhooks.parking`).
            async with fastsql.deferring(db):
                await DeliveryRepository(db).unpark(ctx.delivery.id)
                await self._let_go_of_own_slot(db, ctx, job, now)
            return after_pause(limited, now, self._settings.draw())
        limit = self._settings.max_concurrent_per_endpoint
        for _ in range(PARK_TRIES):
            acquired = await slots.try_acquire(endpoint_id=ctx.endpoint.id,
                                               delivery_id=ctx.delivery.id, job_id=job.id,
                                               limit=limit, now=now,
                                               until=now + self._settings.slot_lease)  # fmt: skip
            if acquired:
                return TAKEN
            parked = await park_behind_taken_slots(
                db,
                delivery_id=ctx.delivery.id,
                endpoint_id=ctx.endpoint.id,
                account_id=ctx.delivery.account_id,
                attempt=attempt,
                generation=ctx.delivery.generation,
                max_attempts=attempts_left(job),
                due_at=ctx.delivery.next_attempt_at or now,
                limit=limit,
                now=now,
            )
            if parked:
                await self._let_go_of_earlier_slot(db, ctx, job, now)
                return PARKED
        await self._let_go_of_earlier_slot(db, ctx, job, now)
        return now + self._settings.busy_retry * (0.5 + self._settings.draw())

    async def _let_go_of_own_slot(
        self, db: AsyncConnection, ctx: DeliveryContext, job: Job, now: datetime
    ) -> None:
        """A job that will not POST (it waits, parked or in a new job, or has nothing left to
        do) lets go of the slot it holds, if any: one handed to it when it was woken, or one an
        earlier, failed run of its own took. What follows it could not take it back. A slot
        let go is handed to the next parked delivery, as any slot let go is."""
        await let_jobs_slot_go_now(db, ctx.delivery.id, job.id, now=now,
                                   lease_until=now + self._settings.slot_lease)  # fmt: skip

    async def _let_go_of_earlier_slot(
        self, db: AsyncConnection, ctx: DeliveryContext, job: Job, now: datetime
    ) -> None:
        """`_let_go_of_own_slot` for a job that found no slot to take: a slot of its own still
        leased, handed over or taken by an earlier run, it would have taken back. What it may
        hold is a slot an earlier, failed run took, whose lease ran out; a job's first run has
        none (a handed-over slot that lapsed is taken back, or purged, as any other)."""
        if job.tries > 1:
            await self._let_go_of_own_slot(db, ctx, job, now)


async def _nothing_left(db: AsyncConnection) -> AfterCommit | None:
    """The end step of a job whose work is all done (or that had none): the job's transaction
    only completes it."""
    return None


def job_generation(job: Job) -> int | None:
    """The generation of the delivery the job was made for; None for a job staged before
    deliveries had generations (core migration 0050), or by a process of that version."""
    generation = job.payload.get("generation")
    return None if generation is None else int(str(generation))


def attempts_left(job: Job) -> int:
    """The attempt limit of the job that waits in `job`'s place: what `job`'s failed runs
    (all its runs but this one) left of its own. Without it, a delivery whose runs keep failing
    would start afresh each time it waited, and never reach a limit."""
    return max(1, job.max_attempts - (job.attempts - 1))


def disabled_notice(endpoint_id: str, reason: DisabledReason) -> AfterCommit:
    """The log line that says an attempt disabled its endpoint, for after the commit."""

    def notice() -> None:
        log.warning("%s", disabled_message(endpoint_id, reason.value))

    return notice


@dataclass(frozen=True)
class RecordedAttempt:
    attempt: DeliveryAttempt
    # Why the attempt disabled its endpoint, if it did: to say so once it has committed.
    disabled: DisabledReason | None


@dataclass(frozen=True)
class Retry:
    """What an unsuccessful attempt leaves of the schedule: the step it is at, and when to try
    again (None: give up)."""

    step: int
    at: datetime | None


def may_honour_rate_limit(delivery: Delivery) -> bool:
    """Whether this delivery has honoured 429s left (each attempt before this one either stepped
    the schedule on or was an honoured 429)."""
    return delivery.attempts - delivery.retry_step < MAX_HONOURED_RATE_LIMITS


def retry_after_unsuccessful(
    delivery: Delivery,
    outcome: AttemptOutcome,
    now: datetime,
    *,
    endpoint_allows: bool = True,
    draw: float = 0.0,
) -> Retry:
    """A 429 with a Retry-After waits as asked and stays at its step (up to
    MAX_HONOURED_RATE_LIMITS of them for the delivery, and as many for its endpoint until it
    next answers 2xx: `endpoint_allows`); any other failure takes the next step, one gap after
    this attempt, stretched by `draw` (in [0, 1)) of its jitter."""
    honoured = may_honour_rate_limit(delivery) and endpoint_allows
    if outcome.rate_limited and outcome.retry_after is not None and honoured:
        at = next_attempt_after_rate_limit(delivery.first_attempt_at, outcome.retry_after, now)
        return Retry(step=delivery.retry_step, at=at)
    step = delivery.retry_step + 1
    at = next_attempt_after_failure(delivery.first_attempt_at, step, now, draw)
    return Retry(step=step, at=at)


async def record_attempt(
    db: AsyncConnection,
    ctx: DeliveryContext,
    attempt_number: int,
    outcome: AttemptOutcome,
    *,
    attempted_at: datetime,
    now: datetime,
    job_id: int,
    slot_lease_until: datetime,
    draw: float = 0.0,
) -> RecordedAttempt:
    """Store the attempt, move the delivery on (done, failed, or the next attempt staged), and
    apply what the outcome says about the endpoint (which may disable it: said by the result,
    for the caller to log once the transaction has committed, not before). `draw`, in [0, 1):
    where in its jitter the next gap of the retry schedule falls. The slot job `job_id` POSTed
    under is let go and handed to the endpoint's oldest parked delivery, if any, leased to its
    woken job until `slot_lease_until`.

    The delivery is moved on only from the attempt and generation `ctx` was read at, those the
    POST was made for. An attempt that no longer applies (a duplicate job's, recorded second,
    or one whose delivery a resend failed and a redelivery started over while it POSTed) is
    stored all the same, and tells the same of the endpoint, but leaves the delivery as it is
    and stages nothing: the delivery's current job makes its attempt. It shows no retry time,
    as none follows it. Moving the delivery
    started over on, it would stage a job of the generation before, which acts for none, and
    leave the redelivery's own job nothing to do: the delivery pending for ever, with no job.
    Only the job's own slot is let go: one whose lease ran out mid-POST may be the current
    job's now.

    Rows are locked in one order by every transaction that takes more than one of them: the
    delivery's, then the endpoint's, then the delivery's slot (as `WebhookDeliverer.handle`
    does), so two of them never wait on each other. The endpoint's row, which every attempt to
    the endpoint contends for, is written as late as that order allows: a success that writes it
    at all (most do not: see `EndpointRepository.note_success`) holds it only while its slot is
    let go and the job completes.

    The attempt is numbered as it is stored, after every attempt of the delivery stored
    before, under the delivery's row lock, taken first whatever the outcome: a resend recorded
    at the same moment (`record_manual_attempt`, which takes the same lock) is numbered before
    or after it, never with it. The attempt's row goes last, so that it is the one statement of
    a success that needs an answer (its number)."""
    # Writes whose answer nothing here waits for (the lock, the delivery moved on when no next
    # attempt depends on it, the endpoint's success, the slot let go) are held and sent
    # together with the next statement that needs an answer, the attempt's at the latest: a
    # success is one round trip, not five. They still run in the order above, locks included.
    delivery, endpoints, deliveries = ctx.delivery, EndpointRepository(db), DeliveryRepository(db)
    status, next_at, step = DeliveryStatus.PENDING, None, delivery.retry_step
    disabled: DisabledReason | None = None
    async with fastsql.deferring(db):
        # Before anything else of the delivery's is read or written: the schedule, the number.
        await deliveries.lock(delivery.id)
        if outcome.succeeded:
            status = DeliveryStatus.SUCCEEDED
        elif outcome.gone:
            status = DeliveryStatus.FAILED
        else:
            # The schedule depends on the endpoint's 429 allowance, taken under the endpoint's lock
            # before the delivery is moved on (the delivery's row is locked before it, above).
            # The endpoint's allowance is taken only by a 429 the delivery would honour itself.
            endpoint_allows = (
                outcome.rate_limited
                and may_honour_rate_limit(delivery)
                and await endpoints.take_honoured_rate_limit(ctx.endpoint.id)
            )
            retry = retry_after_unsuccessful(
                delivery, outcome, now, endpoint_allows=endpoint_allows, draw=draw
            )
            next_at, step = retry.at, retry.step
            if next_at is None:
                status = DeliveryStatus.FAILED
            if outcome.rate_limited and outcome.retry_after is not None:
                # The endpoint pauses as long as it asked, whatever this delivery's own next
                # attempt (a 429 past the honoured ones waits a whole gap of the schedule).
                pause = retry_after_deadline(outcome.retry_after, now)
                await endpoints.rate_limit_until(ctx.endpoint.id, pause)
            gave_up = delivery.id if next_at is None else None
            if await endpoints.note_failure(
                ctx.endpoint.id, attempted_at, now, last_attempt_of=gave_up
            ):
                disabled = DisabledReason.FAILING
        # Whether this call moved the delivery on matters only when a retry would follow: to
        # stage it, and to say so on the attempt.
        advanced = await deliveries.record_attempt_result(
            delivery.id,
            attempt_number=attempt_number,
            generation=delivery.generation,
            retry_step=step,
            status=status,
            attempted_at=attempted_at,
            next_attempt_at=next_at,
            answer=next_at is not None,
        )
        attempt = NewAttempt(
            id=new_id("del"),
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            endpoint_id=delivery.endpoint_id,
            attempted_at=attempted_at,
            http_status=outcome.http_status,
            latency_ms=outcome.latency_ms,
            response_snippet=outcome.response_snippet,
            error=outcome.error,
            # A late attempt (one that no longer applies) schedules nothing: the retry its
            # outcome would have called for is never made, so it shows none.
            next_retry_at=next_at if advanced else None,
            succeeded=outcome.succeeded,
        )
        if outcome.succeeded:
            # Whether the row needs writing is decided on the row as it is now, whatever `ctx` said
            # of it: a failure may have been recorded since.
            await endpoints.note_success(ctx.endpoint.id, attempted_at)
        elif outcome.gone and await endpoints.disable(ctx.endpoint.id, DisabledReason.GONE):
            disabled = DisabledReason.GONE
        # The slot is let go only after the delivery has moved on (see `WebhookDeliverer.handle`),
        # and is handed to the next delivery parked for one.
        await let_slot_go(db, delivery.id, now=now, lease_until=slot_lease_until, job_id=job_id)
        if advanced and next_at is not None:
            await stage_delivery_attempt(db, delivery.id, attempt_number + 1,
                                         generation=delivery.generation,
                                         account_id=delivery.account_id, now=now,
                                         run_at=next_at)  # fmt: skip
        stored = await deliveries.insert_attempt(attempt, delivery.account_id)
        return RecordedAttempt(stored, disabled)


async def record_manual_attempt(
    db: AsyncConnection, ctx: DeliveryContext, outcome: AttemptOutcome, *, now: datetime
) -> RecordedAttempt:
    """Store an attempt made by hand (a resend). It leaves the schedule alone, except that a
    success ends a pending delivery; it is numbered after every attempt recorded so far. A 410
    disables the endpoint as an attempt of the worker's does (said by the result, for the
    caller to log once the transaction has committed)."""
    deliveries, endpoints = DeliveryRepository(db), EndpointRepository(db)
    disabled: DisabledReason | None = None
    next_retry_at: datetime | None = None
    # The attempt's number is taken under the delivery's row lock, held to the commit: a
    # second resend, or an attempt of the worker's (`record_attempt`), recorded at the same
    # moment waits, then numbers its own after this one (each statement reads what committed
    # before it). Without it both counted the same attempts and took one number. The
    # delivery's row is the first a recording locks.
    await deliveries.lock(ctx.delivery.id)
    if outcome.succeeded:
        await deliveries.mark_succeeded_by_resend(ctx.delivery.id, now)
        await endpoints.note_success(ctx.endpoint.id, now)
    elif outcome.gone:
        # The delivery's row before the endpoint's, the order `record_attempt` keeps.
        await deliveries.finish(ctx.delivery.id, DeliveryStatus.FAILED, now)
        if await endpoints.disable(ctx.endpoint.id, DisabledReason.GONE):
            disabled = DisabledReason.GONE
    else:
        # The worker's retry as it stands now, not as `ctx` read it before the POST: the
        # scheduled attempt may have been made meanwhile, or been the last, or a redelivery
        # may have started the delivery over.
        next_retry_at = await deliveries.next_attempt_due(ctx.delivery.id)
    attempt = NewAttempt(
        id=new_id("del"),
        delivery_id=ctx.delivery.id,
        event_id=ctx.delivery.event_id,
        endpoint_id=ctx.delivery.endpoint_id,
        attempted_at=now,
        http_status=outcome.http_status,
        latency_ms=outcome.latency_ms,
        response_snippet=outcome.response_snippet,
        error=outcome.error,
        next_retry_at=next_retry_at,
        succeeded=outcome.succeeded,
    )
    stored = await deliveries.insert_attempt(attempt, ctx.delivery.account_id)
    return RecordedAttempt(stored, disabled)
