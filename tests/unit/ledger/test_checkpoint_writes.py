"""A checkpoint write never closes the file under a thread still using it, even cancelled, and
appends nothing verify would reject; what verify warns of when accounts have transactions no
checkpoint covers."""

import asyncio
import fcntl
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.secrets import Secret
from remit.ledger import checkpoints
from remit.ledger.anchoring import CheckpointReport, write_checkpoints
from remit.ledger.checkpoints import Checkpoint, CheckpointLine, read_file
from remit.ledger.cli import _render_checkpoints

KEY = Secret(b"k" * 32)
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


class _Heads:
    """An engine whose only read is of the chain heads of `accounts` (acct_1 alone by
    default)."""

    def __init__(self, accounts: tuple[str, ...] = ("acct_1",)) -> None:
        self._accounts = accounts

    async def execute(self, _query: object) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(account_id=account, last_sequence=7, last_hash="ab" * 32)
            for account in self._accounts
        ]

    @asynccontextmanager
    async def begin(self) -> AsyncIterator["_Heads"]:
        yield self


ENGINE = cast(AsyncEngine, _Heads())

pytestmark = pytest.mark.anyio


def _lock_is_free(path: Path) -> bool:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)
    return True


def _freed_within(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _lock_is_free(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _is_open_on(descriptor: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except OSError:
        return False


async def test_a_write_cancelled_mid_append_closes_the_file_only_once_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoints"
    writing = threading.Event()
    go_on = threading.Event()
    used: list[int] = []
    real_write_all = checkpoints._write_all

    def blocked_write_all(descriptor: int, data: bytes) -> None:
        used.append(descriptor)
        writing.set()
        go_on.wait(10)
        real_write_all(descriptor, data)

    monkeypatch.setattr(checkpoints, "_write_all", blocked_write_all)
    task = asyncio.create_task(write_checkpoints(ENGINE, path, KEY, clock=FixedClock(NOW)))
    assert await asyncio.to_thread(writing.wait, 10)
    task.cancel()
    await asyncio.sleep(0.1)
    # The thread still holds the descriptor: the cancelled write has not closed it under it.
    assert _is_open_on(used[0], path)
    assert not task.done()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(read_file(path, KEY)) == [
        CheckpointLine(1, Checkpoint("acct_1", 7, "ab" * 32, NOW))
    ]
    assert _lock_is_free(path)


async def test_a_write_cancelled_while_waiting_for_the_lock_releases_it_once_taken(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoints"
    path.touch()
    holder = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        task = asyncio.create_task(write_checkpoints(ENGINE, path, KEY, clock=FixedClock(NOW)))
        await asyncio.sleep(0.1)  # its thread waits for the lock
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        os.close(holder)  # the thread takes the lock now
    assert await asyncio.to_thread(_freed_within, path, 30.0)
    assert path.read_bytes() == b""  # nothing written by the cancelled write


def test_the_warning_names_the_accounts_no_checkpoint_covers_and_counts_the_rest() -> None:
    report = CheckpointReport(Path("checkpoints"), checked=3, newest=NOW)
    report.unanchored_since = NOW
    report.unanchored_accounts = 7
    report.unanchored_shown = [("acct_1", NOW), ("acct_2", NOW)]
    (warning,) = [line for line in _render_checkpoints(report) if "warning" in line]
    assert "7 accounts" in warning
    assert f"acct_1 (since {NOW.isoformat()}), acct_2" in warning
    assert "and 5 more" in warning


async def test_a_write_far_behind_its_accounts_line_appends_nothing_and_frees_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoints"
    checkpoints.append(path, [Checkpoint("acct_1", 6, "cd" * 32, NOW)], KEY)
    before = path.read_bytes()
    already: dict[str, int] = {}
    behind = FixedClock(NOW - timedelta(minutes=5))
    assert await write_checkpoints(ENGINE, path, KEY, clock=behind, already=already) == 0
    assert (path.read_bytes(), already) == (before, {})  # retried at the next run
    assert _lock_is_free(path)


async def test_an_account_far_ahead_of_the_writer_is_left_out_and_the_others_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One account's newest line far ahead of this writer's clock (another writer's, a
    database failed over to a host whose clock is behind) keeps only that account's checkpoint
    back, not every account's."""
    path = tmp_path / "checkpoints"
    checkpoints.append(path, [Checkpoint("acct_1", 6, "cd" * 32, NOW)], KEY)
    already: dict[str, int] = {}
    behind = FixedClock(NOW - timedelta(minutes=5))
    engine = cast(AsyncEngine, _Heads(("acct_1", "acct_2")))
    assert await write_checkpoints(engine, path, KEY, clock=behind, already=already) == 1
    assert already == {"acct_2": 7}
    written = [line for line in read_file(path, KEY) if isinstance(line, CheckpointLine)]
    assert [line.checkpoint.account_id for line in written] == ["acct_1", "acct_2"]
    assert "1 accounts left out" in caplog.text
    assert "(first: acct_1)" in caplog.text
