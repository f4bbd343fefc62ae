"""A key's life counts from when its request finished: a request held through an outage and
finished a day or more after it began still answers its client's retries with what it did,
and its key is kept its full retention after the finish. A refusal that comes too late to be
the key's answer replays the answer the key holds; a claim whose key the reaper deletes under
it claims the key afresh."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments import idempotency
from remit.payments.domain import CaptureMethod, PaymentIntent, Status
from remit.payments.idempotency import KeyRecord, RecoveryPoint, lease
from remit.payments.service import Done, KeyedCall, PaymentsService, Replay
from remit.payments.tables import idempotency_keys, payment_intents
from tests.integration.payments.held_requests import (
    A_DAY_AND_MORE,
    PAST_RETENTION,
    confirm,
    held_after_attempt,
    new_payment,
)
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

A_MINUTE = timedelta(minutes=1).total_seconds()


async def _finish_by_the_completer(payments: PaymentsService) -> None:
    taken = await payments.complete_abandoned(lambda found: payments.resume_attempt(found, respond))
    assert taken == 1


async def _retry_after_a_late_finish(
    payments: PaymentsService, clock: FixedClock, keyed: KeyedCall, retry_after: float
) -> tuple[KeyRecord, Done[PaymentIntent] | Replay]:
    """Holds `keyed`'s request past its key's life, lets the completer finish it, and retries
    it `retry_after` seconds after that finish."""
    record = await held_after_attempt(payments, keyed)
    clock.advance(A_DAY_AND_MORE)
    await _finish_by_the_completer(payments)
    clock.advance(retry_after)
    retried = await payments.create_payment_intent(keyed, new_payment(), respond, confirm=confirm())
    return record, retried


async def _intent_count(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        return int(
            (await db.execute(select(func.count()).select_from(payment_intents))).scalar_one()
        )


async def _keys(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as db:
        rows = await db.execute(select(idempotency_keys.c.key, idempotency_keys.c.recovery_point))
        return {row.key: row.recovery_point for row in rows}


async def test_a_retry_just_after_a_late_finish_replays_it_instead_of_paying_again(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
    core_engine: AsyncEngine,
) -> None:
    record, retried = await _retry_after_a_late_finish(
        timed_payments, clock, call(account_id, "late", body=b"L"), A_MINUTE
    )

    assert isinstance(retried, Replay)
    assert retried.body == f"{record.payment_intent_id}:{Status.SUCCEEDED.value}".encode()
    assert await _intent_count(core_engine) == 1
    assert list(network.authorizations) == [record.charge_id], "one authorization, the first"


async def test_a_key_finished_late_expires_a_day_after_its_finish(
    timed_payments: PaymentsService,
    clock: FixedClock,
    account_id: str,
    core_engine: AsyncEngine,
) -> None:
    record, again = await _retry_after_a_late_finish(
        timed_payments, clock, call(account_id, "late-then-old", body=b"O"), A_DAY_AND_MORE
    )

    assert isinstance(again, Done)
    assert again.value.id != record.payment_intent_id
    assert await _intent_count(core_engine) == 2


async def test_the_reaper_keeps_a_key_finished_late_for_its_retention_after_the_finish(
    timed_payments: PaymentsService, clock: FixedClock, account_id: str, core_engine: AsyncEngine
) -> None:
    await held_after_attempt(timed_payments, call(account_id, "later", body=b"X"))
    await pay(timed_payments, account_id, "on-time")
    clock.advance(PAST_RETENTION)
    await _finish_by_the_completer(timed_payments)
    clock.advance(A_MINUTE)

    assert await timed_payments.reap_keys() == 1
    assert await _keys(core_engine) == {"later": RecoveryPoint.FINISHED.value}

    clock.advance(PAST_RETENTION)
    assert await timed_payments.reap_keys() == 1
    assert await _keys(core_engine) == {}


async def test_a_refusal_that_comes_after_a_retry_finished_the_key_replays_its_answer(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = await pay(timed_payments, account_id, "held", capture=CaptureMethod.MANUAL)
    keyed = call(account_id, "capture", endpoint="CapturePaymentIntent")
    check_capture = timed_payments._start_capture
    stalled: list[KeyRecord] = []
    captured_by_retry: list[Done[Any] | Replay] = []

    async def stalls_then_refuses(record: KeyRecord, *args: Any) -> KeyRecord:
        if stalled:
            return await check_capture(record, *args)
        stalled.append(record)
        # This request stalls past its lease: the client's retry takes the key over (its
        # review approved meanwhile) and captures; then this request's check, which saw the
        # review open, refuses.
        clock.advance(lease().total_seconds() + 1)
        captured_by_retry.append(
            await timed_payments.capture_payment_intent(keyed, held.id, None, respond)
        )
        raise RemitError(
            message="This PaymentIntent is in review; approve the review before capturing it.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="payment_intent_unexpected_state",
        )

    monkeypatch.setattr(timed_payments, "_start_capture", stalls_then_refuses)

    answered = await timed_payments.capture_payment_intent(keyed, held.id, None, respond)

    [retried] = captured_by_retry
    assert isinstance(retried, Done)
    assert retried.value.status is Status.SUCCEEDED
    assert answered == Replay(code=0, body=respond(retried.value))
    assert f"{held.latest_charge_id}_capture" in network.sent


class _ReapedBeforeTheLock:
    """`idempotency._LOCK`, but the key's row is deleted (as the reaper does, in a transaction
    of its own) just before the first lock of it."""

    def __init__(self, engine: AsyncEngine, lock: Any) -> None:
        self._engine, self._lock, self.reaped = engine, lock, 0

    async def first(self, db: AsyncConnection, params: Mapping[str, object]) -> Any:
        if not self.reaped:
            async with self._engine.begin() as reaper:
                keys = idempotency_keys.c
                deleted = await reaper.execute(
                    delete(idempotency_keys).where(
                        keys.account_id == params["account_id"], keys.key == params["key"]
                    )
                )
            self.reaped = deleted.rowcount
        return await self._lock.first(db, params)


async def test_a_claim_whose_key_is_reaped_under_it_claims_the_key_afresh(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
    core_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await pay(timed_payments, account_id, "reaped")
    clock.advance(PAST_RETENTION)
    reaping = _ReapedBeforeTheLock(core_engine, idempotency._LOCK)
    monkeypatch.setattr(idempotency, "_LOCK", reaping)

    second = await pay(timed_payments, account_id, "reaped")

    assert reaping.reaped == 1
    assert second.id != first.id
    assert await _keys(core_engine) == {"reaped": RecoveryPoint.FINISHED.value}
    assert len(network.authorizations) == 2
