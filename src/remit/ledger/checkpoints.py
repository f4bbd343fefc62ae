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
batch in one write under an exclusive lock and synced to disk before the writer goes on; a
reader takes the file's length under a shared lock, so that it reads whole batches only
(`OpenedFile`), and tells a line an interrupted append cut short from an altered one
(`IncompleteLine`). The file holds nothing secret (hashes of the ledger's content, account
ids), but whoever holds the key can forge lines: keep the key where the database's
administrators cannot read it, and the file (or copies of it) where they cannot rewrite it.

Each line names the key that wrote it by its key id, a fingerprint of the key that reveals
nothing of it (`key_id`), so that after the key changes a file holding lines of several keys
still checks whole: each line under its own key, given the earlier keys (`CheckpointKeys`). A
line whose key is not among those given is told apart from one whose HMAC fails. Lines written
before key ids existed name no key: they pass under whichever given key matches, and only before
the file's first line that names one.

An earlier key is given with the time it was retired (`RetiredKey`): a key is changed because it
may have leaked, and whoever holds a leaked key can write lines that pass under it. A line under
a retired key dated after its retirement fails; so does a line that goes back in time or in its
chain against an earlier line of the same account (the writers append in order): lines appended
later with a retired key's earlier dates do not pass either.
"""

import fcntl
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeAlias

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
# What `_mac` makes: a MAC of any other shape is not one, whatever bytes a corruption left.
_MAC_SHAPE: Final = re.compile("[0-9a-f]{64}")


def key_id(key: Secret[bytes]) -> str:
    """The key's public fingerprint, written on each line it authenticates."""
    return hmac.new(key.reveal(), _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:KEY_ID_CHARS]


@dataclass(frozen=True)
class RetiredKey:
    """An earlier key and when it stopped writing checkpoints: lines under it dated later fail."""

    key: Secret[bytes]
    retired_at: datetime


@dataclass(frozen=True)
class CheckpointKeys:
    """The key checkpoints are written with (`current`) and the earlier ones that lines of
    the file may have been written with before the key changed."""

    current: Secret[bytes]
    previous: tuple[RetiredKey, ...] = ()
    by_id: Mapping[str, Secret[bytes]] = field(init=False, repr=False, compare=False)
    # The retirement time of each earlier key's id (none for the current key).
    retired_at: Mapping[str, datetime] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The current key first: a key given twice is the current one.
        found: dict[str, Secret[bytes]] = {key_id(self.current): self.current}
        retired: dict[str, datetime] = {}
        for earlier in self.previous:
            earlier_id = key_id(earlier.key)
            if earlier_id not in found:
                found[earlier_id] = earlier.key
                retired[earlier_id] = earlier.retired_at
        object.__setattr__(self, "by_id", found)
        object.__setattr__(self, "retired_at", retired)

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
    """A checkpoint as read from line `number` (from 1) of its file. `retired_key` is the id
    of the earlier key it was checked under (None: the current key); `legacy` that the line
    names no key (written before key ids existed)."""

    number: int
    checkpoint: Checkpoint
    retired_key: str | None = field(default=None, compare=False)
    legacy: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class UnreadableLine:
    """Line `number` is no checkpoint the given keys wrote: malformed, or its HMAC does not
    match; or (`unknown_key`, the id the line names) written under a key not given, so it
    could not be checked at all; or (`after_retirement`, the key's id) authentic under an
    earlier key but dated after that key's retirement; or (`out_of_order`) authentic but out of
    place: going back in time or in its chain against an earlier line of its account, or naming
    no key after a line that names one."""

    number: int
    reason: str
    unknown_key: str | None = None
    after_retirement: str | None = None
    out_of_order: bool = False


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
    except (ValueError, RecursionError):  # RecursionError: brackets nested too deep
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
    if not _MAC_SHAPE.fullmatch(mac):
        # Checked before comparing: compare_digest refuses (TypeError) a str that is not ASCII,
        # which a corrupted byte (read as U+FFFD) or a \u escape makes.
        return UnreadableLine(number, "not a checkpoint (its HMAC is malformed)")
    checkpoint = Checkpoint(account_id, sequence, chain_hash, moment)
    try:
        _message(checkpoint, written_by)
    except UnicodeEncodeError:
        # A \ud800-style escape decodes to a lone surrogate, which has no UTF-8.
        return UnreadableLine(number, "not a checkpoint (a field is not text)")
    given = _keys_of(keys)
    if written_by is None:
        # Written before lines named their key: any of the keys given may have.
        candidates = tuple(given.by_id.items())
    elif written_by in given.by_id:
        candidates = ((written_by, given.by_id[written_by]),)
    else:
        return UnreadableLine(
            number,
            f"written under key {written_by}, which is not among the keys given",
            unknown_key=written_by,
        )
    # The MAC covers the time as written, so a line whose time was merely re-spelled fails too.
    matched = None
    if _timestamp(moment) == at:
        matched = next(
            (
                candidate_id
                for candidate_id, key in candidates
                if hmac.compare_digest(_mac(checkpoint, key, written_by).encode(), mac.encode())
            ),
            None,
        )
    if matched is None:
        return UnreadableLine(
            number,
            "its HMAC does not match: the line was altered"
            + (", or written under a key not given" if written_by is None else ""),
        )
    retired_at = given.retired_at.get(matched)
    if retired_at is not None and moment > retired_at:
        # Whoever holds a leaked key can write lines under it: none dated after it was retired.
        return UnreadableLine(
            number,
            f"signed by a retired key after its retirement: key {matched}, retired at "
            f"{_timestamp(retired_at)}, line dated {_timestamp(moment)}",
            after_retirement=matched,
        )
    return CheckpointLine(
        number,
        checkpoint,
        retired_key=matched if retired_at is not None else None,
        legacy=written_by is None,
    )


@dataclass(frozen=True)
class IncompleteLine:
    """Line `number` is what an interrupted append leaves: a line cut short.

    Reported, but no failure by itself. A crash (or a full disk) during an append leaves one,
    and it would otherwise fail every verification after it: the appender starts the next
    batch on a new line, so a cut line stays in the file for good. Whoever can rewrite the
    file can cut a line on purpose too; but then they can as well delete it whole, which no
    check of the file can see, so accepting the cut line gives them nothing more. What a line
    proves is only ever the lines that are there and authentic: each of those must still check
    (and some must be there, `remit.ledger.anchoring.CheckpointReport.ok`). Only a line shaped
    like a cut one counts: one that stops before its closing brace, or the zeros a crash can
    leave where the file grew before its data reached the disk; a whole line that fails its
    HMAC is an altered one wherever it is, even last and without its newline."""

    number: int
    reason: str = "incomplete (an interrupted write)"


FileLine: TypeAlias = CheckpointLine | UnreadableLine | IncompleteLine

_READ_CHUNK: Final = 1 << 16


class OpenedFile:
    """A checkpoint file open for reading up to the length it had when opened.

    The length is taken under a shared lock, which waits for a batch being appended (under the
    exclusive lock, `append`) to be written whole: the lines up to it are whole batches. They
    are read from the same open file later without the lock: appends only ever add after the
    length, and holding the lock through a verification (minutes, on a large ledger) would hold
    back the worker's appends as long. What was appended after the length is not read: a
    verification opens the file before its snapshot of the database begins, so that every line
    it checks names a position its snapshot holds (`remit.ledger.service`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_SH)
            self.length = os.fstat(self._file.fileno()).st_size
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "OpenedFile":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def lines(self, keys: Secret[bytes] | CheckpointKeys) -> Iterator[FileLine]:
        """Every line up to the length, in order; empty lines are skipped. An authentic line
        out of place (`UnreadableLine.out_of_order`) is yielded as a failure."""
        given = _keys_of(keys)
        order = _Order()
        number = 0
        for raw in self._raw_lines():
            number += 1
            text = raw.decode("utf-8", errors="replace")
            if not text.strip():
                continue
            entry = read_line(number, text, given)
            if isinstance(entry, CheckpointLine):
                yield order.place(entry)
            elif entry.unknown_key is None and entry.after_retirement is None and _cut(text):
                yield IncompleteLine(number)
            else:
                if entry.unknown_key is not None or entry.after_retirement is not None:
                    order.keyed_seen = True
                yield entry

    def _raw_lines(self) -> Iterator[bytes]:
        """The lines up to the length, the last without its newline if it has none."""
        self._file.seek(0)
        left = self.length
        pending = b""
        while left > 0:
            chunk = self._file.read(min(_READ_CHUNK, left))
            if not chunk:  # cut shorter since it was opened: what is left is all there is
                break
            left -= len(chunk)
            *whole, pending = (pending + chunk).split(b"\n")
            yield from whole
        if pending:
            yield pending


@dataclass
class _Order:
    """The order the writers append in: per account, times and chain sequences never go back
    (each batch is of heads read after the last one's), and lines without a key id only before
    the first line with one (they were written before key ids existed). A line appended out
    of that order (say, with a leaked retired key's earlier dates) fails."""

    keyed_seen: bool = False
    last: dict[str, tuple[datetime, int]] = field(default_factory=dict)

    def place(self, entry: CheckpointLine) -> CheckpointLine | UnreadableLine:
        checkpoint = entry.checkpoint
        if entry.legacy and self.keyed_seen:
            return UnreadableLine(
                entry.number,
                "out of order: a line without a key id after one with a key id "
                "(only lines written before key ids existed may name none)",
                out_of_order=True,
            )
        before = self.last.get(checkpoint.account_id)
        if before is not None and (checkpoint.at < before[0] or checkpoint.sequence < before[1]):
            return UnreadableLine(
                entry.number,
                f"out of order: {checkpoint.account_id} sequence {checkpoint.sequence} at "
                f"{_timestamp(checkpoint.at)} after an earlier line's sequence {before[1]} at "
                f"{_timestamp(before[0])}",
                out_of_order=True,
            )
        if not entry.legacy:
            self.keyed_seen = True
        self.last[checkpoint.account_id] = (checkpoint.at, checkpoint.sequence)
        return entry


def _cut(text: str) -> bool:
    """Whether the line is shaped like what an interrupted append leaves (`IncompleteLine`)."""
    body = text.strip(" \t\r\n\x00")
    return not body or (body.startswith("{") and not body.endswith("}"))


def read_file(path: Path, keys: Secret[bytes] | CheckpointKeys) -> Iterator[FileLine]:
    """Every line of the checkpoint file as it is now, in order; empty lines are skipped."""
    with OpenedFile(path) as opened:
        yield from opened.lines(keys)


def append(path: Path, checkpoints: Sequence[Checkpoint], key: Secret[bytes]) -> None:
    """Append `checkpoints` to the file at `path` (made, mode 0600, if missing) in one write,
    under an exclusive lock (the worker's copies and the command may share a file), and sync
    it to disk before returning: a checkpoint reported written survives a crash.

    A line a crash cut short stays on its own line: a new batch never continues it."""
    if not checkpoints:
        return
    with AppendLock(path) as lock:
        lock.append(checkpoints, key)


# How far ahead of a writer's clock an account's newest line in the file may be for the writer
# to stamp its batch with that line's time instead (`AppendLock.stamp`): a few writers' clocks,
# each read from the database's, differ by milliseconds; a line further ahead is no such skew.
MAX_CLOCK_STEP: Final = 60.0


class ClockBehindError(RuntimeError):
    """A writer's time is behind an account's newest line in the file by more than
    MAX_CLOCK_STEP: what it would append, verify would reject as out of order."""


class AppendLock:
    """The file (made, mode 0600, if missing) open for appending under its exclusive lock,
    taken when made (it blocks) and released by `close`. Held while a writer reads the chain
    heads and appends them, so that of writers sharing the file (the worker's copies and the
    command) each appends heads read after the last one's appended: per account, sequences
    and times never go back in the file (`_Order`, which verify checks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._created = not path.exists()
        self._newest: dict[str, datetime] | None = None
        self._descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._descriptor)
            raise

    def newest(self) -> dict[str, datetime]:
        """Each account's newest time among the file's last lines (`_TAIL` bytes of it, read
        once under the lock; then kept up to date with what this lock appends). Not checked:
        only a hint, of what verify would compare an appended line with."""
        if self._newest is None:
            self._newest = _newest_times(self.path)
        return self._newest

    def far_ahead(self, now: datetime, accounts: Iterable[str]) -> list[str]:
        """The accounts whose newest line is later than `now` by more than MAX_CLOCK_STEP:
        lines of theirs stamped now would go back in time, which verify reports as out of
        order."""
        newest = self.newest()
        return sorted(
            account
            for account in set(accounts)
            if account in newest and (newest[account] - now).total_seconds() > MAX_CLOCK_STEP
        )

    def stamp(self, now: datetime, accounts: Iterable[str]) -> datetime:
        """The time to stamp a batch of `accounts`' checkpoints with: `now`, or the newest time
        among the file's last lines, whichever account's, when that is later by no more than
        MAX_CLOCK_STEP (another writer's clock a little ahead). Any account's, not only the
        batch's: an account's newest line may sit in a batch too large for the tail read, and
        appends being serialised by the lock, the last batch's time is no earlier than it.
        Raises ClockBehindError when one of `accounts` has a line later than `now` by more:
        lines stamped `now` would go back in time against that line, which verify reports as
        out of order. A line of another account that far ahead is no skew, and is ignored."""
        newest = self.newest()
        near = [moment for moment in newest.values() if _within_step(now, moment)]
        stamped = max([now, *near])
        ahead = max(((newest[a], a) for a in accounts if a in newest), default=None)
        if ahead is not None and ahead[0] > stamped:
            raise ClockBehindError(_behind(now, *ahead))
        return stamped

    def append(self, checkpoints: Sequence[Checkpoint], key: Secret[bytes]) -> None:
        if not checkpoints:
            return
        newest = self.newest()
        for checkpoint in checkpoints:
            before = newest.get(checkpoint.account_id)
            if before is not None and checkpoint.at < before:
                raise ClockBehindError(_behind(checkpoint.at, before, checkpoint.account_id))
        batch = "".join(line_of(checkpoint, key) for checkpoint in checkpoints).encode("utf-8")
        if _ends_mid_line(self.path):
            batch = b"\n" + batch
        _write_all(self._descriptor, batch)
        for checkpoint in checkpoints:
            newest[checkpoint.account_id] = checkpoint.at

    def close(self) -> None:
        os.close(self._descriptor)  # releases the lock
        if self._created:
            self._created = False
            _sync_directory(self.path.parent)

    def __enter__(self) -> "AppendLock":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _write_all(descriptor: int, data: bytes) -> None:
    """Write `data` whole and sync it to disk."""
    written = 0
    while written < len(data):
        written += os.write(descriptor, data[written:])
    os.fsync(descriptor)


# How much of the file's end a writer reads for its accounts' newest lines: some hundreds of
# lines, the last few batches of the writers sharing the file.
_TAIL: Final = 1 << 16


def _newest_times(path: Path) -> dict[str, datetime]:
    """Each account's newest time among the lines of the file's last _TAIL bytes (a line cut by
    where the tail begins, or malformed, is skipped)."""
    with path.open("rb") as existing:
        end = existing.seek(0, os.SEEK_END)
        existing.seek(max(0, end - _TAIL))
        tail = existing.read().decode("utf-8", errors="replace").splitlines()
    newest: dict[str, datetime] = {}
    for line in tail:
        try:
            fields = json.loads(line)
            account_id = fields["account_id"]
            moment = datetime.fromisoformat(fields["at"])
        except (ValueError, RecursionError, TypeError, KeyError):
            continue
        if not isinstance(account_id, str) or moment.tzinfo is None:
            continue
        if account_id not in newest or moment > newest[account_id]:
            newest[account_id] = moment
    return newest


def _within_step(now: datetime, moment: datetime) -> bool:
    return (moment - now).total_seconds() <= MAX_CLOCK_STEP


def _behind(now: datetime, latest: datetime, account_id: str) -> str:
    return (
        f"not appending checkpoints: this writer's time {_timestamp(now)} is behind the "
        f"file's newest line for {account_id} ({_timestamp(latest)}) by "
        f"{(latest - now).total_seconds():.0f} s, more than the {MAX_CLOCK_STEP:.0f} s a "
        f"clock's skew is allowed; verify would report the lines as out of order. Is the "
        f"database's clock (or another writer's) wrong?"
    )


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
