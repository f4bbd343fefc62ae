"""Over the LedgerService's generic posting RPCs, no id the ledger writes for itself can be
taken: every id a charge, refund, balance transaction, payout or expiry makes it write, and any
id made from one of those. Taken first, such an id would fail the ledger's own posting on
every try (the expiry job on every run, a capture after the authorization lapsed for good).
Against a real PostgreSQL, over real gRPC."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.ledger import jobs, journal
from remit.ledger import postings as ledger
from remit.ledger.domain import PendingStatus
from remit.ledger.grpc import ledger_registration
from remit.ledger.objects import PayoutStatus
from remit.ledger.payouts import SUBMISSION_DELAY
from remit.ledger.repository import JournalRepository
from remit.ledger.service import LedgerService
from remit.ledger.tables import ledger_transactions
from remit_api.ledger.v1 import ledger_pb2 as pb
from remit_api.ledger.v1 import ledger_pb2_grpc
from tests.integration.ledger.ledger_steps import refund_held, refund_posted
from tests.integration.ledger.test_payouts import fund

pytestmark = pytest.mark.anyio

# The step each id the ledger derives ends in (`remit.ledger.postings`, `.payouts`, `.journal`).
EVERY_STEP = {
    "authorization",
    "capture",
    "fee",
    "void",
    "expired",
    "available",
    "refund_hold",
    "refund_release",
    "refund",
    "refund_failure",
    "payout",
    "cancel",
    "failure",
    "paid",
}


@asynccontextmanager
async def ledger_stub(
    service: LedgerService,
) -> AsyncIterator["ledger_pb2_grpc.LedgerServiceAsyncStub"]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    ledger_registration(service).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield ledger_pb2_grpc.LedgerServiceStub(channel)
    finally:
        await server.stop(0)


def _postings() -> list[pb.Posting]:
    return [
        pb.Posting(ledger_account="world", amount_minor=-100, currency="usd"),
        pb.Posting(ledger_account="wallet", amount_minor=100, currency="usd"),
    ]


async def _refused_param(call: object) -> str:
    """The parameter the (awaitable) RPC `call` was refused on, as INVALID_ARGUMENT."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    return detail.param


async def _every_way_is_refused(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub", account_id: str, taken: str, own_pending: str
) -> None:
    """`taken` can be neither posted, nor posted or voided as a pending transaction's
    resolution, nor resolved as a pending transaction."""
    metadata = ((ACCOUNT_KEY, account_id),)
    assert (
        await _refused_param(
            stub.PostTransaction(
                pb.PostTransactionRequest(transaction_id=taken, postings=_postings()),
                metadata=metadata,
            )
        )
        == "transaction_id"
    ), taken
    assert (
        await _refused_param(
            stub.PostTransaction(
                pb.PostTransactionRequest(transaction_id=taken, postings=_postings(), pending=True),
                metadata=metadata,
            )
        )
        == "transaction_id"
    ), taken
    for resolving in (
        stub.PostPendingTransaction(
            pb.PostPendingTransactionRequest(
                pending_transaction_id=own_pending, transaction_id=taken
            ),
            metadata=metadata,
        ),
        stub.VoidPendingTransaction(
            pb.VoidPendingTransactionRequest(
                pending_transaction_id=own_pending, transaction_id=taken
            ),
            metadata=metadata,
        ),
    ):
        assert await _refused_param(resolving) == "transaction_id", taken
    for resolving_taken in (
        stub.PostPendingTransaction(
            pb.PostPendingTransactionRequest(pending_transaction_id=taken, transaction_id="mine"),
            metadata=metadata,
        ),
        stub.VoidPendingTransaction(
            pb.VoidPendingTransactionRequest(pending_transaction_id=taken, transaction_id="mine"),
            metadata=metadata,
        ),
    ):
        assert await _refused_param(resolving_taken) == "pending_transaction_id", taken


async def _written_by_the_ledger(engine: AsyncEngine, account_id: str, clock: FixedClock) -> None:
    """Make the ledger write one of each of its own transactions on `account_id`."""
    now = clock.now()
    service = LedgerService(engine, clock)
    async with engine.begin() as db:
        await ledger.record_authorization(
            db, account_id=account_id, charge_id="ch_a", amount_minor=1000, currency="usd", now=now
        )
        captured = await ledger.record_charge_captured(
            db, account_id=account_id, charge_id="ch_a", gross_minor=800, currency="usd", now=now
        )
        await ledger.make_available(db, captured, now=now)
        await ledger.record_authorization(
            db, account_id=account_id, charge_id="ch_v", amount_minor=500, currency="usd", now=now
        )
        await ledger.record_authorization_voided(
            db, account_id=account_id, charge_id="ch_v", now=now
        )
        await ledger.record_authorization(
            db,
            account_id=account_id,
            charge_id="ch_x",
            amount_minor=500,
            currency="usd",
            now=now,
            expires_at=now + timedelta(seconds=1),
        )
        await journal.expire_pending(
            db, account_id, ledger.authorization_id_for("ch_x"), now=now + timedelta(seconds=2)
        )
        await refund_held(db, account_id, clock, charge_id="ch_a", amount_minor=100)
        await refund_posted(db, account_id, clock, charge_id="ch_a", amount_minor=100)
        await ledger.record_refund_failed(db, account_id=account_id, refund_id="re_1", now=now)
    await fund(engine, account_id, clock, 10_000)
    canceled = await service.create_payout(account_id, amount=100, currency="usd")
    await service.cancel_payout(account_id, canceled.id)
    failing = await service.create_payout(
        account_id, amount=100, currency="usd", metadata={"simulate_failure": "account_closed"}
    )
    paid = await service.create_payout(account_id, amount=100, currency="usd")
    for _ in range(2):
        clock.advance(timedelta(days=3).total_seconds() + SUBMISSION_DELAY.total_seconds())
        async with engine.begin() as db:
            await jobs.advance_payouts(db, now=clock.now())
    assert (await service.get_payout(account_id, failing.id)).status is PayoutStatus.FAILED
    assert (await service.get_payout(account_id, paid.id)).status is PayoutStatus.PAID


async def test_no_id_the_ledger_wrote_can_be_taken_over_the_generic_rpcs(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _written_by_the_ledger(core_engine, account_id, clock)
    async with core_engine.connect() as db:
        written = set(
            (
                await db.execute(
                    select(ledger_transactions.c.id).where(
                        ledger_transactions.c.account_id == account_id
                    )
                )
            ).scalars()
        )
    assert {written_id.rpartition(":")[2] for written_id in written} == EVERY_STEP
    service = LedgerService(core_engine, clock)
    async with ledger_stub(service) as stub:
        await stub.PostTransaction(
            pb.PostTransactionRequest(transaction_id="own", postings=_postings(), pending=True),
            metadata=((ACCOUNT_KEY, account_id),),
        )
        for taken in sorted(written):
            await _every_way_is_refused(stub, account_id, taken, "own")


@pytest.mark.parametrize(
    "taken",
    [
        "ch_1:authorization:expired",
        "ch_1:authorization:mine",
        "re_1:refund_hold:expired",
        "txn_1:available:2",
        "po_1:payout:x",
        "own:expired",
    ],
)
async def test_an_id_made_from_one_the_ledger_derives_is_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, taken: str
) -> None:
    async with ledger_stub(LedgerService(core_engine, clock)) as stub:
        await stub.PostTransaction(
            pb.PostTransactionRequest(transaction_id="own", postings=_postings(), pending=True),
            metadata=((ACCOUNT_KEY, account_id),),
        )
        await _every_way_is_refused(stub, account_id, taken, "own")


async def test_the_expiry_of_an_authorization_cannot_be_taken_before_it_runs(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Taken first, the expiry's id would fail the expiry job on this authorization on every
    run, and a capture after its lapse for good."""
    now = clock.now()
    async with core_engine.begin() as db:
        await ledger.record_authorization(
            db, account_id=account_id, charge_id="ch_y", amount_minor=500, currency="usd", now=now
        )
    reservation = ledger.authorization_id_for("ch_y")
    async with ledger_stub(LedgerService(core_engine, clock)) as stub:
        param = await _refused_param(
            stub.PostTransaction(
                pb.PostTransactionRequest(
                    transaction_id=f"{reservation}:expired", postings=_postings()
                ),
                metadata=((ACCOUNT_KEY, account_id),),
            )
        )
    assert param == "transaction_id"
    async with core_engine.begin() as db:
        await journal.expire_pending(db, account_id, reservation, now=now + timedelta(days=8))
    async with core_engine.connect() as db:
        lapsed = await JournalRepository(db).get_transaction(account_id, reservation)
    assert lapsed is not None
    assert (lapsed.pending_status, lapsed.resolved_by) == (
        PendingStatus.VOIDED,
        f"{reservation}:expired",
    )
