"""A customer's default payment method (Stripe's invoice_settings.default_payment_method), over
gRPC: set on create (with the payment method the create attaches) or update, cleared by an
empty value or by detaching it, refused unless it is attached to the customer, and recorded in
customer.updated events."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.jsonview import JsonObject, to_json
from remit.customers.events import CustomerEvents
from remit.customers.service import CustomersService
from remit.customers.tables import customers
from remit.grpcutil.errors import detail_from_rpc_error
from remit.payment_methods.domain import CardSummary, NewPaymentMethod, VaultCard
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.grpc import PaymentsServicer, payment_intent_message
from remit.payments.keyed_rpc import REPLAYED_KEY
from remit.payments.methods import StoredPaymentMethods
from remit.payments.service import PaymentsService
from remit.payments.wiring import payment_hooks
from remit.webhooks.tables import events
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support.accounts import call_metadata
from tests.support.card_vaults import TestCardsKeepTheirDetails
from tests.support.fake_network import FakeNetwork
from tests.support.payments_server import serving_payments

pytestmark = pytest.mark.anyio

PARAM = "invoice_settings[default_payment_method]"


class VisaVault(TestCardsKeepTheirDetails):
    """Resolves Stripe's Visa test id (no vault process needed here)."""

    def forget_card(self, account_id: str, vault_token: str) -> None:
        return None

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        raise AssertionError("not used")

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        assert test_id == "pm_card_visa"
        return VaultCard("vtok_visa", CardSummary("visa", "4242", 12, 2034, "fp", "credit", "US"))

    async def card_details(self, account_id: str, vault_token: str) -> VaultCard:
        raise AssertionError("not used")


@dataclass
class Core:
    account_id: str
    engine: AsyncEngine
    methods: PaymentMethodsService
    stub: Any  # payments_pb2_grpc.PaymentsServiceStub on an aio channel

    def metadata(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.account_id, key)

    async def new_method(self) -> str:
        """A payment method of the account, attached to no customer."""
        made = await self.methods.create(
            self.account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
        )
        return made.id

    async def create(self, key: str | None = None, **fields: Any) -> pb.Customer:
        request = pb.CreateCustomerRequest(**fields)
        reply = await self.stub.CreateCustomer(request, metadata=self.metadata(key))
        return reply.customer  # type: ignore[no-any-return]

    async def update(self, customer_id: str, default: str, key: str | None = None) -> pb.Customer:
        reply, _ = await self.update_call(customer_id, default, key)
        return reply.customer

    async def update_call(
        self, customer_id: str, default: str, key: str | None = None
    ) -> tuple[pb.UpdateCustomerResponse, bool]:
        """The answer, and whether it replayed the key's first."""
        call = self.stub.UpdateCustomer(
            pb.UpdateCustomerRequest(id=customer_id, invoice_settings=_default(default)),
            metadata=self.metadata(key),
        )
        reply = await call
        trailing = dict(await call.trailing_metadata() or ())
        return reply, trailing.get(REPLAYED_KEY) == "true"

    async def get(self, customer_id: str) -> pb.Customer:
        request = pb.GetCustomerRequest(id=customer_id)
        reply = await self.stub.GetCustomer(request, metadata=self.metadata())
        return reply.customer  # type: ignore[no-any-return]

    async def attached_to(self, customer_id: str) -> list[str]:
        request = pb.ListPaymentMethodsRequest(customer=customer_id)
        reply = await self.stub.ListPaymentMethods(request, metadata=self.metadata())
        return [method.id for method in reply.data]

    async def detach(self, method_id: str) -> None:
        request = pb.DetachPaymentMethodRequest(id=method_id)
        await self.stub.DetachPaymentMethod(request, metadata=self.metadata())

    async def customer_count(self) -> int:
        async with self.engine.connect() as db:
            query = select(func.count()).where(customers.c.account_id == self.account_id)
            return int((await db.execute(query)).scalar_one())

    async def events_of(self, event_type: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as db:
            rows = await db.execute(
                select(events.c.data_object, events.c.previous_attributes)
                .where(events.c.account_id == self.account_id, events.c.type == event_type)
                .order_by(events.c.created_at, events.c.seq)
            )
        return [dict(row._mapping) for row in rows]


@pytest.fixture
async def core(core_engine: AsyncEngine) -> AsyncIterator[Core]:
    account = await AccountsService(core_engine).create_account(radar_enabled=False)
    hooks = CustomerEvents()
    methods = PaymentMethodsService(core_engine, VisaVault(), hooks=hooks, customer_hooks=hooks)
    payments = PaymentsService(
        core_engine,
        FakeNetwork(),
        StoredPaymentMethods(methods),
        present=payment_intent_message,
        hooks=payment_hooks(),
    )
    servicer = PaymentsServicer(
        payments, CustomersService(core_engine, methods, hooks=hooks), methods
    )
    async with serving_payments(servicer) as stub:
        yield Core(account.account.id, core_engine, methods, stub)


def _default(method_id: str) -> pb.CustomerInvoiceSettingsInput:
    return pb.CustomerInvoiceSettingsInput(default_payment_method=method_id)


def _settings(method_id: str | None) -> JsonObject:
    return {
        "custom_fields": None,
        "default_payment_method": method_id,
        "footer": None,
        "rendering_options": None,
    }


async def _refused(call: Any) -> tuple[grpc.StatusCode, str, str]:
    """The status code, error code (or type, without a code) and parameter of a refused
    call."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    return refused.value.code(), detail.code or detail.type, detail.param


async def test_a_customer_without_a_default_renders_null_invoice_settings(core: Core) -> None:
    customer = await core.create(email="ada@example.com")
    assert to_json(customer)["invoice_settings"] == _settings(None)


async def test_a_create_takes_as_default_the_test_card_it_attaches(core: Core) -> None:
    customer = await core.create(
        payment_method="pm_card_visa", invoice_settings=_default("pm_card_visa")
    )
    # The test id became a new payment method of the account: that one is the default.
    [attached] = await core.attached_to(customer.id)
    assert attached.startswith("pm_")
    assert attached != "pm_card_visa"
    assert to_json(customer)["invoice_settings"] == _settings(attached)
    assert to_json(await core.get(customer.id))["invoice_settings"] == _settings(attached)
    [created] = await core.events_of("customer.created")
    assert created["data_object"]["invoice_settings"] == _settings(attached)


async def test_a_create_takes_as_default_the_payment_method_it_attaches(core: Core) -> None:
    method_id = await core.new_method()
    customer = await core.create(payment_method=method_id, invoice_settings=_default(method_id))
    assert customer.invoice_settings.default_payment_method == method_id
    assert await core.attached_to(customer.id) == [method_id]


async def test_a_create_refuses_a_default_it_does_not_attach_and_makes_nothing(
    core: Core,
) -> None:
    attached, elsewhere = await core.new_method(), await core.new_method()
    for fields in (
        {"invoice_settings": _default(elsewhere)},
        {"payment_method": attached, "invoice_settings": _default(elsewhere)},
    ):
        code, error_code, param = await _refused(core.stub.CreateCustomer(
            pb.CreateCustomerRequest(**fields), metadata=core.metadata()
        ))  # fmt: skip
        assert (code, error_code, param) == (
            grpc.StatusCode.INVALID_ARGUMENT, "parameter_invalid", PARAM
        )  # fmt: skip
    assert await core.customer_count() == 0
    assert (await core.methods.get(core.account_id, attached)).customer_id is None


async def test_an_update_sets_and_clears_the_default_with_customer_updated_events(
    core: Core,
) -> None:
    customer = await core.create(payment_method="pm_card_visa")
    [method_id] = await core.attached_to(customer.id)
    assert not customer.invoice_settings.HasField("default_payment_method")
    assert (await core.update(customer.id, method_id)).invoice_settings.default_payment_method == (
        method_id
    )
    cleared = await core.update(customer.id, "")
    assert to_json(cleared)["invoice_settings"] == _settings(None)
    assert to_json(await core.get(customer.id))["invoice_settings"] == _settings(None)
    set_event, cleared_event = await core.events_of("customer.updated")
    assert set_event["data_object"]["invoice_settings"] == _settings(method_id)
    # Only the key of `invoice_settings` that changed (Stripe's since 2015-01-26).
    assert set_event["previous_attributes"] == {
        "invoice_settings": {"default_payment_method": None}
    }
    assert cleared_event["previous_attributes"] == {
        "invoice_settings": {"default_payment_method": method_id}
    }


async def test_an_update_refuses_a_payment_method_not_attached_to_the_customer(
    core: Core,
) -> None:
    customer = await core.create(payment_method="pm_card_visa")
    [own] = await core.attached_to(customer.id)
    other = await core.create(payment_method="pm_card_visa")
    [others] = await core.attached_to(other.id)
    unattached = await core.new_method()
    await core.update(customer.id, own)

    def update(method_id: str) -> Any:
        request = pb.UpdateCustomerRequest(id=customer.id, invoice_settings=_default(method_id))
        return core.stub.UpdateCustomer(request, metadata=core.metadata())

    # Refused by the payment method's state (attached to no one, or to another customer),
    # which an attach may change: FAILED_PRECONDITION, stored under an idempotency key.
    for method_id in (others, unattached):
        assert await _refused(update(method_id)) == (
            grpc.StatusCode.FAILED_PRECONDITION, "parameter_invalid", PARAM
        )  # fmt: skip
    assert await _refused(update("pm_doesNotExist")) == (
        grpc.StatusCode.NOT_FOUND, "resource_missing", PARAM
    )  # fmt: skip
    # A refused update changes nothing.
    assert (await core.get(customer.id)).invoice_settings.default_payment_method == own


async def test_detaching_the_default_payment_method_clears_it(core: Core) -> None:
    customer = await core.create(payment_method="pm_card_visa")
    [default] = await core.attached_to(customer.id)
    await core.update(customer.id, default)
    other = await core.new_method()
    await core.methods.attach(core.account_id, other, customer.id)

    await core.detach(other)  # not the default: the default stays
    assert (await core.get(customer.id)).invoice_settings.default_payment_method == default
    updates_before = len(await core.events_of("customer.updated"))
    await core.detach(default)
    assert to_json(await core.get(customer.id))["invoice_settings"] == _settings(None)
    updates = await core.events_of("customer.updated")
    assert len(updates) == updates_before + 1
    assert updates[-1]["data_object"]["invoice_settings"] == _settings(None)
    assert updates[-1]["previous_attributes"] == {
        "invoice_settings": {"default_payment_method": default}
    }


async def test_an_update_under_a_key_replays_its_first_answer(core: Core) -> None:
    customer = await core.create(payment_method="pm_card_visa")
    [method_id] = await core.attached_to(customer.id)
    first, first_replayed = await core.update_call(customer.id, method_id, key="set-default")
    await core.detach(method_id)
    again, again_replayed = await core.update_call(customer.id, method_id, key="set-default")
    assert (first_replayed, again_replayed) == (False, True)
    assert again == first
    assert again.customer.invoice_settings.default_payment_method == method_id
    # The replay changed nothing: the detach cleared the default, and it stays cleared.
    assert not (await core.get(customer.id)).invoice_settings.HasField("default_payment_method")
    # The key's request named a default: the same key naming another is refused.
    _, error, _ = await _refused(core.stub.UpdateCustomer(
        pb.UpdateCustomerRequest(id=customer.id, invoice_settings=_default("")),
        metadata=core.metadata("set-default"),
    ))  # fmt: skip
    assert error == "idempotency_error"
