"""`remit jobs failed`: the jobs that failed for good, the latest first, read from the core
database (with or without a running platform).

A job fails for good when its attempts run out; its kind's give-up step (if any) has run, and
the job stays in the table, failed, until the prune deletes it 30 days later
(`remit.worker.housekeeping`). Nothing else shows it: this lists each one's kind, id, account,
attempts, when it failed and the first line of its last error, masked as log lines are. Never
its payload: a kind may carry in it what an operator's terminal should not show. The error's
further lines are left out too: a database error's quote the statement's parameters.

It changes nothing, the schema included: a core database not at this version's head is refused
(exit 2), as `remit ledger verify` refuses it. It exits 1 when it lists any job, 0 when none.
Exit codes: `remit.command_exits`.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TextIO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.command_exits import EXIT_CLEAN, EXIT_FINDINGS, CommandRefusedError
from remit.config import PlatformConfig
from remit.core.logging import mask_sensitive
from remit.worker.failed_job_bounds import MAX_LIMIT

COMMAND: Final = "jobs failed"
_ERROR_LENGTH: Final = 200


@dataclass(frozen=True)
class FailedJob:
    id: int
    kind: str
    account_id: str | None
    attempts: int
    max_attempts: int
    finished_at: datetime | None
    # The first line of the last error, masked and bounded; None when none was recorded.
    last_error: str | None


# Through the index of ended jobs (ix_jobs_finished, core migration 0066); the status written out,
# not bound, so that every plan can use that partial index. Its attempts are the runs it made of
# the limit it was staged with: a claim put back, made before the job was due, is neither
# (core migration 0074).
_FAILED = text(
    """
    SELECT id, kind, account_id, attempts - put_backs AS attempts,
           max_attempts - put_backs AS max_attempts, finished_at, last_error
    FROM jobs
    WHERE status = 'failed'
    ORDER BY finished_at DESC, id DESC
    LIMIT :limit
    """
)


def _error_line(error: str | None) -> str | None:
    if error is None:
        return None
    lines = error.strip().splitlines()
    first = mask_sensitive(lines[0]) if lines else ""
    if len(first) > _ERROR_LENGTH:
        first = first[: _ERROR_LENGTH - 3] + "..."
    return first


async def read_failed_jobs(db: AsyncConnection, *, limit: int) -> tuple[list[FailedJob], bool]:
    """Up to `limit` failed jobs, the latest to fail first, and whether there are more."""
    rows = (await db.execute(_FAILED, {"limit": limit + 1})).all()
    listed = [
        FailedJob(
            id=row.id,
            kind=row.kind,
            account_id=row.account_id,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            finished_at=row.finished_at,
            last_error=_error_line(row.last_error),
        )
        for row in rows[:limit]
    ]
    return listed, len(rows) > limit


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def render_failed_jobs(listed: Sequence[FailedJob], has_more: bool) -> str:
    if not listed:
        return "no failed jobs\n"
    lines = [
        f"{len(listed)} failed job{'s' if len(listed) != 1 else ''}, the latest to fail first"
        + (" (more not shown: raise --limit)" if has_more else ""),
        f"{'FAILED AT (UTC)':<21} {'ID':>10}  {'KIND':<28} {'ATTEMPTS':>9}  ACCOUNT",
    ]
    for job in listed:
        attempts = f"{job.attempts}/{job.max_attempts}"
        lines.append(
            f"{_iso(job.finished_at):<21} {job.id:>10}  {job.kind:<28} {attempts:>9}  "
            f"{job.account_id or '-'}"
        )
        lines.append(f"    last error: {job.last_error or '(none recorded)'}")
    return "\n".join(lines) + "\n"


def failed_jobs_command(config: PlatformConfig, *, limit: int, out: TextIO) -> int:
    """List the failed jobs on `out`; 1 if there are any, 0 if none. Refused input and a schema
    not at head are raised as `CommandRefusedError`, a database out of reach as what
    `remit.command_exits.report_failure` reports as temporary."""
    if not 1 <= limit <= MAX_LIMIT:
        raise CommandRefusedError(f"--limit must be between 1 and {MAX_LIMIT}, got {limit}")
    listed, has_more = _read(config, limit)
    out.write(render_failed_jobs(listed, has_more))
    return EXIT_FINDINGS if listed else EXIT_CLEAN


def _read(config: PlatformConfig, limit: int) -> tuple[list[FailedJob], bool]:
    from remit.databases import require_at_head, resolve_databases
    from remit.storage.engine import dispose, make_engine
    from remit.storage.reachability import core_database

    # It reads the core database only: no embedded server is started for the others.
    resolved = resolve_databases(config, needed=("core",))
    try:
        database = core_database(resolved.config)
        require_at_head([database], COMMAND)

        async def run() -> tuple[list[FailedJob], bool]:
            engine = make_engine(database.url, pool_size=1)
            try:
                async with engine.begin() as db:
                    return await read_failed_jobs(db, limit=limit)
            finally:
                await dispose(engine)

        return asyncio.run(run())
    finally:
        resolved.stop_embedded()
