"""A payment method detached, or attached to a customer, while a confirmation that names it is
on its way: the confirmation read the card before its transaction opened, so the checks that
the card may pay this intent are made again in that transaction, against the card's locked
row. A card detached meanwhile (by a detach, or by its customer's deletion) or saved to another
customer is refused as if it had been so when the confirmation began, and nothing is charged.

The race is made deterministic two ways: by holding the intent's row lock in another
connection, which the confirmation waits on after it has read the card (as a confirmation
waits on a concurrent one), or by pausing the card source once it has answered."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import uuid4

import grpc
import psycopg
import pytest
from google.rpc import status_pb2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.customers.domain import CustomerFields
from remit.payment_methods.domain import NewPaymentMethod
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.tables import payment_methods
from remit.payments.charges import Charge, Refund
from remit.payments.domain import NewPaymentIntent, PaymentIntent, Status, Updated
from remit.payments.grpc import payment_intent_message
from remit.payments.keyed import Replay
from remit.payments.methods import StoredPaymentMethods
from remit.payments.ports import ChargeableCard, HookChain, PaymentHooks
from remit.payments.service import ConfirmParams, Done, KeyedCall, PaymentsService
from remit.payments.tables import charges
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from remit.storage.fastsql import driver, send_held
from tests.integration.payments.test_setup_future_usage import Core
from tests.support.fake_network import FakeNetwork
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

_RETURN_URL = "https://shop.example/return"


def _respond(intent: PaymentIntent) -> bytes:
    return intent.status.value.encode()


def _call(account_id: str, key: str, endpoint: str) -> KeyedCall:
    return KeyedCall(account_id, key, endpoint, key.encode())


async def _intent(core: Core, account_id: str, customer_id: str | None) -> PaymentIntent:
    created = await core.payments.create_payment_intent(
        _call(account_id, f"create-{uuid4()}", "CreatePaymentIntent"),
        NewPaymentIntent(amount_minor=1000, currency="usd", customer_id=customer_id),
        _respond,
    )
    assert isinstance(created, Done)
    return created.value


async def _confirm(
    payments: PaymentsService, account_id: str, intent_id: str, method_id: str
) -> PaymentIntent:
    confirmed = await payments.confirm_payment_intent(
        _call(account_id, f"confirm-{intent_id}", "ConfirmPaymentIntent"),
        intent_id,
        ConfirmParams(payment_method_id=method_id, return_url=_RETURN_URL),
        _respond,
    )
    assert isinstance(confirmed, Done)
    return confirmed.value


@asynccontextmanager
async def _intent_locked(databases: WorkerDatabases, intent_id: str) -> AsyncIterator[None]:
    """The intent's row locked in another connection until the block ends, as the probe that
    found the race held it."""
    url = databases.core_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(url) as other:
        await other.execute("SELECT id FROM payment_intents WHERE id = %s FOR UPDATE", (intent_id,))
        try:
            yield
        finally:
            await other.rollback()


async def _confirm_during(
    core: Core,
    engine: AsyncEngine,
    databases: WorkerDatabases,
    account_id: str,
    intent_id: str,
    method_id: str,
    change: Callable[[], Awaitable[object]],
) -> "asyncio.Task[PaymentIntent]":
    """Start confirming `intent_id` with `method_id`, make `change` once the confirmation has
    read the card and waits on the intent's lock, then let it go on."""
    async with _intent_locked(databases, intent_id):
        confirming = asyncio.create_task(_confirm(core.payments, account_id, intent_id, method_id))
        await until_a_session_waits_on_a_lock(engine, contender=confirming)
        await change()
    return confirming


async def _charges_of(engine: AsyncEngine, intent_id: str) -> int:
    async with engine.connect() as db:
        rows = await db.execute(
            select(charges.c.id).where(charges.c.payment_intent_id == intent_id)
        )
        return len(rows.all())


async def _method_row(engine: AsyncEngine, method_id: str) -> tuple[str | None, bool]:
    """(customer, detached) of the payment method as stored."""
    async with engine.connect() as db:
        row = (
            await db.execute(
                select(payment_methods.c.customer_id, payment_methods.c.detached_at).where(
                    payment_methods.c.id == method_id
                )
            )
        ).one()
    return row.customer_id, row.detached_at is not None


async def _saved_card(core: Core, account_id: str, customer_id: str) -> str:
    method = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    await core.methods.attach(account_id, method.id, customer_id)
    return method.id


async def _assert_refused_as_detached(
    confirming: "asyncio.Task[PaymentIntent]", engine: AsyncEngine, intent_id: str, method_id: str
) -> None:
    with pytest.raises(RemitError) as refused:
        await confirming
    assert refused.value.code == "payment_method_unexpected_state"
    assert refused.value.param == "payment_method"
    assert "detached" in refused.value.message
    assert await _charges_of(engine, intent_id) == 0


async def test_a_card_detached_while_the_confirmation_waits_is_not_charged(
    core_engine: AsyncEngine, databases: WorkerDatabases, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    intent = await _intent(core, account_id, customer.id)

    confirming = await _confirm_during(
        core,
        core_engine,
        databases,
        account_id,
        intent.id,
        method_id,
        lambda: core.methods.detach(account_id, method_id),
    )

    await _assert_refused_as_detached(confirming, core_engine, intent.id, method_id)
    assert await _method_row(core_engine, method_id) == (None, True)
    after = await core.payments.get_payment_intent(account_id, intent.id)
    assert after.status is Status.REQUIRES_PAYMENT_METHOD


async def test_a_card_whose_customer_is_deleted_while_the_confirmation_waits_is_not_charged(
    core_engine: AsyncEngine, databases: WorkerDatabases, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    intent = await _intent(core, account_id, customer.id)

    confirming = await _confirm_during(
        core,
        core_engine,
        databases,
        account_id,
        intent.id,
        method_id,
        lambda: core.customers.delete(account_id, customer.id),
    )

    await _assert_refused_as_detached(confirming, core_engine, intent.id, method_id)
    assert await _method_row(core_engine, method_id) == (None, True)


async def test_a_card_saved_to_a_customer_while_the_confirmation_waits_is_not_charged(
    core_engine: AsyncEngine, databases: WorkerDatabases, account_id: str
) -> None:
    """Read attached to no one, it is spent on the intent in the attempt's transaction; saved
    to a customer meanwhile, it is that customer's, and this intent has none."""
    core = Core(core_engine)
    other = await core.customers.create(account_id, CustomerFields())
    method = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    intent = await _intent(core, account_id, None)

    confirming = await _confirm_during(
        core,
        core_engine,
        databases,
        account_id,
        intent.id,
        method.id,
        lambda: core.methods.attach(account_id, method.id, other.id),
    )

    with pytest.raises(RemitError) as refused:
        await confirming
    assert refused.value.param == "payment_method"
    assert refused.value.message == (
        f"The PaymentMethod {method.id} belongs to the Customer {other.id}. "
        "Include that Customer in the `customer` parameter of the PaymentIntent."
    )
    assert await _charges_of(core_engine, intent.id) == 0
    assert await _method_row(core_engine, method.id) == (other.id, False)


async def test_a_refusal_by_the_card_found_under_its_lock_is_stored_under_the_key(
    core_engine: AsyncEngine, databases: WorkerDatabases, account_id: str
) -> None:
    """The refusal the attempt's transaction makes of a card saved to a customer meanwhile is
    by the card's state, which may change again: stored under the confirmation's key, so a
    retry with the key once the intent is that customer's replays it and charges nothing."""
    core = Core(core_engine)
    other = await core.customers.create(account_id, CustomerFields())
    method = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    intent = await _intent(core, account_id, None)
    confirming = await _confirm_during(
        core,
        core_engine,
        databases,
        account_id,
        intent.id,
        method.id,
        lambda: core.methods.attach(account_id, method.id, other.id),
    )
    with pytest.raises(RemitError) as refused:
        await confirming
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    updated = await core.payments.update_payment_intent(
        _call(account_id, f"update-{intent.id}", "UpdatePaymentIntent"),
        intent.id,
        Updated(at=datetime.now(UTC), changes={"customer_id": other.id}),
        _respond,
    )
    assert isinstance(updated, Done)

    retried = await core.payments.confirm_payment_intent(
        _call(account_id, f"confirm-{intent.id}", "ConfirmPaymentIntent"),
        intent.id,
        ConfirmParams(payment_method_id=method.id, return_url=_RETURN_URL),
        _respond,
    )

    assert isinstance(retried, Replay)
    assert retried.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert status_pb2.Status.FromString(retried.body).message == refused.value.message
    assert await _charges_of(core_engine, intent.id) == 0


async def test_a_card_saved_and_detached_while_the_confirmation_waits_is_not_charged(
    core_engine: AsyncEngine, databases: WorkerDatabases, account_id: str
) -> None:
    """Attached to no one when read, and to no one again when the attempt spends it: but
    detached, which no payment may use."""
    core = Core(core_engine)
    other = await core.customers.create(account_id, CustomerFields())
    method = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    intent = await _intent(core, account_id, None)

    async def save_and_detach() -> None:
        await core.methods.attach(account_id, method.id, other.id)
        await core.methods.detach(account_id, method.id)

    confirming = await _confirm_during(
        core, core_engine, databases, account_id, intent.id, method.id, save_and_detach
    )

    await _assert_refused_as_detached(confirming, core_engine, intent.id, method.id)


class PausingMethods(StoredPaymentMethods):
    """The card source, pausing once it has read the card until `go_on` is set."""

    def __init__(self, service: PaymentMethodsService) -> None:
        super().__init__(service)
        self.read = asyncio.Event()
        self.go_on = asyncio.Event()

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        card = await super().chargeable_card(account_id, payment_method_id)
        self.read.set()
        await self.go_on.wait()
        return card


async def test_a_card_detached_while_a_create_and_confirm_is_on_its_way_is_not_charged(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    pausing = PausingMethods(core.methods)
    payments = _payments(core_engine, pausing)

    paying = asyncio.ensure_future(
        payments.create_payment_intent(
            _call(account_id, "create-and-confirm", "CreatePaymentIntent"),
            NewPaymentIntent(amount_minor=1000, currency="usd", customer_id=customer.id),
            _respond,
            confirm=ConfirmParams(payment_method_id=method_id, return_url=_RETURN_URL),
        )
    )
    await asyncio.wait_for(pausing.read.wait(), 10)
    await core.methods.detach(account_id, method_id)
    pausing.go_on.set()

    with pytest.raises(RemitError) as refused:
        await paying
    assert refused.value.code == "payment_method_unexpected_state"
    listed, _ = await payments.list_payment_intents(account_id, limit=10)
    assert listed == []


class PausingAttempt:
    """Pauses the attempt's transaction once it has checked its card (the check sent, so the
    card's row is locked), until `go_on` is set."""

    def __init__(self) -> None:
        self.checked = asyncio.Event()
        self.go_on = asyncio.Event()

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        return None

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        return None

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        if after.status is Status.PROCESSING and not self.checked.is_set():
            await send_held(driver(db))
            self.checked.set()
            await self.go_on.wait()


def _payments(
    engine: AsyncEngine,
    source: StoredPaymentMethods,
    *more_hooks: PaymentHooks,
    radar: bool = True,
) -> PaymentsService:
    """The payments service as `Core` wires it, with `source` and `more_hooks`; without Radar
    given `radar` false."""
    return PaymentsService(
        engine,
        FakeNetwork(),
        source,
        present=payment_intent_message,
        hooks=HookChain([payment_hooks(), *more_hooks]),
        radar=Radar(challenge_base_url="http://remit.test") if radar else None,
    )


async def _change_during_attempt(
    engine: AsyncEngine,
    payments: PaymentsService,
    pausing: PausingAttempt,
    account_id: str,
    intent_id: str,
    method_id: str,
    change: Callable[[], Awaitable[object]],
) -> PaymentIntent:
    """Confirm `intent_id` with `method_id`, and make `change` while the attempt holds the
    card's row: the change must wait for the attempt's commit. The confirmation's result."""
    confirming = asyncio.ensure_future(
        payments.confirm_payment_intent(
            _call(account_id, f"confirm-{intent_id}", "ConfirmPaymentIntent"),
            intent_id,
            ConfirmParams(payment_method_id=method_id, return_url=_RETURN_URL),
            _respond,
        )
    )
    await asyncio.wait_for(pausing.checked.wait(), 10)
    changing = asyncio.ensure_future(change())
    try:
        await until_a_session_waits_on_a_lock(engine, contender=changing)
    finally:
        pausing.go_on.set()
        confirmed = await confirming
        await asyncio.wait_for(changing, 10)
    assert isinstance(confirmed, Done)
    return confirmed.value


async def test_a_detach_waits_for_the_attempt_that_checked_the_card(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """The other order: the attempt checked the card first, so the payment goes on with the
    card as it was, and the detach comes after it."""
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    intent = await _intent(core, account_id, customer.id)
    pausing = PausingAttempt()

    paid = await _change_during_attempt(
        core_engine,
        _payments(core_engine, StoredPaymentMethods(core.methods), pausing),
        pausing,
        account_id,
        intent.id,
        method_id,
        lambda: core.methods.detach(account_id, method_id),
    )

    assert paid.status is Status.SUCCEEDED
    assert await _charges_of(core_engine, intent.id) == 1
    assert await _method_row(core_engine, method_id) == (None, True)


async def test_a_customer_s_deletion_waits_for_the_attempt_that_checked_its_card(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    intent = await _intent(core, account_id, customer.id)
    pausing = PausingAttempt()

    paid = await _change_during_attempt(
        core_engine,
        _payments(core_engine, StoredPaymentMethods(core.methods), pausing),
        pausing,
        account_id,
        intent.id,
        method_id,
        lambda: core.customers.delete(account_id, customer.id),
    )

    assert paid.status is Status.SUCCEEDED
    assert await _method_row(core_engine, method_id) == (None, True)


async def test_payments_with_the_same_saved_card_do_not_wait_for_each_other(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """The attempt's check holds the card's row against detaching, not against paying: it
    takes a share lock. (Radar's counters of the card, left out here, are a matter of their
    own.)"""
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    held = await _intent(core, account_id, customer.id)
    other = await _intent(core, account_id, customer.id)
    pausing = PausingAttempt()
    payments = _payments(core_engine, StoredPaymentMethods(core.methods), pausing, radar=False)

    confirming = asyncio.ensure_future(
        payments.confirm_payment_intent(
            _call(account_id, "held", "ConfirmPaymentIntent"),
            held.id,
            ConfirmParams(payment_method_id=method_id, return_url=_RETURN_URL),
            _respond,
        )
    )
    try:
        await asyncio.wait_for(pausing.checked.wait(), 10)
        paid = await asyncio.wait_for(_confirm(payments, account_id, other.id, method_id), 10)
        assert paid.status is Status.SUCCEEDED
    finally:
        pausing.go_on.set()
    assert isinstance(await confirming, Done)
