"""A payment with `setup_future_usage` and no customer that goes through records, in the
transaction of its outcome, that the payment method it spent may still be attached to a
customer; only the method that paid, and only once it paid. The attach takes the method under
its row lock, so a payment that read it before, unattached, is refused there."""

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import RemitError
from remit.customers.domain import CustomerFields
from remit.payment_methods.domain import SPENT_MESSAGE, NewPaymentMethod
from remit.payment_methods.service import PaymentMethodsService, attach_in
from remit.payment_methods.tables import payment_methods
from remit.payments.domain import CaptureMethod, Status
from remit.payments.service import ConfirmParams, Done
from tests.integration.payments.test_setup_future_usage import Core, _call, _pay, _respond
from tests.support.locks import until_a_session_waits_on_a_lock

pytestmark = pytest.mark.anyio


async def _saved_for_future_usage(engine: AsyncEngine, method_id: str) -> bool:
    async with engine.connect() as db:
        query = select(payment_methods.c.saved_for_future_usage).where(
            payment_methods.c.id == method_id
        )
        saved: bool = (await db.execute(query)).scalar_one()
    return saved


async def test_an_authorization_for_manual_capture_lets_its_card_be_attached(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    authorized = await _pay(
        core, account_id, "guest", customer_id=None, capture=CaptureMethod.MANUAL
    )
    assert authorized.status is Status.REQUIRES_CAPTURE
    assert authorized.payment_method_id is not None
    assert await _saved_for_future_usage(core_engine, authorized.payment_method_id)
    customer = await core.customers.create(account_id, CustomerFields())
    await core.methods.attach(account_id, authorized.payment_method_id, customer.id)
    assert await core.saved(account_id, customer.id) == [authorized.payment_method_id]


async def test_the_card_declined_before_its_intent_paid_with_another_stays_spent(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """The intent spent the declined card too, but did not go through with it: only the card
    that paid may be attached."""
    core = Core(core_engine)
    declined_card = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa_chargeDeclined")
    )
    paying_card = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    with pytest.raises(RemitError):
        await _pay(core, account_id, "declined", customer_id=None, pm=declined_card.id)
    [intent], _ = await core.payments.list_payment_intents(account_id, limit=10)
    retried = await core.payments.confirm_payment_intent(
        _call(account_id, "retry", "ConfirmPaymentIntent"),
        intent.id,
        ConfirmParams(payment_method_id=paying_card.id),
        _respond,
    )
    assert isinstance(retried, Done)
    assert (retried.value.status, retried.value.customer_id) == (Status.SUCCEEDED, None)

    customer = await core.customers.create(account_id, CustomerFields())
    with pytest.raises(RemitError) as refused:
        await core.methods.attach(account_id, declined_card.id, customer.id)
    assert (refused.value.param, refused.value.message) == ("payment_method", SPENT_MESSAGE)
    await core.methods.attach(account_id, paying_card.id, customer.id)
    assert await core.saved(account_id, customer.id) == [paying_card.id]


async def test_a_payment_that_read_the_card_before_its_attach_is_refused_under_its_lock(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """Another intent's payment read the card unattached; the attach to the guest's new
    customer holds it meanwhile. Once the attach commits, the payment's check under the row
    lock finds it the customer's, and refuses it: the intent names no customer."""
    core = Core(core_engine)
    guest = await _pay(core, account_id, "guest", customer_id=None)
    method_id = guest.payment_method_id
    assert method_id is not None
    read_before = await core.methods.resolve_for_use(account_id, method_id)
    customer = await core.customers.create(account_id, CustomerFields())

    async with core_engine.begin() as attaching:
        await attach_in(attaching, account_id, method_id, customer.id, hooks=core.methods.hooks)

        async def pay_another_intent() -> None:
            async with core_engine.begin() as db:
                await PaymentMethodsService.use_in(db, read_before, "pi_another")

        paying = asyncio.ensure_future(pay_another_intent())
        await until_a_session_waits_on_a_lock(core_engine, contender=paying)

    with pytest.raises(RemitError) as refused:
        await paying
    assert refused.value.param == "payment_method"
    assert f"belongs to the Customer {customer.id}" in refused.value.message
    assert await core.saved(account_id, customer.id) == [method_id]
