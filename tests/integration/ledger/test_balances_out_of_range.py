"""A posting that would take a ledger account's balance (posted, or reserved by a pending
transaction) past what the database's bigint holds is refused precisely, FAILED_PRECONDITION
`balance_out_of_range`, not INTERNAL: each posting is within MAX_POSTING_AMOUNT, but nothing
bounds the sum of many. Nothing of it is written, and the ledger still verifies. Against a real
PostgreSQL, over real gRPC."""

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.ledger.domain import MAX_POSTING_AMOUNT
from remit.ledger.service import LedgerService
from remit_api.ledger.v1 import ledger_pb2 as pb
from remit_api.ledger.v1 import ledger_pb2_grpc
from tests.integration.ledger.test_derived_ids_over_grpc import ledger_stub

pytestmark = pytest.mark.anyio

MOST = MAX_POSTING_AMOUNT


@pytest.fixture
async def stub(
    core_engine: AsyncEngine, clock: FixedClock
) -> AsyncIterator["ledger_pb2_grpc.LedgerServiceAsyncStub"]:
    async with ledger_stub(LedgerService(core_engine, clock)) as made:
        yield made


def _moving(amount: int) -> list[pb.Posting]:
    return [
        pb.Posting(ledger_account="hold.a", amount_minor=amount, currency="usd"),
        pb.Posting(ledger_account="hold.b", amount_minor=-amount, currency="usd"),
    ]


async def _refused_out_of_range(call: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION, refused.value.details()
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert detail.code == "balance_out_of_range"
    assert "beyond what the ledger can hold" in detail.message


async def _balances(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub", md: tuple[tuple[str, str]]
) -> dict[str, tuple[int, int, int]]:
    listed = await stub.ListLedgerAccountBalances(
        pb.ListLedgerAccountBalancesRequest(), metadata=md
    )
    return {
        account.name: (
            account.posted_balance_minor,
            account.pending_incoming_minor,
            account.pending_outgoing_minor,
        )
        for account in listed.data
    }


async def _verified(stub: "ledger_pb2_grpc.LedgerServiceAsyncStub", account_id: str) -> None:
    report = await stub.VerifyLedger(pb.VerifyLedgerRequest(account_id=account_id))
    assert report.ok, report


async def test_a_posting_past_the_range_of_a_balance_is_refused_and_writes_nothing(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub",
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    md = ((ACCOUNT_KEY, account_id),)
    for number in range(2):
        request = pb.PostTransactionRequest(transaction_id=f"t{number}", postings=_moving(MOST))
        await stub.PostTransaction(request, metadata=md)
    before = await _balances(stub, md)

    third = pb.PostTransactionRequest(transaction_id="t2", postings=_moving(MOST))
    with caplog.at_level(logging.ERROR):
        await _refused_out_of_range(stub.PostTransaction(third, metadata=md))
    assert caplog.records == []  # a refusal of the request, not an error of remit's

    assert await _balances(stub, md) == before
    await _verified(stub, account_id)
    # The refusal is no posting: the id is still free, and a posting within range goes through.
    smaller = pb.PostTransactionRequest(transaction_id="t2", postings=_moving(1))
    assert not (await stub.PostTransaction(smaller, metadata=md)).replayed
    await _verified(stub, account_id)


async def test_a_reservation_past_the_range_of_a_pending_balance_is_refused(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub", account_id: str
) -> None:
    md = ((ACCOUNT_KEY, account_id),)
    for number in range(2):
        request = pb.PostTransactionRequest(
            transaction_id=f"p{number}", postings=_moving(MOST), pending=True
        )
        await stub.PostTransaction(request, metadata=md)
    before = await _balances(stub, md)

    third = pb.PostTransactionRequest(transaction_id="p2", postings=_moving(MOST), pending=True)
    await _refused_out_of_range(stub.PostTransaction(third, metadata=md))

    assert await _balances(stub, md) == before
    await _verified(stub, account_id)


async def test_posting_a_reservation_past_the_range_of_a_balance_is_refused(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub", account_id: str
) -> None:
    md = ((ACCOUNT_KEY, account_id),)
    for number in range(2):
        request = pb.PostTransactionRequest(transaction_id=f"t{number}", postings=_moving(MOST))
        await stub.PostTransaction(request, metadata=md)
    reserve = pb.PostTransactionRequest(transaction_id="p", postings=_moving(MOST), pending=True)
    await stub.PostTransaction(reserve, metadata=md)
    before = await _balances(stub, md)

    post = pb.PostPendingTransactionRequest(pending_transaction_id="p", transaction_id="pp")
    await _refused_out_of_range(stub.PostPendingTransaction(post, metadata=md))

    assert await _balances(stub, md) == before
    await _verified(stub, account_id)
    # Still open: it can be voided.
    void = pb.VoidPendingTransactionRequest(pending_transaction_id="p", transaction_id="pv")
    await stub.VoidPendingTransaction(void, metadata=md)
    await _verified(stub, account_id)
