"""setup_future_usage: the payment method of a payment that went through (succeeded, or
authorized for a later capture) is attached to the intent's customer in the transaction of the
outcome, with its payment_method.attached event. Declines, challenges not passed and
cancellations attach nothing. Real payment methods and customers, Stripe test ids included."""

from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.customers.domain import CustomerFields
from remit.customers.events import CustomerEvents
from remit.customers.service import CustomersService
from remit.payment_methods.domain import CardSummary, VaultCard
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.methods import StoredPaymentMethods
from remit.payments.network import AuthorizationOutcome, CardNetwork
from remit.payments.service import ConfirmParams, Done, KeyedCall, PaymentsService
from remit.payments.wiring import payment_hooks
from remit.radar.authentication import ThreeDSecureService
from remit.radar.gate import Radar
from remit.webhooks.tables import events
from tests.support.card_vaults import TestCardsKeepTheirDetails
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

# The in-process network declines by vault token.
_VAULT_TOKENS = {"pm_card_visa": "visa", "pm_card_visa_chargeDeclined": "declined"}


class TestCardVault(TestCardsKeepTheirDetails):
    """Resolves Stripe test ids to cards (no vault process needed here), by the vault tokens
    of `vault_tokens` (the network behaves by vault token)."""

    vault_tokens: Mapping[str, str] = _VAULT_TOKENS

    def forget_card(self, account_id: str, vault_token: str) -> None:
        return None

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        return VaultCard(
            self.vault_tokens[test_id],
            CardSummary("visa", "4242", 12, 2034, f"fp_{test_id}", "credit", "US"),
        )

    async def card_details(self, account_id: str, vault_token: str) -> VaultCard:
        raise AssertionError("not used")

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        raise AssertionError("not used")


class Core:
    """The payments side as the core wires it: the core's hooks, real payment methods and
    customers, Radar and 3-D Secure."""

    def __init__(
        self,
        engine: AsyncEngine,
        network: CardNetwork | None = None,
        vault: TestCardVault | None = None,
    ) -> None:
        object_events = CustomerEvents()
        self.methods = PaymentMethodsService(engine, vault or TestCardVault(), hooks=object_events)
        self.customers = CustomersService(engine, self.methods, hooks=object_events)
        source = StoredPaymentMethods(self.methods)
        gate = Radar(challenge_base_url="http://remit.test")
        hooks = payment_hooks()
        self.payments = PaymentsService(
            engine,
            network or FakeNetwork(),
            source,
            present=payment_intent_message,
            hooks=hooks,
            radar=gate,
        )
        self.three_d_secure = ThreeDSecureService(engine, self.payments, source, gate, hooks)

    async def saved(self, account_id: str, customer_id: str) -> list[str]:
        listed, _ = await self.methods.list(account_id, limit=100, customer_id=customer_id)
        return [method.id for method in listed]


def _respond(intent: PaymentIntent) -> bytes:
    return intent.status.value.encode()


def _call(account_id: str, key: str, endpoint: str = "CreatePaymentIntent") -> KeyedCall:
    return KeyedCall(account_id, key, endpoint, key.encode())


async def _pay(
    core: Core,
    account_id: str,
    key: str,
    *,
    customer_id: str | None,
    pm: str = "pm_card_visa",
    capture: CaptureMethod = CaptureMethod.AUTOMATIC,
    setup_future_usage: str | None = "off_session",
    **confirm: Any,
) -> PaymentIntent:
    result = await core.payments.create_payment_intent(
        _call(account_id, key),
        NewPaymentIntent(
            amount_minor=1000,
            currency="usd",
            capture_method=capture,
            customer_id=customer_id,
            setup_future_usage=setup_future_usage,
            return_url="https://shop.example/return",
        ),
        _respond,
        confirm=ConfirmParams(payment_method_id=pm, **confirm),
    )
    assert isinstance(result, Done)
    return result.value


async def _attached_events(engine: AsyncEngine, account_id: str) -> list[tuple[str, str]]:
    """(payment method, customer) of each payment_method.attached event recorded."""
    async with engine.connect() as db:
        rows = await db.execute(
            select(events.c.data_object)
            .where(events.c.account_id == account_id, events.c.type == "payment_method.attached")
            .order_by(events.c.created_at, events.c.seq)
        )
    return [(row.data_object["id"], row.data_object["customer"]) for row in rows]


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


async def test_a_payment_that_succeeds_saves_its_card_to_the_customer_for_the_next_payment(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    # Without a customer there is no one to save the card to; the payment is unaffected.
    anonymous = await _pay(core, account_id, "anonymous", customer_id=None)
    assert anonymous.status is Status.SUCCEEDED

    paid = await _pay(core, account_id, "first", customer_id=customer.id)
    assert paid.status is Status.SUCCEEDED
    assert paid.setup_future_usage == "off_session"
    # The test id was made into a payment method of the account: that one is saved.
    assert paid.payment_method_id is not None
    assert paid.payment_method_id.startswith("pm_")
    assert paid.payment_method_id != "pm_card_visa"
    assert await core.saved(account_id, customer.id) == [paid.payment_method_id]
    assert await _attached_events(core_engine, account_id) == [
        (paid.payment_method_id, customer.id)
    ]

    again = await _pay(
        core,
        account_id,
        "second",
        customer_id=customer.id,
        pm=paid.payment_method_id,
        setup_future_usage=None,
        off_session=True,
    )
    assert again.status is Status.SUCCEEDED
    assert again.payment_method_id == paid.payment_method_id
    assert await core.saved(account_id, customer.id) == [paid.payment_method_id]
    assert len(await _attached_events(core_engine, account_id)) == 1


async def test_an_authorization_for_manual_capture_saves_the_card_and_the_capture_adds_nothing(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    authorized = await _pay(
        core, account_id, "auth", customer_id=customer.id, capture=CaptureMethod.MANUAL
    )
    assert authorized.status is Status.REQUIRES_CAPTURE
    assert await core.saved(account_id, customer.id) == [authorized.payment_method_id]
    captured = await core.payments.capture_payment_intent(
        _call(account_id, "capture", "CapturePaymentIntent"), authorized.id, None, _respond
    )
    assert isinstance(captured, Done)
    assert captured.value.status is Status.SUCCEEDED
    assert await _attached_events(core_engine, account_id) == [
        (authorized.payment_method_id, customer.id)
    ]


async def test_a_declined_card_is_not_saved_and_the_card_that_then_pays_is(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    with pytest.raises(RemitError) as declined:
        await _pay(
            core, account_id, "declined", customer_id=customer.id, pm="pm_card_visa_chargeDeclined"
        )
    assert declined.value.code == "card_declined"
    assert await core.saved(account_id, customer.id) == []

    [declined_intent], _ = await core.payments.list_payment_intents(
        account_id, limit=10, customer_id=customer.id
    )
    # The retry names setup_future_usage on the confirmation only.
    retried = await core.payments.confirm_payment_intent(
        _call(account_id, "retry", "ConfirmPaymentIntent"),
        declined_intent.id,
        ConfirmParams(payment_method_id="pm_card_visa", setup_future_usage="on_session"),
        _respond,
    )
    assert isinstance(retried, Done)
    assert retried.value.status is Status.SUCCEEDED
    assert retried.value.setup_future_usage == "on_session"
    assert await core.saved(account_id, customer.id) == [retried.value.payment_method_id]


async def test_3ds_saves_the_card_only_once_the_challenge_is_passed(
    core_engine: AsyncEngine, account_id: str
) -> None:
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())

    async def challenged(key: str) -> PaymentIntent:
        return await _pay(
            core, account_id, key, customer_id=customer.id, request_three_d_secure="any"
        )

    def challenge_of(intent: PaymentIntent) -> str:
        assert intent.status is Status.REQUIRES_ACTION
        assert intent.next_action is not None
        return str(intent.next_action["redirect_to_url"]["url"]).rsplit("/", 1)[1]  # type: ignore[index]

    def built(challenge: object, intent: PaymentIntent) -> bytes:
        return intent.status.value.encode()

    failed = await challenged("fails")
    await core.three_d_secure.complete(account_id, challenge_of(failed), passed=False, build=built)
    abandoned = await challenged("abandoned")
    challenge_of(abandoned)
    canceled = await core.payments.cancel_payment_intent(
        _call(account_id, "cancel", "CancelPaymentIntent"), abandoned.id, None, _respond
    )
    assert isinstance(canceled, Done)
    passing = await challenged("passes")
    passing_challenge = challenge_of(passing)
    assert await core.saved(account_id, customer.id) == []

    passed = await core.three_d_secure.complete(
        account_id, passing_challenge, passed=True, build=built
    )
    assert isinstance(passed, Done)
    assert passed.value[1].status is Status.SUCCEEDED
    assert await core.saved(account_id, customer.id) == [passing.payment_method_id]


async def test_a_confirmation_that_clears_setup_future_usage_saves_nothing(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """`setup_future_usage=` on the confirmation clears the intent's, as on an update; set and
    cleared at once is refused, and the intent stays as it was."""
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    created = await core.payments.create_payment_intent(
        _call(account_id, "create"),
        NewPaymentIntent(
            amount_minor=1000,
            currency="usd",
            customer_id=customer.id,
            setup_future_usage="on_session",
        ),
        _respond,
    )
    assert isinstance(created, Done)
    intent = created.value
    with pytest.raises(RemitError) as both:
        await core.payments.confirm_payment_intent(
            _call(account_id, "both", "ConfirmPaymentIntent"),
            intent.id,
            ConfirmParams(
                payment_method_id="pm_card_visa",
                setup_future_usage="off_session",
                clear_setup_future_usage=True,
            ),
            _respond,
        )
    assert (both.value.kind, both.value.param) == (ErrorKind.INVALID_ARGUMENT, "setup_future_usage")
    assert await core.payments.get_payment_intent(account_id, intent.id) == intent

    cleared = await core.payments.confirm_payment_intent(
        _call(account_id, "cleared", "ConfirmPaymentIntent"),
        intent.id,
        ConfirmParams(payment_method_id="pm_card_visa", clear_setup_future_usage=True),
        _respond,
    )
    assert isinstance(cleared, Done)
    assert (cleared.value.status, cleared.value.setup_future_usage) == (Status.SUCCEEDED, None)
    assert await core.saved(account_id, customer.id) == []
    assert await _attached_events(core_engine, account_id) == []


class SavedElsewhereMeanwhile(FakeNetwork):
    """While the network answers, the card is attached to another customer (the confirmation
    checked it was free)."""

    core: Core
    account_id: str
    other_customer_id: str

    async def authorize(self, **kwargs: Any) -> AuthorizationOutcome:
        [method_id] = [
            m.id
            for m in (await self.core.methods.list(self.account_id, limit=100))[0]
            if m.customer_id is None
        ]
        await self.core.methods.attach(self.account_id, method_id, self.other_customer_id)
        return await super().authorize(**kwargs)


async def test_a_card_saved_elsewhere_while_at_the_network_stays_there_and_the_payment_stands(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = SavedElsewhereMeanwhile()
    core = Core(core_engine, network)
    customer = await core.customers.create(account_id, CustomerFields())
    network.core, network.account_id = core, account_id
    network.other_customer_id = (await core.customers.create(account_id, CustomerFields())).id
    paid = await _pay(core, account_id, "raced", customer_id=customer.id)
    assert paid.status is Status.SUCCEEDED
    assert await core.saved(account_id, customer.id) == []
    assert await core.saved(account_id, network.other_customer_id) == [paid.payment_method_id]
