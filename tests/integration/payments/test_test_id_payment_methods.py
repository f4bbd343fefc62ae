"""A Stripe test id (pm_card_visa) named by a payment, or by the create or update of an intent,
becomes a payment method of the account in the transaction of that request, and the intent
names it: a request that is refused, or that replays the answer of its key, leaves none behind.
Real payment methods, with the vault's answer for test ids cached as the core caches it."""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.customers.domain import CustomerFields
from remit.payment_methods.domain import VaultCard
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.tables import payment_methods
from remit.payment_methods.test_card_cache import TestCardCache
from remit.payments.domain import NewPaymentIntent, PaymentIntent, Status, Updated
from remit.payments.grpc import payment_intent_message
from remit.payments.methods import StoredPaymentMethods
from remit.payments.service import ConfirmParams, Done, KeyedCall, PaymentsService, Replay
from remit.payments.tables import idempotency_keys, payment_intents
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from tests.integration.payments.test_payments_service import pay
from tests.integration.payments.test_setup_future_usage import Core, TestCardVault
from tests.integration.payments.test_statement_budget import CONFIRMED_PAYMENT_STATEMENTS
from tests.support.fake_network import FakeNetwork
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio

_VISA = ConfirmParams(payment_method_id="pm_card_visa")


def _payments(engine: AsyncEngine, vault: TestCardVault | None = None) -> PaymentsService:
    """The payments service with the core's hooks and real payment methods."""
    methods = PaymentMethodsService(engine, TestCardCache(vault or TestCardVault()))
    return PaymentsService(
        engine,
        FakeNetwork(),
        StoredPaymentMethods(methods),
        present=payment_intent_message,
        hooks=payment_hooks(),
        radar=Radar(challenge_base_url="http://remit.test"),
    )


def _respond(intent: PaymentIntent) -> bytes:
    return intent.id.encode()


def _call(account_id: str, key: str, endpoint: str = "CreatePaymentIntent") -> KeyedCall:
    return KeyedCall(account_id, key, endpoint, key.encode())


async def _payment_methods(engine: AsyncEngine, account_id: str) -> list[tuple[str, str | None]]:
    """(id, test id) of every payment method of the account, as stored."""
    async with engine.connect() as db:
        rows = await db.execute(
            select(payment_methods.c.id, payment_methods.c.test_id).where(
                payment_methods.c.account_id == account_id
            )
        )
    return [(row.id, row.test_id) for row in rows]


async def _key_count(engine: AsyncEngine, call: KeyedCall) -> int:
    async with engine.connect() as db:
        query = select(func.count()).where(
            idempotency_keys.c.account_id == call.account_id, idempotency_keys.c.key == call.key
        )
        return int((await db.execute(query)).scalar_one())


async def _intent_count(engine: AsyncEngine, account_id: str) -> int:
    async with engine.connect() as db:
        query = select(func.count()).where(payment_intents.c.account_id == account_id)
        return int((await db.execute(query)).scalar_one())


async def _created(payments: PaymentsService, account_id: str, key: str) -> PaymentIntent:
    """An intent waiting for a payment method."""
    result = await payments.create_payment_intent(
        _call(account_id, key), NewPaymentIntent(amount_minor=1000, currency="usd"), _respond
    )
    assert isinstance(result, Done)
    return result.value


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    created = await AccountsService(core_engine).create_account(radar_enabled=False)
    return created.account.id


async def test_a_create_refused_for_a_missing_customer_makes_no_payment_method(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = _payments(core_engine)
    with pytest.raises(RemitError) as refused:
        await payments.create_payment_intent(
            _call(account_id, "no-such-customer"),
            NewPaymentIntent(amount_minor=1000, currency="usd", customer_id="cus_missing"),
            _respond,
            confirm=_VISA,
        )
    assert (refused.value.kind, refused.value.param) == (ErrorKind.NOT_FOUND, "customer")
    assert await _payment_methods(core_engine, account_id) == []
    assert await _intent_count(core_engine, account_id) == 0


class VaultThatStallsOnce(TestCardVault):
    """The first resolution stalls past its request's lease: `meanwhile` runs then."""

    def __init__(self) -> None:
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            await meanwhile()
        return await super().resolve_test_card(account_id, test_id)


async def _end_lease(engine: AsyncEngine, key: str) -> None:
    async with engine.begin() as db:
        await db.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == key)
            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_a_keyed_create_and_its_replays_make_one_payment_method(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """The request that stalled replays the answer of the retry that finished its key: only
    the retry's payment, and its payment method, are made; a later replay makes none."""
    vault = VaultThatStallsOnce()
    payments = _payments(core_engine, vault)
    call = _call(account_id, "stalls")

    async def create() -> Done[PaymentIntent] | Replay:
        new = NewPaymentIntent(amount_minor=1000, currency="usd")
        return await payments.create_payment_intent(call, new, _respond, confirm=_VISA)

    retried: list[Done[PaymentIntent] | Replay] = []

    async def retry_after_the_lease() -> None:
        await _end_lease(core_engine, call.key)
        retried.append(await create())

    vault.meanwhile = retry_after_the_lease
    stalled = await create()
    [finished] = retried
    assert isinstance(finished, Done)
    paid = finished.value
    assert paid.status is Status.SUCCEEDED
    assert isinstance(stalled, Replay)
    assert stalled.body == paid.id.encode()
    assert isinstance(await create(), Replay)
    assert await _payment_methods(core_engine, account_id) == [
        (paid.payment_method_id, "pm_card_visa")
    ]
    assert await _intent_count(core_engine, account_id) == 1


async def test_an_update_naming_a_test_id_stores_its_new_payment_method_for_the_payment(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """An update naming a test id makes its payment method in the update's transaction and the
    intent names that one, not the test id: a refused update makes none, a replay no second,
    and the confirmation pays with it without making another."""
    payments = _payments(core_engine)
    intent = await _created(payments, account_id, "create")
    with pytest.raises(RemitError) as refused:
        await payments.update_payment_intent(
            _call(account_id, "refused", "UpdatePaymentIntent"),
            intent.id,
            Updated(
                at=intent.created_at,
                payment_method_id="pm_card_visa",
                changes={"customer_id": "cus_missing"},
            ),
            _respond,
        )
    assert (refused.value.kind, refused.value.param) == (ErrorKind.NOT_FOUND, "customer")
    assert await _payment_methods(core_engine, account_id) == []

    update_call = _call(account_id, "updated", "UpdatePaymentIntent")
    change = Updated(at=intent.created_at, payment_method_id="pm_card_visa")
    updated = await payments.update_payment_intent(update_call, intent.id, change, _respond)
    assert isinstance(updated, Done)
    method_id = updated.value.payment_method_id
    assert updated.value.status is Status.REQUIRES_CONFIRMATION
    assert await _payment_methods(core_engine, account_id) == [(method_id, "pm_card_visa")]
    assert isinstance(
        await payments.update_payment_intent(update_call, intent.id, change, _respond), Replay
    )
    assert await payments.get_payment_intent(account_id, intent.id) == updated.value
    confirmed = await payments.confirm_payment_intent(
        _call(account_id, "confirm", "ConfirmPaymentIntent"), intent.id, ConfirmParams(), _respond
    )
    assert isinstance(confirmed, Done)
    assert confirmed.value.status is Status.SUCCEEDED
    assert confirmed.value.payment_method_id == method_id
    assert await _payment_methods(core_engine, account_id) == [(method_id, "pm_card_visa")]


async def test_an_update_naming_an_unknown_payment_method_leaves_the_intent_as_it_was(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = _payments(core_engine)
    intent = await _created(payments, account_id, "create")
    named = await payments.update_payment_intent(
        _call(account_id, "named", "UpdatePaymentIntent"),
        intent.id,
        Updated(at=intent.created_at, payment_method_id="pm_card_visa"),
        _respond,
    )
    assert isinstance(named, Done)
    with pytest.raises(RemitError) as refused:
        await payments.update_payment_intent(
            _call(account_id, "unknown", "UpdatePaymentIntent"),
            intent.id,
            Updated(at=intent.created_at, payment_method_id="pm_doesnotexist", amount_minor=5),
            _respond,
        )
    assert (refused.value.kind, refused.value.code, refused.value.param) == (
        ErrorKind.NOT_FOUND,
        "resource_missing",
        "payment_method",
    )
    assert refused.value.message == "No such PaymentMethod: 'pm_doesnotexist'"
    assert await payments.get_payment_intent(account_id, intent.id) == named.value
    assert await _payment_methods(core_engine, account_id) == [
        (named.value.payment_method_id, "pm_card_visa")
    ]


async def test_a_create_naming_an_unknown_payment_method_is_refused_and_stores_nothing(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """Refused before anything is written, as a validation error: not even the key, so the same
    key may be used again once the request is corrected."""
    payments = _payments(core_engine)
    call = _call(account_id, "unknown")
    with pytest.raises(RemitError) as refused:
        await payments.create_payment_intent(
            call,
            NewPaymentIntent(
                amount_minor=1000, currency="usd", payment_method_id="pm_doesnotexist"
            ),
            _respond,
        )
    assert (refused.value.kind, refused.value.code, refused.value.param) == (
        ErrorKind.NOT_FOUND,
        "resource_missing",
        "payment_method",
    )
    assert refused.value.message == "No such PaymentMethod: 'pm_doesnotexist'"
    assert await _intent_count(core_engine, account_id) == 0
    assert await _key_count(core_engine, call) == 0


async def test_a_create_naming_a_test_id_stores_its_new_payment_method_for_the_payment(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """Created without confirmation, the intent names the payment method made of the test
    id's card, written with it: once for its key, however often it is replayed or reused with
    other parameters, and the confirmation pays with it without making another."""
    payments = _payments(core_engine)
    call = _call(account_id, "create")
    new = NewPaymentIntent(amount_minor=1000, currency="usd", payment_method_id="pm_card_visa")
    created = await payments.create_payment_intent(call, new, _respond)
    assert isinstance(created, Done)
    method_id = created.value.payment_method_id
    assert method_id is not None
    assert method_id.startswith("pm_")
    assert method_id != "pm_card_visa"
    assert created.value.status is Status.REQUIRES_CONFIRMATION
    assert await _payment_methods(core_engine, account_id) == [(method_id, "pm_card_visa")]

    replayed = await payments.create_payment_intent(call, new, _respond)
    assert isinstance(replayed, Replay)
    assert replayed.body == created.value.id.encode()
    with pytest.raises(RemitError) as mismatch:
        await payments.create_payment_intent(
            replace(call, request_body=b"other"), replace(new, amount_minor=2000), _respond
        )
    assert mismatch.value.error_type == "idempotency_error"
    assert await _payment_methods(core_engine, account_id) == [(method_id, "pm_card_visa")]
    assert await _intent_count(core_engine, account_id) == 1

    confirmed = await payments.confirm_payment_intent(
        _call(account_id, "confirm", "ConfirmPaymentIntent"),
        created.value.id,
        ConfirmParams(),
        _respond,
    )
    assert isinstance(confirmed, Done)
    assert confirmed.value.status is Status.SUCCEEDED
    assert confirmed.value.payment_method_id == method_id
    assert await _payment_methods(core_engine, account_id) == [(method_id, "pm_card_visa")]


async def test_a_create_without_confirmation_refused_for_a_missing_customer_makes_none(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = _payments(core_engine)
    new = NewPaymentIntent(amount_minor=1000, currency="usd", payment_method_id="pm_card_visa")
    with pytest.raises(RemitError) as refused:
        await payments.create_payment_intent(
            _call(account_id, "no-such-customer"), replace(new, customer_id="cus_missing"), _respond
        )
    assert (refused.value.kind, refused.value.param) == (ErrorKind.NOT_FOUND, "customer")
    assert await _payment_methods(core_engine, account_id) == []
    assert await _intent_count(core_engine, account_id) == 0
    created = await payments.create_payment_intent(_call(account_id, "anonymous"), new, _respond)
    assert isinstance(created, Done)
    assert await _payment_methods(core_engine, account_id) == [
        (created.value.payment_method_id, "pm_card_visa")
    ]


async def test_a_card_saved_to_a_customer_is_refused_to_intents_of_anyone_else(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """As on confirmation: refused on create and update too, naming payment_method, with
    nothing written; the intent of the card's own customer names it."""
    core = Core(core_engine)
    owner = await core.customers.create(
        account_id, CustomerFields(), payment_method_id="pm_card_visa"
    )
    other = await core.customers.create(account_id, CustomerFields())
    [saved] = await core.saved(account_id, owner.id)
    new = NewPaymentIntent(amount_minor=1000, currency="usd", payment_method_id=saved)

    for customer_id, says in ((other.id, "another Customer"), (None, f"Customer {owner.id}")):
        with pytest.raises(RemitError) as refused:
            await core.payments.create_payment_intent(
                _call(account_id, f"create-for-{customer_id}"),
                replace(new, customer_id=customer_id),
                _respond,
            )
        # A refusal by the card's state (its customer may change), stored under the key.
        assert (refused.value.kind, refused.value.param) == (
            ErrorKind.FAILED_PRECONDITION,
            "payment_method",
        )
        assert says in refused.value.message
    assert await _intent_count(core_engine, account_id) == 0

    intent = await _created(core.payments, account_id, "plain")
    with pytest.raises(RemitError) as refused:
        await core.payments.update_payment_intent(
            _call(account_id, "update", "UpdatePaymentIntent"),
            intent.id,
            Updated(at=intent.created_at, payment_method_id=saved),
            _respond,
        )
    assert refused.value.param == "payment_method"
    assert await core.payments.get_payment_intent(account_id, intent.id) == intent

    # Naming the owner in the same update makes it the owner's intent.
    updated = await core.payments.update_payment_intent(
        _call(account_id, "update-with-owner", "UpdatePaymentIntent"),
        intent.id,
        Updated(at=intent.created_at, payment_method_id=saved, changes={"customer_id": owner.id}),
        _respond,
    )
    assert isinstance(updated, Done)
    assert (updated.value.customer_id, updated.value.payment_method_id) == (owner.id, saved)
    owners_call, owners_new = _call(account_id, "owners"), replace(new, customer_id=owner.id)
    owners = await core.payments.create_payment_intent(owners_call, owners_new, _respond)
    assert isinstance(owners, Done)
    assert owners.value.payment_method_id == saved
    # The key's answer stands: a retry replays it even once the card could not be named.
    await core.methods.detach(account_id, saved)
    replayed = await core.payments.create_payment_intent(owners_call, owners_new, _respond)
    assert isinstance(replayed, Replay)
    assert replayed.body == owners.value.id.encode()
    assert [method_id for method_id, _ in await _payment_methods(core_engine, account_id)] == [
        saved
    ]


async def test_a_confirmation_refused_after_naming_a_test_id_makes_no_payment_method(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = _payments(core_engine)
    intent = await _created(payments, account_id, "create")
    canceled = await payments.cancel_payment_intent(
        _call(account_id, "cancel", "CancelPaymentIntent"), intent.id, None, _respond
    )
    assert isinstance(canceled, Done)
    with pytest.raises(RemitError) as refused:
        await payments.confirm_payment_intent(
            _call(account_id, "confirm", "ConfirmPaymentIntent"), intent.id, _VISA, _respond
        )
    assert refused.value.code == "payment_intent_unexpected_state"
    assert await _payment_methods(core_engine, account_id) == []


async def test_a_payment_with_a_test_id_writes_its_payment_method_with_the_attempt(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """The payment method costs the payment one statement and no round trip of its own: it is
    written with the attempt's intent and charge (the second payment: the first fills the
    cache of the vault's answer)."""
    payments = _payments(core_engine)
    await pay(payments, account_id, "warm-up", pm="pm_card_visa")
    with statements_sent(core_engine) as statements:
        paid = await pay(payments, account_id, "counted", pm="pm_card_visa")
    assert paid.status is Status.SUCCEEDED
    assert len(statements) == CONFIRMED_PAYMENT_STATEMENTS + 1, statements
    [made] = [
        i for i, sql in enumerate(statements) if sql.startswith('INSERT INTO "payment_methods"')
    ]
    assert statements[made + 1].startswith('INSERT INTO "payment_intents"'), statements
