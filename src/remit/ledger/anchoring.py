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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Final

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.secrets import Secret
from remit.ledger.checkpoints import (
    Checkpoint,
    CheckpointKeys,
    CheckpointLine,
    UnreadableLine,
    append,
    read_file,
)
from remit.ledger.tables import ledger_chains

LOOKUP_BATCH: Final = 5000
# How many findings of each kind a report keeps to show (it counts them all): a database
# restored from an old backup disagrees with every checkpoint after it.
SHOWN: Final = 20


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
    now: datetime,
    account_id: str | None = None,
    already: dict[str, int] | None = None,
) -> int:
    """Append a checkpoint of each chain head to `path`; returns how many. With `already` (the
    sequence each account's chain was last checkpointed at, updated here), only the chains that
    moved since."""
    async with engine.begin() as db:  # a read ends in COMMIT: a ROLLBACK drops prepared plans
        heads = await chain_heads(db, now=now, account_id=account_id)
    if already is not None:
        heads = [head for head in heads if already.get(head.account_id) != head.sequence]
    # The file is synced before this returns: a blocking wait kept off the event loop.
    await asyncio.to_thread(append, path, heads, key)
    if already is not None:
        already.update((head.account_id, head.sequence) for head in heads)
    return len(heads)


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint file to check the ledger against, each line read with the key that wrote
    it: the current one, or one of the earlier ones given."""

    path: Path
    keys: Secret[bytes] | CheckpointKeys

    def lines(self) -> Iterator[CheckpointLine | UnreadableLine]:
        return read_file(self.path, self.keys)


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
    # The first SHOWN of each, in the file's order.
    disagreements: list[Disagreement] = field(default_factory=list)
    unreadable_lines: list[UnreadableLine] = field(default_factory=list)
    unknown_key_lines: list[UnreadableLine] = field(default_factory=list)
    # How many lines each unknown key id wrote.
    unknown_keys: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.disagreeing == 0 and self.unreadable == 0 and self.unknown_key == 0


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
    lines: Iterable[CheckpointLine | UnreadableLine],
    *,
    first_break: Mapping[str, int],
    account_id: str | None = None,
) -> CheckpointReport:
    """Check every checkpoint of `lines` (only `account_id`'s, when given) against the chains
    in `db`'s snapshot. `first_break` is each account's first sequence whose stored hash does
    not recompute (`verify`'s chain breaks)."""
    report = CheckpointReport(path)
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
            elif isinstance(entry, UnreadableLine):
                report.unreadable += 1
                if len(report.unreadable_lines) < SHOWN:
                    report.unreadable_lines.append(entry)
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
            found = _disagreement(entry.checkpoint, held.get(position), first_break)
            if found is None:
                continue
            report.disagreeing += 1
            if len(report.disagreements) < SHOWN:
                report.disagreements.append(Disagreement(entry, found))
    return report


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


def _batches(
    lines: Iterable[CheckpointLine | UnreadableLine], size: int
) -> Iterator[list[CheckpointLine | UnreadableLine]]:
    iterator = iter(lines)
    while batch := list(islice(iterator, size)):
        yield batch
