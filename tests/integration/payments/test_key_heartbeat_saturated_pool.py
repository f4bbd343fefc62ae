"""A step at the network that ends while its key's lease renewal waits for a connection (the
pool saturated) is answered at once, not once the renewal has had its connection or given up
after the pool's timeout."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.key_heartbeat import key_kept_held
from remit.storage.engine import dispose, make_engine
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE_S = 0.3  # a renewal every 0.1 s
POOL_TIMEOUT_S = 3.0


@pytest.fixture
async def small_engine(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    """Two connections at most (a pool of one, and as many again in overflow)."""
    engine = make_engine(databases.core_url, pool_size=1, pool_timeout_s=POOL_TIMEOUT_S)
    try:
        yield engine
    finally:
        await dispose(engine)


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
    async with AsyncExitStack() as saturated:
        for _ in range(2):
            await saturated.enter_async_context(small_engine.connect())
        async with key_kept_held(small_engine, _record(), now=lambda: T0):
            await asyncio.sleep(LEASE_S)  # the step: by now a renewal waits for the pool
            answered = loop.time()
        took = loop.time() - answered
    assert took < 1.0
