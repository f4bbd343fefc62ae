"""A request that stalls past its lease before its attempt begins, while a retry with the same
key takes the key over and finishes the payment: the stalled request must replay the retry's
answer, never start a second attempt (which would authorize the payment twice)."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import RemitError
from remit.payments import idempotency
from remit.payments.charges import CardSnapshot
from remit.payments.domain import NewPaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.ports import ChargeableCard
from remit.payments.service import ConfirmParams, KeyedCall, PaymentsService, Replay
from remit.payments.tables import charges, idempotency_keys, payment_intents, refunds
from tests.integration.payments.conftest import FakeMethods, take_key_over
from tests.integration.payments.test_payments_service import pay
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

FINISHED_ELSEWHERE = b"the retry's answer"


class MethodsThatStall:
    def card_refused(self, account_id: str, vault_token: str) -> None:
        raise AssertionError("no card is refused here")

    """Resolves the card (which happens before the attempt's transaction opens), and meanwhile
    the lease runs out and a retry finishes the key."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        await take_key_over(self._engine, "stalled", finished_with=FINISHED_ELSEWHERE)
        return ChargeableCard(
            payment_method_id=payment_method_id,
            vault_token="visa",
            card=CardSnapshot(brand="visa", last4="4242", exp_month=12, exp_year=2034),
        )

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        return "visa"

    async def attempt_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        raise AssertionError("no challenge is answered here")


async def test_a_stalled_request_replays_the_retry_that_finished_its_key(
    core_engine: AsyncEngine, account_id: str
) -> None:
    network = FakeNetwork()
    payments = PaymentsService(
        core_engine, network, MethodsThatStall(core_engine), present=payment_intent_message
    )
    result = await payments.create_payment_intent(
        KeyedCall(
            account_id=account_id, key="stalled", endpoint="CreatePaymentIntent", request_body=b"s"
        ),
        NewPaymentIntent(amount_minor=1200, currency="usd"),
        lambda intent: intent.id.encode(),
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    assert isinstance(result, Replay)
    assert result.body == FINISHED_ELSEWHERE
    assert network.sent == [], "no second authorization"
    async with core_engine.begin() as db:
        point = (
            await db.execute(
                select(idempotency_keys.c.recovery_point).where(idempotency_keys.c.key == "stalled")
            )
        ).scalar_one()
        made = (await db.execute(select(func.count()).select_from(payment_intents))).scalar_one()
        attempts = (await db.execute(select(func.count()).select_from(charges))).scalar_one()
    assert point == RecoveryPoint.FINISHED.value, "the finished key is not moved back"
    assert made == 0
    assert attempts == 0


async def test_a_stalled_refund_does_not_refund_a_second_time(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = PaymentsService(
        core_engine, FakeNetwork(), FakeMethods(), present=payment_intent_message
    )
    intent = await pay(payments, account_id, "paid")
    keyed = KeyedCall(
        account_id=account_id, key="stalled", endpoint="CreateRefund", request_body=b"r"
    )
    record = await payments._claim(keyed)
    # The lease runs out here, and a retry takes the key over and refunds.
    await take_key_over(core_engine, "stalled", finished_with=FINISHED_ELSEWHERE)
    stored = await payments._start_refund(record, None, intent.id, None, None, {})
    assert stored.finished
    assert stored.response_body == FINISHED_ELSEWHERE
    async with core_engine.begin() as db:
        made = (await db.execute(select(func.count()).select_from(refunds))).scalar_one()
    assert made == 0, "the stalled request wrote no refund of its own"


async def test_a_request_that_lost_its_key_can_neither_advance_nor_finish_it(
    core_engine: AsyncEngine, account_id: str
) -> None:
    payments = PaymentsService(
        core_engine, FakeNetwork(), FakeMethods(), present=payment_intent_message
    )
    keyed = KeyedCall(account_id=account_id, key="fenced", endpoint="Capture", request_body=b"c")
    record = await payments._claim(keyed)
    await take_key_over(core_engine, "fenced")

    async def advance() -> None:
        async with core_engine.begin() as db:
            await idempotency.advance(
                db, record, RecoveryPoint.ATTEMPT_CREATED, now=record.created_at
            )

    async def finish() -> None:
        async with core_engine.begin() as db:
            await idempotency.finish(
                db, record, response_code=0, response_body=b"late", now=record.created_at
            )

    # The fence is checked by the server: the refused statement fails its transaction.
    with pytest.raises(RemitError) as advancing:
        await advance()
    with pytest.raises(RemitError) as finishing:
        await finish()
    assert advancing.value.code == finishing.value.code == "idempotency_key_in_use"
    async with core_engine.begin() as db:
        stored = (
            await db.execute(
                select(idempotency_keys.c.recovery_point, idempotency_keys.c.response_body).where(
                    idempotency_keys.c.key == "fenced"
                )
            )
        ).one()
    assert stored.recovery_point == RecoveryPoint.STARTED.value
    assert stored.response_body is None
