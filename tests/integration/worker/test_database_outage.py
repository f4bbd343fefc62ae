"""The worker and the vault ride out a database that is out of reach while they run: they keep
trying, and say so in a line when the outage begins, not in a traceback on every attempt."""

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.storage.engine import dispose, make_engine
from remit.vault.background import start_background
from remit.vault.forwarding import grpc_destinations
from remit.vault.keystore import FileKeyStore
from remit.vault.service import VaultService
from remit.worker import runner
from remit.worker.jobs import Job
from remit.worker.runner import Periodic, Worker
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def unreachable_engine() -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"postgresql://remit:pw@127.0.0.1:{free_port()}/remit", pool_size=2)
    try:
        yield engine
    finally:
        await dispose(engine)


# Only tasks that never fail take this long to say so.
SAID_WITHIN_S = 30.0
# Once each has said so: a while longer, in which their further failures must say nothing.
THEN_S = 1.0


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def _once_said(caplog: pytest.LogCaptureFixture, lines: int) -> None:
    """Until `lines` outage lines are logged, however slowly a loaded machine runs the tasks
    to their first failures; then THEN_S more of failing."""
    deadline = asyncio.get_running_loop().time() + SAID_WITHIN_S
    while len(_outage_lines(caplog)) < lines:
        assert asyncio.get_running_loop().time() < deadline, _outage_lines(caplog)
        await asyncio.sleep(0.02)
    await asyncio.sleep(THEN_S)


async def test_the_worker_says_once_that_its_database_is_out_of_reach(
    unreachable_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(db: AsyncConnection, job: Job) -> None:
        return None

    async def touch() -> None:
        async with unreachable_engine.begin() as db:
            await db.execute(text("SELECT 1"))

    worker = Worker(engine=unreachable_engine, handlers={"noop": handler},
                    periodic=[Periodic("touch", 0.05, touch)])  # fmt: skip
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO):
        running = asyncio.ensure_future(worker.run_forever(None, stop))
        await _once_said(caplog, 2)
        stop.set()
        await running
    assert sorted(_outage_lines(caplog)) == [
        "claiming jobs failed: database unavailable (Connection refused); trying again",
        "periodic task touch failed: database unavailable (Connection refused); trying again",
    ]


async def test_the_vaults_own_tasks_say_once_that_its_database_is_out_of_reach(
    unreachable_engine: AsyncEngine, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    service = VaultService(unreachable_engine, keys, grpc_destinations({}))
    stop = asyncio.Event()
    try:
        with caplog.at_level(logging.INFO):
            tasks = start_background(service, stop, cvc_sweep_interval_s=0.05,
                                     rewrap_interval_s=0.05, prune_interval_s=0.05)  # fmt: skip
            await _once_said(caplog, 5)
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        await service.close()
    assert sorted(_outage_lines(caplog)) == [
        f"vault task {name} failed: database unavailable (Connection refused); trying again"
        for name in ("cvc-keys", "cvc-sweep", "prune", "reseal", "rewrap")
    ]


async def test_the_worker_keeps_claiming_however_many_claims_have_failed(
    unreachable_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hours of a database out of reach (a claim every 30 s): the count of failures grows past
    what a float's doubling can hold, and the worker must neither exit nor wait longer."""
    worker = Worker(engine=unreachable_engine, handlers={})
    stop = asyncio.Event()
    pauses: list[float] = []

    async def out_of_reach(limit: int, lane: runner.Lane) -> list[Job]:
        raise ConnectionRefusedError("the database is out of reach")

    async def pause(stop_event: asyncio.Event, seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1100:
            stop.set()

    monkeypatch.setattr(worker, "_claim", out_of_reach)
    monkeypatch.setattr(runner, "_pause", pause)
    monkeypatch.setattr(runner.log, "disabled", True)  # 1,100 failures: not 1,100 tracebacks
    await worker.run_forever(None, stop)
    assert len(pauses) == 1100
    assert pauses[:5] == [2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(pauses[4:]) == {runner.MAX_CLAIM_PAUSE_S}
    assert runner.backoff_for(5_000).total_seconds() == runner.MAX_BACKOFF_S
