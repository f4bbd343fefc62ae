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

Each line names the key that wrote it by its key id, a fingerprint of the key that reveals
nothing of it (`key_id`), so that after the key changes a file holding lines of several keys
still checks whole: each line under its own key, given the earlier keys (`CheckpointKeys`). A
line whose key is not among those given is told apart from one whose HMAC fails. Lines written
before key ids existed name no key: they pass under whichever given key matches.
"""

import fcntl
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from remit.core.secrets import Secret

# What the HMAC covers comes after this, so that a MAC made for another purpose with the same
# key can never pass for a checkpoint's. A line with a key id is /2: its MAC covers the key id
# too, so that a line cannot be moved to another key's id without failing.
_DOMAIN: Final = "remit-ledger-checkpoint/1"
_DOMAIN_KEYED: Final = "remit-ledger-checkpoint/2"
_FIELDS: Final = frozenset({"account_id", "sequence", "hash", "at", "mac"})
_KEYED_FIELDS: Final = _FIELDS | {"key"}
# The key id is this message's HMAC under the key: it tells keys apart, and what it shows of
# the key is no more than any other MAC made with it (16 hex digits: a chance collision between
# an operator's few keys is negligible, and a collision only makes a line fail its HMAC).
_KEY_ID_MESSAGE: Final = b"remit-ledger-checkpoint-key-id"
KEY_ID_CHARS: Final = 16
_KEY_ID: Final = re.compile(f"[0-9a-f]{{{KEY_ID_CHARS}}}")


def key_id(key: Secret[bytes]) -> str:
    """The key's public fingerprint, written on each line it authenticates."""
    return hmac.new(key.reveal(), _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:KEY_ID_CHARS]


@dataclass(frozen=True)
class CheckpointKeys:
    """The key checkpoints are written with (`current`) and the earlier ones that lines of
    the file may have been written with before the key changed."""

    current: Secret[bytes]
    previous: tuple[Secret[bytes], ...] = ()
    by_id: Mapping[str, Secret[bytes]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The current key first: a key given twice is the current one.
        found: dict[str, Secret[bytes]] = {}
        for key in (self.current, *self.previous):
            found.setdefault(key_id(key), key)
        object.__setattr__(self, "by_id", found)

    @property
    def current_id(self) -> str:
        return key_id(self.current)


def _keys_of(keys: Secret[bytes] | CheckpointKeys) -> CheckpointKeys:
    return keys if isinstance(keys, CheckpointKeys) else CheckpointKeys(keys)


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
    """Line `number` is no checkpoint the given keys wrote: malformed, or its HMAC does not
    match; or (`unknown_key`, the id the line names) written under a key not given, so it
    could not be checked at all."""

    number: int
    reason: str
    unknown_key: str | None = None


def _message(checkpoint: Checkpoint, key_id: str | None) -> bytes:
    head = (_DOMAIN,) if key_id is None else (_DOMAIN_KEYED, key_id)
    return "\n".join(
        (
            *head,
            checkpoint.account_id,
            str(checkpoint.sequence),
            checkpoint.hash,
            _timestamp(checkpoint.at),
        )
    ).encode("utf-8")


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _mac(checkpoint: Checkpoint, key: Secret[bytes], key_id: str | None) -> str:
    return hmac.new(key.reveal(), _message(checkpoint, key_id), hashlib.sha256).hexdigest()


def line_of(checkpoint: Checkpoint, key: Secret[bytes]) -> str:
    """The checkpoint as a line of its file (with its newline), naming its key by id."""
    written_by = key_id(key)
    return (
        json.dumps(
            {
                "account_id": checkpoint.account_id,
                "sequence": checkpoint.sequence,
                "hash": checkpoint.hash,
                "at": _timestamp(checkpoint.at),
                "key": written_by,
                "mac": _mac(checkpoint, key, written_by),
            },
            separators=(",", ":"),
        )
        + "\n"
    )


def read_line(
    number: int, text: str, keys: Secret[bytes] | CheckpointKeys
) -> CheckpointLine | UnreadableLine:
    """The checkpoint on line `number`, if it is one and its HMAC matches under the key it
    names (one of `keys`), or, for a line that names none, under any of `keys`."""
    try:
        fields = json.loads(text)
    except ValueError:
        return UnreadableLine(number, "not a checkpoint (malformed)")
    if not isinstance(fields, dict) or set(fields) not in (_FIELDS, _KEYED_FIELDS):
        return UnreadableLine(number, "not a checkpoint (other fields)")
    account_id, sequence, chain_hash, at, mac = (
        fields["account_id"],
        fields["sequence"],
        fields["hash"],
        fields["at"],
        fields["mac"],
    )
    written_by = fields.get("key")
    if not (
        isinstance(account_id, str)
        and isinstance(sequence, int)
        and not isinstance(sequence, bool)
        and isinstance(chain_hash, str)
        and isinstance(at, str)
        and isinstance(mac, str)
        and (written_by is None or isinstance(written_by, str))
    ):
        return UnreadableLine(number, "not a checkpoint (a field of the wrong type)")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return UnreadableLine(number, "not a checkpoint (its time is malformed)")
    if moment.tzinfo is None:
        return UnreadableLine(number, "not a checkpoint (its time has no zone)")
    if written_by is not None and not _KEY_ID.fullmatch(written_by):
        # Checked before it is shown: the file is not trusted, the report is read on a terminal.
        return UnreadableLine(number, "not a checkpoint (its key id is malformed)")
    checkpoint = Checkpoint(account_id, sequence, chain_hash, moment)
    given = _keys_of(keys)
    if written_by is None:
        # Written before lines named their key: any of the keys given may have.
        candidates = tuple(given.by_id.values())
    elif written_by in given.by_id:
        candidates = (given.by_id[written_by],)
    else:
        return UnreadableLine(
            number,
            f"written under key {written_by}, which is not among the keys given",
            unknown_key=written_by,
        )
    # The MAC covers the time as written, so a line whose time was merely re-spelled fails too.
    if _timestamp(moment) != at or not any(
        hmac.compare_digest(_mac(checkpoint, key, written_by), mac) for key in candidates
    ):
        return UnreadableLine(
            number,
            "its HMAC does not match: the line was altered"
            + (", or written under a key not given" if written_by is None else ""),
        )
    return CheckpointLine(number, checkpoint)


def read_file(
    path: Path, keys: Secret[bytes] | CheckpointKeys
) -> Iterator[CheckpointLine | UnreadableLine]:
    """Every line of the checkpoint file, in order; empty lines are skipped."""
    given = _keys_of(keys)
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as lines:
        for number, text in enumerate(lines, start=1):
            if text.strip():
                yield read_line(number, text, given)


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
