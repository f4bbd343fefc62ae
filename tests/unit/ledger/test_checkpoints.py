"""A checkpoint line passes only under the key that wrote it, unaltered; the file is appended to
whole lines at a time, private to its owner."""

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remit.core.secrets import Secret
from remit.ledger.checkpoints import (
    Checkpoint,
    CheckpointLine,
    UnreadableLine,
    append,
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


def test_a_line_written_under_another_key_fails_its_hmac() -> None:
    found = read_line(1, line_of(CHECKPOINT, Secret(b"o" * 32)), KEY)
    assert isinstance(found, UnreadableLine)
    assert "HMAC does not match" in found.reason


@pytest.mark.parametrize(
    "line",
    ["{", "[]", _altered(extra=1), _altered(sequence="7"), _altered(at="yesterday")],
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
