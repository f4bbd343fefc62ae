from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import not_found
from remit.payments.charges import CardSnapshot
from remit.payments.grpc import PaymentsServicer, payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.ports import ChargeableCard
from remit.payments.service import PaymentsService
from remit.payments.tables import idempotency_keys
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from tests.support.fake_network import FakeNetwork
from tests.support.payments_server import serving_payments

CARDS = {
    "pm_visa": ("visa", "4242"),
    "pm_declined": ("declined", "0002"),
    "pm_insufficient": ("insufficient", "9995"),
    "pm_dispute": ("dispute", "0259"),
}


class FakeMethods:
    def __init__(self) -> None:
        self.refused: list[tuple[str, str]] = []

    def card_refused(self, account_id: str, vault_token: str) -> None:
        self.refused.append((account_id, vault_token))

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        if payment_method_id not in CARDS:
            raise not_found("payment_method", payment_method_id, param="payment_method")
        token, last4 = CARDS[payment_method_id]
        return ChargeableCard(
            payment_method_id=payment_method_id,
            vault_token=token,
            card=CardSnapshot(brand="visa", last4=last4, exp_month=12, exp_year=2034),
        )

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        return (await FakeMethods.chargeable_card(self, account_id, payment_method_id)).vault_token

    async def attempt_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        return await FakeMethods.chargeable_card(self, account_id, payment_method_id)


def payments_with_core_hooks(
    engine: AsyncEngine, network: FakeNetwork | None = None
) -> PaymentsService:
    """The payments service with the hooks the core runs (events, then the ledger), an
    in-process network (`network`, or a new one) and Radar."""
    return PaymentsService(
        engine,
        network or FakeNetwork(),
        FakeMethods(),
        present=payment_intent_message,
        hooks=payment_hooks(),
        radar=Radar(challenge_base_url="http://127.0.0.1"),
    )


@pytest.fixture
def network(clock: FixedClock) -> FakeNetwork:
    """On the module's `clock`, as `timed_payments` are: the times the network keeps of what
    it does are the test's."""
    return FakeNetwork(clock=clock)


@pytest.fixture
def payments(core_engine: AsyncEngine, network: FakeNetwork) -> PaymentsService:
    return PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)


@pytest.fixture
def clock() -> FixedClock:
    """Where a module's timed payments start; a module that needs a set instant overrides it."""
    return FixedClock(datetime.now(UTC))


@pytest.fixture
def timed_payments(
    core_engine: AsyncEngine, network: FakeNetwork, clock: FixedClock
) -> PaymentsService:
    """Payments on the module's `clock`, which its tests move."""
    return PaymentsService(
        core_engine, network, FakeMethods(), present=payment_intent_message, clock=clock
    )


@pytest.fixture
async def payments_stub(payments: PaymentsService) -> AsyncIterator[Any]:
    """A PaymentsServiceStub on a real gRPC server of `payments`, for calls that name payment
    methods by id (the server reads nothing of customers or payment methods itself)."""
    servicer = PaymentsServicer(payments, cast(Any, None), cast(Any, None))
    async with serving_payments(servicer) as stub:
        yield stub


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    created = await AccountsService(core_engine).create_account()
    return created.account.id


async def take_key_over(
    engine: AsyncEngine, key: str, *, finished_with: bytes | None = None
) -> None:
    """What a retry does once a request's lease has run out: claim its key under a new owner
    token and, given `finished_with`, finish it with that response."""
    values: dict[str, object] = {"owner": "the-retry"}
    if finished_with is not None:
        values.update(
            recovery_point=RecoveryPoint.FINISHED.value,
            response_code=0,
            response_body=finished_with,
            locked_until=None,
        )
    async with engine.begin() as db:
        await db.execute(
            update(idempotency_keys).where(idempotency_keys.c.key == key).values(**values)
        )
