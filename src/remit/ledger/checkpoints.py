"""Checkpoints of the ledger's hash chains, kept outside the database.

Each account's chain (`remit.ledger.verify`) shows that its transactions were not changed
after they were written, unless whoever changed one also recomputed every hash after it and
the chain head: anyone who can write the database can. A checkpoint anchors a chain outside
the database: the account, a position in its chain (a sequence number) and the hash the chain
had there, and when that was seen, authenticated with an HMAC-SHA256 key that the database
never holds (`remit.config.ledger_checkpoint_key`). `remit ledger verify --checkpoints FILE`
then checks that the chain still passes through every recorded position with the recorded
hash: history rewritten before a checkpoint shows, however well its chain was recomputed.

A checkpoint file holds one checkpoint a line, as JSON; lines are only ever appended, each
batch in one write under an exclusive lock and synced to disk before the writer goes on. The
file holds nothing secret (hashes of the ledger's content, account ids), but whoever holds the
key can forge lines: keep the key where the database's administrators cannot read it, and the
file (or copies of it) where they cannot rewrite it.
"""

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from remit.core.secrets import Secret

# What the HMAC covers comes after this, so that a MAC made for another purpose with the same
# key can never pass for a checkpoint's.
_DOMAIN: Final = "remit-ledger-checkpoint/1"
_FIELDS: Final = frozenset({"account_id", "sequence", "hash", "at", "mac"})


@dataclass(frozen=True)
class Checkpoint:
    """Account `account_id`'s chain had hash `hash` at sequence `sequence` at time `at`."""

    account_id: str
    sequence: int
    hash: str
    at: datetime


@dataclass(frozen=True)
class CheckpointLine:
    """A checkpoint as read from line `number` (from 1) of its file."""

    number: int
    checkpoint: Checkpoint


@dataclass(frozen=True)
class UnreadableLine:
    """Line `number` is no checkpoint this key wrote: malformed, or its HMAC does not match."""

    number: int
    reason: str


def _message(checkpoint: Checkpoint) -> bytes:
    return "\n".join(
        (
            _DOMAIN,
            checkpoint.account_id,
            str(checkpoint.sequence),
            checkpoint.hash,
            _timestamp(checkpoint.at),
        )
    ).encode("utf-8")


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _mac(checkpoint: Checkpoint, key: Secret[bytes]) -> str:
    return hmac.new(key.reveal(), _message(checkpoint), hashlib.sha256).hexdigest()


def line_of(checkpoint: Checkpoint, key: Secret[bytes]) -> str:
    """The checkpoint as a line of its file (with its newline)."""
    return (
        json.dumps(
            {
                "account_id": checkpoint.account_id,
                "sequence": checkpoint.sequence,
                "hash": checkpoint.hash,
                "at": _timestamp(checkpoint.at),
                "mac": _mac(checkpoint, key),
            },
            separators=(",", ":"),
        )
        + "\n"
    )


def read_line(number: int, text: str, key: Secret[bytes]) -> CheckpointLine | UnreadableLine:
    """The checkpoint on line `number`, if it is one and its HMAC matches under `key`."""
    try:
        fields = json.loads(text)
    except ValueError:
        return UnreadableLine(number, "not a checkpoint (malformed)")
    if not isinstance(fields, dict) or set(fields) != _FIELDS:
        return UnreadableLine(number, "not a checkpoint (other fields)")
    account_id, sequence, chain_hash, at, mac = (
        fields["account_id"],
        fields["sequence"],
        fields["hash"],
        fields["at"],
        fields["mac"],
    )
    if not (
        isinstance(account_id, str)
        and isinstance(sequence, int)
        and not isinstance(sequence, bool)
        and isinstance(chain_hash, str)
        and isinstance(at, str)
        and isinstance(mac, str)
    ):
        return UnreadableLine(number, "not a checkpoint (a field of the wrong type)")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return UnreadableLine(number, "not a checkpoint (its time is malformed)")
    if moment.tzinfo is None:
        return UnreadableLine(number, "not a checkpoint (its time has no zone)")
    checkpoint = Checkpoint(account_id, sequence, chain_hash, moment)
    # The MAC covers the time as written, so a line whose time was merely re-spelled fails too.
    if _timestamp(moment) != at or not hmac.compare_digest(_mac(checkpoint, key), mac):
        return UnreadableLine(
            number, "its HMAC does not match: the line was altered, or written under another key"
        )
    return CheckpointLine(number, checkpoint)


def read_file(path: Path, key: Secret[bytes]) -> Iterator[CheckpointLine | UnreadableLine]:
    """Every line of the checkpoint file, in order; empty lines are skipped."""
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as lines:
        for number, text in enumerate(lines, start=1):
            if text.strip():
                yield read_line(number, text, key)


def append(path: Path, checkpoints: Sequence[Checkpoint], key: Secret[bytes]) -> None:
    """Append `checkpoints` to the file at `path` (made, mode 0600, if missing) in one write,
    under an exclusive lock (the worker's copies and the command may share a file), and sync
    it to disk before returning: a checkpoint reported written survives a crash.

    A line a crash cut short stays on its own line: a new batch never continues it."""
    if not checkpoints:
        return
    batch = "".join(line_of(checkpoint, key) for checkpoint in checkpoints).encode("utf-8")
    created = not path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        if _ends_mid_line(path):
            batch = b"\n" + batch
        written = 0
        while written < len(batch):
            written += os.write(descriptor, batch[written:])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)  # releases the lock
    if created:
        _sync_directory(path.parent)


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as existing:
        end = existing.seek(0, os.SEEK_END)
        if end == 0:
            return False
        existing.seek(end - 1)
        return existing.read(1) != b"\n"


def _sync_directory(directory: Path) -> None:
    """So that a new file's name survives a crash as its content does."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
