"""A capture, a cancel's release, a refund or the expiry job's release cancelled while the
network is at work on it (the core or the worker stopping past its grace, the caller's
deadline): the step still completes and its outcome is recorded, so a retry replays it rather
than looking it up; a stop waits for such steps, no longer than its bound."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments.domain import CaptureMethod, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.keyed import Replay
from remit.payments.network import OperationOutcome
from remit.payments.service import PaymentsService
from remit.payments.tables import idempotency_keys
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, refund_intent, respond
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

Step = Callable[[PaymentsService, str, str], Awaitable[object]]
# A stop bounded at 0.2 s whose step's network never answers: it returns long before this (it
# would never return unbounded), however slowly a loaded machine runs it.
STOPPED_WITHIN_S = 10.0


@dataclass
class NetworkThatWaits(FakeNetwork):
    """Captures, voids and refunds wait for `answer` once received."""

    received: asyncio.Event = field(default_factory=asyncio.Event)
    answer: asyncio.Event = field(default_factory=asyncio.Event)

    async def _wait(self) -> None:
        self.received.set()
        await self.answer.wait()

    async def capture(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        await self._wait()
        return await super().capture(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        await self._wait()
        return await super().void(authorization_id=authorization_id, reference=reference)

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        await self._wait()
        return await super().refund(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )


async def capture(payments: PaymentsService, account_id: str, intent_id: str) -> object:
    return await payments.capture_payment_intent(
        call(account_id, "step", endpoint="CapturePaymentIntent"), intent_id, None, respond
    )


async def cancel(payments: PaymentsService, account_id: str, intent_id: str) -> object:
    return await payments.cancel_payment_intent(
        call(account_id, "step", endpoint="CancelPaymentIntent"), intent_id, None, respond
    )


async def refund(payments: PaymentsService, account_id: str, intent_id: str) -> object:
    return await refund_intent(payments, account_id, "step", intent_id, None)


# Each step, what the intent it is asked of must be, and the status it leaves the intent in.
STEPS = [
    pytest.param(capture, CaptureMethod.MANUAL, Status.SUCCEEDED, id="capture"),
    pytest.param(cancel, CaptureMethod.MANUAL, Status.CANCELED, id="cancel"),
    pytest.param(refund, CaptureMethod.AUTOMATIC, Status.SUCCEEDED, id="refund"),
]


async def _key(engine: AsyncEngine, key: str) -> tuple[str, object]:
    async with engine.begin() as db:
        row = (
            await db.execute(
                select(idempotency_keys.c.recovery_point, idempotency_keys.c.locked_until).where(
                    idempotency_keys.c.key == key
                )
            )
        ).one()
    return row.recovery_point, row.locked_until


async def _cut_off_mid_step(network: NetworkThatWaits, step: Awaitable[object]) -> None:
    """Start `step`, and cancel its caller once the network has received it."""
    request = asyncio.ensure_future(step)
    await network.received.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


@pytest.mark.parametrize(("step", "capture_method", "after"), STEPS)
async def test_a_cancelled_step_completes_and_its_retry_replays_it(
    core_engine: AsyncEngine,
    account_id: str,
    step: Step,
    capture_method: CaptureMethod,
    after: Status,
) -> None:
    network = NetworkThatWaits()
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    intent = await pay(payments, account_id, "paid", capture=capture_method)
    await _cut_off_mid_step(network, step(payments, account_id, intent.id))

    network.answer.set()
    await payments.drain(30.0)
    recovery_point, locked_until = await _key(core_engine, "step")
    assert recovery_point == RecoveryPoint.FINISHED.value, "the outcome is recorded"
    assert locked_until is None
    assert (await payments.get_payment_intent(account_id, intent.id)).status is after

    sent = list(network.sent)
    retried = await step(payments, account_id, intent.id)
    assert isinstance(retried, Replay), "the retry replays the recorded outcome"
    assert network.sent == sent, "nothing is sent again"
    assert network.looked_up == [], "nor looked up"


async def test_a_cancelled_expiry_releases_the_authorization_and_expires_the_intent(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = NetworkThatWaits()
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    await let_authorization_expire(core_engine, held.id)

    async def expire(sent_before: bool) -> bool:
        async with core_engine.begin() as db:
            return await payments.expire_authorization(
                db, account_id, held.id, sent_before=sent_before
            )

    await _cut_off_mid_step(network, expire(sent_before=False))
    began = time.monotonic()
    await payments.drain(0.2)  # the network has not answered: a stop goes on without it
    assert time.monotonic() - began < STOPPED_WITHIN_S
    assert (await payments.get_payment_intent(account_id, held.id)).status is (
        Status.REQUIRES_CAPTURE
    )

    network.answer.set()
    await payments.drain(30.0)
    expired = await payments.get_payment_intent(account_id, held.id)
    assert expired.status is Status.CANCELED
    assert expired.cancellation_reason is not None
    assert expired.cancellation_reason.value == "expired"

    # The job runs again (its run was cancelled) and finds the intent expired already.
    assert not await expire(sent_before=True)
    assert network.sent.count(f"{held.latest_charge_id}_void") == 1
    assert network.looked_up == []


@pytest.mark.parametrize(("step", "capture_method", "after"), STEPS)
async def test_a_stop_waits_for_a_cancelled_step_no_longer_than_its_bound(
    core_engine: AsyncEngine,
    account_id: str,
    step: Step,
    capture_method: CaptureMethod,
    after: Status,
) -> None:
    network = NetworkThatWaits()
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    intent = await pay(payments, account_id, "paid", capture=capture_method)
    await _cut_off_mid_step(network, step(payments, account_id, intent.id))

    began = time.monotonic()
    await payments.drain(0.2)  # the network has not answered: the stop goes on without it
    assert time.monotonic() - began < STOPPED_WITHIN_S
    assert (await _key(core_engine, "step"))[0] == RecoveryPoint.ATTEMPT_CREATED.value

    network.answer.set()
    await payments.drain(30.0)
    assert (await _key(core_engine, "step"))[0] == RecoveryPoint.FINISHED.value
    assert (await payments.get_payment_intent(account_id, intent.id)).status is after


async def test_an_expiry_cut_by_its_run_budget_times_out_as_any_handler_does(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """The worker stops a handler past its run budget with `asyncio.timeout`, and counts the
    run as overrun by its `TimeoutError`: the release left to run alone must not turn it into
    a cancellation of the job's run."""
    network = NetworkThatWaits()
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    await let_authorization_expire(core_engine, held.id)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5), core_engine.begin() as db:
            await payments.expire_authorization(db, account_id, held.id)
    network.answer.set()
    await payments.drain(30.0)
    assert (await payments.get_payment_intent(account_id, held.id)).status is Status.CANCELED
