"""The worker process: claims jobs, runs their handlers, and runs periodic tasks.

Handlers and periodic tasks are registered explicitly by `bootstrap`; each runs in its own
transaction. A handler that raises is retried with exponential backoff until its job's attempts
run out. Workers wake on NOTIFY as soon as a job commits, and poll as a fallback.
"""

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Final, TypeVar

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.config import PlatformConfig, statement_timeout_s
from remit.core.clock import Clock, SystemClock
from remit.readiness import signal_ready
from remit.storage.connecting import libpq_arguments
from remit.storage.outages import OutageLog, log_failure
from remit.worker.jobs import (
    NOTIFY_CHANNEL,
    ClaimLostError,
    Job,
    NotDueError,
    claim_jobs,
    complete_job,
    fail_exhausted_job,
    out_of_attempts,
    record_give_up_failure,
    reschedule_job,
    retry_or_fail_job,
)
from remit.worker.leases import DEFAULT_JOB_LEASE, DEFAULT_STOP_DRAIN_S, JobLease

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a handler may hand back: a step to take once its work has committed, such as a log line
# that must not report what a rollback undid.
AfterCommit = Callable[[], None]
JobHandler = Callable[[AsyncConnection, Job], Awaitable[AfterCommit | None]]
# What is left of a job once its network step is done: the writes of its own transaction.
JobStep = Callable[[AsyncConnection], Awaitable[AfterCommit | None]]
# A job's work up to its end step, run with no connection of the job's held: a webhook's POST
# waits on the endpoint for up to its timeout, and a connection held meanwhile would make the
# database pool, not the endpoints, bound how many deliveries run at once.
JobPreparer = Callable[[Job], Awaitable[JobStep]]
PeriodicTask = Callable[[], Awaitable[None]]

POLL_INTERVAL_S = 1.0
MAX_BACKOFF_S = 3600.0
# The longest wait between attempts to claim jobs while the database keeps failing.
MAX_CLAIM_PAUSE_S = 30.0

# Doubling stops here: past it every wait is at its cap anyway, and a float of 2 ** 1024 cannot
# be made (OverflowError), which a count of failures left to grow reaches in hours.
_MAX_DOUBLINGS = 32


def backoff_for(attempt: int) -> timedelta:
    """2, 4, 8, ... seconds, capped at an hour."""
    return timedelta(seconds=min(MAX_BACKOFF_S, 2.0 ** min(max(1, attempt), _MAX_DOUBLINGS)))


def claim_pause_s(failures: int) -> float:
    """The wait after `failures` claims in a row failed: doubling from the poll interval up to
    `MAX_CLAIM_PAUSE_S`, however long the database stays away."""
    return min(MAX_CLAIM_PAUSE_S, POLL_INTERVAL_S * 2.0 ** min(failures, _MAX_DOUBLINGS))


class JobOverranError(Exception):
    """A handler ran past its time budget and was stopped before its job's lease ran out."""


@dataclass
class Periodic:
    name: str
    interval_s: float
    run: PeriodicTask


# The connections of the delivery lane's pool (`run_worker`), and as many again past it while
# busy (`make_engine`): a delivery holds one only for its short transactions, so 64 delivery
# slots need far fewer; the general lane keeps its own pool of 10 (and 10 more).
DELIVERY_POOL_SIZE: Final = 4


@dataclass(frozen=True)
class Lane:
    """A share of a worker's slots: the job kinds it claims for, and how many of them run at
    once. `fair`: claimed across accounts in turn, not oldest first (`claim_jobs`)."""

    kinds: list[str]
    slots: int
    fair: bool
    # What its claims are called in the log, when they fail.
    claiming: str = "claiming jobs"


@dataclass
class Worker:
    engine: AsyncEngine
    handlers: Mapping[str, JobHandler]
    periodic: list[Periodic] = field(default_factory=list)
    # What tells the time, for when jobs are due and for what handlers and tasks decide: the
    # database's in the process (`run_worker`), a test's own in tests.
    clock: Clock = field(default_factory=SystemClock)
    concurrency: int = 8
    # Called once when the process stops (e.g. to close outbound connection pools).
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # By kind: what to do once a job has failed for good, so that what the job was doing does
    # not stay unfinished for ever (a webhook delivery left pending, say).
    given_up: dict[str, JobHandler] = field(default_factory=dict)
    # How long a claim holds a job and a handler may run: `registry` sizes it from the
    # configured timeouts of what the handlers call (`remit.worker.leases`).
    lease: JobLease = DEFAULT_JOB_LEASE
    # Kinds whose jobs mostly wait on the network (a webhook's POST, up to its timeout), run
    # in `network_slots` slots of their own rather than in the `concurrency` ones: a slow
    # endpoint's deliveries then hold only delivery slots, and the payment jobs (expiries,
    # payouts) find theirs free. Claimed fairly across accounts (`claim_jobs`): one account's
    # backlog does not fill them either.
    network_kinds: frozenset[str] = frozenset()
    network_slots: int = 64
    # The pool the network lane's claims and jobs' transactions take their connections from
    # (`_engine_for`), the one its handlers' own steps use too (`run_worker`): with one
    # pool for both lanes, 64 deliveries whose steps are slow (a slow database) would take its
    # connections, and a payment job would wait for one past the pool's timeout and fail its
    # attempt. None: `engine`'s (tests, and a worker with no such kinds).
    network_engine: AsyncEngine | None = None
    # By kind: the work a job does before its transaction is opened (`JobPreparer`); the
    # kind's entry in `handlers` does both steps in one, for callers that hold a connection.
    preparers: Mapping[str, JobPreparer] = field(default_factory=dict)
    # How long a stopping worker lets its running jobs finish (`leases.stop_drain_for`):
    # `registry` sizes it from a webhook delivery's POST timeout, so that a delivery in flight
    # at the stop is made and recorded once, not cut and sent again after its lease. The
    # supervisor's grace (`remit.supervisor.stop_grace_s`) counts it, and the drain of network
    # steps that follows.
    stop_drain_s: float = DEFAULT_STOP_DRAIN_S
    # Set by a NOTIFY of a staged job: one per lane, each cleared by its own lane's loop.
    _lane_wakes: list[asyncio.Event] = field(default_factory=list)

    def lanes(self) -> list[Lane]:
        """The worker's slots, each share with the kinds it claims for."""
        network = sorted(self.network_kinds & set(self.handlers))
        general = sorted(set(self.handlers) - set(network))
        lanes = [Lane(kinds=general, slots=self.concurrency, fair=False)]
        if network:
            lanes.append(Lane(kinds=network, slots=self.network_slots, fair=True,
                              claiming="claiming jobs of the delivery lane"))  # fmt: skip
        # A worker with no handlers still claims (for none): as it always did.
        return [lane for lane in lanes if lane.kinds] or lanes[:1]

    async def run_once(self) -> int:
        """Claim one batch of due jobs for every lane and run them; return how many ran (for
        tests and tools; `run_forever` keeps every slot busy instead of waiting for whole
        batches)."""
        deadline = self._run_deadline()
        batch = [job for lane in self.lanes() for job in await self._claim(lane.slots, lane)]
        await asyncio.gather(*(self._run_job(job, deadline) for job in batch))
        return len(batch)

    def _run_deadline(self) -> float:
        """When the handlers of the jobs about to be claimed must stop (by the event loop's
        clock): a run budget from now, so from before the claim's lease begins (the claim's
        `now()`, its transaction's start, comes later). Counted from the claim, not from when
        a handler starts: a job waits for a connection of the pool first (up to
        REMIT_DATABASE_POOL_TIMEOUT_S), and a budget that started after that wait would let
        the run go on past its lease, while a second worker claims the job and runs it too."""
        return asyncio.get_running_loop().time() + self.lease.run_budget_s

    async def _claim(self, limit: int, lane: Lane) -> list[Job]:
        """Claim at most `limit` due jobs of the lane's kinds, to start at once: a job claimed
        but left waiting for a turn would see its lease run out (a webhook delivery may take
        its whole HTTP timeout), and another worker would claim it again."""
        async with self._engine_for(lane.kinds[0] if lane.kinds else "").begin() as db:
            return await claim_jobs(
                db,
                now=self.clock.now(),
                limit=limit,
                lease_s=self.lease.lease_s,
                kinds=lane.kinds,
                fair=lane.fair,
            )

    def _engine_for(self, kind: str) -> AsyncEngine:
        """The pool a job of `kind` (or its lane's claim) takes its connections from."""
        if self.network_engine is not None and kind in self.network_kinds:
            return self.network_engine
        return self.engine

    async def _run_job(self, job: Job, deadline: float) -> None:
        """Run `job`'s handler until `deadline` at the latest (`_run_deadline`), and record
        its end under its claim."""
        if out_of_attempts(job):
            await self._fail_exhausted(job)
            return
        handler = self.handlers[job.kind]
        prepare = self.preparers.get(job.kind)
        try:
            step: JobStep = functools.partial(_call_with_job, handler, job=job)
            if prepare is not None:
                # Within the same budget: the whole run must end before the lease does.
                step = await self._within_budget(functools.partial(prepare, job), deadline)
            async with self._engine_for(job.kind).begin() as db:
                after_commit = await self._within_budget(functools.partial(step, db), deadline)
                await complete_job(db, job, now=self.clock.now())
            if after_commit is not None:
                _after_commit(job, after_commit)
        except ClaimLostError:
            # The lease ran out mid-run and another worker took the job: its run decides the
            # job's end, and this one's work is rolled back (handlers are idempotent).
            log.warning("job %s (%s) attempt %d lost its claim; its work is rolled back",
                        job.id, job.kind, job.attempts)  # fmt: skip
        except NotDueError as early:
            await self._put_back(job, early)
        except Exception as error:
            log.warning("job %s (%s) attempt %d failed: %s", job.id, job.kind, job.tries,
                        type(error).__name__)  # fmt: skip
            try:
                async with self._engine_for(job.kind).begin() as db:
                    retried = await retry_or_fail_job(
                        db,
                        job,
                        now=self.clock.now(),
                        error=f"{type(error).__name__}: {error}",
                        # Its runs, not its put-backs: those were no failures to back off from.
                        retry_in=backoff_for(job.tries),
                    )
                    if not retried:
                        log.error("job %s (%s) failed for good after %d attempts", job.id,
                                  job.kind, job.tries)  # fmt: skip
                        await self._give_up(db, job)
            except ClaimLostError:
                log.warning("job %s (%s) attempt %d failed after losing its claim; the "
                            "worker holding it now decides", job.id, job.kind,
                            job.attempts)  # fmt: skip
            except Exception as bookkeeping:
                # The job stays claimed until its lease runs out, and is then claimed again:
                # the attempt is retried, only later.
                _log_loop_error(f"recording the failure of job {job.id}", bookkeeping)

    async def _put_back(self, job: Job, early: NotDueError) -> None:
        """A job claimed before it was due: the clock that scheduled it, or this worker's, is
        off. It runs again when due, its attempt not counted against its limit."""
        log.warning("job %s (%s) was claimed before it was due (its schedule or this worker's "
                    "clock is off); put back until %s", job.id, job.kind,
                    early.run_at.isoformat())  # fmt: skip
        try:
            async with self._engine_for(job.kind).begin() as db:
                await reschedule_job(db, job, run_at=early.run_at)
        except ClaimLostError:
            log.warning("job %s (%s) was claimed again before it could be put back", job.id,
                        job.kind)  # fmt: skip
        except Exception as error:
            # Claimed until its lease runs out, then claimed again, and put back then.
            _log_loop_error(f"putting back job {job.id}, claimed before it was due", error)

    async def _within_budget(self, work: Callable[[], Awaitable[T]], deadline: float) -> T:
        """Run `work` (a handler, or a step of one), stopped (and its work rolled back) at
        `deadline`, the end of the lease's run budget from the claim: past its lease another
        worker would claim the job and run it beside this run. Work whose turn (a connection,
        its step before) came only after the deadline is not started. The failure is
        recorded as any other, and the job retried after its backoff."""
        overran = JobOverranError(
            f"stopped after {self.lease.run_budget_s:g} s from its claim, before its "
            f"{self.lease.lease_s:g} s lease ran out"
        )
        if asyncio.get_running_loop().time() >= deadline:
            # Not even begun: a handler's first steps may run before a timer can stop it.
            raise overran
        budget = asyncio.timeout_at(deadline)
        try:
            async with budget:
                return await work()
        except TimeoutError:
            if not budget.expired():
                raise  # the handler's own
            raise overran from None

    async def _fail_exhausted(self, job: Job) -> None:
        """A job claimed past its attempt limit is failed without running (its attempts ended
        with their worker, as a job that crashes its process does every time) and given up."""
        try:
            async with self._engine_for(job.kind).begin() as db:
                await fail_exhausted_job(db, job, now=self.clock.now())
                log.error("job %s (%s) failed for good: its %d attempts ended without a "
                          "result", job.id, job.kind, job.max_tries)  # fmt: skip
                await self._give_up(db, replace(job, attempts=job.max_attempts))
        except ClaimLostError:
            log.warning("job %s (%s) was claimed again before it could be failed", job.id,
                        job.kind)  # fmt: skip
        except Exception as error:
            _log_loop_error(f"failing job {job.id} past its attempts", error)

    async def _give_up(self, db: AsyncConnection, job: Job) -> None:
        """Run the kind's give-up step in the transaction that fails the job, under a
        savepoint: a crash cannot leave one done without the other, and a step that fails too
        (it may trip on what the handler tripped on) is logged and leaves the job failed, not
        claimed again and again."""
        give_up = self.given_up.get(job.kind)
        if give_up is None:
            return
        try:
            async with db.begin_nested():
                await give_up(db, job)
        except Exception as error:
            _log_loop_error(f"giving up job {job.id} ({job.kind})", error)
            # Said on the job too: the log line scrolls away, `remit jobs failed` lists it.
            await record_give_up_failure(db, job, error)

    async def drain(self) -> int:
        """Run jobs until none is due; for tests and tools."""
        total = 0
        while (ran := await self.run_once()) > 0:
            total += ran
        return total

    async def _listen(self, url: str, stop: asyncio.Event) -> None:
        """Wake the loop on NOTIFY; on any connection trouble fall back to polling."""
        outage = OutageLog(log, "listening for new jobs (polling meanwhile)", level=logging.INFO,
                           is_outage=lambda error: True)  # fmt: skip
        while not stop.is_set():
            try:
                # Bounded (`remit.storage.connecting`): a connection to a database that went
                # away would otherwise wait for notifications for ever, and the worker poll
                # only, without saying so.
                connection = await psycopg.AsyncConnection.connect(
                    url, autocommit=True, **libpq_arguments(url)
                )
                async with connection:
                    await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    outage.succeeded()
                    async for _ in connection.notifies():
                        for wake in self._lane_wakes:
                            wake.set()
                        if stop.is_set():
                            return
            except (psycopg.Error, OSError) as error:
                outage.failed(error)
                await asyncio.sleep(POLL_INTERVAL_S)

    async def _periodic_loop(self, task: Periodic, stop: asyncio.Event) -> None:
        outage = OutageLog(log, f"periodic task {task.name}")
        while not stop.is_set():
            try:
                await task.run()
            except Exception as error:
                outage.failed(error)
            else:
                outage.succeeded()
            try:
                await asyncio.wait_for(stop.wait(), timeout=task.interval_s)
            except TimeoutError:
                continue

    async def run_forever(self, listen_url: str | None, stop: asyncio.Event) -> None:
        background = [asyncio.create_task(self._periodic_loop(p, stop)) for p in self.periodic]
        lanes = self.lanes()
        self._lane_wakes = [asyncio.Event() for _ in lanes]
        if listen_url is not None:
            background.append(asyncio.create_task(self._listen(listen_url, stop)))
        running: set[asyncio.Task[None]] = set()
        # Each lane claims in a loop of its own: a lane whose claims fail or wait (the
        # delivery lane's pool short of connections while its deliveries record their
        # attempts) pauses only itself, and the payment jobs of the general lane go on.
        claiming = [
            asyncio.create_task(self._claim_for(lane, wake, running, stop))
            for lane, wake in zip(lanes, self._lane_wakes, strict=True)
        ]
        try:
            await asyncio.gather(*claiming)
        finally:
            for loop in claiming:
                loop.cancel()
            await asyncio.gather(*claiming, return_exceptions=True)
            # Jobs already claimed run to their end, their transactions not cut off; but not
            # past the supervisor's grace (`remit.supervisor.stop_grace_s`), which would kill
            # the process. One still running then is cancelled: its claim is leased, and the
            # job runs again once the lease has run out.
            if running:
                await asyncio.wait(set(running), timeout=self.stop_drain_s)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def _claim_for(
        self,
        lane: Lane,
        wake: asyncio.Event,
        running: set["asyncio.Task[None]"],
        stop: asyncio.Event,
    ) -> None:
        """Keep the lane's slots busy until `stop`: a slot is claimed for again as soon as its
        job ends, so one slow job (a webhook delivery waiting out its timeout) does not hold
        the other slots idle. Jobs started are added to `running` too, for the stop's drain."""
        failures = 0
        claiming = OutageLog(log, lane.claiming)
        lane_running: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            claimed: list[Job] = []
            free = lane.slots - len(lane_running)
            # Cleared before the claim, not after it: a NOTIFY of a job committed too late for
            # this claim's snapshot still wakes the next one at once, not a poll later.
            wake.clear()
            if free > 0:
                deadline = self._run_deadline()
                try:
                    claimed = await self._claim(free, lane)
                except Exception as error:
                    # A worker that exits takes nothing with it (claimed jobs are leased), but
                    # a database restart must not stop job processing: wait and claim again.
                    failures += 1
                    claiming.failed(error)
                    await _pause(stop, claim_pause_s(failures))
                    continue
                failures = 0
                claiming.succeeded()
                for job in claimed:
                    task = asyncio.create_task(self._run_job(job, deadline))
                    for tasks in (running, lane_running):
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                if len(claimed) == free:
                    continue  # every free slot found a job: more may be due
            await self._wait_for_a_turn(wake, lane_running, stop)

    async def _wait_for_a_turn(
        self, wake: asyncio.Event, running: set["asyncio.Task[None]"], stop: asyncio.Event
    ) -> None:
        """Until one of the lane's running jobs ends, a job is staged (NOTIFY), the worker is
        stopped, or the poll interval passes."""
        waiters = [asyncio.create_task(wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait([*waiters, *running], timeout=POLL_INTERVAL_S,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            for waiter in waiters:
                waiter.cancel()


async def _call_with_job(
    handler: JobHandler, db: AsyncConnection, *, job: Job
) -> AfterCommit | None:
    return await handler(db, job)


def _after_commit(job: Job, step: AfterCommit) -> None:
    """The job is done whatever its after-commit step does."""
    try:
        step()
    except Exception:
        log.exception("the after-commit step of job %s (%s) failed", job.id, job.kind)


def _log_loop_error(doing: str, error: Exception) -> None:
    log_failure(log, doing, error)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep for `seconds`, or less if the worker is asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


async def run_worker(config: PlatformConfig) -> None:
    from remit.storage.engine import dispose, make_engine
    from remit.worker.registry import prepare_worker

    url = config.require_database_url()
    engine = make_engine(
        url, application_name="remit-worker", statement_timeout_s=statement_timeout_s()
    )
    # The delivery lane's own pool (`Worker.network_engine`), its size bounding how many of its
    # deliveries use the database at once (each only briefly, before and after its POST).
    deliveries_engine = make_engine(
        url,
        pool_size=DELIVERY_POOL_SIZE,
        application_name="remit-worker-deliveries",
        statement_timeout_s=statement_timeout_s(),
    )
    worker = await prepare_worker(engine, config, network_engine=deliveries_engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    signal_ready()
    log.info("worker running %d job kinds, %d periodic tasks", len(worker.handlers),
             len(worker.periodic))  # fmt: skip
    try:
        await worker.run_forever(libpq_url(url), stop)
    finally:
        for close in worker.on_stop:
            await close()
        await dispose(deliveries_engine)
        await dispose(engine)
