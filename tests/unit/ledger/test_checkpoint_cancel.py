"""A cancelled checkpoint write never closes the file under a thread still using it, and
releases the lock a thread took after the write was cancelled."""

import asyncio
import fcntl
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.secrets import Secret
from remit.ledger import checkpoints
from remit.ledger.anchoring import write_checkpoints
from remit.ledger.checkpoints import Checkpoint, CheckpointLine, read_file

KEY = Secret(b"k" * 32)
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


class _Heads:
    """An engine whose only read is of one chain head."""

    async def execute(self, _query: object) -> list[SimpleNamespace]:
        return [SimpleNamespace(account_id="acct_1", last_sequence=7, last_hash="ab" * 32)]

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
    assert await asyncio.to_thread(_freed_within, path, 5.0)
    assert path.read_bytes() == b""  # nothing written by the cancelled write
