"""The completer counts its tries of a key and records why the latest failed, for an operator
(`remit held-requests`). A failed try lets the key go at once; a try that another request took
over did not fail; a key that starts over forgets the tries of its earlier life."""

from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments.after_the_network import recorded_after_the_network
from remit.payments.domain import Status
from remit.payments.grpc import PaymentsServicer
from remit.payments.idempotency import KeyRecord, RecoveryPoint, idempotency_in_use
from remit.payments.network import network_unavailable
from remit.payments.service import PaymentsService
from remit.payments.tables import idempotency_keys
from tests.integration.payments.conftest import take_key_over
from tests.integration.payments.test_completer_backoff import STEP_S, T0, _abandon
from tests.integration.payments.test_payments_service import pay
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


async def tries_of(engine: AsyncEngine, key: str) -> tuple[object, ...]:
    """The key's count of tries, its latest failure's time and code, and its lease."""
    k = idempotency_keys.c
    async with engine.connect() as db:
        row = (
            await db.execute(
                select(
                    k.completer_attempts, k.last_failure_at, k.last_failure_code, k.locked_until
                ).where(k.key == key)
            )
        ).one()
    return tuple(row)


async def test_each_failed_try_is_counted_recorded_and_lets_the_key_go(
    timed_payments: PaymentsService, clock: FixedClock, core_engine: AsyncEngine, account_id: str
) -> None:
    await _abandon(core_engine, account_id, "stuck", at=T0)
    clock.advance(STEP_S)
    first_try = clock.now()

    async def unreachable(record: KeyRecord) -> None:
        # As a capture's look-ups fail: the key keeps the try's lease, unless the completer
        # lets it go.
        raise network_unavailable()

    assert await timed_payments.complete_abandoned(unreachable) == 1
    assert await tries_of(core_engine, "stuck") == (1, first_try, "unavailable", None)

    clock.advance(2 * STEP_S)

    async def broken(record: KeyRecord) -> None:
        raise ZeroDivisionError("division by zero")

    assert await timed_payments.complete_abandoned(broken) == 1
    assert await tries_of(core_engine, "stuck") == (2, clock.now(), "exception", None)


async def test_a_try_that_could_not_record_what_the_network_did_records_why(
    timed_payments: PaymentsService, clock: FixedClock, core_engine: AsyncEngine, account_id: str
) -> None:
    """The request is told only that recording failed (a 500 to retry); the key keeps the
    ledger's refusal behind it, which is what an operator has to look at."""
    await _abandon(core_engine, account_id, "unrecorded", at=T0)
    clock.advance(STEP_S)

    async def ledger_refuses() -> None:
        raise RemitError(
            message="Pending transaction 'ltx_1' was already voided.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="pending_transaction_already_voided",
        )

    async def recording_refused(record: KeyRecord) -> None:
        await recorded_after_the_network(ledger_refuses(), what="the capture")

    assert await timed_payments.complete_abandoned(recording_refused) == 1
    assert await tries_of(core_engine, "unrecorded") == (
        1,
        clock.now(),
        "pending_transaction_already_voided",
        None,
    )
    async with core_engine.connect() as db:
        message = await db.scalar(
            select(idempotency_keys.c.last_failure_message).where(
                idempotency_keys.c.key == "unrecorded"
            )
        )
    assert message == "Pending transaction 'ltx_1' was already voided."


async def test_a_try_another_request_took_over_is_counted_but_did_not_fail(
    timed_payments: PaymentsService, clock: FixedClock, core_engine: AsyncEngine, account_id: str
) -> None:
    await _abandon(core_engine, account_id, "taken", at=T0)
    clock.advance(STEP_S)

    async def taken_over(record: KeyRecord) -> None:
        # The try's lease ran out mid-way and a client's retry claimed the key.
        await take_key_over(core_engine, record.key)
        raise idempotency_in_use()

    assert await timed_payments.complete_abandoned(taken_over) == 1
    attempts, failed_at, code, locked_until = await tries_of(core_engine, "taken")
    assert (attempts, failed_at, code) == (1, None, None)
    assert locked_until is not None  # still the retry's


async def test_a_conflict_of_the_request_s_own_is_a_failure_not_a_takeover(
    timed_payments: PaymentsService, clock: FixedClock, core_engine: AsyncEngine, account_id: str
) -> None:
    """A resumed cancel that finds the intent authorized anew refuses with a CONFLICT of its
    own, the key still the try's: an operator should see it, and the key be let go for the
    client's retry (which voids), not held for the rest of the lease."""
    await _abandon(core_engine, account_id, "conflicted", at=T0)
    clock.advance(STEP_S)

    async def authorized_while_canceled(record: KeyRecord) -> None:
        raise RemitError(
            message="This PaymentIntent (pi_1) was authorized while it was being canceled; "
            "retry the cancel.",
            kind=ErrorKind.CONFLICT,
            code="payment_intent_unexpected_state",
        )

    assert await timed_payments.complete_abandoned(authorized_while_canceled) == 1
    assert await tries_of(core_engine, "conflicted") == (
        1,
        clock.now(),
        "payment_intent_unexpected_state",
        None,
    )


async def test_a_key_that_starts_over_forgets_the_tries_of_its_earlier_life(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    intent = await pay(timed_payments, account_id, "reused")
    assert intent.status is Status.SUCCEEDED
    async with core_engine.begin() as db:
        await db.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == "reused")
            .values(completer_attempts=3, last_failure_at=T0, last_failure_code="unavailable")
        )
    # A day later the key is used afresh, and its payment's outcome is lost.
    clock.advance(timedelta(days=1, seconds=1).total_seconds())
    network.faults.append("after")
    network.lookup_faults = 3
    with pytest.raises(RemitError) as unknown:
        await pay(timed_payments, account_id, "reused", amount=1500)
    assert unknown.value.kind is ErrorKind.UNAVAILABLE

    attempts, failed_at, code, _ = await tries_of(core_engine, "reused")
    assert (attempts, failed_at, code) == (0, None, None)
    async with core_engine.connect() as db:
        point = await db.scalar(
            select(idempotency_keys.c.recovery_point).where(idempotency_keys.c.key == "reused")
        )
    assert point == RecoveryPoint.ATTEMPT_CREATED.value


async def test_a_request_of_an_endpoint_the_completer_cannot_resume_is_recorded_as_failed(
    timed_payments: PaymentsService, clock: FixedClock, core_engine: AsyncEngine, account_id: str
) -> None:
    """Nothing finishes such a request: its try fails, and says why, rather than pass for done."""
    await _abandon(core_engine, account_id, "unknown", at=T0)
    async with core_engine.begin() as db:
        await db.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == "unknown")
            .values(endpoint="RetiredEndpoint")
        )
    clock.advance(STEP_S)
    servicer = PaymentsServicer(timed_payments, cast(Any, None), cast(Any, None))

    assert await timed_payments.complete_abandoned(servicer.resume) == 1

    assert await tries_of(core_engine, "unknown") == (1, clock.now(), "exception", None)
    async with core_engine.connect() as db:
        message = await db.scalar(
            select(idempotency_keys.c.last_failure_message).where(
                idempotency_keys.c.key == "unknown"
            )
        )
    assert message == (
        "UnresumableRequestError: the completer cannot resume RetiredEndpoint requests: "
        "nothing finishes it"
    )
