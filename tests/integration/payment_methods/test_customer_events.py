"""customer.* and payment_method.attached/.detached/.updated events, recorded in the transaction
of the change, read back from the events table."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.customers.domain import CustomerFields
from remit.customers.events import CustomerEvents
from remit.customers.service import CustomersService
from remit.payment_methods import service as payment_methods_service
from remit.payment_methods.domain import CardSummary, PaymentMethodChanges, VaultCard
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.requests import note_call
from remit.storage import fastsql
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
            .order_by(events.c.created_at, events.c.seq)
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


def _services(core_engine: AsyncEngine) -> tuple[PaymentMethodsService, CustomersService]:
    hooks = CustomerEvents()
    methods = PaymentMethodsService(core_engine, VisaOnlyVault(), hooks=hooks)
    return methods, CustomersService(core_engine, methods, hooks=hooks)


async def test_deleting_a_customer_detaches_each_payment_method_as_a_detach_does(
    core_engine: AsyncEngine,
) -> None:
    """A merchant keeping saved cards from webhooks learns of every card the deletion detached,
    from the same event an explicit detach sends."""
    account_id = (await AccountsService(core_engine).create_account()).account.id
    methods, customers = _services(core_engine)
    customer = await customers.create(account_id, CustomerFields())
    first, second, third = [
        await methods.attach(account_id, "pm_card_visa", customer.id) for _ in range(3)
    ]
    await methods.detach(account_id, first.id)
    before = len(await recorded(core_engine, account_id))

    note_call("req_delete", None)
    await customers.delete(account_id, customer.id)

    made = await recorded(core_engine, account_id)
    explicit = made[before - 1]
    assert explicit["type"] == "payment_method.detached"
    by_deletion = made[before:]
    # The detaches first, oldest payment method first, then the deletion.
    assert [(row["type"], row["data_object"]["id"]) for row in by_deletion] == [  # type: ignore[index]
        ("payment_method.detached", second.id),
        ("payment_method.detached", third.id),
        ("customer.deleted", customer.id),
    ]
    for row in by_deletion[:2]:
        data_object = row["data_object"]
        assert data_object["customer"] is None  # type: ignore[index]
        assert data_object.keys() == explicit["data_object"].keys()  # type: ignore[attr-defined]
        assert row["previous_attributes"] == explicit["previous_attributes"]
        assert row["previous_attributes"] == {"customer": customer.id}
        assert row["request_id"] == "req_delete"
    for method in (second, third):
        after = await methods.get(account_id, method.id)
        assert (after.customer_id, after.usable) == (None, False)

    # A delete again (DELETE takes no idempotency key) is a 404 that records nothing.
    with pytest.raises(RemitError) as again:
        await customers.delete(account_id, customer.id)
    assert again.value.kind is ErrorKind.NOT_FOUND
    assert len(await recorded(core_engine, account_id)) == len(made)


async def test_two_deletes_at_once_detach_and_record_each_payment_method_once(
    core_engine: AsyncEngine,
) -> None:
    account_id = (await AccountsService(core_engine).create_account()).account.id
    methods, customers = _services(core_engine)
    customer = await customers.create(account_id, CustomerFields())
    for _ in range(2):
        await methods.attach(account_id, "pm_card_visa", customer.id)
    before = len(await recorded(core_engine, account_id))

    outcomes = await asyncio.gather(
        customers.delete(account_id, customer.id),
        customers.delete(account_id, customer.id),
        return_exceptions=True,
    )

    refused = [outcome for outcome in outcomes if isinstance(outcome, RemitError)]
    assert len(refused) == 1, outcomes
    assert refused[0].kind is ErrorKind.NOT_FOUND
    made = (await recorded(core_engine, account_id))[before:]
    assert sorted(str(row["type"]) for row in made) == [
        "customer.deleted",
        "payment_method.detached",
        "payment_method.detached",
    ]


@contextmanager
def round_trips(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """One entry per round trip to the database in this block: each SQLAlchemy statement on
    `engine`, each pipeline of held writes fastsql sends, each fastsql statement sent alone."""
    sent: list[str] = []
    pipelined = fastsql._pipelined
    answered = fastsql.Statement._answered

    async def pipeline(connection: Any, held: Any, sql: str | None, *args: Any) -> Any:
        sent.append("pipeline")
        return await pipelined(connection, held, sql, *args)

    async def alone(statement: fastsql.Statement, db: Any, *args: Any) -> Any:
        if not fastsql.holds(fastsql.driver(db)):
            sent.append(statement.sql)
        return await answered(statement, db, *args)

    def through_sqlalchemy(*args: object) -> None:
        sent.append(str(args[2]))

    monkeypatch.setattr(fastsql, "_pipelined", pipeline)
    monkeypatch.setattr(fastsql.Statement, "_answered", alone)
    event.listen(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
        monkeypatch.undo()


async def test_deleting_a_customer_takes_as_many_round_trips_with_one_or_many_methods(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer may hold many payment methods: their detaches and events go out together,
    not one round trip each."""
    account_id = (await AccountsService(core_engine).create_account()).account.id
    methods, customers = _services(core_engine)

    async def round_trips_deleting(attached: int) -> int:
        customer = await customers.create(account_id, CustomerFields())
        for _ in range(attached):
            await methods.attach(account_id, "pm_card_visa", customer.id)
        with round_trips(core_engine, monkeypatch) as sent:
            await customers.delete(account_id, customer.id)
        return len(sent)

    assert await round_trips_deleting(5) == await round_trips_deleting(1)
    events = await recorded(core_engine, account_id)
    assert [row["type"] for row in events].count("payment_method.detached") == 6


async def test_a_customer_with_more_methods_than_a_batch_has_every_one_detached_once(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(payment_methods_service, "DETACH_BATCH", 2)
    account_id = (await AccountsService(core_engine).create_account()).account.id
    methods, customers = _services(core_engine)
    customer = await customers.create(account_id, CustomerFields())
    attached = [await methods.attach(account_id, "pm_card_visa", customer.id) for _ in range(5)]
    before = len(await recorded(core_engine, account_id))

    await customers.delete(account_id, customer.id)

    made = (await recorded(core_engine, account_id))[before:]
    assert [row["data_object"]["id"] for row in made] == [  # type: ignore[index]
        *(method.id for method in attached),
        customer.id,
    ]
    assert {row["type"] for row in made[:-1]} == {"payment_method.detached"}
    for method in attached:
        assert (await methods.get(account_id, method.id)).customer_id is None


async def test_a_delete_cut_short_keeps_its_batches_and_its_retry_finishes_the_rest(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller's deadline cuts a long delete short. Each batch is committed on its own, so the
    retry goes on from where the first stopped, and no method is detached, or announced, twice."""
    monkeypatch.setattr(payment_methods_service, "DETACH_BATCH", 2)
    account_id = (await AccountsService(core_engine).create_account()).account.id
    methods, customers = _services(core_engine)
    customer = await customers.create(account_id, CustomerFields())
    attached = [await methods.attach(account_id, "pm_card_visa", customer.id) for _ in range(5)]
    before = len(await recorded(core_engine, account_id))

    detach_a_batch = PaymentMethodsService.detach_a_batch_of_deleted_in
    batches: list[int] = []

    async def cut_after_the_first(*args: Any) -> bool:
        batches.append(len(batches))
        if len(batches) == 2:
            raise asyncio.CancelledError  # the caller's deadline, during the second batch
        return await detach_a_batch(*args)

    monkeypatch.setattr(PaymentMethodsService, "detach_a_batch_of_deleted_in", cut_after_the_first)
    with pytest.raises(asyncio.CancelledError):
        await customers.delete(account_id, customer.id)
    assert [(await methods.get(account_id, m.id)).customer_id for m in attached] == [
        None, None, customer.id, customer.id, customer.id,
    ]  # fmt: skip

    monkeypatch.setattr(PaymentMethodsService, "detach_a_batch_of_deleted_in", detach_a_batch)
    await customers.delete(account_id, customer.id)

    made = (await recorded(core_engine, account_id))[before:]
    assert [row["data_object"]["id"] for row in made] == [  # type: ignore[index]
        *(method.id for method in attached),
        customer.id,
    ]
    assert [row["type"] for row in made] == [
        *["payment_method.detached"] * 5, "customer.deleted",
    ]  # fmt: skip
    with pytest.raises(RemitError) as gone:
        await customers.delete(account_id, customer.id)
    assert gone.value.kind is ErrorKind.NOT_FOUND


async def test_a_delete_cut_short_leaves_the_customer_s_default_attached_until_the_last_batch(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer that stays live after a delete cut short still has its default payment method
    attached to it: the default goes with the last batch, in the transaction that deletes."""
    monkeypatch.setattr(payment_methods_service, "DETACH_BATCH", 2)
    account_id = (await AccountsService(core_engine).create_account()).account.id
    methods, customers = _services(core_engine)
    customer = await customers.create(account_id, CustomerFields())
    attached = [await methods.attach(account_id, "pm_card_visa", customer.id) for _ in range(5)]
    default = attached[0]  # the oldest: in the first batch if it were not held back
    await customers.update(
        account_id, customer.id, CustomerFields(default_payment_method=default.id)
    )
    before = len(await recorded(core_engine, account_id))

    detach_a_batch = PaymentMethodsService.detach_a_batch_of_deleted_in
    batches: list[int] = []

    async def cut_after_the_first(*args: Any) -> bool:
        batches.append(len(batches))
        if len(batches) == 2:
            raise asyncio.CancelledError
        return await detach_a_batch(*args)

    monkeypatch.setattr(PaymentMethodsService, "detach_a_batch_of_deleted_in", cut_after_the_first)
    with pytest.raises(asyncio.CancelledError):
        await customers.delete(account_id, customer.id)
    live = await customers.get(account_id, customer.id)
    assert live.deleted_at is None
    assert live.default_payment_method_id == default.id
    assert (await methods.get(account_id, default.id)).customer_id == customer.id
    assert [(await methods.get(account_id, m.id)).customer_id for m in attached[1:]] == [
        None, None, customer.id, customer.id,
    ]  # fmt: skip

    monkeypatch.setattr(PaymentMethodsService, "detach_a_batch_of_deleted_in", detach_a_batch)
    await customers.delete(account_id, customer.id)
    made = (await recorded(core_engine, account_id))[before:]
    made_ids = [row["data_object"]["id"] for row in made]  # type: ignore[index]
    assert made_ids == [*(method.id for method in attached[1:]), default.id, customer.id]
    for method in attached:
        assert (await methods.get(account_id, method.id)).customer_id is None
