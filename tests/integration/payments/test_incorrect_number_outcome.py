"""A card number the acquirer refuses before sending it on fails its charge with Stripe's outcome
for a refusal before the network: `invalid` / `not_sent_to_network`, not an issuer's decline.

The acquirer checks a number's Luhn digit before anything reaches an issuer, and answers a
failed check with `incorrect_number` and `not_sent_to_network` (Stripe's 4242424242424241). The
vault refuses such a number when it is stored, so a payment reaches that check only with a card
the vault's own check did not vet; the answer is then the acquirer's to give, and the core's to
show. Here the network sends the acquirer the number behind a vault token, as the vault's
forward does, and the real acquirer answers over gRPC. A decline the issuer gives stays
`issuer_declined` / `declined_by_network`.

The acquirer also refuses Stripe's always-blocked Radar test card (4100000000000019) before the
network, as `card_declined` / `fraudulent`: Stripe's outcome for it is `blocked` /
`not_sent_to_network`, for the highest risk level.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.acquirer.domain import NetworkStatus
from remit.acquirer.faults import FaultConfig
from remit.acquirer.grpc import acquirer_interceptors, acquirer_registration
from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.payments.charges import CardSnapshot, Charge, ChargeStatus
from remit.payments.domain import NewPaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.ports import ChargeableCard
from remit.payments.service import ConfirmParams, KeyedCall, PaymentsService
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from remit.webhooks.tables import events
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from tests.integration.ledger import money_trail
from tests.integration.ledger.money_trail import TrailNetwork

pytestmark = pytest.mark.anyio

# Payment methods by the vault token behind each, and the numbers those tokens stand for.
VAULT_TOKENS = {
    "pm_incorrect_number": "incorrect_number",
    "pm_fraudulent": "fraudulent",
    "pm_declined": "declined",
}
LUHN_FAILS = "4242424242424241"
# Stripe's Radar test card that is always blocked, as a raw number: no test id tells remit's
# Radar of it, so the acquirer's refusal before the network is all that blocks it.
ALWAYS_BLOCKED = "4100000000000019"


class Methods:
    def card_refused(self, account_id: str, vault_token: str) -> None:
        raise AssertionError("the vault refuses nothing here")

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        return ChargeableCard(
            payment_method_id=payment_method_id,
            vault_token=VAULT_TOKENS[payment_method_id],
            card=CardSnapshot(brand="visa", last4="4241", exp_month=12, exp_year=2034),
        )

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        return VAULT_TOKENS[payment_method_id]

    async def attempt_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        return await self.chargeable_card(account_id, payment_method_id)


class Platform:
    def __init__(self, engine: AsyncEngine, acquirer: AcquirerService, network: TrailNetwork):
        self.engine = engine
        self.acquirer = acquirer
        self.payments = PaymentsService(
            engine,
            network,
            Methods(),
            present=payment_intent_message,
            hooks=payment_hooks(),
            radar=Radar(challenge_base_url="http://remit.test"),
        )

    async def declined(self, account_id: str, payment_method_id: str) -> RemitError:
        with pytest.raises(RemitError) as declined:
            await self.payments.create_payment_intent(
                KeyedCall(account_id, payment_method_id, "CreatePaymentIntent", b"pay"),
                NewPaymentIntent(amount_minor=2000, currency="usd"),
                lambda intent: intent.status.value.encode(),
                confirm=ConfirmParams(payment_method_id=payment_method_id),
            )
        return declined.value

    async def charge(self, account_id: str, charge_id: str) -> Charge:
        charge, _ = await self.payments.get_charge(account_id, charge_id)
        return charge

    async def event_types(self, account_id: str, object_id: str) -> list[str]:
        async with self.engine.connect() as db:
            rows = await db.execute(
                select(events.c.type).where(
                    events.c.account_id == account_id,
                    events.c.data_object["id"].astext == object_id,
                )
            )
        return [row.type for row in rows]


@pytest.fixture
async def platform(
    core_engine: AsyncEngine, acquirer_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Platform]:
    monkeypatch.setitem(money_trail.CARD_NUMBERS, "incorrect_number", LUHN_FAILS)
    monkeypatch.setitem(money_trail.CARD_NUMBERS, "fraudulent", ALWAYS_BLOCKED)
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
            yield Platform(core_engine, acquirer, network)
    finally:
        await server.stop(None)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


async def test_a_number_the_acquirer_refuses_before_the_network_fails_as_invalid(
    platform: Platform, account_id: str
) -> None:
    declined = await platform.declined(account_id, "pm_incorrect_number")
    assert (declined.code, declined.decline_code) == ("incorrect_number", None)
    assert declined.message == "Your card number is incorrect."
    assert declined.charge is not None
    # The acquirer's answer: refused before the network.
    recorded = await platform.acquirer.lookup(declined.charge)
    assert recorded.authorization_result is not None
    assert recorded.authorization_result.network_status is NetworkStatus.NOT_SENT_TO_NETWORK

    charge = await platform.charge(account_id, declined.charge)
    assert (charge.status, charge.failure_code, charge.decline_code) == (
        ChargeStatus.FAILED,
        "incorrect_number",
        None,
    )
    assert charge.outcome is not None
    assert charge.outcome == {
        "type": "invalid",
        "network_status": "not_sent_to_network",
        "reason": None,
        "risk_level": (charge.risk or {})["risk_level"],
        "risk_score": (charge.risk or {})["risk_score"],
        "rule": None,
        "seller_message": "This payment was not sent to the card network: its card number is "
        "incorrect.",
    }
    # Stripe has a charge for a payment it refuses before the network, and tells of it.
    assert await platform.event_types(account_id, charge.id) == ["charge.failed"]
    intent = await platform.payments.get_payment_intent(account_id, charge.payment_intent_id)
    assert intent.status is Status.REQUIRES_PAYMENT_METHOD


async def test_a_number_the_acquirer_blocks_as_fraudulent_is_blocked_not_declined(
    platform: Platform, account_id: str
) -> None:
    declined = await platform.declined(account_id, "pm_fraudulent")
    assert (declined.code, declined.decline_code) == ("card_declined", "fraudulent")
    assert declined.charge is not None
    recorded = await platform.acquirer.lookup(declined.charge)
    assert recorded.authorization_result is not None
    assert recorded.authorization_result.network_status is NetworkStatus.NOT_SENT_TO_NETWORK

    charge = await platform.charge(account_id, declined.charge)
    assert (charge.status, charge.failure_code, charge.decline_code) == (
        ChargeStatus.FAILED,
        "card_declined",
        "fraudulent",
    )
    # Stripe's outcome for its always-blocked card: risk level `highest`, blocked for it.
    # Radar, which never knew the number for what it is, scored the payment normal.
    assert (charge.risk or {})["risk_level"] == "normal"
    assert charge.outcome == {
        "type": "blocked",
        "network_status": "not_sent_to_network",
        "reason": "highest_risk_level",
        "risk_level": "highest",
        "risk_score": None,
        "rule": None,
        "seller_message": "The acquirer blocked this payment as too risky; it was not sent to "
        "the card network.",
    }
    # Stripe tells of its blocked charges.
    assert await platform.event_types(account_id, charge.id) == ["charge.failed"]


async def test_a_decline_by_the_issuer_stays_the_issuers(
    platform: Platform, account_id: str
) -> None:
    declined = await platform.declined(account_id, "pm_declined")
    assert (declined.code, declined.decline_code) == ("card_declined", "generic_decline")
    assert declined.charge is not None
    charge = await platform.charge(account_id, declined.charge)
    assert charge.outcome is not None
    assert (
        charge.outcome["type"],
        charge.outcome["network_status"],
        charge.outcome["reason"],
    ) == ("issuer_declined", "declined_by_network", "generic_decline")
