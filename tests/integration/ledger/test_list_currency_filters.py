"""The ledger's list filters read a currency as its postings do: in any case, and refused
(INVALID_ARGUMENT `invalid_currency`, on `currency`) when it names none the ledger holds, not
answered with an empty page. Against a real PostgreSQL, over real gRPC."""

from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.ledger.service import LedgerService
from remit_api.ledger.v1 import ledger_pb2 as pb
from remit_api.ledger.v1 import ledger_pb2_grpc
from tests.integration.ledger.test_derived_ids_over_grpc import ledger_stub
from tests.integration.ledger.test_payouts import fund

pytestmark = pytest.mark.anyio

NO_CURRENCY = ["zzz", "x" * 100, "", "\u212awd"]  # the Kelvin sign lower-cases to k


@pytest.fixture
async def stub(
    core_engine: AsyncEngine, clock: FixedClock
) -> AsyncIterator["ledger_pb2_grpc.LedgerServiceAsyncStub"]:
    async with ledger_stub(LedgerService(core_engine, clock)) as made:
        yield made


async def _refused_currency(call: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert (detail.code, detail.param) == ("invalid_currency", "currency")


async def test_ledger_accounts_are_listed_by_a_currency_in_any_case(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub", account_id: str
) -> None:
    md = ((ACCOUNT_KEY, account_id),)
    postings = [
        pb.Posting(ledger_account="hold.a", amount_minor=5, currency="USD"),
        pb.Posting(ledger_account="hold.b", amount_minor=-5, currency="usd"),
    ]
    await stub.PostTransaction(
        pb.PostTransactionRequest(transaction_id="t", postings=postings), metadata=md
    )
    for currency in ("USD", "usd", "Usd"):
        listed = await stub.ListLedgerAccountBalances(
            pb.ListLedgerAccountBalancesRequest(currency=currency, name_prefix="hold."),
            metadata=md,
        )
        assert [(a.name, a.currency) for a in listed.data] == [("hold.a", "usd"), ("hold.b", "usd")]


@pytest.mark.parametrize("currency", NO_CURRENCY)
async def test_ledger_accounts_in_no_currency_the_ledger_holds_are_refused(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub", account_id: str, currency: str
) -> None:
    request = pb.ListLedgerAccountBalancesRequest(currency=currency)
    await _refused_currency(
        stub.ListLedgerAccountBalances(request, metadata=((ACCOUNT_KEY, account_id),))
    )


async def test_balance_transactions_are_listed_by_a_currency_in_any_case(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub",
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
) -> None:
    await fund(core_engine, account_id, clock, 1_000)
    md = ((ACCOUNT_KEY, account_id),)
    for currency in ("USD", "usd"):
        listed = await stub.ListBalanceTransactions(
            pb.ListBalanceTransactionsRequest(currency=currency), metadata=md
        )
        assert [t.currency for t in listed.data] == ["usd"]
    other = await stub.ListBalanceTransactions(
        pb.ListBalanceTransactionsRequest(currency="EUR"), metadata=md
    )
    assert list(other.data) == []


@pytest.mark.parametrize("currency", NO_CURRENCY)
async def test_balance_transactions_in_no_currency_the_ledger_holds_are_refused(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub", account_id: str, currency: str
) -> None:
    request = pb.ListBalanceTransactionsRequest(currency=currency)
    await _refused_currency(
        stub.ListBalanceTransactions(request, metadata=((ACCOUNT_KEY, account_id),))
    )
