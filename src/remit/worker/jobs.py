"""A job queue in PostgreSQL: staged inside the caller's transaction, claimed with SKIP LOCKED.

Staging a job is an INSERT in the same transaction as the state change that needs it, so a job
exists if and only if that change committed: nothing is handed to a worker before commit, and
nothing is lost if the process dies right after it. Workers claim jobs under a lease; a worker
that dies mid-job leaves the lease to expire and another worker takes the job again, so every
handler must be idempotent.

Leases are measured by the database's clock, never a worker's own: a worker whose clock runs
ahead must not take over jobs others still run. A claim is the job's attempt count at claim
time; a worker records its job's end (done, retry, failed) only while that claim still holds,
so a worker whose lease ran out, and whose job another worker took, changes nothing.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, TextClause, and_, bindparam, func, literal, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.logging import mask_sensitive
from remit.worker.tables import jobs

NOTIFY_CHANNEL = "remit_jobs"
# The least a claim holds a job; the worker sizes its lease from its handlers' longest steps
# (`remit.worker.leases`).
DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 25

# How much of a failed attempt's error is kept in `jobs.last_error`.
LAST_ERROR_LENGTH: Final = 2000


def recorded_error(error: str) -> str:
    """`error` as `jobs.last_error` keeps it: masked as log lines are (card numbers, API keys
    and other secrets, URL credentials), since an exception's message may quote a request or
    a driver's parameters and the column is read back by operators and backed up with the
    rest of the database; then bounded. Masked before it is cut, so that no cut leaves a part
    of a card number the masking would no longer recognise."""
    return mask_sensitive(error)[:LAST_ERROR_LENGTH]


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: Mapping[str, object]
    account_id: str | None
    attempts: int
    max_attempts: int
    # How many of its claims were put back, claimed before it was due (`reschedule_job`): each
    # raised `attempts` and `max_attempts` alike.
    put_backs: int = 0

    @property
    def tries(self) -> int:
        """The runs it really made, this one included: its claims less those put back."""
        return self.attempts - self.put_backs

    @property
    def max_tries(self) -> int:
        """Its attempt limit, as it was staged: less the put-backs that each raised it."""
        return self.max_attempts - self.put_backs


# The job and the NOTIFY that wakes the workers, in one statement. NOTIFY is transactional:
# workers are woken only once the job is committed. A job folded into an existing one by its
# dedupe key changes nothing a worker could claim, so it notifies no one.
_STAGE = text(
    """
    WITH staged AS (
        INSERT INTO jobs (kind, payload, account_id, dedupe_key, run_at, max_attempts,
                          created_at)
        VALUES (:kind, :payload, :account_id, :dedupe_key, :run_at, :max_attempts, :now)
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING kind
    )
    SELECT pg_notify(:channel, staged.kind) FROM staged
    """
).bindparams(bindparam("payload", type_=JSONB))


async def stage_job(
    db: AsyncConnection,
    kind: str,
    payload: Mapping[str, object],
    *,
    now: datetime,
    run_at: datetime | None = None,
    account_id: str | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> None:
    """Add a job inside the caller's transaction; it becomes visible when that commits.

    `remit.webhooks.outbox.record_event` stages the first delivery attempts of an event in its
    own single statement, with the same columns and wake-up as here: keep the two in step.

    Without a `dedupe_key` every call adds a job (keys of NULL never conflict)."""
    await db.execute(
        _STAGE,
        {
            "kind": kind,
            "payload": dict(payload),
            "account_id": account_id,
            "dedupe_key": dedupe_key,
            "run_at": run_at or now,
            "max_attempts": max_attempts,
            "now": now,
            "channel": NOTIFY_CHANNEL,
        },
    )


class NotDueError(Exception):
    """Raised by a handler whose job is not due yet by a time it checks for itself (the
    database's own, where the job's schedule came from another process's clock): the worker
    puts the job back for `run_at`, without counting the attempt, and its work is rolled
    back."""

    def __init__(self, run_at: datetime) -> None:
        super().__init__(f"not due until {run_at.isoformat()}")
        self.run_at = run_at


class ClaimLostError(Exception):
    """The job was claimed again since this worker claimed it (its lease ran out), or has
    ended: this worker's view of it is stale and it records nothing."""


# `run_at` is compared with the caller's `now`: the worker's clock, which tells the database's
# time too (`remit.storage.database_clock`) while tests move their own; the lease with the
# database's `now()`.
_CLAIM = text(
    """
    UPDATE jobs SET locked_until = now() + make_interval(secs => :lease_s),
                    attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM jobs
        WHERE status = 'pending' AND run_at <= :now
          AND (locked_until IS NULL OR locked_until < now())
          AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[])))
        ORDER BY run_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, kind, payload, account_id, attempts, max_attempts, put_backs
    """
)


# How many more due jobs than it claims a fair claim looks at: the oldest `limit` times this
# many, and at least FAIR_CLAIM_MIN_WINDOW (a worker whose delivery slots free one at a time
# claims one at a time), so that it costs a bounded read however long the queue.
FAIR_CLAIM_WINDOW: Final = 8
FAIR_CLAIM_MIN_WINDOW: Final = 128


def fair_claim_window(limit: int) -> int:
    """How many of the oldest due jobs a fair claim of `limit` chooses from."""
    return max(FAIR_CLAIM_MIN_WINDOW, limit * FAIR_CLAIM_WINDOW)


# The fair claim: of the oldest due jobs (a window of `fair_claim_window(limit)`, read
# oldest first by the index of runnable jobs by kind), each account's first, then each one's
# second, and so on, oldest first within a turn. The whole window is locked (SKIP LOCKED: two
# workers claim apart), and what is not claimed is let go with the claim's commit. An account
# whose backlog fills the window is still served first only once per turn; one whose jobs sit
# past the window waits until the window reaches them, which the jobs ahead of it, each claimed
# in turn, make quickly (a delivery of a saturated endpoint parks at once).
def _fair_claim(kind_filter: str) -> TextClause:
    """The fair claim with `kind_filter`, one of the two constants below (never a value)."""
    return text(
        f"""
        UPDATE jobs SET locked_until = now() + make_interval(secs => :lease_s),
                        attempts = attempts + 1
        WHERE id IN (
            SELECT id FROM (
                SELECT id, run_at,
                       row_number() OVER (PARTITION BY account_id ORDER BY run_at, id) AS turn
                FROM (
                    SELECT id, account_id, run_at FROM jobs
                    WHERE status = 'pending' AND run_at <= :now
                      AND (locked_until IS NULL OR locked_until < now())
                      AND {kind_filter}
                    ORDER BY run_at, id
                    LIMIT :window
                    FOR UPDATE SKIP LOCKED
                ) AS due
            ) AS turns
            ORDER BY turn, run_at, id
            LIMIT :limit
        )
        RETURNING id, kind, payload, account_id, attempts, max_attempts, put_backs
        """  # noqa: S608 (constant text)
    )


# One kind (a worker's delivery lane) by equality: the index by kind then reads its due jobs
# in the order the window takes them, and stops at the window's end.
_FAIR_CLAIM_ONE_KIND = _fair_claim("kind = :kind")
_FAIR_CLAIM = _fair_claim("kind = ANY(CAST(:kinds AS text[]))")


async def claim_jobs(
    db: AsyncConnection,
    *,
    now: datetime,
    limit: int,
    lease_s: float = DEFAULT_LEASE_S,
    kinds: list[str] | None = None,
    fair: bool = False,
) -> list[Job]:
    """Claim at most `limit` due jobs (of `kinds`, or any): the oldest first or, `fair`, across
    accounts in turn (`_FAIR_CLAIM`; `kinds` must then be given)."""
    if fair:
        if kinds is None:
            raise ValueError("a fair claim is for given kinds")
        one_kind = len(kinds) == 1
        rows = await db.execute(
            _FAIR_CLAIM_ONE_KIND if one_kind else _FAIR_CLAIM,
            {
                "now": now,
                "lease_s": lease_s,
                "limit": limit,
                **({"kind": kinds[0]} if one_kind else {"kinds": kinds}),
                "window": fair_claim_window(limit),
            },
        )
    else:
        rows = await db.execute(
            _CLAIM, {"now": now, "lease_s": lease_s, "limit": limit, "kinds": kinds}
        )
    claimed = [
        Job(
            id=row.id,
            kind=row.kind,
            payload=row.payload if isinstance(row.payload, dict) else json.loads(row.payload),
            account_id=row.account_id,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            put_backs=row.put_backs,
        )
        for row in rows
    ]
    claimed.sort(key=lambda job: job.id)
    return claimed


def _held(job: Job) -> ColumnElement[bool]:
    """The job's row while `job`'s claim holds: not claimed again (which counts an attempt),
    not ended."""
    return and_(jobs.c.id == job.id, jobs.c.attempts == job.attempts, jobs.c.status == "pending")


async def _update_held(db: AsyncConnection, job: Job, values: Mapping[str, object]) -> None:
    result = await db.execute(jobs.update().where(_held(job)).values(**values))
    if result.rowcount != 1:
        raise ClaimLostError(f"job {job.id} is no longer held by attempt {job.attempts}")


async def complete_job(db: AsyncConnection, job: Job, *, now: datetime) -> None:
    """Mark the job done under its claim; raises ClaimLostError (so the caller's transaction,
    with the handler's work, rolls back) when the claim no longer holds."""
    await _update_held(
        db, job, {"status": "done", "locked_until": None, "finished_at": now, "last_error": None}
    )


async def retry_or_fail_job(
    db: AsyncConnection, job: Job, *, now: datetime, error: str, retry_in: timedelta
) -> bool:
    """Record a failed attempt under the job's claim; schedule the next one or, when attempts
    run out, fail the job. Raises ClaimLostError when the claim no longer holds.

    Returns True when the job will run again.
    """
    will_retry = job.attempts < job.max_attempts
    await _update_held(
        db,
        job,
        {
            "status": "pending" if will_retry else "failed",
            "run_at": now + retry_in if will_retry else now,
            "locked_until": None,
            "last_error": recorded_error(error),
            "finished_at": None if will_retry else now,
        },
    )
    return will_retry


def error_line(error: BaseException) -> str:
    """The error's type and the first line of its message: a database error's further lines
    quote the statement's parameters."""
    lines = f"{type(error).__name__}: {error}".strip().splitlines()
    return lines[0] if lines else type(error).__name__


def give_up_failure_line(error: BaseException) -> str:
    """What a job's `last_error` says first when its kind's give-up step failed: the step's
    error, on one line, so that the job's own error still follows it."""
    return f"its give-up step failed ({error_line(error)})"


async def record_give_up_failure(db: AsyncConnection, job: Job, error: BaseException) -> None:
    """Say, first in the failed job's `last_error` (the line `remit jobs failed` shows), that
    its kind's give-up step failed too: what the job was doing was left unfinished. In the
    transaction that failed the job, after the step's savepoint rolled back."""
    said = give_up_failure_line(error)
    await db.execute(
        jobs.update()
        .where(jobs.c.id == job.id)
        .values(
            last_error=func.left(
                literal(recorded_error(said))
                + literal("; ")
                + func.coalesce(jobs.c.last_error, ""),
                LAST_ERROR_LENGTH,
            )
        )
    )


def out_of_attempts(job: Job) -> bool:
    """Claimed past its limit: every attempt it had was used, the last ones without an end
    recorded (their worker died with them, which a job can cause again and again)."""
    return job.attempts > job.max_attempts


async def fail_exhausted_job(db: AsyncConnection, job: Job, *, now: datetime) -> None:
    """Fail, under its claim, a job claimed past its attempt limit, without running it; the
    claim that found it out is not an attempt."""
    await _update_held(
        db,
        job,
        {
            "status": "failed",
            "attempts": job.max_attempts,
            "locked_until": None,
            # The last error recorded, if any attempt recorded one, says more.
            "last_error": func.coalesce(
                jobs.c.last_error, "every attempt ended without a result (its worker stopped)"
            ),
            "finished_at": now,
        },
    )


async def reschedule_job(db: AsyncConnection, job: Job, *, run_at: datetime) -> None:
    """Put a job back to run later without counting the attempt against its limit (e.g.
    waiting on a schedule).

    Its limit is raised by one rather than its `attempts` lowered: `attempts` is what tells
    one claim from another (`_held`), so it only ever grows. Lowered, the next claim would bear
    this claim's number again, and a worker still holding an older claim of that number (its
    lease ran out while it stalled, and this claim took the job over) would record its end
    under the newer one. The attempts left are the same either way. `put_backs` counts it,
    so that what reads the runs made (the backoff, the give-up's log, `remit jobs failed`, a
    handler's "tried before") reads `Job.tries`, not the claims: a worker whose clock runs a
    little ahead may claim and put back a job many times before it is due."""
    await _update_held(
        db,
        job,
        {
            "run_at": run_at,
            "locked_until": None,
            "max_attempts": jobs.c.max_attempts + 1,
            "put_backs": jobs.c.put_backs + 1,
        },
    )


# One batch of the prune, by the index of ended jobs (ix_jobs_finished). The status is written
# out, not bound: only a constant proves a query is within that partial index, whatever plan a
# prepared statement ends up with.
_DELETE_ENDED = {
    "done": text(
        """
        DELETE FROM jobs WHERE id IN (
            SELECT id FROM jobs WHERE status = 'done' AND finished_at < :older_than LIMIT :limit
        )
        """
    ),
    "failed": text(
        """
        DELETE FROM jobs WHERE id IN (
            SELECT id FROM jobs WHERE status = 'failed' AND finished_at < :older_than LIMIT :limit
        )
        """
    ),
}


async def delete_finished_jobs(
    db: AsyncConnection, *, status: str, older_than: datetime, limit: int
) -> int:
    """Delete at most `limit` jobs that ended with `status` (done or failed) before
    `older_than`; returns how many."""
    result = await db.execute(_DELETE_ENDED[status], {"older_than": older_than, "limit": limit})
    return int(result.rowcount)
