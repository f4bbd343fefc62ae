"""A payment method detached, or saved to a customer, while a create or an update that names
it (without confirming) is on its way: the request read the card before its transaction
opened, so the checks that the intent may name it are made again there, under the card's row
lock, as a confirmation's are (test_method_changed_during_confirm.py). Nothing would be charged
either way (a confirmation checks the card again), but the intent would be saved naming a
card it may not use, which Stripe refuses to name."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import RemitError
from remit.customers.domain import CustomerFields
from remit.payment_methods.domain import NewPaymentMethod
from remit.payments.domain import NewPaymentIntent, Status, Updated
from remit.payments.service import Done, PaymentsService
from tests.integration.payments.test_method_changed_during_confirm import (
    PausingMethods,
    _call,
    _intent,
    _payments,
    _respond,
    _saved_card,
)
from tests.integration.payments.test_setup_future_usage import Core

pytestmark = pytest.mark.anyio


async def _while_the_card_is_read(
    pausing: PausingMethods,
    request: Awaitable[object],
    change: Callable[[], Awaitable[object]],
) -> RemitError:
    """Make `change` once `request` has read its card, then let it go on; its refusal."""
    sent = asyncio.ensure_future(request)
    await asyncio.wait_for(pausing.read.wait(), 10)
    await change()
    pausing.go_on.set()
    with pytest.raises(RemitError) as refused:
        await sent
    return refused.value


def _create(
    payments: PaymentsService, account_id: str, customer_id: str, method_id: str
) -> Awaitable[object]:
    return payments.create_payment_intent(
        _call(account_id, f"create-{uuid4()}", "CreatePaymentIntent"),
        NewPaymentIntent(
            amount_minor=1000, currency="usd", customer_id=customer_id, payment_method_id=method_id
        ),
        _respond,
    )


def _update(
    payments: PaymentsService, account_id: str, intent_id: str, method_id: str
) -> Awaitable[object]:
    return payments.update_payment_intent(
        _call(account_id, f"update-{uuid4()}", "UpdatePaymentIntent"),
        intent_id,
        Updated(at=datetime.now(UTC), payment_method_id=method_id),
        _respond,
    )


def _assert_refused_as_detached(refused: RemitError, method_id: str) -> None:
    assert (refused.code, refused.param) == ("payment_method_unexpected_state", "payment_method")
    assert refused.message == (
        f"The PaymentMethod {method_id} was previously detached from a Customer and may not "
        "be used again."
    )


async def test_a_create_naming_a_card_detached_meanwhile_is_refused(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    pausing = PausingMethods(core.methods)
    payments = _payments(core_engine, pausing)

    refused = await _while_the_card_is_read(
        pausing,
        _create(payments, account_id, customer.id, method_id),
        lambda: core.methods.detach(account_id, method_id),
    )

    _assert_refused_as_detached(refused, method_id)
    listed, _ = await payments.list_payment_intents(account_id, limit=10)
    assert listed == []


async def test_a_create_naming_a_card_saved_to_another_customer_meanwhile_is_refused(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    other = await core.customers.create(account_id, CustomerFields())
    method = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    pausing = PausingMethods(core.methods)
    payments = _payments(core_engine, pausing)

    refused = await _while_the_card_is_read(
        pausing,
        _create(payments, account_id, customer.id, method.id),
        lambda: core.methods.attach(account_id, method.id, other.id),
    )

    assert refused.param == "payment_method"
    assert refused.message == (
        f"The PaymentMethod {method.id} belongs to another Customer than {customer.id}. "
        "Payment methods attached to other Customers cannot be used with this PaymentIntent."
    )
    listed, _ = await payments.list_payment_intents(account_id, limit=10)
    assert listed == []


async def test_an_update_naming_a_card_whose_customer_is_deleted_meanwhile_is_refused(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    intent = await _intent(core, account_id, None)
    pausing = PausingMethods(core.methods)
    payments = _payments(core_engine, pausing)
    # Attached to no customer, the intent may name the card only once its customer is named.
    customer_named = await payments.update_payment_intent(
        _call(account_id, "name-customer", "UpdatePaymentIntent"),
        intent.id,
        Updated(at=datetime.now(UTC), changes={"customer_id": customer.id}),
        _respond,
    )
    assert isinstance(customer_named, Done)

    refused = await _while_the_card_is_read(
        pausing,
        _update(payments, account_id, intent.id, method_id),
        lambda: core.customers.delete(account_id, customer.id),
    )

    _assert_refused_as_detached(refused, method_id)
    after = await payments.get_payment_intent(account_id, intent.id)
    assert (after.status, after.payment_method_id) == (Status.REQUIRES_PAYMENT_METHOD, None)
