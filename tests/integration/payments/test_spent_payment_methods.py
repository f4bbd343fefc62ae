"""A payment method attached to no customer is spent on the intent that first confirms with it,
in the attempt's transaction: two intents confirmed with it at once cannot both take it, and
a plain payment with a test id spends its new payment method without a statement of its own."""

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import RemitError
from remit.payment_methods.domain import SPENT_MESSAGE, NewPaymentMethod
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.tables import payment_methods
from remit.payment_methods.test_card_cache import TestCardCache
from remit.payments.grpc import payment_intent_message
from remit.payments.methods import StoredPaymentMethods
from remit.payments.service import PaymentsService
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from tests.integration.payments.test_payments_service import pay
from tests.integration.payments.test_setup_future_usage import TestCardVault
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


def _services(engine: AsyncEngine) -> tuple[PaymentMethodsService, PaymentsService]:
    methods = PaymentMethodsService(engine, TestCardCache(TestCardVault()))
    payments = PaymentsService(
        engine,
        FakeNetwork(),
        StoredPaymentMethods(methods),
        present=payment_intent_message,
        hooks=payment_hooks(),
        radar=Radar(challenge_base_url="http://remit.test"),
    )
    return methods, payments


async def _spent_by(engine: AsyncEngine, method_id: str) -> str | None:
    async with engine.connect() as db:
        query = select(payment_methods.c.spent_by_intent_id).where(
            payment_methods.c.id == method_id
        )
        spent_by: str | None = (await db.execute(query)).scalar_one()
    return spent_by


async def test_a_method_read_before_another_intent_spent_it_is_refused_in_the_transaction(
    core_engine: AsyncEngine, account_id: str
) -> None:
    methods, payments = _services(core_engine)
    saved = await methods.create(account_id, NewPaymentMethod(payment_method_id="pm_card_visa"))
    read_before = await methods.resolve_for_use(account_id, saved.id)
    first = await pay(payments, account_id, "first", pm=saved.id)
    assert await _spent_by(core_engine, saved.id) == first.id
    with pytest.raises(RemitError) as refused:
        async with core_engine.begin() as db:
            await PaymentMethodsService.use_in(db, read_before, "pi_other")
    assert (refused.value.param, refused.value.message) == ("payment_method", SPENT_MESSAGE)
    assert await _spent_by(core_engine, saved.id) == first.id


async def test_a_test_id_payment_writes_its_new_method_spent(
    core_engine: AsyncEngine, account_id: str
) -> None:
    _, payments = _services(core_engine)
    intent = await pay(payments, account_id, "test-id", pm="pm_card_visa")
    assert intent.payment_method_id is not None
    assert await _spent_by(core_engine, intent.payment_method_id) == intent.id


async def test_a_payment_saving_the_method_for_its_customer_checks_it_under_lock(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """A payment that saves the method for its customer (`setup_future_usage`) does not spend
    it, but is refused if another intent spent it after the method was read: both payments
    would otherwise have charged the card."""
    methods, payments = _services(core_engine)
    saved = await methods.create(account_id, NewPaymentMethod(payment_method_id="pm_card_visa"))
    read_before = await methods.resolve_for_use(account_id, saved.id)
    first = await pay(payments, account_id, "first", pm=saved.id)
    with pytest.raises(RemitError) as refused:
        async with core_engine.begin() as db:
            await PaymentMethodsService.use_in(db, read_before, "pi_saving", claim=False)
    assert (refused.value.param, refused.value.message) == ("payment_method", SPENT_MESSAGE)

    unspent = await methods.create(account_id, NewPaymentMethod(payment_method_id="pm_card_visa"))
    async with core_engine.begin() as db:
        await PaymentMethodsService.use_in(db, unspent, "pi_saving", claim=False)
    assert (
        await _spent_by(core_engine, first.payment_method_id or ""),
        await _spent_by(core_engine, unspent.id),
    ) == (first.id, None)
