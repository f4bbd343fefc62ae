"""A payment method detached, or saved to a customer, while the cardholder answers a 3-D
Secure challenge for a payment with it: nothing has been authorized yet, and the pass would
send the authenticated authorization. The pass checks the card again, in its transaction and
under the card's row lock, as a confirmation does (test_method_changed_during_confirm.py): a
card that can no longer pay the intent is not charged, and the intent goes back to
`requires_payment_method` with `last_payment_error` naming why, as after a failed
authentication, instead of waiting in `requires_action` for ever."""

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.customers.domain import CustomerFields
from remit.payment_methods.domain import NewPaymentMethod
from remit.payments.charges import Charge, ChargeStatus, Refund
from remit.payments.domain import NewPaymentIntent, PaymentIntent, Status
from remit.payments.methods import StoredPaymentMethods
from remit.payments.never_authenticated import AUTHENTICATED_NOT_CONFIRMED
from remit.payments.ports import HookChain
from remit.payments.service import ConfirmParams, Done, KeyedCall, Replay
from remit.payments.wiring import payment_hooks
from remit.radar.authentication import ThreeDSecureService
from remit.radar.challenges import ChallengeStatus, ThreeDSChallenge
from remit.radar.gate import Radar
from remit.webhooks.tables import events
from tests.integration.payments.test_setup_future_usage import Core
from tests.support.fake_network import FakeNetwork
from tests.support.locks import until_a_session_waits_on_a_lock

pytestmark = pytest.mark.anyio

_RETURN_URL = "https://shop.example/return"


def _respond(intent: PaymentIntent) -> bytes:
    return intent.status.value.encode()


def _built(challenge: ThreeDSChallenge, intent: PaymentIntent) -> bytes:
    return intent.status.value.encode()


async def _challenged(
    core: Core,
    account_id: str,
    method_id: str,
    customer_id: str,
    *,
    setup_future_usage: str | None = None,
) -> tuple[PaymentIntent, str]:
    """An intent of `customer_id` confirmed with `method_id`, waiting for its challenge; and
    the challenge's id."""
    created = await core.payments.create_payment_intent(
        KeyedCall(account_id, f"pay-{method_id}", "CreatePaymentIntent", method_id.encode()),
        NewPaymentIntent(
            amount_minor=1000,
            currency="usd",
            customer_id=customer_id,
            setup_future_usage=setup_future_usage,
        ),
        _respond,
        confirm=ConfirmParams(
            payment_method_id=method_id, return_url=_RETURN_URL, request_three_d_secure="any"
        ),
    )
    assert isinstance(created, Done)
    intent = created.value
    assert intent.status is Status.REQUIRES_ACTION
    assert intent.next_action is not None
    redirect = intent.next_action["redirect_to_url"]
    assert isinstance(redirect, Mapping)
    return intent, str(redirect["url"]).rsplit("/", 1)[1]


async def _saved_card(core: Core, account_id: str, customer_id: str) -> str:
    method = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    await core.methods.attach(account_id, method.id, customer_id)
    return method.id


async def _pass(
    three_d_secure: ThreeDSecureService, account_id: str, challenge_id: str
) -> tuple[ThreeDSChallenge, PaymentIntent]:
    passed = await three_d_secure.complete(account_id, challenge_id, passed=True, build=_built)
    assert isinstance(passed, Done)
    return passed.value


async def _event_types(engine: AsyncEngine, account_id: str) -> list[str]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(events.c.type)
            .where(events.c.account_id == account_id)
            .order_by(events.c.created_at, events.c.seq)
        )
    return [row.type for row in rows]


async def _assert_not_charged(
    core: Core,
    network: FakeNetwork,
    engine: AsyncEngine,
    account_id: str,
    answered: tuple[ThreeDSChallenge, PaymentIntent],
    intent: PaymentIntent,
    method_id: str,
    message: str,
    code: str = "payment_method_unexpected_state",
) -> None:
    """The pass left the intent waiting for a new payment method, with the card's refusal (as
    a confirmation with the card would get it now) as its last_payment_error, and its attempt
    failed as never sent to the network."""
    challenge, after = answered
    # The cardholder did authenticate: the challenge says so, the payment is what failed.
    assert challenge.status is ChallengeStatus.SUCCEEDED
    assert after.status is Status.REQUIRES_PAYMENT_METHOD
    assert (after.payment_method_id, after.next_action, after.amount_received_minor) == (
        None,
        None,
        0,
    )
    assert after.last_payment_error == {
        "type": "invalid_request_error",
        "code": code,
        "message": message,
        "payment_method": method_id,
    }
    assert await core.payments.get_payment_intent(account_id, intent.id) == after
    assert intent.latest_charge_id is not None
    charge, _ = await core.payments.get_charge(account_id, intent.latest_charge_id)
    assert (charge.status, charge.failure_code, charge.authorization_id) == (
        ChargeStatus.FAILED,
        AUTHENTICATED_NOT_CONFIRMED,
        None,
    )
    assert charge.failure_message == (
        f"The payment was authenticated but never sent to the network: {message}"
    )
    assert charge.outcome is not None
    assert (charge.outcome["type"], charge.outcome["network_status"]) == (
        "invalid",
        "not_sent_to_network",
    )
    assert network.sent == []
    # Stripe has no charge for a payment that never got past authentication: no charge.failed.
    assert (await _event_types(engine, account_id))[-1] == "payment_intent.payment_failed"
    assert "charge.failed" not in await _event_types(engine, account_id)


def _detached_message(method_id: str) -> str:
    return (
        f"The PaymentMethod {method_id} was previously detached from a Customer and may not "
        "be used again."
    )


async def test_a_card_detached_while_its_challenge_waits_is_not_charged(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = FakeNetwork()
    core = Core(core_engine, network)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    intent, challenge_id = await _challenged(core, account_id, method_id, customer.id)

    await core.methods.detach(account_id, method_id)
    answered = await _pass(core.three_d_secure, account_id, challenge_id)

    await _assert_not_charged(
        core,
        network,
        core_engine,
        account_id,
        answered,
        intent,
        method_id,
        _detached_message(method_id),
    )
    # A second press replays the answer: nothing is authorized then either.
    again = await core.three_d_secure.complete(account_id, challenge_id, passed=True, build=_built)
    assert isinstance(again, Replay)
    assert again.body == b"requires_payment_method"
    assert network.sent == []


async def test_a_card_whose_customer_is_deleted_while_its_challenge_waits_is_not_charged(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = FakeNetwork()
    core = Core(core_engine, network)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    intent, challenge_id = await _challenged(core, account_id, method_id, customer.id)

    await core.customers.delete(account_id, customer.id)
    answered = await _pass(core.three_d_secure, account_id, challenge_id)

    await _assert_not_charged(
        core,
        network,
        core_engine,
        account_id,
        answered,
        intent,
        method_id,
        _detached_message(method_id),
    )


async def test_a_card_saved_to_another_customer_while_its_challenge_waits_is_not_charged(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """A card attached to no customer, paying for its customer to save it
    (`setup_future_usage`), so not spent on the intent: attached to someone else meanwhile,
    it is theirs."""
    network = FakeNetwork()
    core = Core(core_engine, network)
    customer = await core.customers.create(account_id, CustomerFields())
    other = await core.customers.create(account_id, CustomerFields())
    method = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    intent, challenge_id = await _challenged(
        core, account_id, method.id, customer.id, setup_future_usage="off_session"
    )

    await core.methods.attach(account_id, method.id, other.id)
    answered = await _pass(core.three_d_secure, account_id, challenge_id)

    await _assert_not_charged(
        core,
        network,
        core_engine,
        account_id,
        answered,
        intent,
        method.id,
        f"The PaymentMethod {method.id} belongs to another Customer than {customer.id}. "
        "Payment methods attached to other Customers cannot be used with this PaymentIntent.",
        code="parameter_invalid",
    )
    assert await core.saved(account_id, other.id) == [method.id]
    assert await core.saved(account_id, customer.id) == []


class PausingPass:
    """Pauses the pass's transaction once the intent goes on to the network (the card checked
    by then, its row locked), until `go_on` is set."""

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
        if (
            before is not None
            and before.status is Status.REQUIRES_ACTION
            and after.status is Status.PROCESSING
        ):
            self.checked.set()
            await self.go_on.wait()


async def _change_during_pass(
    core: Core,
    engine: AsyncEngine,
    account_id: str,
    challenge_id: str,
    change: Callable[[], Awaitable[object]],
) -> PaymentIntent:
    """Pass the challenge, and make `change` while the pass holds the card's row: the change
    must wait for the pass's commit. The intent as the pass leaves it."""
    pausing = PausingPass()
    three_d_secure = ThreeDSecureService(
        engine,
        core.payments,
        StoredPaymentMethods(core.methods),
        Radar(challenge_base_url="http://remit.test"),
        HookChain([payment_hooks(), pausing]),
    )
    passing = asyncio.ensure_future(_pass(three_d_secure, account_id, challenge_id))
    await asyncio.wait_for(pausing.checked.wait(), 10)
    changing = asyncio.ensure_future(change())
    try:
        await until_a_session_waits_on_a_lock(engine, contender=changing)
    finally:
        pausing.go_on.set()
        _, after = await passing
        await asyncio.wait_for(changing, 10)
    return after


async def test_a_detach_waits_for_the_pass_that_checked_the_card(
    core_engine: AsyncEngine, account_id: str
) -> None:
    """The other order: the pass checked the card first, so the authenticated attempt goes on
    with the card as it was, and the detach comes after it."""
    network = FakeNetwork()
    core = Core(core_engine, network)
    customer = await core.customers.create(account_id, CustomerFields())
    method_id = await _saved_card(core, account_id, customer.id)
    _, challenge_id = await _challenged(core, account_id, method_id, customer.id)

    paid = await _change_during_pass(
        core,
        core_engine,
        account_id,
        challenge_id,
        lambda: core.methods.detach(account_id, method_id),
    )

    assert (paid.status, paid.amount_received_minor) == (Status.SUCCEEDED, 1000)
    assert len(network.sent) == 1
    detached = await core.methods.get(account_id, method_id)
    assert (detached.customer_id, detached.usable) == (None, False)
