"""Checkpoints of the ledger's hash chains taken from, and checked against, the core database
(`remit.ledger.checkpoints` has what a checkpoint is and how its file is kept).

Taking them reads the chain heads (one row per account, `ledger_chains`) and appends a
checkpoint for each chain with a transaction: one read, no lock, nothing written to the
database. The worker does so every `REMIT_LEDGER_CHECKPOINT_INTERVAL_S` when
`REMIT_LEDGER_CHECKPOINT_FILE` is set, skipping the chains that have not moved since its own
last checkpoint of them; `remit ledger checkpoint` writes every chain's.

Checking them looks up each checkpoint's position (by the chains' unique (account, sequence)
index, in batches) in the snapshot `remit ledger verify` checks the chains in: a checkpoint
holds when its transaction is still there with the recorded hash and the chain recomputes up
to it (no chain break at or before it, which the verification reports).
"""

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Final, cast

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.config import DEFAULT_LEDGER_CHECKPOINT_INTERVAL_S
from remit.core.clock import Clock
from remit.core.secrets import Secret
from remit.ledger.checkpoints import (
    MAX_CLOCK_STEP,
    AppendLock,
    Checkpoint,
    CheckpointKeys,
    CheckpointLine,
    FileLine,
    IncompleteLine,
    OpenedFile,
    UnreadableLine,
)
from remit.ledger.tables import ledger_chains

log = logging.getLogger(__name__)

LOOKUP_BATCH: Final = 5000
# How many findings of each kind a report keeps to show (it counts them all): a database
# restored from an old backup disagrees with every checkpoint after it.
SHOWN: Final = 20
# How many of the accounts with transactions no checkpoint covers a report names.
UNANCHORED_SHOWN: Final = 5


async def chain_heads(
    db: AsyncConnection, *, now: datetime, account_id: str | None = None
) -> list[Checkpoint]:
    """A checkpoint of every chain that has a transaction (a head at sequence 0 has none)."""
    c = ledger_chains.c
    query = select(c.account_id, c.last_sequence, c.last_hash).where(c.last_sequence > 0)
    if account_id is not None:
        query = query.where(c.account_id == account_id)
    rows = await db.execute(query.order_by(c.account_id))
    return [
        Checkpoint(str(row.account_id), int(row.last_sequence), str(row.last_hash), now)
        for row in rows
    ]


async def write_checkpoints(
    engine: AsyncEngine,
    path: Path,
    key: Secret[bytes],
    *,
    clock: Clock,
    account_id: str | None = None,
    already: dict[str, int] | None = None,
) -> int:
    """Append a checkpoint of each chain head to `path`; returns how many. With `already` (the
    sequence each account's chain was last checkpointed at, updated here), only the chains that
    moved since.

    The file's lock is held from before the heads are read, and the time taken under it, so
    that writers sharing the file append in order (`AppendLock`); a verification opening the
    file meanwhile waits for the read (one query), as it waits for an append. An account whose
    newest line is later than the time by more than a clock's skew (verify would reject a line
    stamped before it) is left out, logged, and tried again at the next run.

    Cancelled, it still closes the file only once no thread uses it (`_close_after`)."""
    # Taking the lock, and syncing the file, are blocking waits kept off the event loop.
    lock = await _acquire(path)
    step: asyncio.Future[object] | None = None
    try:
        now = clock.now()
        async with engine.begin() as db:  # a read ends in COMMIT: a ROLLBACK drops plans
            heads = await chain_heads(db, now=now, account_id=account_id)
        if already is not None:
            heads = [head for head in heads if already.get(head.account_id) != head.sequence]
        # An account whose newest line is far ahead of this writer's clock (a line another
        # writer wrote, a database failed over to a host whose clock is behind) is left out
        # of this batch, and tried again at the next run: not every account's checkpoint with it.
        step = _in_thread(lock.far_ahead, now, [head.account_id for head in heads])
        far_ahead = cast(list[str], await asyncio.shield(step))
        step = None
        if far_ahead:
            log.error(
                "ledger checkpoints: %d accounts left out of this batch, their newest line "
                "being later than this writer's time (%s) by more than %d s (first: %s); they "
                "are tried again at the next run. Check the clocks of the database and of "
                "every writer of %s.",
                len(far_ahead), now.isoformat(), int(MAX_CLOCK_STEP), ", ".join(far_ahead[:5]),
                path,
            )  # fmt: skip
            heads = [head for head in heads if head.account_id not in far_ahead]
        step = _in_thread(lock.stamp, now, [head.account_id for head in heads])
        stamped = cast(datetime, await asyncio.shield(step))
        step = None
        heads = [replace(head, at=stamped) for head in heads]
        step = _in_thread(lock.append, heads, key)
        await asyncio.shield(step)
        step = None
    finally:
        await _close_after(lock, step)
    if already is not None:
        already.update((head.account_id, head.sequence) for head in heads)
    return len(heads)


# How long a cancelled write waits for its thread's step (an append and its fsync) to finish
# before it closes the file; a step still running then closes the file when it is done.
CANCELLED_STEP_WAIT_S: Final = 30.0


def _in_thread(call: Callable[..., object], *args: object) -> "asyncio.Future[object]":
    return asyncio.ensure_future(asyncio.to_thread(call, *args))


async def _acquire(path: Path) -> AppendLock:
    """The file's lock, taken in a thread. A thread cannot be stopped: cancelled while it
    waits for the lock, the thread still takes it, and the descriptor and the lock it holds
    are released as soon as it has (not held until the process exits)."""
    acquiring = asyncio.ensure_future(asyncio.to_thread(AppendLock, path))
    try:
        return await asyncio.shield(acquiring)
    except asyncio.CancelledError:
        acquiring.add_done_callback(_release_acquired)
        raise


def _release_acquired(acquiring: "asyncio.Future[AppendLock]") -> None:
    if not acquiring.cancelled() and acquiring.exception() is None:
        acquiring.result().close()  # the thread that took it is done with it


async def _close_after(lock: AppendLock, step: "asyncio.Future[object] | None") -> None:
    """Close `lock` once no thread uses its descriptor any more. A write cancelled while its
    thread still appends (`step`) must not close the descriptor under it: the thread would
    go on writing to a closed descriptor, or to whatever file or socket is opened under its
    number meanwhile. So it waits for the step (a bounded while), and a step still running
    after that closes the file itself when it is done."""
    try:
        if step is not None and not step.done():
            await asyncio.wait({step}, timeout=CANCELLED_STEP_WAIT_S)
    finally:
        if step is None or step.done():
            closing = asyncio.ensure_future(asyncio.to_thread(lock.close))
            await asyncio.shield(closing)  # cancelled again: it closes in its thread all the same
        else:
            step.add_done_callback(lambda done: _close_when_done(lock, done))


def _close_when_done(lock: AppendLock, step: "asyncio.Future[object]") -> None:
    if not step.cancelled():
        step.exception()  # the write was cancelled: no one is left to be told of its failure
    lock.close()


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint file to check the ledger against, each line read with the key that wrote
    it: the current one, or one of the earlier ones given."""

    path: Path
    keys: Secret[bytes] | CheckpointKeys
    # How often the worker writes checkpoints (`remit.config.ledger_checkpoint_interval_s`):
    # a transaction older than twice that, newer than every checkpoint, is warned of.
    interval_s: float = DEFAULT_LEDGER_CHECKPOINT_INTERVAL_S

    def open(self) -> "OpenedCheckpointFile":
        """The file as far as it is written now (`OpenedFile`); blocks while a batch is
        being appended."""
        return OpenedCheckpointFile(self, OpenedFile(self.path))


@dataclass(frozen=True)
class OpenedCheckpointFile:
    """A checkpoint file open for reading the lines it held when opened."""

    file: CheckpointFile
    opened: OpenedFile

    @property
    def path(self) -> Path:
        return self.file.path

    def lines(self) -> Iterator[FileLine]:
        return self.opened.lines(self.file.keys)

    def close(self) -> None:
        self.opened.close()


@dataclass(frozen=True)
class Disagreement:
    """The database no longer agrees with the checkpoint on line `line.number`."""

    line: CheckpointLine
    found: str


@dataclass
class CheckpointReport:
    path: Path
    checked: int = 0
    disagreeing: int = 0
    # Lines that are no checkpoint the given keys wrote (malformed, or failing their HMAC).
    unreadable: int = 0
    # Lines written under a key that was not given: not checked, which fails the check too (a
    # key left out after a key change must not pass as a clean file).
    unknown_key: int = 0
    # Lines signed by an earlier key but dated after its retirement, and authentic lines out
    # of the order the writers append in (`remit.ledger.checkpoints._Order`): both fail.
    after_retirement: int = 0
    out_of_order: int = 0
    # Lines an interrupted append cut short: shown, but no failure (`IncompleteLine` says why).
    incomplete: int = 0
    # The first SHOWN of each, in the file's order.
    disagreements: list[Disagreement] = field(default_factory=list)
    unreadable_lines: list[UnreadableLine] = field(default_factory=list)
    unknown_key_lines: list[UnreadableLine] = field(default_factory=list)
    incomplete_lines: list[IncompleteLine] = field(default_factory=list)
    after_retirement_lines: list[UnreadableLine] = field(default_factory=list)
    out_of_order_lines: list[UnreadableLine] = field(default_factory=list)
    # How many lines each unknown key id wrote.
    unknown_keys: dict[str, int] = field(default_factory=dict)
    # How many checkpoints were checked under each earlier (retired) key, by its id.
    checked_under_retired: dict[str, int] = field(default_factory=dict)
    # The time of the newest checkpoint checked, and, when an account holds a transaction
    # made more than twice the worker's interval ago and newer than that account's newest
    # checkpoint (or it has none), the oldest such transaction's time: a warning, no failure
    # (the worker may be stopped, or the file's last lines cut). How many accounts do, and the
    # first UNANCHORED_SHOWN of them (oldest first) with their oldest such transaction's time.
    newest: datetime | None = None
    unanchored_since: datetime | None = None
    unanchored_accounts: int = 0
    unanchored_shown: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # No checkpoint checked is a failure too: whoever can empty the file (or cut it to
        # lines of other accounts) must not get a pass for it.
        return (
            self.checked > 0
            and self.disagreeing == 0
            and self.unreadable == 0
            and self.unknown_key == 0
            and self.after_retirement == 0
            and self.out_of_order == 0
        )


# Each checkpoint's position as the chain holds it now: the hash there, or NULL when the chain
# has no transaction at that sequence any more.
_HASHES_AT = text(
    "SELECT c.position, t.hash FROM unnest(CAST(:accounts AS text[]), "
    "CAST(:sequences AS bigint[])) WITH ORDINALITY AS c(account_id, sequence, position) "
    "LEFT JOIN ledger_transactions AS t "
    "ON t.account_id = c.account_id AND t.sequence = c.sequence"
)


async def check_checkpoints(
    db: AsyncConnection,
    path: Path,
    lines: Iterable[FileLine],
    *,
    first_break: Mapping[str, int],
    account_id: str | None = None,
    now: datetime | None = None,
    interval_s: float = DEFAULT_LEDGER_CHECKPOINT_INTERVAL_S,
) -> CheckpointReport:
    """Check every checkpoint of `lines` (only `account_id`'s, when given) against the chains
    in `db`'s snapshot. `first_break` is each account's first sequence whose stored hash does
    not recompute (`verify`'s chain breaks). Given `now`, also look for a transaction the
    worker should have checkpointed by now (`CheckpointReport.unanchored_since`)."""
    report = CheckpointReport(path)
    newest: dict[str, datetime] = {}  # each account's newest checkpoint checked
    for batch in _batches(lines, LOOKUP_BATCH):
        wanted: list[CheckpointLine] = []
        for entry in batch:
            if isinstance(entry, UnreadableLine) and entry.unknown_key is not None:
                report.unknown_key += 1
                # The line's content names the key: a file of made-up ids keeps SHOWN of them.
                seen = report.unknown_keys.get(entry.unknown_key)
                if seen is not None or len(report.unknown_keys) < SHOWN:
                    report.unknown_keys[entry.unknown_key] = (seen or 0) + 1
                if len(report.unknown_key_lines) < SHOWN:
                    report.unknown_key_lines.append(entry)
            elif isinstance(entry, UnreadableLine) and entry.after_retirement is not None:
                report.after_retirement += 1
                if len(report.after_retirement_lines) < SHOWN:
                    report.after_retirement_lines.append(entry)
            elif isinstance(entry, UnreadableLine) and entry.out_of_order:
                report.out_of_order += 1
                if len(report.out_of_order_lines) < SHOWN:
                    report.out_of_order_lines.append(entry)
            elif isinstance(entry, UnreadableLine):
                report.unreadable += 1
                if len(report.unreadable_lines) < SHOWN:
                    report.unreadable_lines.append(entry)
            elif isinstance(entry, IncompleteLine):
                report.incomplete += 1
                if len(report.incomplete_lines) < SHOWN:
                    report.incomplete_lines.append(entry)
            elif account_id is None or entry.checkpoint.account_id == account_id:
                wanted.append(entry)
        if not wanted:
            continue
        rows = await db.execute(
            _HASHES_AT,
            {
                "accounts": [entry.checkpoint.account_id for entry in wanted],
                "sequences": [entry.checkpoint.sequence for entry in wanted],
            },
        )
        held = {int(row.position): row.hash for row in rows}
        for position, entry in enumerate(wanted, start=1):
            report.checked += 1
            retired = entry.retired_key
            if retired is not None:  # the given keys' ids only: no more of them than given
                report.checked_under_retired[retired] = (
                    report.checked_under_retired.get(retired, 0) + 1
                )
            if report.newest is None or entry.checkpoint.at > report.newest:
                report.newest = entry.checkpoint.at
            account_newest = newest.get(entry.checkpoint.account_id)
            if account_newest is None or entry.checkpoint.at > account_newest:
                newest[entry.checkpoint.account_id] = entry.checkpoint.at
            found = _disagreement(entry.checkpoint, held.get(position), first_break)
            if found is None:
                continue
            report.disagreeing += 1
            if len(report.disagreements) < SHOWN:
                report.disagreements.append(Disagreement(entry, found))
    if now is not None and report.newest is not None:
        due_before = now - timedelta(seconds=2 * interval_s)
        await _find_unanchored(db, report, newest, due_before, account_id)
    return report


# Per account, the oldest transaction made before :due_before and newer than the account's
# newest checkpoint (any, when it has none); the first of them, and how many accounts have one.
_UNANCHORED = """
WITH anchored AS (
    SELECT * FROM unnest(CAST(:accounts AS text[]), CAST(:times AS timestamptz[]))
        AS a(account_id, at)
), late AS (
    SELECT t.account_id, min(t.created_at) AS since
    FROM ledger_transactions AS t LEFT JOIN anchored AS a ON a.account_id = t.account_id
    WHERE t.created_at < :due_before AND (a.at IS NULL OR t.created_at > a.at) {only}
    GROUP BY t.account_id
)
SELECT account_id, since, count(*) OVER () AS total FROM late
ORDER BY since, account_id LIMIT :shown
"""


async def _find_unanchored(
    db: AsyncConnection,
    report: CheckpointReport,
    newest: Mapping[str, datetime],
    due_before: datetime,
    account_id: str | None,
) -> None:
    """The accounts with a transaction newer than the account's newest checkpoint that a
    running worker would have checkpointed by now (made before `due_before`).

    The checkpoints' age alone says nothing: the worker writes only the chains that moved, so
    on a quiet ledger the newest lines rightly grow old. A transaction no line of its account
    is newer than, made more than two intervals ago, is what shows the worker stopped writing,
    or the file's lines of that account cut (at a line's end, which no line's check can see).
    Compared per account: a quiet account's cut lines are not hidden by busy accounts'."""
    only = "AND t.account_id = :account_id" if account_id is not None else ""
    params: dict[str, object] = {
        "accounts": list(newest),
        "times": list(newest.values()),
        "due_before": due_before,
        "shown": UNANCHORED_SHOWN,
    }
    if account_id is not None:
        params["account_id"] = account_id
    rows = (await db.execute(text(_UNANCHORED.format(only=only)), params)).all()
    if not rows:
        return
    report.unanchored_accounts = int(rows[0].total)
    report.unanchored_shown = [(str(row.account_id), row.since) for row in rows]
    report.unanchored_since = rows[0].since


def _disagreement(
    checkpoint: Checkpoint, stored: str | None, first_break: Mapping[str, int]
) -> str | None:
    """What the database holds instead of what `checkpoint` recorded; None if it agrees."""
    if stored is None:
        return "the chain has no transaction at that sequence"
    if stored != checkpoint.hash:
        return f"the chain's hash there is {stored[:16]}, the checkpoint's {checkpoint.hash[:16]}"
    broken = first_break.get(checkpoint.account_id)
    if broken is not None and broken <= checkpoint.sequence:
        return f"the chain does not recompute from sequence {broken} on"
    return None


def _batches(lines: Iterable[FileLine], size: int) -> Iterator[list[FileLine]]:
    iterator = iter(lines)
    while batch := list(islice(iterator, size)):
        yield batch
