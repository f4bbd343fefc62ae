"""A key the completer cannot finish (a card that cannot be read, an acquirer down for days) is
tried ever less often, up to once an hour, and an operator hears of an old one at most once an
hour; a client's own retry with the key is never held back by that."""

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments.domain import NewPaymentIntent, Status
from remit.payments.idempotency import (
    COMPLETER_MAX_GAP,
    KeyRecord,
    RecoveryPoint,
    digest,
    lease,
)
from remit.payments.service import ConfirmParams, Done, PaymentsService
from remit.payments.tables import idempotency_keys
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

T0 = datetime.now(UTC)
# The completer runs every few seconds; a step of just over a lease is as often as it could
# ever take a key again without the backoff.
STEP_S = lease().total_seconds() + 1


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


async def _abandon(engine: AsyncEngine, account_id: str, key: str, *, at: datetime) -> None:
    async with engine.begin() as db:
        await db.execute(
            idempotency_keys.insert().values(
                account_id=account_id,
                key=key,
                endpoint="CapturePaymentIntent",
                request_digest=digest("CapturePaymentIntent", b""),
                request_body=b"",
                recovery_point=RecoveryPoint.ATTEMPT_CREATED.value,
                created_at=at,
                last_run_at=at,
                owner="a-request-that-died",
            )
        )


def _failing(tries: list[datetime], clock: FixedClock) -> Callable[[KeyRecord], Awaitable[None]]:
    """A resume that never gets through, noting when it was tried."""

    async def resume(record: KeyRecord) -> None:
        tries.append(clock.now())
        raise RemitError(message="The acquirer is unreachable.", kind=ErrorKind.UNAVAILABLE)

    return resume


async def _run_completer_for(
    payments: PaymentsService, clock: FixedClock, tries: list[datetime], span: timedelta
) -> None:
    end = clock.now() + span
    while clock.now() < end:
        await payments.complete_abandoned(_failing(tries, clock))
        clock.advance(STEP_S)


def _gaps(moments: list[datetime]) -> list[timedelta]:
    return [later - earlier for earlier, later in pairwise(moments)]


async def test_a_key_that_keeps_failing_is_tried_ever_less_often_then_hourly(
    timed_payments: PaymentsService, clock: FixedClock, core_engine: AsyncEngine, account_id: str
) -> None:
    await _abandon(core_engine, account_id, "stuck", at=T0)
    tries: list[datetime] = []

    await _run_completer_for(timed_payments, clock, tries, timedelta(hours=4))

    gaps = _gaps(tries)
    first_hour = [moment for moment in tries if moment < T0 + timedelta(hours=1)]
    # Doubling gaps from a lease: a handful of tries in the first hour, not one a lease.
    assert 3 <= len(first_hour) <= 8, tries
    growing = [(earlier, later) for earlier, later in pairwise(gaps) if later < COMPLETER_MAX_GAP]
    assert all(later >= 2 * earlier - timedelta(seconds=STEP_S) for earlier, later in growing)
    assert gaps[0] <= timedelta(seconds=2 * STEP_S), gaps
    # Then hourly, never less often.
    assert gaps[-1] >= COMPLETER_MAX_GAP
    assert all(gap <= COMPLETER_MAX_GAP + timedelta(seconds=STEP_S) for gap in gaps), gaps
    assert len(tries) <= len(first_hour) + 3


async def test_an_old_unfinished_key_is_reported_at_most_once_an_hour(
    timed_payments: PaymentsService,
    clock: FixedClock,
    core_engine: AsyncEngine,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Left days ago, found by a completer that has just come back.
    await _abandon(core_engine, account_id, "stuck-for-days", at=T0 - timedelta(days=3))
    tries: list[datetime] = []

    with caplog.at_level(logging.WARNING, logger="remit.payments.service"):
        await _run_completer_for(timed_payments, clock, tries, timedelta(hours=3))

    reported = [
        record
        for record in caplog.records
        if "stuck-for-days" in record.getMessage() and "still unfinished" in record.getMessage()
    ]
    assert len(reported) == len(tries) >= 3
    assert all(gap >= COMPLETER_MAX_GAP for gap in _gaps(tries)), tries


async def test_a_clients_retry_is_not_held_back_by_the_completers_backoff(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
) -> None:
    keyed = call(account_id, "retried", body=b"r")
    record = await timed_payments._claim(keyed)
    record, _ = await timed_payments._start_attempt(
        record,
        respond,
        new=NewPaymentIntent(amount_minor=700, currency="usd"),
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    clock.advance(timedelta(hours=5).total_seconds())
    tries: list[datetime] = []
    await timed_payments.complete_abandoned(_failing(tries, clock))
    assert len(tries) == 1
    clock.advance(STEP_S)
    # The completer waits an hour before its next try ...
    assert await timed_payments.complete_abandoned(_failing(tries, clock)) == 0

    # ... the client, only for the completer's lease to run out.
    result = await timed_payments.create_payment_intent(
        keyed,
        NewPaymentIntent(amount_minor=700, currency="usd"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )

    assert isinstance(result, Done)
    assert result.value.id == record.payment_intent_id
    assert result.value.status is Status.SUCCEEDED
    assert list(network.authorizations) == [record.charge_id]


async def test_a_request_whose_network_record_differs_is_backed_off_like_any_other(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The network holds another authorization under the attempt's reference than the one the
    attempt sent: every try refuses it (`lookup_expectations`), and the completer, which can do
    nothing about that, tries ever less often rather than once a lease."""
    network.faults.append("after")
    network.lookup_faults = 3
    with pytest.raises(RemitError) as unknown:
        await pay(timed_payments, account_id, "held-elsewhere")
    assert unknown.value.kind is ErrorKind.UNAVAILABLE
    (reference,) = network.authorizations
    network.hold_otherwise(reference, amount=1001)
    tries: list[datetime] = []

    async def resume(record: KeyRecord) -> object:
        tries.append(clock.now())
        return await timed_payments.resume_attempt(record, respond)

    end = clock.now() + timedelta(hours=3)
    with caplog.at_level(logging.ERROR, logger="remit.payments.lookup_expectations"):
        while clock.now() < end:
            await timed_payments.complete_abandoned(resume)
            clock.advance(STEP_S)

    refusals = [r for r in caplog.records if r.name == "remit.payments.lookup_expectations"]
    assert len(refusals) == len(tries)
    assert all(reference in r.getMessage() and ": amount differ;" in r.getMessage()
               for r in refusals)  # fmt: skip
    first_hour = [moment for moment in tries if moment < T0 + timedelta(hours=1)]
    assert 3 <= len(first_hour) <= 8, tries
    assert _gaps(tries)[-1] >= COMPLETER_MAX_GAP
    assert len(tries) <= len(first_hour) + 3
    # Nothing of the other authorization was applied.
    charge, _ = await timed_payments.get_charge(account_id, reference)
    assert (charge.network_result, charge.authorization_id) == (None, None)
    intent = await timed_payments.get_payment_intent(account_id, charge.payment_intent_id)
    assert intent.status is Status.PROCESSING
