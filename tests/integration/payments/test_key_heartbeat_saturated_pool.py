"""A step at the network that ends while its key's lease renewal waits for a connection (the
pool saturated) is answered at once, not once the renewal has had its connection or given up
after the pool's timeout."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.key_heartbeat import key_kept_held
from remit.storage.engine import dispose, make_engine
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE_S = 0.3  # a renewal every 0.1 s
# Long, so that an answer held back for the renewal's wait cannot pass for one given at once
# however slowly a loaded machine runs the test.
POOL_TIMEOUT_S = 30.0


@pytest.fixture
async def small_engine(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    """Two connections at most (a pool of one, and as many again in overflow)."""
    engine = make_engine(databases.core_url, pool_size=1, pool_timeout_s=POOL_TIMEOUT_S)
    try:
        yield engine
    finally:
        await dispose(engine)


class _Watched:
    """The engine, telling when a renewal has asked it for a connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.asked = asyncio.Event()

    def begin(self) -> object:
        self.asked.set()
        return self.engine.begin()


def _record() -> KeyRecord:
    # No row behind it: the renewal never gets as far as its statement.
    return KeyRecord(account_id="acct_1", key="k1", endpoint="confirm", request_body=b"",
                     recovery_point=RecoveryPoint.ATTEMPT_CREATED, response_code=None,
                     response_body=None, payment_intent_id="pi_1", charge_id="ch_1",
                     refund_id=None, request_id=None, created_at=T0, owner="o1")  # fmt: skip


async def test_a_step_ending_while_a_renewal_waits_for_the_pool_returns_at_once(
    small_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIT_IDEMPOTENCY_LEASE_S", str(LEASE_S))
    loop = asyncio.get_running_loop()
    watched = _Watched(small_engine)
    async with AsyncExitStack() as saturated:
        for _ in range(2):
            await saturated.enter_async_context(small_engine.connect())
        async with key_kept_held(cast(AsyncEngine, watched), _record(), now=lambda: T0):
            # The step: it ends once a renewal waits for the pool.
            await asyncio.wait_for(watched.asked.wait(), POOL_TIMEOUT_S)
            await asyncio.sleep(LEASE_S)
            answered = loop.time()
        took = loop.time() - answered
    # Not held back for the pool's timeout; how quick "at once" is, the benchmarks measure.
    assert took < POOL_TIMEOUT_S / 3
