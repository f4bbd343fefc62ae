"""`remit ledger verify`: recompute everything the ledger stores from its postings.

The checks, each independent of the running balances it audits:
1. every transaction's postings sum to zero per currency;
2. every ledger account's stored balances equal what its postings imply (posted: POSTED and
   POST_PENDING postings; pending in/out: the legs of still-open PENDING transactions);
3. every account's hash chain recomputes: sequences 1..n without gaps, each previous_hash the
   hash before it, each hash the SHA-256 of its content (a posting read only through a ledger
   account of its own merchant), and a chain head, on the last one;
4. Stripe's view agrees: the net of pending (available) balance transactions equals the
   pending (available) balance Stripe shows, per account and currency: the ledger account's
   posted balance, less for available what refunds still waiting for the acquirer hold
   (`balances.shown_minor`);
5. what the hash leaves out agrees with what it covers: each pending transaction's outcome and
   each reversal's record (`verify_outcomes`);
6. each balance transaction matches the posting it names, each ledger account's guard is the
   chart's, and no charge is refunded beyond its amount (`verify_balance_transactions`);
7. every ledger transaction Stripe shows as a balance transaction has one
   (`verify_missing_balance_transactions`), and the payouts table agrees with the ledger
   transactions that moved each payout's money, every leg of every step to the payout's
   amount (`verify_payouts`), and, summed by status, with the balances of payouts_in_transit
   and paid_out (`verify_payout_totals`); and every posting moves money on a ledger account of
   its own merchant (`verify_posting_owners`);
8. given a checkpoint file, the chains still pass through every position it recorded, with
   the hash it recorded (`remit.ledger.anchoring`): the chains alone cannot show history that
   was rewritten and its hashes recomputed, the checkpoints kept outside the database can.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Row, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.anchoring import CheckpointReport, OpenedCheckpointFile, check_checkpoints
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.balances import shown_minor
from remit.ledger.chart import AVAILABLE, PENDING
from remit.ledger.domain import (
    LedgerTransaction,
    PendingStatus,
    Posting,
    TransactionKind,
    chain_hash,
)
from remit.ledger.objects import BalanceTransactionStatus
from remit.ledger.repository import transaction_from_row
from remit.ledger.tables import (
    ledger_accounts,
    ledger_chains,
    ledger_postings,
    ledger_transactions,
)
from remit.ledger.verify_balance_transactions import (
    account_flag_mismatches,
    balance_transaction_mismatches,
    over_refunded_charges,
)
from remit.ledger.verify_differences import Difference as Difference
from remit.ledger.verify_differences import DifferenceKind as DifferenceKind
from remit.ledger.verify_missing_balance_transactions import missing_balance_transactions
from remit.ledger.verify_outcomes import pending_outcome_mismatches, reversal_mismatches
from remit.ledger.verify_payout_totals import payout_total_mismatches
from remit.ledger.verify_payouts import payout_mismatches
from remit.ledger.verify_posting_owners import foreign_ledger_accounts


@dataclass(frozen=True)
class ChainBreak:
    account_id: str
    sequence: int
    transaction_id: str
    expected_hash: str
    actual_hash: str


@dataclass(frozen=True)
class VerifyReport:
    transactions_checked: int
    verified_at: datetime
    differences: list[Difference] = field(default_factory=list)
    chain_breaks: list[ChainBreak] = field(default_factory=list)
    checkpoints: CheckpointReport | None = None

    @property
    def ok(self) -> bool:
        return (
            not self.differences
            and not self.chain_breaks
            and (self.checkpoints is None or self.checkpoints.ok)
        )


async def verify_ledger(
    db: AsyncConnection,
    *,
    account_id: str | None = None,
    now: datetime,
    checkpoints: OpenedCheckpointFile | None = None,
) -> VerifyReport:
    differences = await _unbalanced(db, account_id)
    differences += await _balance_mismatches(db, account_id)
    differences += await pending_outcome_mismatches(db, account_id)
    differences += await reversal_mismatches(db, account_id)
    differences += await _stripe_view_mismatches(db, account_id)
    differences += await balance_transaction_mismatches(db, account_id)
    differences += await over_refunded_charges(db, account_id)
    differences += await account_flag_mismatches(db, account_id)
    differences += await missing_balance_transactions(db, account_id)
    differences += await payout_mismatches(db, account_id)
    differences += await payout_total_mismatches(db, account_id)
    differences += await foreign_ledger_accounts(db, account_id)
    checked, breaks = await _chain_breaks(db, account_id)
    anchored = None
    if checkpoints is not None:
        first_break: dict[str, int] = {}
        for chain_break in breaks:
            if chain_break.transaction_id:  # not the head's
                seen = first_break.get(chain_break.account_id, chain_break.sequence)
                first_break[chain_break.account_id] = min(seen, chain_break.sequence)
        anchored = await check_checkpoints(
            db,
            checkpoints.path,
            checkpoints.lines(),
            first_break=first_break,
            account_id=account_id,
            now=now,
            interval_s=checkpoints.file.interval_s,
        )
    return VerifyReport(
        transactions_checked=checked,
        verified_at=now,
        differences=differences,
        chain_breaks=breaks,
        checkpoints=anchored,
    )


async def _unbalanced(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    p, la = ledger_postings.c, ledger_accounts.c
    total = func.sum(p.amount_minor)
    query = (
        select(p.account_id, p.transaction_id, la.currency, total.label("total"))
        # Only the merchant's own ledger accounts: a leg repointed to another merchant's
        # account leaves the transaction unbalanced (`verify_posting_owners`).
        .join(ledger_accounts, _own_ledger_account())
        .group_by(p.account_id, p.transaction_id, la.currency)
        .having(total != 0)
    )
    if account_id is not None:
        query = query.where(p.account_id == account_id)
    return [
        Difference(
            kind=DifferenceKind.UNBALANCED_TRANSACTION,
            account_id=row.account_id,
            transaction_id=row.transaction_id,
            currency=row.currency,
            expected_minor=0,
            actual_minor=int(row.total),
            description=f"postings of {row.transaction_id} sum to {row.total} {row.currency}",
        )
        for row in await db.execute(query)
    ]


async def _balance_mismatches(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    p, t, la = ledger_postings.c, ledger_transactions.c, ledger_accounts.c
    posted_kinds = [TransactionKind.POSTED.value, TransactionKind.POST_PENDING.value]
    open_pending = and_(
        t.kind == TransactionKind.PENDING.value, t.pending_status == PendingStatus.OPEN.value
    )
    implied = (
        select(
            p.ledger_account_id.label("la_id"),
            p.account_id.label("owner"),
            func.sum(case((t.kind.in_(posted_kinds), p.amount_minor), else_=0)).label("posted"),
            func.sum(case((and_(open_pending, p.amount_minor > 0), p.amount_minor), else_=0)).label(
                "incoming"
            ),
            func.sum(
                case((and_(open_pending, p.amount_minor < 0), -p.amount_minor), else_=0)
            ).label("outgoing"),
        )
        .join(
            ledger_transactions,
            and_(t.account_id == p.account_id, t.id == p.transaction_id),
        )
        .group_by(p.ledger_account_id, p.account_id)
        .subquery()
    )
    query = select(
        la.account_id,
        la.name,
        la.currency,
        la.posted_balance_minor,
        la.pending_incoming_minor,
        la.pending_outgoing_minor,
        func.coalesce(implied.c.posted, literal(0)).label("posted"),
        func.coalesce(implied.c.incoming, literal(0)).label("incoming"),
        func.coalesce(implied.c.outgoing, literal(0)).label("outgoing"),
        # What the merchant's own postings imply: another merchant's posting repointed here
        # counts for neither (`verify_posting_owners`).
    ).outerjoin(implied, and_(implied.c.la_id == la.id, implied.c.owner == la.account_id))
    if account_id is not None:
        query = query.where(la.account_id == account_id)
    found: list[Difference] = []
    for row in await db.execute(query):
        for what, stored, expected in (
            ("posted balance", row.posted_balance_minor, row.posted),
            ("pending incoming", row.pending_incoming_minor, row.incoming),
            ("pending outgoing", row.pending_outgoing_minor, row.outgoing),
        ):
            if int(stored) != int(expected):
                found.append(
                    Difference(
                        kind=DifferenceKind.BALANCE_MISMATCH,
                        account_id=row.account_id,
                        ledger_account=row.name,
                        currency=row.currency,
                        expected_minor=int(expected),
                        actual_minor=int(stored),
                        description=f"{row.name} {what}: stored {stored}, postings imply "
                        f"{expected}",
                    )
                )
    return found


def _own_ledger_account() -> ColumnElement[bool]:
    """A posting's ledger account, as long as it belongs to the posting's own merchant."""
    la, p = ledger_accounts.c, ledger_postings.c
    return and_(la.id == p.ledger_account_id, la.account_id == p.account_id)


async def _stripe_view_mismatches(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    nets = await BalanceRepository(db).net_by_status(account_id)
    la = ledger_accounts.c
    query = select(
        la.account_id, la.name, la.currency, la.posted_balance_minor, la.pending_outgoing_minor
    ).where(la.name.in_([PENDING, AVAILABLE]))
    if account_id is not None:
        query = query.where(la.account_id == account_id)
    ledger = {
        (row.account_id, row.currency, row.name): shown_minor(
            row.name, int(row.posted_balance_minor), int(row.pending_outgoing_minor)
        )
        for row in await db.execute(query)
    }
    keys = {(a, c) for a, c, _ in ledger} | {(a, c) for a, c, _ in nets}
    found: list[Difference] = []
    for owner, currency in sorted(keys):
        for name, status in (
            (PENDING, BalanceTransactionStatus.PENDING),
            (AVAILABLE, BalanceTransactionStatus.AVAILABLE),
        ):
            held = ledger.get((owner, currency, name), 0)
            shown = nets.get((owner, currency, status), 0)
            if held != shown:
                found.append(
                    Difference(
                        kind=DifferenceKind.BALANCE_TRANSACTION_MISMATCH,
                        account_id=owner,
                        ledger_account=name,
                        currency=currency,
                        expected_minor=held,
                        actual_minor=shown,
                        description=f"{status.value} balance transactions net {shown}, "
                        f"the {name} balance shows {held}",
                    )
                )
    return found


async def _transactions_in_chain_order(
    db: AsyncConnection, account_id: str | None
) -> AsyncIterator[LedgerTransaction]:
    t, p, la = ledger_transactions.c, ledger_postings.c, ledger_accounts.c
    query = (
        select(
            ledger_transactions,
            la.name.label("posting_name"),
            la.currency.label("posting_currency"),
            p.amount_minor.label("posting_amount"),
        )
        .select_from(
            ledger_transactions.outerjoin(
                ledger_postings,
                and_(p.account_id == t.account_id, p.transaction_id == t.id),
                # A posting on another merchant's ledger account (the hash covers the account's
                # name and currency, not its owner) drops out of the recomputed hash: a break.
            ).outerjoin(ledger_accounts, _own_ledger_account())
        )
        .order_by(t.account_id, t.sequence, p.id)
    )
    if account_id is not None:
        query = query.where(t.account_id == account_id)
    result = await db.stream(query.execution_options(yield_per=5000))
    current: Row[tuple[object, ...]] | None = None
    postings: list[Posting] = []
    async for row in result:
        if current is not None and (row.account_id, row.id) != (current.account_id, current.id):
            yield transaction_from_row(current, postings)
            postings = []
        current = row
        if row.posting_name is not None:
            postings.append(Posting(row.posting_name, row.posting_amount, row.posting_currency))
    if current is not None:
        yield transaction_from_row(current, postings)


async def _chain_breaks(
    db: AsyncConnection, account_id: str | None
) -> tuple[int, list[ChainBreak]]:
    breaks: list[ChainBreak] = []
    checked = 0
    owner: str | None = None
    previous_hash = ""
    expected_sequence = 1
    last: dict[str, tuple[int, str]] = {}
    async for transaction in _transactions_in_chain_order(db, account_id):
        checked += 1
        if transaction.account_id != owner:
            owner, previous_hash, expected_sequence = transaction.account_id, "", 1
        recomputed = chain_hash(previous_hash, transaction)
        if (
            transaction.sequence != expected_sequence
            or transaction.previous_hash != previous_hash
            or transaction.hash != recomputed
        ):
            breaks.append(
                ChainBreak(
                    account_id=transaction.account_id,
                    sequence=transaction.sequence,
                    transaction_id=transaction.id,
                    expected_hash=recomputed,
                    actual_hash=transaction.hash,
                )
            )
        # Continue from the stored hash so one altered transaction is reported once, not as
        # every transaction after it.
        previous_hash = transaction.hash
        expected_sequence = transaction.sequence + 1
        last[transaction.account_id] = (transaction.sequence, transaction.hash)
    breaks += await _head_breaks(db, account_id, last)
    return checked, breaks


async def _head_breaks(
    db: AsyncConnection, account_id: str | None, last: dict[str, tuple[int, str]]
) -> list[ChainBreak]:
    """The chain head must sit on the last transaction (a deleted tail shows up here), and an
    account with transactions must have one: without it, the account's next posting fails."""
    c = ledger_chains.c
    query = select(ledger_chains)
    if account_id is not None:
        query = query.where(c.account_id == account_id)
    found: list[ChainBreak] = []
    headless = dict(last)
    for row in await db.execute(query):
        headless.pop(row.account_id, None)
        sequence, tail_hash = last.get(row.account_id, (0, ""))
        if (row.last_sequence, row.last_hash) != (sequence, tail_hash):
            found.append(
                ChainBreak(
                    account_id=row.account_id,
                    sequence=int(row.last_sequence),
                    transaction_id="",
                    expected_hash=tail_hash,
                    actual_hash=row.last_hash,
                )
            )
    for owner, (sequence, tail_hash) in sorted(headless.items()):
        found.append(
            ChainBreak(
                account_id=owner,
                sequence=sequence,
                transaction_id="",
                expected_hash=tail_hash,
                actual_hash="",
            )
        )
    return found
