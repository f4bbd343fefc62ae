"""A payout asked for under an idempotency key keeps its first answer, refusals included.

Stripe saves the answer of a keyed request once the endpoint has begun its work, so a retry
with the key replays it; only a request whose parameters fail validation leaves its key free.
"""

import grpc
import pytest
from google.rpc import status_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger.objects import NewPayout, Payout
from remit.ledger.service import LedgerService
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay
from remit_api.common.v1 import common_pb2
from tests.integration.ledger.test_payouts import available, fund

pytestmark = pytest.mark.anyio


def _keyed(account_id: str, key: str, body: bytes) -> Keyed[Payout]:
    call = KeyedCall(account_id=account_id, key=key, endpoint="CreatePayout", request_body=body)
    return Keyed(call, lambda payout: payout.id.encode())


def _detail(replay: Replay) -> common_pb2.ErrorDetail:
    status = status_pb2.Status.FromString(replay.body)
    detail = common_pb2.ErrorDetail()
    assert status.details[0].Unpack(detail)
    return detail


async def test_a_refused_payout_retried_after_money_arrived_replays_its_refusal(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    first_net = await fund(core_engine, account_id, clock, 1_000)
    keyed = _keyed(account_id, "too-much", b"payout 5000")
    new = NewPayout(amount=5_000, currency="usd")
    with pytest.raises(RemitError) as refused:
        await service.create_payout_once(account_id, keyed, new)
    assert refused.value.code == "balance_insufficient"

    clock.advance(3_600)
    second_net = await fund(core_engine, account_id, clock, 10_000)
    retried = await service.create_payout_once(account_id, keyed, new)

    assert isinstance(retried, Replay)
    assert retried.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    detail = _detail(retried)
    assert (detail.code, detail.param) == ("balance_insufficient", "amount")
    assert detail.http_status == 400
    assert detail.message == refused.value.message
    listed, _ = await service.list_payouts(account_id, limit=10)
    assert listed == []
    assert await available(service, account_id) == first_net + second_net


async def test_a_payout_failing_validation_leaves_its_key_free(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 1_000)
    with pytest.raises(RemitError) as invalid:
        await service.create_payout_once(
            account_id, _keyed(account_id, "fixed", b"payout 0"), NewPayout(0, "usd")
        )
    assert invalid.value.kind is ErrorKind.INVALID_ARGUMENT
    # Other parameters under the key are a new request, not an idempotency mismatch.
    fixed = await service.create_payout_once(
        account_id, _keyed(account_id, "fixed", b"payout 100"), NewPayout(100, "usd")
    )
    assert isinstance(fixed, Done)
    assert fixed.value.amount == 100
