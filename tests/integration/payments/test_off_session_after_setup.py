"""Off-session payments with a card set up for them, against the real acquirer (over gRPC).

A payment with `setup_future_usage=off_session` that the cardholder authenticated through its
3-D Secure challenge gives the saved payment method the network transaction id of that
authorization; later off-session payments with it cite that id, and the issuer of test card
4000002500003155 (pm_card_authenticationRequiredOnSetup) then asks for no authentication. On
session it still does, as does 4000002760003184 (pm_card_authenticationRequired) everywhere.
Real payment methods, customers, Radar and 3-D Secure; only the vault is left out (the network
sends the test card straight to the acquirer, as the vault would)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.acquirer.faults import FaultConfig
from remit.acquirer.grpc import acquirer_interceptors, acquirer_registration
from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.customers.domain import CustomerFields
from remit.payments.domain import NewPaymentIntent, PaymentIntent, Status
from remit.payments.service import ConfirmParams, Done, KeyedCall
from remit.radar.challenges import ThreeDSChallenge
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from tests.integration.ledger.money_trail import TrailNetwork
from tests.integration.payments.test_setup_future_usage import Core, TestCardVault

pytestmark = pytest.mark.anyio

ON_SETUP = "pm_card_authenticationRequiredOnSetup"
ALWAYS = "pm_card_authenticationRequired"


class ThreeDSecureCards(TestCardVault):
    # The vault tokens `TrailNetwork` knows the card numbers of.
    vault_tokens = {ON_SETUP: "on_setup", ALWAYS: "always"}


class Platform:
    def __init__(self, core: Core, acquirer: AcquirerService, account_id: str) -> None:
        self.core = core
        self.acquirer = acquirer
        self.account_id = account_id

    async def pay(
        self,
        key: str,
        payment_method: str,
        customer_id: str,
        *,
        setup_future_usage: str | None = None,
        off_session: bool = False,
    ) -> PaymentIntent:
        result = await self.core.payments.create_payment_intent(
            KeyedCall(self.account_id, key, "CreatePaymentIntent", key.encode()),
            NewPaymentIntent(
                amount_minor=1500,
                currency="eur",
                customer_id=customer_id,
                setup_future_usage=setup_future_usage,
                return_url="https://shop.example/return",
            ),
            lambda intent: intent.status.value.encode(),
            confirm=ConfirmParams(payment_method_id=payment_method, off_session=off_session),
        )
        assert isinstance(result, Done)
        return result.value

    async def authenticate(self, intent: PaymentIntent) -> PaymentIntent:
        """The cardholder passes the intent's challenge."""
        assert intent.status is Status.REQUIRES_ACTION
        assert intent.next_action is not None
        url = str(intent.next_action["redirect_to_url"]["url"])  # type: ignore[index]

        def built(challenge: ThreeDSChallenge, after: PaymentIntent) -> bytes:
            return after.status.value.encode()

        done = await self.core.three_d_secure.complete(
            self.account_id, url.rsplit("/", 1)[1], passed=True, build=built
        )
        assert isinstance(done, Done)
        return done.value[1]

    async def set_up(self, payment_method: str, customer_id: str, usage: str) -> str:
        """The saved payment method of an authenticated payment with `setup_future_usage`."""
        intent = await self.pay(
            f"setup {usage} {payment_method}", payment_method, customer_id,
            setup_future_usage=usage,
        )  # fmt: skip
        paid = await self.authenticate(intent)
        assert paid.status is Status.SUCCEEDED
        [saved] = await self.core.saved(self.account_id, customer_id)
        return saved

    async def declined_off_session(self, key: str, payment_method: str, customer_id: str) -> str:
        """The decline code of an off-session payment with `payment_method`."""
        with pytest.raises(RemitError) as declined:
            await self.pay(key, payment_method, customer_id, off_session=True)
        assert declined.value.code == "authentication_required"
        return str(declined.value.decline_code)


@pytest.fixture
async def platform(
    core_engine: AsyncEngine, acquirer_engine: AsyncEngine
) -> AsyncIterator[Platform]:
    acquirer = AcquirerService(acquirer_engine)
    server = grpc.aio.server(interceptors=acquirer_interceptors(FaultConfig()))
    acquirer_registration(acquirer).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            network = TrailNetwork(
                acquirer_pb2_grpc.AcquirerServiceStub(channel), FixedClock(datetime.now(UTC))
            )
            core = Core(core_engine, network, ThreeDSecureCards())
            account_id = (await AccountsService(core_engine).create_account()).account.id
            yield Platform(core, acquirer, account_id)
    finally:
        await server.stop(None)


async def test_after_an_authenticated_off_session_setup_off_session_payments_need_no_action(
    platform: Platform,
) -> None:
    customer = await platform.core.customers.create(platform.account_id, CustomerFields())
    first = await platform.pay("first", ON_SETUP, customer.id, setup_future_usage="off_session")
    # The setup itself asks for authentication, and saves nothing before it passes.
    assert first.status is Status.REQUIRES_ACTION
    assert await platform.core.saved(platform.account_id, customer.id) == []
    paid = await platform.authenticate(first)
    assert paid.status is Status.SUCCEEDED
    [saved] = await platform.core.saved(platform.account_id, customer.id)
    assert saved == paid.payment_method_id

    # The payment method keeps the network's id of the authenticated authorization.
    assert paid.latest_charge_id is not None
    setup = await platform.acquirer.lookup(f"{paid.latest_charge_id}_3ds")
    assert setup.authorization_result is not None
    method = await platform.core.methods.get(platform.account_id, saved)
    assert method.off_session_setup_transaction_id is not None
    assert method.off_session_setup_transaction_id == (
        setup.authorization_result.network_transaction_id
    )

    for renewal in ("renewal 1", "renewal 2"):
        renewed = await platform.pay(renewal, saved, customer.id, off_session=True)
        assert (renewed.status, renewed.next_action) == (Status.SUCCEEDED, None)
        assert renewed.amount_received_minor == 1500
    # The cardholder, present again, authenticates as before.
    on_session = await platform.pay("on session", saved, customer.id)
    assert on_session.status is Status.REQUIRES_ACTION


async def test_without_an_authenticated_off_session_setup_an_off_session_payment_is_declined(
    platform: Platform,
) -> None:
    customer = await platform.core.customers.create(platform.account_id, CustomerFields())
    # Saved with an explicit attach: no payment, no agreement to off-session payments.
    attached = await platform.core.methods.attach(platform.account_id, ON_SETUP, customer.id)
    assert attached.off_session_setup_transaction_id is None
    assert await platform.declined_off_session("attached", attached.id, customer.id) == (
        "authentication_required"
    )
    # Authenticated, but saved for on-session payments only: no agreement either.
    other = await platform.core.customers.create(platform.account_id, CustomerFields())
    on_session_only = await platform.set_up(ON_SETUP, other.id, "on_session")
    method = await platform.core.methods.get(platform.account_id, on_session_only)
    assert method.off_session_setup_transaction_id is None
    assert await platform.declined_off_session("on_session", on_session_only, other.id) == (
        "authentication_required"
    )


async def test_the_always_authenticate_card_is_declined_off_session_even_after_its_setup(
    platform: Platform,
) -> None:
    customer = await platform.core.customers.create(platform.account_id, CustomerFields())
    saved = await platform.set_up(ALWAYS, customer.id, "off_session")
    method = await platform.core.methods.get(platform.account_id, saved)
    # The network was told of the setup; this issuer asks for authentication all the same.
    assert method.off_session_setup_transaction_id is not None
    assert await platform.declined_off_session("renewal", saved, customer.id) == (
        "authentication_required"
    )
    [declined] = [
        intent
        for intent in (
            await platform.core.payments.list_payment_intents(
                platform.account_id, limit=10, customer_id=customer.id
            )
        )[0]
        if intent.status is Status.REQUIRES_PAYMENT_METHOD
    ]
    assert declined.last_payment_error is not None
    assert declined.last_payment_error["decline_code"] == "authentication_required"
