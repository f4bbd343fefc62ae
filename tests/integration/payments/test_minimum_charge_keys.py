"""A refusal for an amount under the currency's minimum charge leaves nothing behind, not even
its idempotency key: the same key then carries the corrected request."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import RemitError
from remit.payments.domain import NewPaymentIntent, PaymentIntent, Status, Updated
from remit.payments.service import ConfirmParams, Done, KeyedCall, PaymentsService
from remit.payments.tables import idempotency_keys, payment_intents

pytestmark = pytest.mark.anyio


def respond(intent: PaymentIntent) -> bytes:
    return intent.id.encode()


def call(account_id: str, key: str, endpoint: str, body: bytes) -> KeyedCall:
    return KeyedCall(account_id=account_id, key=key, endpoint=endpoint, request_body=body)


async def _rows(engine: AsyncEngine, account_id: str) -> tuple[int, int]:
    """(payment intents, idempotency keys) stored for the account."""
    async with engine.connect() as db:
        intents = await db.execute(
            select(func.count()).where(payment_intents.c.account_id == account_id)
        )
        keys = await db.execute(
            select(func.count()).where(idempotency_keys.c.account_id == account_id)
        )
        return int(intents.scalar_one()), int(keys.scalar_one())


async def test_a_confirmed_create_under_the_minimum_stores_neither_intent_nor_key(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    with pytest.raises(RemitError) as refused:
        await payments.create_payment_intent(
            call(account_id, "small", "CreatePaymentIntent", b"49"),
            NewPaymentIntent(amount_minor=49, currency="usd"),
            respond,
            confirm=ConfirmParams(payment_method_id="pm_visa"),
        )
    assert (refused.value.code, refused.value.param) == ("amount_too_small", "amount")
    assert await _rows(core_engine, account_id) == (0, 0)
    paid = await payments.create_payment_intent(
        call(account_id, "small", "CreatePaymentIntent", b"50"),
        NewPaymentIntent(amount_minor=50, currency="usd"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    assert isinstance(paid, Done)
    assert (paid.value.status, paid.value.amount_received_minor) == (Status.SUCCEEDED, 50)


async def test_an_update_under_the_minimum_keeps_the_intent_and_frees_its_key(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    created = await payments.create_payment_intent(
        call(account_id, "create", "CreatePaymentIntent", b"1000"),
        NewPaymentIntent(amount_minor=1000, currency="usd"),
        respond,
    )
    assert isinstance(created, Done)
    intent = created.value
    with pytest.raises(RemitError) as refused:
        await payments.update_payment_intent(
            call(account_id, "lower", "UpdatePaymentIntent", b"jpy 49"),
            intent.id,
            Updated(at=intent.created_at, amount_minor=49, currency="jpy"),
            respond,
        )
    assert refused.value.message == "Amount must be at least 50 jpy"
    assert await payments.get_payment_intent(account_id, intent.id) == intent
    assert await _rows(core_engine, account_id) == (1, 1)
    lowered = await payments.update_payment_intent(
        call(account_id, "lower", "UpdatePaymentIntent", b"jpy 50"),
        intent.id,
        Updated(at=intent.created_at, amount_minor=50, currency="jpy"),
        respond,
    )
    assert isinstance(lowered, Done)
    assert (lowered.value.amount_minor, lowered.value.currency) == (50, "jpy")
