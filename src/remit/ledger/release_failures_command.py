"""`remit balance-release-failures list` and `retry ID`: the due funds the release job set aside
(`remit.ledger.release_failures`), read from and retried on the core database itself, with or
without a running platform.

`list` shows them, the latest set aside first, and changes nothing; it exits 1 when it lists
any (funds an account cannot use until an operator acts), 0 when none. `retry` moves one now,
as the release job would: 0 when the funds are available (now, or already), 1 when the
database refused the move again (the refusal printed, and recorded), 2 for an id that is no
balance transaction, 75 when a worker's batch held its locks too long or the database was out
of reach. Neither changes the schema: a core database not at this version's head is refused
(exit 2). Exit codes: `remit.command_exits`.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Final, TextIO, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.command_exits import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    CommandRefusedError,
    CommandTemporaryFailureError,
)
from remit.config import PlatformConfig
from remit.core.clock import Clock
from remit.core.logging import mask_sensitive
from remit.ledger import release_failures
from remit.ledger.release_failure_bounds import MAX_LIMIT
from remit.ledger.release_failures import (
    RetryOutcome,
    SetAsideRelease,
    read_set_aside,
    retry_release,
)
from remit.storage.database_clock import command_clock

LIST_COMMAND: Final = "balance-release-failures list"
RETRY_COMMAND: Final = "balance-release-failures retry"
_LOCK_NOT_AVAILABLE: Final = "55P03"

T = TypeVar("T")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def render_set_aside(listed: Sequence[SetAsideRelease], has_more: bool) -> str:
    if not listed:
        return "no fund releases set aside\n"
    count = f"{len(listed)} fund release{'s' if len(listed) != 1 else ''}"
    lines = [
        f"{count} set aside, the latest first"
        + (" (more not shown: raise --limit)" if has_more else ""),
        f"{'SET ASIDE AT (UTC)':<21} {'BALANCE TRANSACTION':<30} {'ACCOUNT':<28} "
        f"{'NET':>20} CURRENCY",
    ]
    for item in listed:
        lines.append(
            f"{_iso(item.failed_at):<21} {item.id:<30} {item.account_id:<28} "
            f"{item.net:>20} {item.currency}"
        )
        lines.append(f"    due {_iso(item.available_on)}; refused: {mask_sensitive(item.error)}")
    return "\n".join(lines) + "\n"


def list_command(config: PlatformConfig, *, limit: int, out: TextIO) -> int:
    """List the set-aside releases on `out`; 1 if there are any, 0 if none."""
    if not 1 <= limit <= MAX_LIMIT:
        raise CommandRefusedError(f"--limit must be between 1 and {MAX_LIMIT}, got {limit}")

    async def read(engine: AsyncEngine) -> tuple[list[SetAsideRelease], bool]:
        async with engine.begin() as db:
            return await read_set_aside(db, limit=limit)

    listed, has_more = _on_core_database(config, LIST_COMMAND, read)
    out.write(render_set_aside(listed, has_more))
    return EXIT_FINDINGS if listed else EXIT_CLEAN


def retry_command(
    config: PlatformConfig, *, txn_id: str, out: TextIO, clock: Clock | None = None
) -> int:
    """Try the set-aside release of `txn_id` once more, now; say what it came to on `out`.
    `clock` stands in for the database's (tests)."""

    async def retry(engine: AsyncEngine) -> tuple[RetryOutcome, str | None]:
        # The posting, the event and the set-aside row's time sit beside the release job's,
        # stamped by the database's clock: by this host's, one behind would date the funds'
        # release before they were due, and the event before those recorded ahead of it.
        now = (clock or await command_clock(engine)).now()
        async with engine.begin() as db:
            result = await retry_release(db, txn_id, now=now)
        return result.outcome, result.error

    try:
        outcome, error = _on_core_database(config, RETRY_COMMAND, retry)
    except Exception as failure:
        if _sqlstate(failure) != _LOCK_NOT_AVAILABLE:
            raise
        waited = release_failures.LOCK_TIMEOUT_MS / 1000
        raise CommandTemporaryFailureError(
            f"{txn_id} or its account's ledger was held by another transaction (a worker's "
            f"batch) for over {waited:g} s; nothing changed: run it again"
        ) from failure
    if outcome is RetryOutcome.UNKNOWN:
        raise CommandRefusedError(f"no balance transaction {txn_id}")
    said = {
        RetryOutcome.RELEASED: f"{txn_id}: released, its funds are available",
        RetryOutcome.ALREADY_AVAILABLE: f"{txn_id}: already available, nothing to do",
        RetryOutcome.NOT_SET_ASIDE: (
            f"{txn_id}: not set aside, nothing to do: the release job moves its funds once due"
        ),
        RetryOutcome.STILL_SET_ASIDE: (
            f"{txn_id}: still set aside, the database refused the move again: "
            f"{mask_sensitive(error or '')}"
        ),
    }
    print(said[outcome], file=out)
    return EXIT_FINDINGS if outcome is RetryOutcome.STILL_SET_ASIDE else EXIT_CLEAN


def _sqlstate(error: BaseException) -> str | None:
    seen: BaseException | None = error
    while seen is not None:
        state = getattr(getattr(seen, "orig", seen), "sqlstate", None)
        if isinstance(state, str):
            return state
        seen = seen.__cause__ or seen.__context__
    return None


def _on_core_database(
    config: PlatformConfig, command: str, use: Callable[[AsyncEngine], Awaitable[T]]
) -> T:
    """`use` run on an engine of the core database, refused unless its schema is at this
    version's head; an embedded server is started for it alone when it has no URL."""
    from remit.databases import require_at_head, resolve_databases
    from remit.storage.engine import dispose, make_engine
    from remit.storage.reachability import core_database

    resolved = resolve_databases(config, needed=("core",))
    try:
        database = core_database(resolved.config)
        require_at_head([database], command)

        async def run() -> T:
            engine = make_engine(database.url, pool_size=1, application_name="remit-cli")
            try:
                return await use(engine)
            finally:
                await dispose(engine)

        return asyncio.run(run())
    finally:
        resolved.stop_embedded()
