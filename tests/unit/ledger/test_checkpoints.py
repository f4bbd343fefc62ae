"""A checkpoint line passes only under the key that wrote it, unaltered; the file is appended to
whole lines at a time, private to its owner."""

import hashlib
import hmac
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remit.core.secrets import Secret
from remit.ledger.checkpoints import (
    Checkpoint,
    CheckpointKeys,
    CheckpointLine,
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
ROTATED = CheckpointKeys(KEY, (PREVIOUS,))


def test_after_a_key_change_each_line_reads_under_its_own_key() -> None:
    earlier = Checkpoint("acct_1", 3, "cd" * 32, CHECKPOINT.at)
    assert read_line(1, line_of(earlier, PREVIOUS), ROTATED) == CheckpointLine(1, earlier)
    assert read_line(2, line_of(CHECKPOINT, KEY), ROTATED) == CheckpointLine(2, CHECKPOINT)


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
    assert isinstance(read[1], UnreadableLine)
    assert read[2] == CheckpointLine(3, later)
