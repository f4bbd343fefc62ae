"""The generic posting calls refuse the chart's accounts and the ids the ledger derives: such
rows would no longer add up with the balance transactions, or would take the id a later
posting of the ledger needs (and fail it, and its job batch, on every run)."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger import journal
from remit.ledger.domain import Posting, TransactionRequest
from remit.ledger.repository import JournalRepository
from remit.ledger.service import LedgerService

pytestmark = pytest.mark.anyio


def _request(transaction_id: str, to: str = "wallet", pending: bool = False) -> TransactionRequest:
    return TransactionRequest(
        transaction_id=transaction_id,
        postings=(Posting("world", -100, "usd"), Posting(to, 100, "usd")),
        pending=pending,
    )


def _refused_field(raised: pytest.ExceptionInfo[RemitError]) -> str | None:
    assert raised.value.kind is ErrorKind.INVALID_ARGUMENT
    return raised.value.param


@pytest.mark.parametrize(
    "system_account",
    ["fees", "network_fees", "payouts_in_transit", "acquirer_clearing", "paid_out", "pending"],
)
async def test_posting_to_a_system_account_is_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, system_account: str
) -> None:
    service = LedgerService(core_engine, clock)
    with pytest.raises(RemitError) as raised:
        await service.post_transaction(account_id, _request("mine", to=system_account))
    assert _refused_field(raised) == "postings"
    async with core_engine.connect() as db:
        assert await JournalRepository(db).get_transaction(account_id, "mine") is None


@pytest.mark.parametrize("derived", ["txn_abc:available", "po_abc:paid", "ch_abc:capture"])
async def test_an_id_the_ledger_derives_is_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, derived: str
) -> None:
    service = LedgerService(core_engine, clock)
    with pytest.raises(RemitError) as raised:
        await service.post_transaction(account_id, _request(derived))
    assert _refused_field(raised) == "transaction_id"
    async with core_engine.connect() as db:
        assert await JournalRepository(db).get_transaction(account_id, derived) is None


async def test_ids_of_the_callers_own_are_taken(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    posted = await service.post_transaction(account_id, _request("order_7:settle"))
    assert posted.transaction.id == "order_7:settle"


async def test_posting_or_voiding_a_pending_transaction_under_a_derived_id_is_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    await service.post_transaction(account_id, _request("hold", pending=True))
    with pytest.raises(RemitError) as posting:
        await service.post_pending(
            account_id,
            pending_transaction_id="hold",
            transaction_id="po_abc:paid",
            postings=[],
            metadata={},
        )
    assert _refused_field(posting) == "transaction_id"
    with pytest.raises(RemitError) as voiding:
        await service.void_pending(
            account_id, pending_transaction_id="hold", transaction_id="txn_a:available", metadata={}
        )
    assert _refused_field(voiding) == "transaction_id"


async def test_a_pending_transaction_of_the_ledgers_own_cannot_be_posted_or_voided(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A hold the ledger placed on one of its system accounts (here on `fees`) is its own."""
    async with core_engine.begin() as db:
        await journal.post(
            db, account_id, _request("ours", to="fees", pending=True), now=clock.now()
        )
    service = LedgerService(core_engine, clock)
    with pytest.raises(RemitError) as posting:
        await service.post_pending(
            account_id, pending_transaction_id="ours", transaction_id="p", postings=[], metadata={}
        )
    assert _refused_field(posting) == "pending_transaction_id"
    with pytest.raises(RemitError) as voiding:
        await service.void_pending(
            account_id, pending_transaction_id="ours", transaction_id="v", metadata={}
        )
    assert _refused_field(voiding) == "pending_transaction_id"
