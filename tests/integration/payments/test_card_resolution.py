"""Resolving the card (which may ask the vault) happens before the transaction opens when nothing
stored has to be read first (a create, confirmed or not, and an update): no database
transaction waits on the vault."""

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments.domain import NewPaymentIntent, Updated
from remit.payments.grpc import payment_intent_message
from remit.payments.ports import ChargeableCard
from remit.payments.service import Done, PaymentsService
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


class WatchingMethods(FakeMethods):
    """Notes how many transactions of this database are open whenever a card is resolved."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine
        self.open_transactions: list[int] = []

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        async with self._engine.begin() as db:
            count = await db.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
                )
            )
        self.open_transactions.append(int(count or 0))
        return await super().chargeable_card(account_id, payment_method_id)


async def test_create_and_confirm_resolves_the_card_outside_any_transaction(
    core_engine: AsyncEngine, account_id: str
) -> None:
    methods = WatchingMethods(core_engine)
    payments = PaymentsService(core_engine, FakeNetwork(), methods, present=payment_intent_message)
    intent = await pay(payments, account_id, "resolve-first")
    assert intent.status.value == "succeeded"
    assert methods.open_transactions == [0], methods.open_transactions


async def test_create_without_confirmation_and_update_resolve_the_card_outside_any_transaction(
    core_engine: AsyncEngine, account_id: str
) -> None:
    methods = WatchingMethods(core_engine)
    payments = PaymentsService(core_engine, FakeNetwork(), methods, present=payment_intent_message)
    created = await payments.create_payment_intent(
        call(account_id, "create"),
        NewPaymentIntent(amount_minor=1000, currency="usd", payment_method_id="pm_visa"),
        respond,
    )
    assert isinstance(created, Done)
    updated = await payments.update_payment_intent(
        call(account_id, "update", endpoint="UpdatePaymentIntent"),
        created.value.id,
        Updated(at=created.value.created_at, payment_method_id="pm_declined"),
        respond,
    )
    assert isinstance(updated, Done)
    assert updated.value.payment_method_id == "pm_declined"
    assert methods.open_transactions == [0, 0], methods.open_transactions
