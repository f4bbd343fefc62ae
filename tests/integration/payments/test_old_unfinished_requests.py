"""A request left unfinished past its key's 24-hour life (an acquirer outage, the worker down,
a card waiting for an operator) may have moved money at the network. It is finished, never
started over or forgotten: the completer keeps at it, a retry with its key resumes it, and the
reaper keeps its key; only keys whose request is over, or never sent anything, expire."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.payments.domain import Status
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.service import Done, PaymentsService
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


async def _resume_with(payments: PaymentsService, found: KeyRecord) -> object:
    return await payments.resume_attempt(found, respond)


async def _points(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as db:
        rows = await db.execute(select(idempotency_keys.c.key, idempotency_keys.c.recovery_point))
        return {row.key: row.recovery_point for row in rows}


async def _intent_count(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        return int(
            (await db.execute(select(func.count()).select_from(payment_intents))).scalar_one()
        )


async def test_the_completer_finishes_a_request_older_than_a_day(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
    core_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = await held_after_attempt(timed_payments, call(account_id, "old", body=b"o"))
    clock.advance(A_DAY_AND_MORE)

    with caplog.at_level(logging.WARNING, logger="remit.payments.service"):
        taken = await timed_payments.complete_abandoned(
            lambda found: _resume_with(timed_payments, found)
        )

    assert taken == 1
    assert (await _points(core_engine))["old"] == RecoveryPoint.FINISHED.value
    assert record.payment_intent_id is not None
    intent = await timed_payments.get_payment_intent(account_id, record.payment_intent_id)
    assert intent.status is Status.SUCCEEDED
    assert len(network.authorizations) == 1
    # An operator hears of a request that stayed unfinished this long.
    assert any(
        r.levelno == logging.WARNING and "old" in r.getMessage() and "unfinished" in r.getMessage()
        for r in caplog.records
    )


async def test_a_retry_after_a_day_resumes_the_unfinished_payment_instead_of_paying_again(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
    core_engine: AsyncEngine,
) -> None:
    keyed = call(account_id, "retried-late", body=b"r")
    record = await held_after_attempt(timed_payments, keyed)
    clock.advance(A_DAY_AND_MORE)

    result = await timed_payments.create_payment_intent(
        keyed, new_payment(), respond, confirm=confirm()
    )

    assert isinstance(result, Done)
    assert result.value.id == record.payment_intent_id
    assert result.value.status is Status.SUCCEEDED
    assert await _intent_count(core_engine) == 1
    assert list(network.authorizations) == [record.charge_id], "one authorization, the first"


async def test_a_retry_after_a_day_is_refused_while_another_request_holds_the_key(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    account_id: str,
    core_engine: AsyncEngine,
) -> None:
    keyed = call(account_id, "held-late", body=b"h")
    await held_after_attempt(timed_payments, keyed)
    clock.advance(A_DAY_AND_MORE)
    async with core_engine.begin() as db:
        # The completer (or another retry) has just taken it over.
        await db.execute(
            update(idempotency_keys).values(locked_until=clock.now() + timedelta(seconds=30))
        )

    with pytest.raises(RemitError) as refused:
        await timed_payments.create_payment_intent(keyed, new_payment(), respond, confirm=confirm())

    assert refused.value.code == "idempotency_key_in_use"
    assert await _intent_count(core_engine) == 1
    assert network.sent == []


async def test_a_finished_key_past_its_life_starts_over(
    timed_payments: PaymentsService, network: FakeNetwork, clock: FixedClock, account_id: str
) -> None:
    first = await pay(timed_payments, account_id, "reused")
    clock.advance(A_DAY_AND_MORE)

    second = await pay(timed_payments, account_id, "reused")

    assert second.id != first.id
    assert len(network.authorizations) == 2


async def test_the_reaper_deletes_only_keys_that_are_over_or_never_sent_anything(
    timed_payments: PaymentsService, clock: FixedClock, account_id: str, core_engine: AsyncEngine
) -> None:
    await pay(timed_payments, account_id, "finished")
    await held_after_attempt(timed_payments, call(account_id, "unfinished", body=b"u"))
    await timed_payments._claim(call(account_id, "never-sent", body=b"n"))
    clock.advance(PAST_RETENTION)

    reaped = await timed_payments.reap_keys()

    assert reaped == 2
    assert await _points(core_engine) == {"unfinished": RecoveryPoint.ATTEMPT_CREATED.value}
