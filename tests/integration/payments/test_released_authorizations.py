"""A charge remembers that its authorization was released uncaptured (its intent canceled or
expired), which nothing else on it tells from an authorization still held."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments.domain import CaptureMethod, Status
from remit.payments.service import Done, PaymentsService
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.authorizations import let_authorization_expire

pytestmark = pytest.mark.anyio


async def _released(payments: PaymentsService, account_id: str, charge_id: str) -> bool:
    charge, _ = await payments.get_charge(account_id, charge_id)
    assert not charge.captured
    return charge.authorization_released


async def test_canceling_an_authorized_intent_marks_its_charge_released(
    payments: PaymentsService, account_id: str
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    assert held.latest_charge_id is not None
    assert not await _released(payments, account_id, held.latest_charge_id)
    canceled = await payments.cancel_payment_intent(
        call(account_id, "cancel", endpoint="CancelPaymentIntent"), held.id, None, respond
    )
    assert isinstance(canceled, Done)
    assert canceled.value.status is Status.CANCELED
    assert await _released(payments, account_id, held.latest_charge_id)


async def test_an_expired_authorization_marks_its_charge_released(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    held = await pay(payments, account_id, "to-expire", capture=CaptureMethod.MANUAL)
    assert held.latest_charge_id is not None
    await let_authorization_expire(core_engine, held.id)
    async with core_engine.begin() as db:
        assert await payments.expire_authorization(db, account_id, held.id)
    assert await _released(payments, account_id, held.latest_charge_id)
