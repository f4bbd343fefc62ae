"""A checkpoint line passes only under the key that wrote it, unaltered; the file is appended to
whole lines at a time, private to its owner."""

import fcntl
import hashlib
import hmac
import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remit.core.secrets import Secret
from remit.ledger.checkpoints import (
    AppendLock,
    Checkpoint,
    CheckpointKeys,
    CheckpointLine,
    ClockBehindError,
    IncompleteLine,
    OpenedFile,
    RetiredKey,
    UnreadableLine,
    append,
    key_id,
    line_of,
    read_file,
    read_line,
)

KEY = Secret(b"k" * 32)
CHECKPOINT = Checkpoint("acct_1", 7, "ab" * 32, datetime(2026, 12, 7, 8, 0, tzinfo=UTC))


def test_a_line_reads_back_as_the_checkpoint_it_was() -> None:
    assert read_line(1, line_of(CHECKPOINT, KEY), KEY) == CheckpointLine(1, CHECKPOINT)


def _altered(**changes: object) -> str:
    fields = json.loads(line_of(CHECKPOINT, KEY))
    fields.update(changes)
    return json.dumps(fields)


@pytest.mark.parametrize(
    "line",
    [
        _altered(sequence=6),
        _altered(hash="cd" * 32),
        _altered(account_id="acct_2"),
        _altered(at="2026-12-07T09:00:00.000000+00:00"),
        _altered(at="2026-12-07T10:00:00.000000+02:00"),  # the same moment, spelled otherwise
        _altered(mac="00" * 32),
    ],
    ids=["sequence", "hash", "account", "time", "time respelled", "mac"],
)
def test_an_altered_line_fails_its_hmac(line: str) -> None:
    found = read_line(3, line, KEY)
    assert isinstance(found, UnreadableLine)
    assert found.number == 3
    assert "HMAC does not match" in found.reason


def test_a_line_written_under_a_key_not_given_is_told_apart_from_a_failed_hmac() -> None:
    other = Secret(b"o" * 32)
    found = read_line(1, line_of(CHECKPOINT, other), KEY)
    assert isinstance(found, UnreadableLine)
    assert found.unknown_key == key_id(other)
    assert "not among the keys given" in found.reason
    assert "HMAC" not in found.reason


def test_a_line_names_its_key_by_an_id_that_is_not_the_key() -> None:
    fields = json.loads(line_of(CHECKPOINT, KEY))
    assert fields["key"] == key_id(KEY)
    assert len(key_id(KEY)) == 16
    assert key_id(KEY) != key_id(Secret(b"o" * 32))
    assert b"k" * 8 not in bytes.fromhex(key_id(KEY))


PREVIOUS = Secret(b"p" * 32)
# The earlier key was retired when CHECKPOINT was taken: lines under it up to then pass.
ROTATED = CheckpointKeys(KEY, (RetiredKey(PREVIOUS, CHECKPOINT.at),))


def test_after_a_key_change_each_line_reads_under_its_own_key() -> None:
    earlier = Checkpoint("acct_1", 3, "cd" * 32, CHECKPOINT.at)
    assert read_line(1, line_of(earlier, PREVIOUS), ROTATED) == CheckpointLine(1, earlier)
    assert read_line(2, line_of(CHECKPOINT, KEY), ROTATED) == CheckpointLine(2, CHECKPOINT)


def test_a_line_under_an_earlier_key_names_it_and_one_under_the_current_key_does_not() -> None:
    earlier = read_line(1, line_of(CHECKPOINT, PREVIOUS), ROTATED)
    assert isinstance(earlier, CheckpointLine)
    assert earlier.retired_key == key_id(PREVIOUS)
    unkeyed = read_line(1, _unkeyed(CHECKPOINT, PREVIOUS), ROTATED)
    assert isinstance(unkeyed, CheckpointLine)
    assert (unkeyed.retired_key, unkeyed.legacy) == (key_id(PREVIOUS), True)
    current = read_line(1, line_of(CHECKPOINT, KEY), ROTATED)
    assert isinstance(current, CheckpointLine)
    assert (current.retired_key, current.legacy) == (None, False)


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "without a key id"])
def test_a_line_under_a_retired_key_dated_after_its_retirement_fails(keyed: bool) -> None:
    """Whoever holds a leaked earlier key can sign lines: none dated after it was retired."""
    later = Checkpoint("acct_1", 8, "ef" * 32, CHECKPOINT.at + timedelta(microseconds=1))
    line = line_of(later, PREVIOUS) if keyed else _unkeyed(later, PREVIOUS)
    found = read_line(4, line, ROTATED)
    assert isinstance(found, UnreadableLine)
    assert found.after_retirement == key_id(PREVIOUS)
    assert found.unknown_key is None
    assert "signed by a retired key after its retirement" in found.reason
    # The current key has no retirement.
    assert isinstance(read_line(4, line_of(later, KEY), ROTATED), CheckpointLine)


def test_a_line_moved_to_another_keys_id_fails_its_hmac() -> None:
    """The MAC covers the key id: a line cannot be passed off as another given key's."""
    found = read_line(1, _altered(key=key_id(PREVIOUS)), ROTATED)
    assert isinstance(found, UnreadableLine)
    assert found.unknown_key is None
    assert "HMAC does not match" in found.reason


def _unkeyed(checkpoint: Checkpoint, key: Secret[bytes]) -> str:
    """A line as written before lines named their key: no key id, the /1 MAC."""
    at = checkpoint.at.astimezone(UTC).isoformat(timespec="microseconds")
    message = "\n".join(
        (
            "remit-ledger-checkpoint/1",
            checkpoint.account_id,
            str(checkpoint.sequence),
            checkpoint.hash,
            at,
        )
    ).encode()
    mac = hmac.new(key.reveal(), message, hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "account_id": checkpoint.account_id,
            "sequence": checkpoint.sequence,
            "hash": checkpoint.hash,
            "at": at,
            "mac": mac,
        }
    )


def test_a_line_written_before_key_ids_reads_under_whichever_key_matches() -> None:
    assert read_line(1, _unkeyed(CHECKPOINT, KEY), ROTATED) == CheckpointLine(1, CHECKPOINT)
    assert read_line(1, _unkeyed(CHECKPOINT, PREVIOUS), ROTATED) == CheckpointLine(1, CHECKPOINT)
    found = read_line(1, _unkeyed(CHECKPOINT, Secret(b"o" * 32)), ROTATED)
    assert isinstance(found, UnreadableLine)
    assert found.unknown_key is None
    assert "HMAC does not match" in found.reason


@pytest.mark.parametrize(
    "line",
    [
        "{",
        "[]",
        _altered(extra=1),
        _altered(sequence="7"),
        _altered(at="yesterday"),
        _altered(key="\x1b[2J0123456789ab"),
        _altered(key=7),
    ],
)
def test_a_malformed_line_is_no_checkpoint(line: str) -> None:
    found = read_line(1, line, KEY)
    assert isinstance(found, UnreadableLine)
    assert "not a checkpoint" in found.reason


def test_appends_are_whole_lines_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints"
    append(path, [CHECKPOINT], KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A crash cut the next batch short: the batch after it starts on a line of its own.
    with path.open("a") as file:
        file.write('{"account_id":"acct_1","seq')
    later = Checkpoint("acct_1", 9, "ef" * 32, CHECKPOINT.at)
    append(path, [later], KEY)
    read = list(read_file(path, KEY))
    assert read[0] == CheckpointLine(1, CHECKPOINT)
    # Told apart from an altered line, though no longer the last.
    assert read[1] == IncompleteLine(2)
    assert read[2] == CheckpointLine(3, later)


def test_a_line_with_a_corrupted_byte_in_its_mac_is_malformed_not_a_crash(
    tmp_path: Path,
) -> None:
    """The corrupted byte reads as U+FFFD, a str compare_digest refuses (TypeError)."""
    path = tmp_path / "checkpoints"
    append(path, [CHECKPOINT], KEY)
    raw = path.read_bytes()
    at = raw.index(b'"mac":"') + len(b'"mac":"')
    path.write_bytes(raw[:at] + b"\xff" + raw[at + 1 :])
    [found] = read_file(path, KEY)
    assert isinstance(found, UnreadableLine)
    assert found.reason == "not a checkpoint (its HMAC is malformed)"


@pytest.mark.parametrize(
    "line",
    [
        _altered(mac="\u00e9" * 64),
        _altered(account_id="\ud800"),  # no UTF-8 for a lone surrogate
        "[" * 100_000,  # nested past the recursion limit
    ],
    ids=["non-ascii mac", "lone surrogate", "deep nesting"],
)
def test_a_hostile_line_is_malformed_not_a_crash(line: str) -> None:
    found = read_line(1, line, KEY)
    assert isinstance(found, UnreadableLine)
    assert "not a checkpoint" in found.reason


@pytest.mark.parametrize(
    "tail",
    [b'{"account_id":"acct_1","seq', b"{", b"\x00" * 512, b'{"account_id":"ac\x00\x00'],
    ids=["cut", "just begun", "zeros", "cut, then zeros"],
)
def test_a_last_line_an_interrupted_append_left_is_incomplete(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "checkpoints"
    append(path, [CHECKPOINT], KEY)
    with path.open("ab") as file:
        file.write(tail)
    assert list(read_file(path, KEY)) == [CheckpointLine(1, CHECKPOINT), IncompleteLine(2)]


def test_a_whole_last_line_without_its_newline_is_checked_as_any_other(tmp_path: Path) -> None:
    """Only its newline is missing: it reads if authentic, and fails if altered."""
    path = tmp_path / "checkpoints"
    path.write_text(line_of(CHECKPOINT, KEY).rstrip("\n"))
    assert list(read_file(path, KEY)) == [CheckpointLine(1, CHECKPOINT)]
    path.write_text(_altered(sequence=6))
    [altered] = read_file(path, KEY)
    assert isinstance(altered, UnreadableLine)
    assert "HMAC does not match" in altered.reason


def test_an_opened_file_reads_only_what_was_written_when_it_was_opened(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints"
    append(path, [CHECKPOINT], KEY)
    with OpenedFile(path) as opened:
        append(path, [Checkpoint("acct_1", 9, "ef" * 32, CHECKPOINT.at)], KEY)
        assert list(opened.lines(KEY)) == [CheckpointLine(1, CHECKPOINT)]


def test_opening_waits_for_the_batch_being_appended(tmp_path: Path) -> None:
    """The appender's exclusive lock held: a batch half written. Opening (a shared lock) waits
    until it is released, and reads the batch whole."""
    path = tmp_path / "checkpoints"
    append(path, [CHECKPOINT], KEY)
    whole = line_of(Checkpoint("acct_1", 9, "ef" * 32, CHECKPOINT.at), KEY).encode()
    opened: list[OpenedFile] = []
    with path.open("ab") as appender:
        fcntl.flock(appender.fileno(), fcntl.LOCK_EX)
        appender.write(whole[:10])
        appender.flush()
        opening = threading.Thread(target=lambda: opened.append(OpenedFile(path)))
        opening.start()
        opening.join(0.2)
        assert opening.is_alive()
        appender.write(whole[10:])
        appender.flush()
        fcntl.flock(appender.fileno(), fcntl.LOCK_UN)
    opening.join(5)
    with opened[0] as file:
        assert [entry.number for entry in file.lines(KEY)] == [1, 2]
        assert all(isinstance(entry, CheckpointLine) for entry in file.lines(KEY))


def _file(tmp_path: Path, *lines: str) -> list[str]:
    """What each line of a file of `lines` reads as: "ok", or the failing line's reason."""
    path = tmp_path / "checkpoints"
    path.write_text("".join(line if line.endswith("\n") else line + "\n" for line in lines))
    return [
        "ok" if isinstance(entry, CheckpointLine) else entry.reason
        for entry in read_file(path, ROTATED)
    ]


def _at(sequence: int, minutes: int, account: str = "acct_1") -> Checkpoint:
    return Checkpoint(account, sequence, "ab" * 32, CHECKPOINT.at + timedelta(minutes=minutes))


def test_lines_in_the_order_the_writers_append_pass(tmp_path: Path) -> None:
    """Per account, times and sequences never go back; a chain that did not move is written
    again at the same sequence (the command writes every chain's); accounts are apart."""
    found = _file(
        tmp_path,
        line_of(_at(3, -10), PREVIOUS),
        line_of(_at(5, -10, "acct_2"), PREVIOUS),
        line_of(_at(3, 0), PREVIOUS),
        line_of(_at(4, 0), KEY),
        line_of(_at(5, 5, "acct_2"), KEY),
        line_of(_at(4, 5), KEY),
    )
    assert found == ["ok"] * 6


@pytest.mark.parametrize(
    "last",
    [
        line_of(_at(2, 20), KEY),  # the chain back
        line_of(_at(9, 5), KEY),  # time back
        line_of(_at(3, -20), PREVIOUS),  # a leaked key's earlier date, appended at the end
    ],
    ids=["sequence back", "time back", "retired key, earlier date"],
)
def test_a_line_out_of_order_fails(tmp_path: Path, last: str) -> None:
    found = _file(tmp_path, line_of(_at(3, -10), PREVIOUS), line_of(_at(4, 10), KEY), last)
    assert found[:2] == ["ok", "ok"]
    assert found[2].startswith("out of order: acct_1 sequence")
    entry = list(read_file(tmp_path / "checkpoints", ROTATED))[2]
    assert isinstance(entry, UnreadableLine)
    assert entry.out_of_order


def test_lines_without_a_key_id_pass_only_before_the_first_line_with_one(tmp_path: Path) -> None:
    found = _file(
        tmp_path,
        _unkeyed(_at(1, -20), PREVIOUS),
        _unkeyed(_at(1, -20, "acct_2"), PREVIOUS),
        line_of(_at(2, -10), PREVIOUS),
        _unkeyed(_at(1, -5, "acct_3"), PREVIOUS),
    )
    assert found[:3] == ["ok", "ok", "ok"]
    assert found[3].startswith("out of order: a line without a key id after one with a key id")


def test_a_writer_holding_the_lock_appends_before_one_that_came_later(tmp_path: Path) -> None:
    """The lock is held from before the heads are read to after they are appended: a writer
    that reads later appends later, so sequences never go back in the file."""
    path = tmp_path / "checkpoints"
    later = Checkpoint("acct_1", 8, "ef" * 32, CHECKPOINT.at)
    with AppendLock(path) as lock:
        writer = threading.Thread(target=lambda: append(path, [later], KEY))
        writer.start()
        writer.join(0.2)
        assert writer.is_alive()  # waiting for the lock
        lock.append([CHECKPOINT], KEY)
    writer.join()
    assert [entry for entry in read_file(path, KEY)] == [
        CheckpointLine(1, CHECKPOINT),
        CheckpointLine(2, later),
    ]


def test_a_batch_is_stamped_no_earlier_than_its_accounts_lines_a_clock_a_little_ahead_wrote(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoints"
    with AppendLock(path) as lock:
        assert lock.stamp(CHECKPOINT.at, ["acct_1"]) == CHECKPOINT.at  # an empty file
        lock.append([CHECKPOINT], KEY)
        behind = CHECKPOINT.at - timedelta(milliseconds=3)
        assert lock.stamp(behind, ["acct_1"]) == CHECKPOINT.at
        assert lock.stamp(CHECKPOINT.at + timedelta(seconds=1), ["acct_1"]) > CHECKPOINT.at
        # Only the accounts written count: another account's line may be far ahead.
        far_behind = CHECKPOINT.at - timedelta(minutes=5)
        assert lock.stamp(far_behind, ["acct_2"]) == far_behind


def test_a_batch_is_stamped_no_earlier_than_the_files_newest_line_beyond_the_tail_read(
    tmp_path: Path,
) -> None:
    """A writer a second ahead appends more accounts than the tail holds; a writer behind it
    then writes an account whose line is in that batch but before the tail: stamped with its
    own time, that line would go back in time for ever (verify: out of order)."""
    path = tmp_path / "checkpoints"

    def write(now: datetime, heads: list[tuple[str, int]]) -> None:
        with AppendLock(path) as lock:
            stamped = lock.stamp(now, [account for account, _ in heads])
            lock.append([Checkpoint(a, s, "ab" * 32, stamped) for a, s in heads], KEY)

    accounts = [f"acct_{n:05d}" for n in range(400)]
    write(CHECKPOINT.at + timedelta(seconds=1), [(account, 1) for account in accounts])
    write(CHECKPOINT.at, [(accounts[0], 2)])
    entries = list(read_file(path, KEY))
    assert len(entries) == 401
    assert all(isinstance(entry, CheckpointLine) for entry in entries)


def test_a_writer_far_behind_an_accounts_line_refuses_to_append_what_verify_would_reject(
    tmp_path: Path,
) -> None:
    """A writer's clock more than MAX_CLOCK_STEP behind the newest line of an account it
    writes, though not behind the file's last line (another account's), would append lines
    verify reports as out of order: it refuses instead."""
    path = tmp_path / "checkpoints"
    append(path, [CHECKPOINT, _at(1, -30, "acct_2")], KEY)
    far_behind = CHECKPOINT.at - timedelta(minutes=5)
    with AppendLock(path) as lock:
        with pytest.raises(ClockBehindError, match="newest line for acct_1"):
            lock.stamp(far_behind, ["acct_2", "acct_1"])
        with pytest.raises(ClockBehindError, match="newest line for acct_1"):
            lock.append([Checkpoint("acct_1", 8, "cd" * 32, far_behind)], KEY)
    found = list(read_file(path, KEY))
    assert len(found) == 2
    assert all(isinstance(entry, CheckpointLine) for entry in found)
