"""A refund refused for the state of its charge (not captured, or too little left of it to
refund) is the request's answer, stored under its idempotency key: a retry with the key
replays the refusal instead of refunding in a world changed since (the refund that reserved
the charge failed at the acquirer, the charge was captured). A refusal of the request itself
(a payment_intent or charge that does not exist) is not stored: the client may fix it and send
it again under the key. The refusals name the parameter the request gave the charge by."""

import asyncio
import logging
from dataclasses import replace
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY, IDEMPOTENCY_KEY
from remit.payments.charges import Refund, RefundStatus
from remit.payments.domain import CaptureMethod
from remit.payments.network import OperationOutcome
from remit.payments.repository import RefundRepository
from remit.payments.service import MAX_AMOUNT_MINOR, Done, PaymentsService, Replay
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.payments.refund_ledger import ledger_payments
from tests.integration.payments.refund_ledger import respond as answered
from tests.integration.payments.test_payments_service import call, pay, refund_intent, respond
from tests.integration.payments.test_refund_holds import RefundsHeldAtTheAcquirer
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


@pytest.fixture
def network() -> RefundsHeldAtTheAcquirer:
    return RefundsHeldAtTheAcquirer()


@pytest.fixture
def payments(core_engine: AsyncEngine, network: FakeNetwork) -> PaymentsService:
    return ledger_payments(core_engine, network)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account(radar_enabled=False)).account.id


def _detail(replay: Replay) -> common_pb2.ErrorDetail:
    detail = common_pb2.ErrorDetail()
    assert status_pb2.Status.FromString(replay.body).details[0].Unpack(detail)
    return detail


async def _refund_of_charge(
    payments: PaymentsService, account_id: str, key: str, charge_id: str, amount: int | None
) -> Done[Refund] | Replay:
    return await payments.create_refund(
        call(account_id, key, endpoint="CreateRefund"),
        charge_id=charge_id,
        payment_intent_id=None,
        amount_minor=amount,
        reason=None,
        metadata={},
        respond=answered,
    )


async def _refunds(payments: PaymentsService, account_id: str) -> list[Refund]:
    refunds, _ = await payments.list_refunds(account_id, limit=10)
    return refunds


@pytest.mark.parametrize(
    ("amount", "code", "param"),
    [(600, "amount_too_large", "amount"), (None, "charge_already_refunded", "payment_intent")],
)
async def test_a_refund_refused_while_another_reserved_the_charge_is_replayed_after_it_failed(
    payments: PaymentsService,
    network: RefundsHeldAtTheAcquirer,
    core_engine: AsyncEngine,
    account_id: str,
    amount: int | None,
    code: str,
    param: str,
) -> None:
    intent = await pay(payments, account_id, "y")
    # 500 of the 1000 pending at the acquirer, or all of it when the refused refund asks for
    # the rest (which is then nothing).
    pending = 500 if amount is not None else 1000
    first = asyncio.create_task(refund_intent(payments, account_id, "y-r1", intent.id, pending))
    await network.arrived.wait()
    network.answer.clear()

    with pytest.raises(RemitError) as refused:
        await refund_intent(payments, account_id, "K", intent.id, amount)
    assert (refused.value.code, refused.value.param) == (code, param)
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION

    (waiting,) = await _refunds(payments, account_id)
    network.refuse(waiting.id, "expired_or_canceled_card", "gone")
    network.answer.set()
    failed = await first
    assert isinstance(failed, Done)
    assert failed.value.status is RefundStatus.FAILED

    retried = await refund_intent(payments, account_id, "K", intent.id, amount)

    assert isinstance(retried, Replay)
    detail = _detail(retried)
    assert (detail.code, detail.param, detail.message) == (code, param, refused.value.message)
    # Nothing was refunded under the key: the failed refund is the charge's only one.
    assert [refund.id for refund in await _refunds(payments, account_id)] == [waiting.id]
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id or "")
    assert charge.amount_refunded_minor == 0


async def test_a_refund_of_a_charge_refunded_already_names_the_charge_when_asked_by_it(
    payments: PaymentsService, network: RefundsHeldAtTheAcquirer, account_id: str
) -> None:
    network.answer.set()
    intent = await pay(payments, account_id, "paid")
    charge_id = intent.latest_charge_id or ""
    assert isinstance(await _refund_of_charge(payments, account_id, "all", charge_id, None), Done)

    with pytest.raises(RemitError) as refused:
        await _refund_of_charge(payments, account_id, "again", charge_id, None)
    assert (refused.value.code, refused.value.param) == ("charge_already_refunded", "charge")
    with pytest.raises(RemitError) as too_much:
        await _refund_of_charge(payments, account_id, "more", charge_id, 1)
    assert (too_much.value.code, too_much.value.param) == ("charge_already_refunded", "charge")

    replayed = await _refund_of_charge(payments, account_id, "again", charge_id, None)
    assert isinstance(replayed, Replay)
    assert _detail(replayed).code == "charge_already_refunded"


@pytest.mark.parametrize("by", ["payment_intent", "charge"])
async def test_a_refund_refused_before_the_capture_is_replayed_after_it(
    payments: PaymentsService, network: RefundsHeldAtTheAcquirer, account_id: str, by: str
) -> None:
    network.answer.set()
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    charge_id = held.latest_charge_id or ""

    async def refund() -> Done[Refund] | Replay:
        if by == "charge":
            return await _refund_of_charge(payments, account_id, "early", charge_id, None)
        return await refund_intent(payments, account_id, "early", held.id, None)

    with pytest.raises(RemitError) as refused:
        await refund()
    assert (refused.value.code, refused.value.param) == ("charge_not_refundable", by)
    captured = await payments.capture_payment_intent(
        call(account_id, "capture", endpoint="CapturePaymentIntent"), held.id, None, respond
    )
    assert isinstance(captured, Done)

    retried = await refund()

    assert isinstance(retried, Replay)
    assert _detail(retried).code == "charge_not_refundable"
    assert await _refunds(payments, account_id) == []


async def test_a_refund_of_no_such_payment_intent_leaves_the_key_free(
    payments: PaymentsService, network: RefundsHeldAtTheAcquirer, account_id: str
) -> None:
    network.answer.set()
    intent = await pay(payments, account_id, "paid")
    with pytest.raises(RemitError) as missing:
        await refund_intent(payments, account_id, "fixed", "pi_missing", 100)
    assert (missing.value.code, missing.value.kind) == ("resource_missing", ErrorKind.NOT_FOUND)

    fixed = await refund_intent(payments, account_id, "fixed", intent.id, 100)

    assert isinstance(fixed, Done)
    assert fixed.value.status is RefundStatus.SUCCEEDED


class SettledElsewhereMeanwhile(FakeNetwork):
    """The acquirer refunds; meanwhile the refund was settled in remit as succeeded, as
    another request settling it first would leave it."""

    def __init__(self) -> None:
        super().__init__()
        self.engine: AsyncEngine | None = None
        self.account_id = ""

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        assert self.engine is not None
        async with self.engine.begin() as db:
            refunds = RefundRepository(db)
            refund = await refunds.get(self.account_id, reference, for_update=True)
            assert refund is not None
            await refunds.save(replace(refund, status=RefundStatus.SUCCEEDED))
        return await super().refund(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )


async def test_a_refund_settled_by_another_meanwhile_is_not_logged_as_refunded_after_a_cancel(
    core_engine: AsyncEngine, account_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    network = SettledElsewhereMeanwhile()
    network.engine, network.account_id = core_engine, account_id
    payments = ledger_payments(core_engine, network)
    intent = await pay(payments, account_id, "paid")

    with caplog.at_level(logging.ERROR, logger="remit.payments.service"):
        done = await refund_intent(payments, account_id, "settled", intent.id, 300)

    assert isinstance(done, Done)
    assert done.value.status is RefundStatus.SUCCEEDED
    assert not [r for r in caplog.records if "was canceled while" in r.getMessage()]


async def test_a_grpc_caller_gets_failed_precondition_first_and_on_the_replay(
    payments: PaymentsService,
    payments_stub: Any,
    network: RefundsHeldAtTheAcquirer,
    account_id: str,
) -> None:
    network.answer.set()
    intent = await pay(payments, account_id, "paid")
    assert isinstance(await refund_intent(payments, account_id, "all", intent.id, None), Done)
    metadata = ((ACCOUNT_KEY, account_id), (IDEMPOTENCY_KEY, "again-rpc"))
    request = pb.CreateRefundRequest(payment_intent=intent.id)

    answers = []
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await payments_stub.CreateRefund(request, metadata=metadata)
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        detail = detail_from_rpc_error(refused.value)
        assert detail is not None
        answers.append((detail.code, detail.param, detail.message))

    assert answers[0] == answers[1]
    assert answers[0][:2] == ("charge_already_refunded", "payment_intent")


async def test_a_grpc_refund_of_more_than_any_payment_may_be_leaves_the_key_free(
    payments: PaymentsService,
    payments_stub: Any,
    network: RefundsHeldAtTheAcquirer,
    account_id: str,
) -> None:
    """No charge could have that much to refund: the request is invalid, not refused by the
    charge's state, so the corrected request under the same key refunds."""
    network.answer.set()
    intent = await pay(payments, account_id, "paid")
    metadata = ((ACCOUNT_KEY, account_id), (IDEMPOTENCY_KEY, "fix-me-rpc"))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payments_stub.CreateRefund(
            pb.CreateRefundRequest(payment_intent=intent.id, amount=MAX_AMOUNT_MINOR + 1),
            metadata=metadata,
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert (detail.code, detail.param) == ("amount_too_large", "amount")
    assert str(MAX_AMOUNT_MINOR) in detail.message
    assert await _refunds(payments, account_id) == []

    fixed = await payments_stub.CreateRefund(
        pb.CreateRefundRequest(payment_intent=intent.id, amount=300), metadata=metadata
    )

    assert (fixed.refund.amount, fixed.refund.status) == (300, pb.REFUND_STATUS_SUCCEEDED)
