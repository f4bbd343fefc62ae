"""A request resumed after it recorded an operation (a retry, the completer) does not know
whether the operation reached the network: it looks the operation up by its reference first,
and sends it only if the network has no record of it. A request sending for the first time
does not look anything up."""

import logging

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import not_found
from remit.payments.domain import NewPaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import KeyRecord
from remit.payments.ports import ChargeableCard
from remit.payments.service import ConfirmParams, Done, NetworkAsk, PaymentsService
from remit.payments.tables import idempotency_keys
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


class CountingMethods(FakeMethods):
    """Counts how often the card behind a payment method is read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        self.reads += 1
        return await super().chargeable_card(account_id, payment_method_id)

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        self.reads += 1
        return await super().attempt_vault_token(account_id, payment_method_id)


@pytest.fixture
def methods() -> CountingMethods:
    return CountingMethods()


@pytest.fixture
def counted_payments(
    core_engine: AsyncEngine, network: FakeNetwork, methods: CountingMethods
) -> PaymentsService:
    return PaymentsService(core_engine, network, methods, present=payment_intent_message)


def _new_payment() -> NewPaymentIntent:
    return NewPaymentIntent(amount_minor=900, currency="usd")


def _confirm() -> ConfirmParams:
    return ConfirmParams(payment_method_id="pm_visa")


async def _lease_runs_out(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        await db.execute(update(idempotency_keys).values(locked_until=None))


async def _attempt_created(
    payments: PaymentsService, keyed_key: str, account_id: str
) -> tuple[KeyRecord, NetworkAsk]:
    record = await payments._claim(call(account_id, keyed_key, body=b"crash"))
    record, ask = await payments._start_attempt(
        record, respond, new=_new_payment(), confirm=_confirm()
    )
    assert ask is not None
    return record, ask


async def test_a_retry_after_the_network_authorized_looks_it_up_and_never_sends_again(
    counted_payments: PaymentsService,
    network: FakeNetwork,
    methods: CountingMethods,
    account_id: str,
    core_engine: AsyncEngine,
) -> None:
    record, ask = await _attempt_created(counted_payments, "authorized", account_id)
    assert ask.vault_token is not None
    # The authorization reached the network; its answer was lost with the process.
    await network.authorize(
        account_id=account_id,
        vault_token=ask.vault_token,
        amount_minor=900,
        currency="usd",
        reference=ask.charge.id,
        capture=True,
        purpose="the request that died",
    )
    await _lease_runs_out(core_engine)
    methods.reads = 0

    result = await counted_payments.create_payment_intent(
        call(account_id, "authorized", body=b"crash"), _new_payment(), respond, confirm=_confirm()
    )

    assert isinstance(result, Done)
    assert result.value.id == record.payment_intent_id
    assert result.value.status is Status.SUCCEEDED
    assert network.sent == [ask.charge.id], "sent once, by the request that died"
    assert network.looked_up == [ask.charge.id]
    assert methods.reads == 0, "the card was not needed: the network had the answer"


async def test_the_completer_sends_an_authorization_the_network_never_received(
    counted_payments: PaymentsService,
    network: FakeNetwork,
    account_id: str,
    core_engine: AsyncEngine,
) -> None:
    record, ask = await _attempt_created(counted_payments, "never-sent", account_id)
    await _lease_runs_out(core_engine)
    async with core_engine.begin() as db:
        await db.execute(
            update(idempotency_keys).values(last_run_at=record.created_at.replace(year=2000))
        )

    async def resume(found: KeyRecord) -> object:
        return await counted_payments.resume_attempt(found, respond)

    assert await counted_payments.complete_abandoned(resume) == 1

    assert network.looked_up == [ask.charge.id]
    assert network.sent == [ask.charge.id]
    assert record.payment_intent_id is not None
    intent = await counted_payments.get_payment_intent(account_id, record.payment_intent_id)
    assert intent.status is Status.SUCCEEDED


async def test_a_first_send_looks_nothing_up(
    counted_payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    await pay(counted_payments, account_id, "fresh")
    assert len(network.sent) == 1
    assert network.looked_up == []


async def test_a_resumed_refund_the_network_made_is_looked_up_not_sent_again(
    counted_payments: PaymentsService,
    network: FakeNetwork,
    account_id: str,
    core_engine: AsyncEngine,
) -> None:
    intent = await pay(counted_payments, account_id, "paid")
    record = await counted_payments._claim(
        call(account_id, "refund", endpoint="CreateRefund", body=b"r")
    )
    record = await counted_payments._start_refund(record, None, intent.id, None, None, {})
    assert record.refund_id is not None
    # The refund reached the network; the process died before storing the answer.
    await network.refund(authorization_id="any", amount_minor=1000, reference=record.refund_id)
    await _lease_runs_out(core_engine)
    network.looked_up.clear()

    result = await counted_payments.resume_refund(record, lambda r: r.id.encode())

    assert isinstance(result, Done)
    assert network.sent.count(record.refund_id) == 1
    assert network.looked_up == [record.refund_id]


async def test_a_refund_sent_for_the_first_time_looks_nothing_up(
    counted_payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    intent = await pay(counted_payments, account_id, "paid-once")
    result = await counted_payments.create_refund(
        call(account_id, "refund-once", endpoint="CreateRefund", body=b"r"),
        charge_id=None,
        payment_intent_id=intent.id,
        amount_minor=None,
        reason=None,
        metadata={},
        respond=lambda r: r.id.encode(),
    )
    assert isinstance(result, Done)
    assert network.looked_up == []


class MethodsThatLostTheCard(FakeMethods):
    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        raise not_found("payment_method", payment_method_id, param="payment_method")


async def test_a_refusal_the_completer_could_not_store_as_an_outcome_is_a_warning(
    core_engine: AsyncEngine,
    network: FakeNetwork,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payments = PaymentsService(
        core_engine, network, MethodsThatLostTheCard(), present=payment_intent_message
    )
    record, _ = await _attempt_created(payments, "lost-card", account_id)
    await _lease_runs_out(core_engine)
    async with core_engine.begin() as db:
        await db.execute(
            update(idempotency_keys).values(last_run_at=record.created_at.replace(year=2000))
        )

    async def resume(found: KeyRecord) -> object:
        return await payments.resume_attempt(found, respond)

    with caplog.at_level(logging.INFO, logger="remit.payments.service"):
        assert await payments.complete_abandoned(resume) == 1

    [reported] = [r for r in caplog.records if "lost-card" in r.getMessage()]
    assert reported.levelno == logging.WARNING
    assert "resource_missing" in reported.getMessage()
