"""A job queue in PostgreSQL: staged inside the caller's transaction, claimed with SKIP LOCKED.

Staging a job is an INSERT in the same transaction as the state change that needs it, so a job
exists if and only if that change committed: nothing is handed to a worker before commit, and
nothing is lost if the process dies right after it. Workers claim jobs under a lease; a worker
that dies mid-job leaves the lease to expire and another worker takes the job again, so every
handler must be idempotent.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.worker.tables import jobs

NOTIFY_CHANNEL = "remit_jobs"
DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 25


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: Mapping[str, object]
    account_id: str | None
    attempts: int
    max_attempts: int


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


_CLAIM = text(
    """
    UPDATE jobs SET locked_until = :now + make_interval(secs => :lease_s),
                    attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM jobs
        WHERE status = 'pending' AND run_at <= :now
          AND (locked_until IS NULL OR locked_until < :now)
          AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[])))
        ORDER BY run_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, kind, payload, account_id, attempts, max_attempts
    """
)


async def claim_jobs(
    db: AsyncConnection,
    *,
    now: datetime,
    limit: int,
    lease_s: float = DEFAULT_LEASE_S,
    kinds: list[str] | None = None,
) -> list[Job]:
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
        )
        for row in rows
    ]
    claimed.sort(key=lambda job: job.id)
    return claimed


async def complete_job(db: AsyncConnection, job_id: int, *, now: datetime) -> None:
    await db.execute(
        jobs.update()
        .where(jobs.c.id == job_id)
        .values(status="done", locked_until=None, finished_at=now, last_error=None)
    )


async def retry_or_fail_job(
    db: AsyncConnection, job: Job, *, now: datetime, error: str, retry_in: timedelta
) -> bool:
    """Record a failed attempt; schedule the next one or, when attempts run out, fail the job.

    Returns True when the job will run again.
    """
    will_retry = job.attempts < job.max_attempts
    await db.execute(
        jobs.update()
        .where(jobs.c.id == job.id)
        .values(
            status="pending" if will_retry else "failed",
            run_at=now + retry_in if will_retry else now,
            locked_until=None,
            last_error=error[:2000],
            finished_at=None if will_retry else now,
        )
    )
    return will_retry


async def reschedule_job(db: AsyncConnection, job: Job, *, run_at: datetime) -> None:
    """Put a job back to run later without counting the attempt (e.g. waiting on a schedule)."""
    await db.execute(
        jobs.update()
        .where(jobs.c.id == job.id)
        .values(run_at=run_at, locked_until=None, attempts=jobs.c.attempts - 1)
    )


async def delete_finished_jobs(db: AsyncConnection, *, older_than: datetime) -> int:
    result = await db.execute(
        jobs.delete().where(jobs.c.status == "done", jobs.c.finished_at < older_than)
    )
    return int(result.rowcount)
