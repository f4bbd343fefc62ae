"""Property tests: any sequence of money movements keeps the books exact.

Each example replays a random program (payments with and without an authorization, partial
captures and voids, refunds under both fee policies, failed refunds, time passing, payouts that
pay, fail or are canceled, and reversals of arbitrary postings) against a fresh account on the
real database, then checks that every transaction balances, every stored balance equals the sum
of its postings, every hash chain verifies, and no cent was created or lost.
"""

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.ledger import journal, payouts
from remit.ledger import postings as ledger
from remit.ledger.chart import ACQUIRER_CLEARING, FEES
from remit.ledger.domain import Posting, TransactionRequest
from remit.ledger.fees import RefundFeePolicy
from remit.ledger.jobs import advance_payouts, release_due_funds
from remit.ledger.repository import JournalRepository
from remit.ledger.tables import ledger_accounts
from remit.ledger.verify import verify_ledger
from remit.storage.engine import dispose, make_engine
from tests.conftest import _truncate_all
from tests.integration.ledger.conftest import T0
from tests.support.postgres import WorkerDatabases

CURRENCIES = ("usd", "jpy", "kwd")


@dataclass(frozen=True)
class Pay:
    gross: int
    currency: str
    authorize: bool
    captured_percent: int  # 0 voids the authorization
    bypass_pending: bool


@dataclass(frozen=True)
class Refund:
    pick: int
    amount: int
    proportional: bool


@dataclass(frozen=True)
class FailRefund:
    pick: int


@dataclass(frozen=True)
class Wait:
    hours: int


@dataclass(frozen=True)
class PayOut:
    amount: int
    currency: str
    fails: bool


@dataclass(frozen=True)
class CancelPayout:
    pick: int


@dataclass(frozen=True)
class Transfer:
    amount: int
    currency: str


@dataclass(frozen=True)
class Reverse:
    pick: int


Step = Pay | Refund | FailRefund | Wait | PayOut | CancelPayout | Transfer | Reverse
currencies = st.sampled_from(CURRENCIES)
steps: st.SearchStrategy[Step] = st.one_of(
    st.builds(
        Pay, st.integers(1, 200_000), currencies, st.booleans(), st.integers(0, 100), st.booleans()
    ),
    st.builds(Refund, st.integers(0, 50), st.integers(1, 200_000), st.booleans()),
    st.builds(FailRefund, st.integers(0, 50)),
    st.builds(Wait, st.integers(1, 72)),
    st.builds(PayOut, st.integers(1, 100_000), currencies, st.booleans()),
    st.builds(CancelPayout, st.integers(0, 50)),
    st.builds(Transfer, st.integers(1, 10_000), currencies),
    st.builds(Reverse, st.integers(0, 50)),
)

# Refusals the program may legitimately run into; anything else fails the test.
EXPECTED_REFUSALS = {
    "balance_insufficient",
    "amount_too_large",
    "charge_already_refunded",
    "payout_not_cancelable",
    "transaction_already_reversed",
}


@dataclass
class Model:
    """What the books must show, tracked independently of the ledger."""

    captured: dict[str, int]
    refunded: dict[str, int]
    charges: list[tuple[str, str, int]]
    refunds: list[str]
    payouts: list[str]
    transfers: list[str]


async def run_program(engine: AsyncEngine, program: list[Step]) -> None:
    clock = FixedClock(T0)
    account = (await AccountsService(engine, clock).create_account()).account.id
    model = Model(defaultdict(int), defaultdict(int), [], [], [], [])
    refused: list[tuple[Step, str | None, str]] = []
    for number, step in enumerate(program):
        try:
            async with engine.begin() as db:
                await apply(db, account, clock, model, number, step)
        except RemitError as error:
            refused.append((step, error.code, error.message))
    assert [r for r in refused if r[1] not in EXPECTED_REFUSALS] == []
    async with engine.begin() as db:
        clock.advance(timedelta(days=10).total_seconds())
        await release_due_funds(db, now=clock.now())
        await advance_payouts(db, now=clock.now())
    async with engine.connect() as db:
        report = await verify_ledger(db, account_id=account, now=clock.now())
        assert report.ok, (report.differences, report.chain_breaks)
        totals = await db.execute(
            select(ledger_accounts.c.currency, func.sum(ledger_accounts.c.posted_balance_minor))
            .where(ledger_accounts.c.account_id == account)
            .group_by(ledger_accounts.c.currency)
        )
        # Money only moves between ledger accounts: per currency everything sums to zero.
        assert {currency: int(total) for currency, total in totals if total != 0} == {}
        repo = JournalRepository(db)
        for currency, captured in model.captured.items():
            clearing = await repo.get_ledger_account(account, ACQUIRER_CLEARING, currency)
            fees = await repo.get_ledger_account(account, FEES, currency)
            assert clearing is not None
            assert clearing.posted_balance_minor == -(captured - model.refunded[currency])
            assert fees is None or 0 <= fees.posted_balance_minor <= captured


async def apply(
    db: AsyncConnection, account: str, clock: FixedClock, model: Model, number: int, step: Step
) -> None:
    now = clock.now()
    match step:
        case Pay(gross, currency, authorize, percent, bypass):
            charge = f"ch_{number}"
            if authorize:
                await ledger.record_authorization(
                    db,
                    account_id=account,
                    charge_id=charge,
                    amount_minor=gross,
                    currency=currency,
                    now=now,
                )
                captured = gross * percent // 100
                if captured == 0:
                    await ledger.record_authorization_voided(
                        db, account_id=account, charge_id=charge, now=now
                    )
                    return
            else:
                captured = gross
            await ledger.record_charge_captured(
                db,
                account_id=account,
                charge_id=charge,
                gross_minor=captured,
                currency=currency,
                now=now,
                bypass_pending=bypass,
            )
            model.captured[currency] += captured
            model.charges.append((charge, currency, captured))
        case Refund(pick, amount, proportional):
            if not model.charges:
                return
            charge, currency, captured = model.charges[pick % len(model.charges)]
            refund = f"re_{number}"
            await ledger.record_refund(
                db,
                account_id=account,
                refund_id=refund,
                charge_id=charge,
                amount_minor=min(amount, captured),
                currency=currency,
                now=now,
                fee_policy=RefundFeePolicy.PROPORTIONAL if proportional else RefundFeePolicy.KEEP,
            )
            model.refunded[currency] += min(amount, captured)
            model.refunds.append(f"{refund}:{currency}:{min(amount, captured)}")
        case FailRefund(pick):
            if not model.refunds:
                return
            entry = model.refunds.pop(pick % len(model.refunds))
            refund, currency, refunded = entry.split(":")
            await ledger.record_refund_failed(db, account_id=account, refund_id=refund, now=now)
            model.refunded[currency] -= int(refunded)
        case Wait(hours):
            clock.advance(hours * 3600)
            await release_due_funds(db, now=clock.now())
            await advance_payouts(db, now=clock.now())
        case PayOut(amount, currency, fails):
            made = await payouts.create_payout(
                db,
                account_id=account,
                amount=amount,
                currency=currency,
                now=now,
                metadata={"simulate_failure": "account_closed"} if fails else None,
            )
            model.payouts.append(made.id)
        case CancelPayout(pick):
            if model.payouts:
                await payouts.cancel_payout(
                    db,
                    account_id=account,
                    payout_id=model.payouts[pick % len(model.payouts)],
                    now=now,
                )
        case Transfer(amount, currency):
            txid = f"transfer_{number}"
            await journal.post(
                db,
                account,
                TransactionRequest(
                    transaction_id=txid,
                    postings=(
                        Posting("treasury", -amount, currency),
                        Posting("reserve", amount, currency),
                    ),
                ),
                now=now,
            )
            model.transfers.append(f"{txid}:{currency}")
        case Reverse(pick):
            if model.transfers:
                txid = model.transfers[pick % len(model.transfers)].split(":")[0]
                await journal.reverse(
                    db, account, transaction_id=txid, reversal_id=f"{txid}:reversal", now=now
                )


@pytest.fixture(scope="module")
def core_url(databases: WorkerDatabases) -> Iterator[str]:
    yield databases.core_url

    async def clean() -> None:
        engine = make_engine(databases.core_url, pool_size=1)
        try:
            await _truncate_all(engine)
        finally:
            await dispose(engine)

    asyncio.run(clean())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=st.lists(steps, min_size=1, max_size=30))
def test_any_sequence_of_money_movements_keeps_the_books_exact(
    core_url: str, program: list[Step]
) -> None:
    async def scenario() -> None:
        engine = make_engine(core_url, pool_size=2)
        try:
            await run_program(engine, program)
        finally:
            await dispose(engine)

    asyncio.run(scenario())
