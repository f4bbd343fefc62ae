"""The expiry of an authorization left uncaptured: its void at the network does not hold the
intent's row, and the intent moves on only if it still holds that authorization."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments.authorization_age import AUTHORIZATION_VALIDITY
from remit.payments.domain import CaptureMethod, Status
from remit.payments.network import OperationOutcome
from remit.payments.service import PaymentsService
from remit.worker.jobs import NotDueError
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


class StallingVoid(FakeNetwork):
    """The first void waits for `answer`, as one waiting out the network's timeouts does."""

    def __init__(self) -> None:
        super().__init__()
        self.voiding = asyncio.Event()
        self.answer = asyncio.Event()

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        if not self.voiding.is_set():
            self.voiding.set()
            await self.answer.wait()
        return await super().void(authorization_id=authorization_id, reference=reference)


@pytest.fixture
def network() -> FakeNetwork:
    return StallingVoid()


async def _lock_now(engine: AsyncEngine, intent_id: str) -> None:
    """Take the intent's row lock at once, or fail: what a capture or cancel needs."""
    async with engine.begin() as db:
        await db.execute(
            text("SELECT id FROM payment_intents WHERE id = :id FOR UPDATE NOWAIT"),
            {"id": intent_id},
        )


async def test_the_intent_s_row_is_free_while_the_expiry_waits_on_the_void(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str, network: StallingVoid
) -> None:
    held = await pay(payments, account_id, "to-expire", capture=CaptureMethod.MANUAL)
    await let_authorization_expire(core_engine, held.id)

    async def expire() -> bool:
        async with core_engine.begin() as db:
            return await payments.expire_authorization(db, account_id, held.id)

    expiring = asyncio.create_task(expire())
    await network.voiding.wait()
    try:
        await _lock_now(core_engine, held.id)
    finally:
        network.answer.set()
        expired = await expiring
    assert expired
    after = await payments.get_payment_intent(account_id, held.id)
    assert after.status is Status.CANCELED


async def test_an_intent_canceled_while_the_expiry_voids_is_left_as_the_cancel_left_it(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str, network: StallingVoid
) -> None:
    held = await pay(payments, account_id, "to-cancel", capture=CaptureMethod.MANUAL)
    await let_authorization_expire(core_engine, held.id)

    async def expire() -> bool:
        async with core_engine.begin() as db:
            return await payments.expire_authorization(db, account_id, held.id)

    expiring = asyncio.create_task(expire())
    await network.voiding.wait()
    try:
        await _lock_now(core_engine, held.id)  # the cancel below would wait forever otherwise
        await payments.cancel_payment_intent(
            call(account_id, "cancel", endpoint="CancelPaymentIntent"), held.id, None, respond
        )
    finally:
        network.answer.set()
        expired = await expiring
    assert not expired
    after = await payments.get_payment_intent(account_id, held.id)
    assert (after.status, after.cancellation_reason) == (Status.CANCELED, None)
    assert network.sent.count(f"{held.latest_charge_id}_void") == 2


async def test_an_expiry_run_before_the_authorization_is_7_days_old_voids_nothing(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str, network: StallingVoid
) -> None:
    """The job is claimed by the worker's clock (a host's): one running ahead claims it early,
    and the release would fail the merchant's capture on the sixth day. The database's clock
    tells the authorization's age, and the job is put back until it expires."""
    held = await pay(payments, account_id, "too-soon", capture=CaptureMethod.MANUAL)
    async with core_engine.begin() as db:
        authorized_at = (
            await db.execute(
                text("SELECT authorized_at FROM charges WHERE id = :id"),
                {"id": held.latest_charge_id},
            )
        ).scalar_one()
        with pytest.raises(NotDueError) as early:
            await payments.expire_authorization(db, account_id, held.id)
    assert early.value.run_at == authorized_at + AUTHORIZATION_VALIDITY
    assert not [sent for sent in network.sent if sent.endswith("_void")]
    after = await payments.get_payment_intent(account_id, held.id)
    assert after.status is Status.REQUIRES_CAPTURE
