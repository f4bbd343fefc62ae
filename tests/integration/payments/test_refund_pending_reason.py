"""A refund the acquirer has yet to answer is pending for `processing` (Stripe's
`pending_reason`), as a gRPC caller reads it meanwhile; once the acquirer answered, the reason
is gone with the pending status."""

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.payments.charges import RefundStatus
from remit.payments.service import Done, PaymentsService
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.payments.refund_ledger import ledger_payments
from tests.integration.payments.test_payments_service import pay, refund_intent
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


@pytest.mark.parametrize("answer", ["approved", "refused"])
async def test_a_refund_is_pending_for_processing_until_the_acquirer_answers(
    payments: PaymentsService,
    payments_stub: Any,
    network: RefundsHeldAtTheAcquirer,
    account_id: str,
    answer: str,
) -> None:
    intent = await pay(payments, account_id, "paid")
    refunding = asyncio.create_task(refund_intent(payments, account_id, "r", intent.id, 400))
    await network.arrived.wait()
    (waiting,), _ = await payments.list_refunds(account_id, limit=10)
    metadata = ((ACCOUNT_KEY, account_id),)

    pending = await payments_stub.GetRefund(pb.GetRefundRequest(id=waiting.id), metadata=metadata)

    assert pending.refund.status == pb.REFUND_STATUS_PENDING
    assert pending.refund.pending_reason == pb.REFUND_PENDING_REASON_PROCESSING
    if answer == "refused":
        network.refuse(waiting.id, "expired_or_canceled_card", "gone")
    network.answer.set()
    done = await refunding
    assert isinstance(done, Done)
    ended = await payments_stub.GetRefund(pb.GetRefundRequest(id=waiting.id), metadata=metadata)
    assert ended.refund.status == (
        pb.REFUND_STATUS_SUCCEEDED if answer == "approved" else pb.REFUND_STATUS_FAILED
    )
    assert not ended.refund.HasField("pending_reason")
    settled = await payments.get_refund(account_id, waiting.id)
    assert settled.status is not RefundStatus.PENDING
