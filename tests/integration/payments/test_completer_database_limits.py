"""A request held at a recovery point whose try meets a limit of the database (SQLSTATE class
54: a value too large to index, a statement too complex) meets it on every try. The completer
records it once and tries it no more, rather than for ever, ever less often; it is not finished
either (past `started`, the network may have acted on it): it stays held, listed by `remit
held-requests` with its failure, for an operator's retry."""

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.payments.domain import NewPaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.held_requests import RetryOutcome
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.network import network_unavailable
from remit.payments.ports import ChargeableCard
from remit.payments.service import ConfirmParams, PaymentsService
from remit.storage.driver_errors import DatabaseFault, database_fault
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_completer_backoff import STEP_S, T0, _abandon
from tests.integration.payments.test_completer_failures import tries_of
from tests.integration.payments.test_payments_service import call, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


Resume = Callable[[KeyRecord], Awaitable[None]]


async def meet_a_limit(engine: AsyncEngine) -> None:
    """PostgreSQL's own class-54 refusal, as SQLAlchemy raises it."""
    async with engine.connect() as db:
        await db.execute(
            text("DO $$ BEGIN RAISE EXCEPTION 'statement is too complex' "
                 "USING ERRCODE = '54001'; END $$")
        )  # fmt: skip


def past_a_limit(engine: AsyncEngine, tries: list[str]) -> Resume:
    """A resume that meets a limit of the database, noting each key it tries."""

    async def resume(record: KeyRecord) -> None:
        tries.append(record.key)
        await meet_a_limit(engine)

    return resume


async def _run_completer_for(
    payments: PaymentsService, clock: FixedClock, resume: Resume, span: timedelta
) -> None:
    end = clock.now() + span
    while clock.now() < end:
        await payments.complete_abandoned(resume)
        clock.advance(STEP_S)


async def test_a_try_past_a_database_limit_is_recorded_once_and_not_tried_again(
    timed_payments: PaymentsService,
    clock: FixedClock,
    core_engine: AsyncEngine,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _abandon(core_engine, account_id, "too-complex", at=T0)
    clock.advance(STEP_S)
    first_try = clock.now()
    tries: list[str] = []

    with caplog.at_level(logging.ERROR, logger="remit.payments.service"):
        await _run_completer_for(
            timed_payments, clock, past_a_limit(core_engine, tries), timedelta(hours=4)
        )

    assert tries == ["too-complex"]
    assert await tries_of(core_engine, "too-complex") == (1, first_try, "database_limit", None)
    [said] = [record for record in caplog.records if "too-complex" in record.getMessage()]
    assert said.getMessage() == (
        "completing CapturePaymentIntent too-complex met a limit of the database; every try "
        "would meet it, so it is left held for an operator (remit held-requests)"
    )
    # Held, not finished: an operator sees it, with why.
    held, _, _ = await timed_payments.held_requests(
        older_than=timedelta(0), account_id=account_id, limit=10
    )
    [request] = held
    assert request.key == "too-complex"
    assert request.recovery_point is RecoveryPoint.ATTEMPT_CREATED
    assert request.last_failure is not None
    assert request.last_failure.code == "database_limit"
    assert request.last_failure.message.startswith("OperationalError: (psycopg.errors.")
    assert "statement is too complex" in request.last_failure.message
    assert request.last_failure.message.endswith(
        "past a limit of the database, which every try meets the same way, so the completer "
        "no longer tries it; once the cause is dealt with, remit held-requests retry tries it "
        "again"
    )


async def test_an_operators_retry_still_tries_it_and_another_failure_hands_it_back(
    timed_payments: PaymentsService,
    clock: FixedClock,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    await _abandon(core_engine, account_id, "too-complex", at=T0)
    clock.advance(STEP_S)
    tries: list[str] = []
    await timed_payments.complete_abandoned(past_a_limit(core_engine, tries))
    assert tries == ["too-complex"]

    # Once the cause is dealt with (a remit of a later version, say) the operator retries it;
    # the acquirer is out of reach at that moment: the completer's usual work again.
    clock.advance(STEP_S)

    async def acquirer_down(record: KeyRecord) -> None:
        tries.append(record.key)
        raise network_unavailable()

    retried = await timed_payments.retry_held(account_id, "too-complex", acquirer_down)
    assert retried.outcome is RetryOutcome.STILL_HELD
    assert retried.request is not None
    assert retried.request.last_failure is not None
    assert retried.request.last_failure.code == "unavailable"
    await _run_completer_for(timed_payments, clock, acquirer_down, timedelta(minutes=30))
    assert len(tries) > 2


class MethodsPastALimit(FakeMethods):
    """Payment methods whose look-up meets a limit of the database, before the network."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        await meet_a_limit(self._engine)
        raise AssertionError("unreachable")


async def test_a_request_past_a_limit_before_the_network_leaves_its_key_free_as_unclaimed(
    core_engine: AsyncEngine,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
) -> None:
    """Before anything reached the network, a limit of the database is the request's own
    (a value too large), as it is when met before the key is claimed: the caller is told so
    (the interceptor's INVALID_ARGUMENT), nothing is stored under the key, and the completer
    drops it rather than hold it; the client's retry starts afresh."""
    payments = PaymentsService(
        core_engine, network, MethodsPastALimit(core_engine), present=payment_intent_message,
        clock=clock,
    )  # fmt: skip
    with pytest.raises(OperationalError) as failed:
        await payments.create_payment_intent(
            call(account_id, "too-complex-at-once"),
            NewPaymentIntent(amount_minor=1000, currency="usd"),
            respond,
            confirm=ConfirmParams(payment_method_id="pm_visa"),
        )
    assert database_fault(failed.value) is DatabaseFault.OVER_LIMIT
    assert network.authorizations == {}
    clock.advance(STEP_S)
    tries: list[str] = []
    assert await payments.complete_abandoned(past_a_limit(core_engine, tries)) == 1
    assert tries == []
    held, _, _ = await payments.held_requests(
        older_than=timedelta(0), account_id=account_id, limit=10
    )
    assert held == []
