"""customer.* and payment_method.attached/.detached/.updated events, recorded in the transaction
of the change, read back from the events table."""

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import RemitError
from remit.customers.domain import CustomerFields
from remit.customers.events import CustomerEvents
from remit.customers.service import CustomersService
from remit.payment_methods.domain import CardSummary, PaymentMethodChanges, VaultCard
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.requests import note_call
from remit.webhooks.tables import events
from tests.support.card_vaults import TestCardsKeepTheirDetails

pytestmark = pytest.mark.anyio


class VisaOnlyVault(TestCardsKeepTheirDetails):
    """A vault that knows only the Visa test card (no vault process needed here)."""

    def forget_card(self, account_id: str, vault_token: str) -> None:
        return None  # remembers nothing

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        raise AssertionError("not used")

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        assert test_id == "pm_card_visa"
        return VaultCard("vtok_visa", CardSummary("visa", "4242", 12, 2034, "fp", "credit", "US"))

    async def card_details(self, account_id: str, vault_token: str) -> VaultCard:
        raise AssertionError("not used")


async def recorded(engine: AsyncEngine, account_id: str) -> list[dict[str, object]]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(events).where(events.c.account_id == account_id)
            .order_by(events.c.created_at, events.c.id)
        )  # fmt: skip
    return [dict(row._mapping) for row in rows]


async def test_customer_and_payment_method_changes_record_their_events(
    core_engine: AsyncEngine,
) -> None:
    account_id = (await AccountsService(core_engine).create_account()).account.id
    hooks = CustomerEvents()
    methods = PaymentMethodsService(core_engine, VisaOnlyVault(), hooks=hooks)
    customers = CustomersService(core_engine, methods, hooks=hooks)

    note_call("req_create", "key-1")
    customer = await customers.create(account_id, CustomerFields(email="ada@example.com"))
    note_call("req_update", None)
    await customers.update(account_id, customer.id, CustomerFields(name="Ada"))
    await customers.update(account_id, customer.id, CustomerFields(name="Ada"))  # no change
    method = await methods.attach(account_id, "pm_card_visa", customer.id)
    await methods.detach(account_id, method.id)
    await customers.delete(account_id, customer.id)

    made = await recorded(core_engine, account_id)
    assert [row["type"] for row in made] == [
        "customer.created",
        "customer.updated",
        "payment_method.attached",
        "payment_method.detached",
        "customer.deleted",
    ]
    created, updated, attached, detached, deleted = made
    assert (created["request_id"], created["idempotency_key"]) == ("req_create", "key-1")
    assert created["data_object"]["email"] == "ada@example.com"  # type: ignore[index]
    assert updated["request_id"] == "req_update"
    assert updated["previous_attributes"] == {"name": None}
    assert attached["data_object"]["customer"] == customer.id  # type: ignore[index]
    assert detached["data_object"]["customer"] is None  # type: ignore[index]
    assert detached["previous_attributes"] == {"customer": customer.id}
    assert deleted["data_object"]["id"] == customer.id  # type: ignore[index]


async def test_a_customer_created_with_a_payment_method_records_both_events(
    core_engine: AsyncEngine,
) -> None:
    account_id = (await AccountsService(core_engine).create_account()).account.id
    hooks = CustomerEvents()
    methods = PaymentMethodsService(core_engine, VisaOnlyVault(), hooks=hooks)
    customers = CustomersService(core_engine, methods, hooks=hooks)
    await customers.create(account_id, CustomerFields(), payment_method_id="pm_card_visa")
    made = await recorded(core_engine, account_id)
    assert [row["type"] for row in made] == ["customer.created", "payment_method.attached"]


async def test_a_payment_method_update_records_payment_method_updated_with_what_it_changed(
    core_engine: AsyncEngine,
) -> None:
    account_id = (await AccountsService(core_engine).create_account()).account.id
    hooks = CustomerEvents()
    methods = PaymentMethodsService(core_engine, VisaOnlyVault(), hooks=hooks)
    customers = CustomersService(core_engine, methods, hooks=hooks)
    customer = await customers.create(account_id, CustomerFields())
    method = await methods.attach(account_id, "pm_card_visa", customer.id)
    before = len(await recorded(core_engine, account_id))

    note_call("req_pm_update", "key-pm")
    await methods.update(
        account_id,
        method.id,
        PaymentMethodChanges(metadata={"order": "42"}, billing_details={"name": "Ada"}),
    )
    await methods.update(account_id, method.id, PaymentMethodChanges(metadata={"order": "42"}))
    with pytest.raises(RemitError):  # refused: rolled back, event and all
        await methods.update(account_id, method.id, PaymentMethodChanges(exp_month=13))

    made = (await recorded(core_engine, account_id))[before:]
    assert [row["type"] for row in made] == ["payment_method.updated"]
    [updated] = made
    assert (updated["request_id"], updated["idempotency_key"]) == ("req_pm_update", "key-pm")
    assert updated["data_object"]["metadata"] == {"order": "42"}  # type: ignore[index]
    # The keys of each hash that changed: `null` for a key added to `metadata`, and the old
    # value, null, of the billing details' name.
    assert updated["previous_attributes"] == {
        "metadata": {"order": None},
        "billing_details": {"name": None},
    }
