"""A NOTIFY that arrives while a lane's claim is under way (its job committed too late for the
claim's snapshot) wakes the lane's next claim at once: it is not cleared with the claim's empty
answer, which left the job to wait for the next poll."""

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from remit.worker import runner
from remit.worker.jobs import Job
from remit.worker.runner import Lane, Worker

pytestmark = pytest.mark.anyio

# Only a wake that was lost waits this long for the poll.
_SECOND_CLAIM_WITHIN_S = 30.0


async def _handler(_db: AsyncConnection, _job: Job) -> None:
    return None


async def test_a_notify_during_a_claim_wakes_the_next_claim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No poll within the test: only a wake can start a second claim.
    monkeypatch.setattr(runner, "POLL_INTERVAL_S", 3600.0)
    engine = create_async_engine("postgresql+psycopg://unused/unused")
    claims = 0
    second_claim = asyncio.Event()

    class NotifiedMidClaim(Worker):
        async def _claim(self, limit: int, lane: Lane) -> list[Job]:
            nonlocal claims
            claims += 1
            if claims == 1:
                for wake in self._lane_wakes:
                    wake.set()  # as `_listen` does for a job staged while this claim reads
            else:
                second_claim.set()
            return []

    worker = NotifiedMidClaim(engine=engine, handlers={"noop": _handler})
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(None, stop))
    try:
        await asyncio.wait_for(second_claim.wait(), _SECOND_CLAIM_WITHIN_S)
    finally:
        stop.set()
        await asyncio.wait_for(task, _SECOND_CLAIM_WITHIN_S)
        await engine.dispose()
    assert claims >= 2
