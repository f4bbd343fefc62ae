"""Payouts: money leaving the available balance for the merchant's bank, with a simulated bank.

Ledger transactions (see `chart.py`):

- created, "po:payout": available -amount, payouts_in_transit +amount, guarded so the
  available balance never goes below zero (400 balance_insufficient instead);
- paid, "po:paid": payouts_in_transit -amount, paid_out +amount;
- failed or canceled, "po:failure" / "po:cancel": payouts_in_transit -amount, available
  +amount (the funds come back, with a payout_failure / payout_cancel balance transaction,
  and a `balance.available` event after the payout's own).

Payouts are paid from card funds, the only funds remit holds: one asked of the bank_account or
fpx balance finds it empty and is refused 400 balance_insufficient, as Stripe refuses a payout
its source balance does not cover. They go to the account's bank account: remit keeps no
external accounts, so a payout naming a `destination` is refused 404 resource_missing.

A payout is a whole number of what a bank pays (`payout_amount_step`): in `huf` and `twd`,
two-decimal on the API, a multiple of 100 (whole forints and dollars), as in `isk`. A manual
payout of another amount is refused; an automatic one pays the largest such amount the balance
holds and leaves the rest available for a later payout.

The simulated bank: a payout stays `pending` for `SUBMISSION_DELAY` (it can be canceled then),
goes `in_transit`, and on its `arrival_date` (standard: midnight UTC of the day two days after
creation, for Stripe's arrival_date is a date; instant: at once) becomes `paid`, or `failed`
when it was created with description "fail" or with metadata `simulate_failure` (its value,
when it is a known failure code such as account_closed, is the failure_code; otherwise
could_not_process).
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import case, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from remit.accounts.tables import accounts
from remit.core.currency import (
    PAYOUT_STEPS,
    SUPPORTED_CURRENCIES,
    nearest_multiples,
    payout_amount_step,
)
from remit.core.errors import ErrorKind, echoed, not_found
from remit.core.ids import new_id
from remit.core.metadata import updated_metadata
from remit.core.statement_descriptors import statement_descriptor_problem
from remit.ledger import events, journal
from remit.ledger.available_events import announce_available
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.chart import AVAILABLE, PAID_OUT, PAYOUTS_IN_TRANSIT
from remit.ledger.domain import (
    MAX_POSTING_AMOUNT,
    LedgerError,
    Posting,
    TransactionRequest,
    ledger_invalid,
)
from remit.ledger.messages import payout_message
from remit.ledger.objects import (
    BalanceTransaction,
    BalanceTransactionStatus,
    BalanceTransactionType,
    Payout,
    PayoutMethod,
    PayoutStatus,
)
from remit.ledger.payout_contents import link_paid_out
from remit.ledger.repository import JournalRepository
from remit.ledger.tables import ledger_accounts
from remit.ledger.tables import payouts as payouts_table

SUBMISSION_DELAY: Final = timedelta(seconds=60)
STANDARD_ARRIVAL: Final = timedelta(days=2)
CARD_FUNDS: Final = "card"
SIMULATE_FAILURE_KEY: Final = "simulate_failure"
FAIL_DESCRIPTION: Final = "fail"
FAILURE_MESSAGES: Final = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "bank_account_restricted": "The bank account has restrictions on payouts.",
    "could_not_process": "The bank could not process this payout.",
    "insufficient_funds": "Your Stripe balance was insufficient to cover the payout.",
    "invalid_account_number": "The bank account number appears to be invalid.",
    "no_account": "The bank account details on file are probably incorrect.",
}


class PayoutError(LedgerError):
    """A payout request the ledger refuses."""


def _insufficient(amount: int, available: int, currency: str) -> PayoutError:
    return PayoutError(
        message=f"You have insufficient funds in your balance for this payout: it needs "
        f"{amount} {currency} and {max(available, 0)} {currency} is available.",
        kind=ErrorKind.FAILED_PRECONDITION,
        code="balance_insufficient",
        param="amount",
    )


async def _insufficient_for(
    db: AsyncConnection, account_id: str, amount: int, currency: str
) -> PayoutError:
    """`_insufficient`, with what the account's available balance holds now."""
    held = await JournalRepository(db).get_ledger_account(account_id, AVAILABLE, currency)
    return _insufficient(amount, 0 if held is None else held.spendable_minor, currency)


def _no_such_funds(amount: int, currency: str, source_type: str) -> PayoutError:
    return PayoutError(
        message=f"You have insufficient funds in your {source_type} balance for this payout: "
        f"it needs {amount} {currency} and 0 {currency} is available. All funds here are card "
        f"funds; pay out with source_type={CARD_FUNDS}.",
        kind=ErrorKind.FAILED_PRECONDITION,
        code="balance_insufficient",
        param="source_type",
    )


def _refuse_invalid_descriptor(statement_descriptor: str | None) -> None:
    """A payout's descriptor is held to Stripe's rules for one: at most 22 characters, none
    a statement cannot show; unlike a payment's, it needs no letter. Checked where a payout is
    made only: one stored before is shown as it was."""
    if statement_descriptor is None:
        return
    problem = statement_descriptor_problem(
        statement_descriptor, "statement_descriptor", needs_letter=False
    )
    if problem is not None:
        raise ledger_invalid(problem.message, "statement_descriptor", code=problem.code)


def _no_external_account(destination: str) -> PayoutError:
    """remit keeps no external accounts (a payout goes to the account's bank, `type`
    bank_account, with `destination` null), so any `destination` names an external account that
    does not exist: refused as Stripe refuses one it does not know, rather than stored and shown
    back as if the money went there."""
    return PayoutError(
        message=f"No such external account: '{echoed(destination)}'. remit keeps no external "
        "accounts to pay out to: leave destination out and the payout goes to the account's "
        "bank account.",
        kind=ErrorKind.NOT_FOUND,
        code="resource_missing",
        param="destination",
    )


def arrival_date(created: datetime, method: PayoutMethod) -> datetime:
    """When the simulated bank pays: at once for an instant payout; for a standard one, the
    day `STANDARD_ARRIVAL` after creation, at midnight UTC (Stripe's arrival_date is a date)."""
    if method is PayoutMethod.INSTANT:
        return created
    return _day_start((created + STANDARD_ARRIVAL).astimezone(UTC))


def _movement(po_id: str, step: str, *legs: tuple[str, int, str]) -> TransactionRequest:
    return TransactionRequest(
        transaction_id=f"{po_id}:{step}",
        postings=tuple(Posting(name, amount, currency) for name, amount, currency in legs),
        metadata={"payout": po_id},
        guards=frozenset({AVAILABLE}) if step == "payout" else frozenset(),
    )


def _paid_out_by(payout: Payout, type: BalanceTransactionType) -> str | None:
    """The payout a payout's own balance transaction is listed under. Funds a failed automatic
    payout returns are paid out again by the next one, which links them then; a manual
    payout's return stays with it, netting its payout row to zero."""
    if payout.automatic and type is not BalanceTransactionType.PAYOUT:
        return None
    return payout.id


def _balance_transaction(
    payout: Payout, type: BalanceTransactionType, amount: int, ledger_id: str, now: datetime
) -> BalanceTransaction:
    return BalanceTransaction(
        id=new_id("txn"),
        account_id=payout.account_id,
        ledger_transaction_id=ledger_id,
        type=type,
        amount=amount,
        fee=0,
        net=amount,
        currency=payout.currency,
        status=BalanceTransactionStatus.AVAILABLE,
        available_on=now,
        created_at=now,
        source_id=payout.id,
        payout_id=_paid_out_by(payout, type),
        description=payout.description,
    )


async def create_payout(
    db: AsyncConnection,
    *,
    account_id: str,
    amount: int,
    currency: str,
    now: datetime,
    description: str | None = None,
    method: PayoutMethod = PayoutMethod.STANDARD,
    statement_descriptor: str | None = None,
    metadata: dict[str, str] | None = None,
    destination: str | None = None,
    source_type: str = "card",
    automatic: bool = False,
) -> Payout:
    if isinstance(amount, bool) or amount <= 0:
        raise ledger_invalid(
            "This value must be greater than or equal to 1.", "amount", code="amount_too_small"
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise ledger_invalid(f"Invalid currency: {currency}.", "currency", code="invalid_currency")
    step = payout_amount_step(currency)
    if amount % step:
        raise ledger_invalid(
            f"Invalid amount ({amount}): a payout in {currency} must be a multiple of {step} "
            f"(whole units of the currency), such as {nearest_multiples(amount, step)}.",
            "amount",
        )
    _refuse_invalid_descriptor(statement_descriptor)
    if destination is not None:
        raise _no_external_account(destination)
    if source_type != CARD_FUNDS:
        raise _no_such_funds(amount, currency, source_type)
    if amount > MAX_POSTING_AMOUNT:
        # More than any balance the ledger can hold: the answer is the one any amount beyond
        # the balance gets, naming `amount`, not the ledger's own bound on a posting.
        raise await _insufficient_for(db, account_id, amount, currency)
    po_id = new_id("po")
    try:
        await journal.post(
            db,
            account_id,
            _movement(
                po_id,
                "payout",
                (AVAILABLE, -amount, currency),
                (PAYOUTS_IN_TRANSIT, amount, currency),
            ),
            now=now,
        )
    except LedgerError as error:
        if error.code != "balance_insufficient":
            raise
        raise await _insufficient_for(db, account_id, amount, currency) from None
    payout = Payout(
        id=po_id,
        account_id=account_id,
        amount=amount,
        currency=currency,
        status=PayoutStatus.PENDING,
        arrival_date=arrival_date(now, method),
        automatic=automatic,
        method=method,
        source_type=source_type,
        created_at=now,
        updated_at=now,
        metadata=dict(metadata or {}),
        description=description,
        destination=destination,
        statement_descriptor=statement_descriptor,
    )
    txn = _balance_transaction(
        payout, BalanceTransactionType.PAYOUT, -amount, f"{po_id}:payout", now
    )
    payout = replace(payout, balance_transaction_id=txn.id)
    repo = BalanceRepository(db)
    await repo.insert_balance_transaction(txn)
    await repo.insert_payout(payout)
    await events.record_event(
        db,
        account_id=account_id,
        type=events.PAYOUT_CREATED,
        message=payout_message(payout),
        object_id=po_id,
        now=now,
    )
    return payout


async def _locked(db: AsyncConnection, account_id: str, payout_id: str) -> Payout:
    payout = await BalanceRepository(db).get_payout(account_id, payout_id, for_update=True)
    if payout is None:
        raise not_found("payout", payout_id, param="payout")
    return payout


async def _return_funds(
    db: AsyncConnection, payout: Payout, step: str, type: BalanceTransactionType, now: datetime
) -> BalanceTransaction:
    ledger_id = f"{payout.id}:{step}"
    await journal.post(
        db,
        payout.account_id,
        _movement(
            payout.id,
            step,
            (PAYOUTS_IN_TRANSIT, -payout.amount, payout.currency),
            (AVAILABLE, payout.amount, payout.currency),
        ),
        now=now,
    )
    txn = _balance_transaction(payout, type, payout.amount, ledger_id, now)
    await BalanceRepository(db).insert_balance_transaction(txn)
    return txn


async def cancel_payout(
    db: AsyncConnection, *, account_id: str, payout_id: str, now: datetime
) -> Payout:
    payout = await _locked(db, account_id, payout_id)
    if payout.status is not PayoutStatus.PENDING or payout.automatic:
        raise PayoutError(
            message="Payouts can only be canceled while they are pending, and automatic "
            f"payouts cannot be canceled; this payout is {payout.status.value}"
            f"{' and automatic' if payout.automatic else ''}.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="payout_not_cancelable",
        )
    returned = await _return_funds(db, payout, "cancel", BalanceTransactionType.PAYOUT_CANCEL, now)
    # Stripe's failure_balance_transaction: "If the payout failed or was canceled, ... the
    # balance transaction that reversed the initial balance transaction".
    canceled = replace(
        payout,
        status=PayoutStatus.CANCELED,
        failure_balance_transaction_id=returned.id,
        updated_at=now,
    )
    await BalanceRepository(db).save_payout(canceled)
    await events.record_event(
        db,
        account_id=account_id,
        type=events.PAYOUT_CANCELED,
        message=payout_message(canceled),
        object_id=payout_id,
        now=now,
    )
    await announce_available(db, account_id, now)
    return canceled


async def update_payout_metadata(
    db: AsyncConnection,
    *,
    account_id: str,
    payout_id: str,
    set_keys: dict[str, str],
    unset_keys: list[str],
    clear: bool,
    now: datetime,
) -> Payout:
    payout = await _locked(db, account_id, payout_id)
    metadata = updated_metadata(payout.metadata, clear=clear, unset=unset_keys, values=set_keys)
    if metadata == payout.metadata:
        return payout  # an update that changes nothing is no event, and writes nothing
    updated = replace(payout, metadata=metadata, updated_at=now)
    await BalanceRepository(db).save_payout(updated)
    await events.record_event(
        db,
        account_id=account_id,
        type=events.PAYOUT_UPDATED,
        message=payout_message(updated),
        object_id=payout_id,
        now=now,
        before=payout_message(payout),
    )
    return updated


def simulated_failure_code(payout: Payout) -> str | None:
    """The failure the simulated bank reports for this payout, or None when it pays."""
    flag = payout.metadata.get(SIMULATE_FAILURE_KEY)
    if flag is not None:
        return flag if flag in FAILURE_MESSAGES else "could_not_process"
    if payout.description == FAIL_DESCRIPTION:
        return "could_not_process"
    return None


def returned_funds(before: Payout, after: Payout) -> bool:
    """Whether advancing `before` to `after` gave its funds back to the available balance (the
    bank returned it)."""
    return before.status is not PayoutStatus.FAILED and after.status is PayoutStatus.FAILED


async def advance_payout(db: AsyncConnection, payout: Payout, *, now: datetime) -> Payout:
    """Move a locked in-flight payout as far along the simulated bank as `now` allows.

    A payout that fails gives its funds back; its `balance.available` event is the caller's
    (`returned_funds` tells), recorded once per account however many of its payouts a batch
    returns (`remit.ledger.jobs`)."""
    current = payout
    while True:
        previous = current
        match current.status:
            case PayoutStatus.PENDING if now >= current.created_at + SUBMISSION_DELAY:
                current = replace(current, status=PayoutStatus.IN_TRANSIT, updated_at=now)
                event = events.PAYOUT_UPDATED
            case PayoutStatus.IN_TRANSIT if now >= current.arrival_date:
                code = simulated_failure_code(current)
                if code is None:
                    await journal.post(
                        db,
                        current.account_id,
                        _movement(
                            current.id,
                            "paid",
                            (PAYOUTS_IN_TRANSIT, -current.amount, current.currency),
                            (PAID_OUT, current.amount, current.currency),
                        ),
                        now=now,
                    )
                    current = replace(current, status=PayoutStatus.PAID, updated_at=now)
                    event = events.PAYOUT_PAID
                else:
                    txn = await _return_funds(
                        db, current, "failure", BalanceTransactionType.PAYOUT_FAILURE, now
                    )
                    current = replace(
                        current,
                        status=PayoutStatus.FAILED,
                        failure_code=code,
                        failure_message=FAILURE_MESSAGES[code],
                        failure_balance_transaction_id=txn.id,
                        updated_at=now,
                    )
                    event = events.PAYOUT_FAILED
            case _:
                break
        await BalanceRepository(db).save_payout(current)
        await events.record_event(
            db,
            account_id=current.account_id,
            type=event,
            message=payout_message(current),
            object_id=current.id,
            now=now,
            # What payout.updated changed (the status); paid and failed tell it by their type.
            before=payout_message(previous) if event == events.PAYOUT_UPDATED else None,
        )
    return current


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _no_automatic_payout_since(since: datetime) -> ColumnElement[bool]:
    """No automatic payout of the available ledger account's merchant and currency today."""
    c = payouts_table.c
    la = ledger_accounts.c
    return ~exists().where(
        c.account_id == la.account_id,
        c.currency == la.currency,
        c.automatic.is_(True),
        c.created_at >= since,
    )


async def accounts_owed_automatic_payout(db: AsyncConnection, *, now: datetime) -> list[str]:
    """Automatic-payout accounts with a positive available balance in a currency not yet paid
    out today, in id order. A plain read that locks nothing: the sweep takes an account's
    ledger turn only when this says there is something to pay, and checks again under it."""
    la = ledger_accounts.c
    rows = await db.execute(
        select(la.account_id)
        .distinct()
        .join(accounts, accounts.c.id == la.account_id)
        .where(
            accounts.c.automatic_payouts.is_(True),
            la.name == AVAILABLE,
            # At least one whole payout's worth (`payout_amount_step`): a smaller rest waits.
            la.posted_balance_minor - la.pending_outgoing_minor
            >= case(dict(PAYOUT_STEPS), value=la.currency, else_=1),
            _no_automatic_payout_since(_day_start(now)),
        )
        .order_by(la.account_id)
    )
    return [row.account_id for row in rows]


async def create_automatic_payouts(
    db: AsyncConnection, account_id: str, *, now: datetime
) -> list[Payout]:
    """Pay out the account's positive available balance in each currency, at most once per
    currency and UTC day; the balance transactions paid out are linked to the payout. Where
    payouts are in whole units coarser than the minor unit (`payout_amount_step`), the balance
    is paid out rounded down to them, and what is left stays available."""
    journal_repo = JournalRepository(db)
    # The account's turn serialises this with its postings and with any other worker doing
    # the same account; what the unlocked look said is checked again under it.
    await journal_repo.lock_chain(account_id)
    if not await _pays_out_automatically(db, account_id):
        # The merchant switched to manual payouts after the unlocked look (or while this
        # waited for the turn).
        return []
    created: list[Payout] = []
    for held in await journal_repo.ledger_accounts_named(account_id, [AVAILABLE]):
        step = payout_amount_step(held.currency)
        amount = held.spendable_minor - held.spendable_minor % step
        if amount <= 0:
            continue
        if await _automatic_payout_since(db, account_id, held.currency, _day_start(now)):
            continue
        payout = await create_payout(
            db,
            account_id=account_id,
            amount=amount,
            currency=held.currency,
            now=now,
            automatic=True,
            description="STRIPE PAYOUT",
        )
        await link_paid_out(db, payout, now=now)
        created.append(payout)
    return created


async def _automatic_payout_since(
    db: AsyncConnection, account_id: str, currency: str, since: datetime
) -> bool:
    c = payouts_table.c
    found = await db.execute(
        select(c.id)
        .where(
            c.account_id == account_id,
            c.currency == currency,
            c.automatic.is_(True),
            c.created_at >= since,
        )
        .limit(1)
    )
    return found.first() is not None


async def _pays_out_automatically(db: AsyncConnection, account_id: str) -> bool:
    """The account's setting, with its row held FOR SHARE until the payouts commit: a switch to
    manual payouts (`AccountsService.update_account` locks the row FOR UPDATE) either committed
    before this read, and is seen, or waits for the payouts, and so returns only after them.
    Read without the lock, a switch committed between this read and the payouts' commit would
    return "manual" while an automatic payout was still being made.

    Lock order: the ledger turn (taken by the caller), then the account row. Nothing takes the
    account row (FOR UPDATE, or an UPDATE) and then the turn: the settings' updates post nothing.
    """
    found = await db.execute(
        select(accounts.c.automatic_payouts)
        .where(accounts.c.id == account_id)
        .with_for_update(read=True)
    )
    return found.scalar_one_or_none() is True
