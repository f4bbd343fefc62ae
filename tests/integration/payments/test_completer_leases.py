"""The completer claims abandoned keys in a batch and resumes them one after another: each
key gets its lease when its turn comes, so a slow one before it does not leave it unleased
for client retries and other completers to run at the same time."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import KeyRecord, RecoveryPoint, digest, lease
from remit.payments.service import PaymentsService
from remit.payments.tables import idempotency_keys
from tests.integration.payments.conftest import FakeMethods
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio
T0 = datetime.now(UTC)


async def _abandon(engine: AsyncEngine, account_id: str, key: str) -> None:
    async with engine.begin() as db:
        await db.execute(
            idempotency_keys.insert().values(
                account_id=account_id,
                key=key,
                endpoint="CapturePaymentIntent",
                request_digest=digest("CapturePaymentIntent", b""),
                request_body=b"",
                recovery_point=RecoveryPoint.ATTEMPT_CREATED.value,
                created_at=T0 - timedelta(minutes=10),
                last_run_at=T0 - timedelta(minutes=10),
                owner="a-request-that-died",
            )
        )


async def _locked_until(engine: AsyncEngine, key: str) -> datetime:
    async with engine.connect() as db:
        found = await db.execute(
            select(idempotency_keys.c.locked_until).where(idempotency_keys.c.key == key)
        )
    value = found.scalar_one()
    assert isinstance(value, datetime)
    return value


async def test_each_key_is_leased_afresh_when_its_turn_comes(
    core_engine: AsyncEngine, account_id: str
) -> None:
    clock = FixedClock(T0)
    payments = PaymentsService(
        core_engine, FakeNetwork(), FakeMethods(), present=payment_intent_message, clock=clock
    )
    for key in ("first", "second", "third"):
        await _abandon(core_engine, account_id, key)
    leased: dict[str, bool] = {}

    async def slow_resume(record: KeyRecord) -> None:
        leased[record.key] = await _locked_until(core_engine, record.key) > clock.now()
        clock.advance(lease().total_seconds() + 1)  # each one outlasts a lease

    assert await payments.complete_abandoned(slow_resume) == 3
    assert leased == {"first": True, "second": True, "third": True}


async def test_a_key_taken_over_since_the_batch_was_claimed_is_left_to_its_new_owner(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = PaymentsService(
        core_engine, FakeNetwork(), FakeMethods(), present=payment_intent_message,
        clock=FixedClock(T0),
    )  # fmt: skip
    for key in ("first", "second"):
        await _abandon(core_engine, account_id, key)
    resumed: list[str] = []

    async def resume(record: KeyRecord) -> None:
        resumed.append(record.key)
        other = "second" if record.key == "first" else "first"
        async with core_engine.begin() as db:  # a client's retry takes the other key over
            await db.execute(
                idempotency_keys.update()
                .where(idempotency_keys.c.key == other)
                .values(owner="the-retry")
            )

    await payments.complete_abandoned(resume)
    assert len(resumed) == 1


async def _last_run_at(engine: AsyncEngine, key: str) -> datetime:
    async with engine.connect() as db:
        found = await db.execute(
            select(idempotency_keys.c.last_run_at).where(idempotency_keys.c.key == key)
        )
    value = found.scalar_one()
    assert isinstance(value, datetime)
    return value


async def test_a_key_claimed_but_never_reached_keeps_its_last_try(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """A completer that dies part-way through its batch has tried only the keys it reached:
    the others' backoff still counts from their last real try, not from the claim."""
    payments = PaymentsService(
        core_engine, FakeNetwork(), FakeMethods(), present=payment_intent_message,
        clock=FixedClock(T0),
    )  # fmt: skip
    for key in ("reached", "never_reached"):
        await _abandon(core_engine, account_id, key)

    async def stopped_at_the_first(record: KeyRecord) -> None:
        raise asyncio.CancelledError  # the worker stopping mid-batch

    with pytest.raises(asyncio.CancelledError):
        await payments.complete_abandoned(stopped_at_the_first)

    tried = {key: await _last_run_at(core_engine, key) for key in ("reached", "never_reached")}
    assert sorted(tried.values()) == [T0 - timedelta(minutes=10), T0]


async def test_a_completer_stopped_mid_batch_releases_the_keys_it_never_reached(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """Stopping the process cancels the completer on its first key: that one releases itself,
    and the batch's others must not stay claimed for a lease, refusing their clients' retries."""
    payments = PaymentsService(
        core_engine, FakeNetwork(), FakeMethods(), present=payment_intent_message
    )
    for key in ("first", "second", "third"):
        await _abandon(core_engine, account_id, key)
    started = asyncio.Event()

    async def stuck_resume(record: KeyRecord) -> None:
        started.set()
        await asyncio.Event().wait()

    completing = asyncio.create_task(payments.complete_abandoned(stuck_resume))
    await started.wait()
    completing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await completing
    async with core_engine.connect() as db:
        found = await db.execute(
            select(idempotency_keys.c.key, idempotency_keys.c.locked_until).where(
                idempotency_keys.c.key.in_(["second", "third"])
            )
        )
    assert {row.key: row.locked_until for row in found} == {"second": None, "third": None}
