"""The money-movement API: what other services call to post into the ledger, IN THEIR OWN
database transaction, together with the state change that causes the movement.

    from remit.ledger import postings as ledger

    async with engine.begin() as db:          # the payments unit of work
        ...update the charge...
        txn = await ledger.record_charge_captured(
            db, account_id=..., charge_id=..., gross_minor=..., currency=..., now=now
        )
        charge.balance_transaction = txn.id

Nothing here commits. Every function is idempotent on its business ids: calling it again for
the same charge, refund or payout returns what the first call recorded (ledger transaction ids
are derived from them, e.g. "ch_..:capture"). Each movement that changes the merchant's Stripe
balance also writes its balance transaction (`txn_`), in the same database transaction.

Ledger transactions per movement (see `chart.py` for the accounts):

- authorization, "ch:authorization" (pending): acquirer_clearing -amount, pending +amount;
- capture after an authorization, "ch:capture" (posts the pending one; a partial capture
  releases the rest): acquirer_clearing -captured, pending +captured; then "ch:fee":
  pending -fee, fees +fee, acquirer_clearing +network fee, network_fees -network fee;
- capture without an authorization, "ch:capture": acquirer_clearing -(gross - network fee),
  pending +net, fees +fee, network_fees -network fee;
- void, "ch:void", or expiry, "ch:authorization:expired": releases the reservation;
- funds available, "txn_..:available": pending -net, available +net;
- refund hold, "re:refund_hold" (pending, no expiry): available -(amount - fee returned),
  acquirer_clearing +amount, fees -fee returned, placed when the refund is created, so its
  money leaves the spendable available balance (posted minus pending outgoing, what payouts
  are guarded on, and what the balance shows) while the acquirer has not answered yet. The
  refund's balance transaction is written with it, as Stripe writes it when the refund is
  created;
- refund, "re:refund": releases the hold ("re:refund_release") and posts the same legs; the
  hold's balance transaction now names this posting, under the same id (the merchant
  reconciles on it);
- refund that fails (or is canceled) before it was posted: releases the hold
  ("re:refund_release"), with a refund_failure balance transaction giving the money back;
- refund failure, "re:refund_failure": the exact reversal of "re:refund";
- dispute, "dp:dispute": available -(amount + dispute fee), acquirer_clearing +amount, fees
  +dispute fee, under an adjustment balance transaction (reporting category dispute);
- a refund of a disputed charge that fails after the dispute opened, "dp:re:dispute": the
  dispute takes the money the refund's failure gave back (available -amount, acquirer_clearing
  +amount, no second fee), under another adjustment balance transaction of the dispute;
- dispute won, "dp:dispute_reversal": available +amount, acquirer_clearing -amount (the fee
  stays taken), under an adjustment balance transaction (reporting category
  dispute_reversal).

So the balance transactions add up to the balance Stripe shows at every step: available is
the net of the available ones (a pending refund's included), pending that of the pending ones.

The network fee is what the card network withholds from the capture (its interchange): the
network sends gross - network fee, and the platform bears the fee (`chart.py`). The merchant's
accounts and balance transaction are the same with or without it. A capture booked with a
network fee says so in "ch:capture"'s metadata (`network_fees.BOOKED_KEY`), even when the fee
is 0: reconciliation compares the fee only for those.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import ErrorKind, not_found
from remit.core.ids import new_id
from remit.ledger import journal
from remit.ledger.available_events import announce_available
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.chart import ACQUIRER_CLEARING, AVAILABLE, FEES, NETWORK_FEES, PENDING
from remit.ledger.domain import (
    LedgerError,
    LedgerTransaction,
    PendingStatus,
    Posting,
    TransactionRequest,
    ledger_invalid,
)
from remit.ledger.fees import RefundFeePolicy, fee_returned_by_refund, processing_fee
from remit.ledger.network_fees import BOOKED_KEY
from remit.ledger.objects import (
    DISPUTE_REPORTING_CATEGORY,
    DISPUTE_REVERSAL_REPORTING_CATEGORY,
    PROCESSING_FEE_DESCRIPTION,
    BalanceTransaction,
    BalanceTransactionStatus,
    BalanceTransactionType,
    FeeDetail,
)
from remit.ledger.repository import JournalRepository

# Card networks keep an uncaptured authorization for about a week; so does the ledger.
AUTHORIZATION_VALIDITY: Final = timedelta(days=7)
FEE_TYPE: Final = "stripe_fee"


def authorization_id_for(charge_id: str) -> str:
    return f"{charge_id}:authorization"


def refund_hold_id_for(refund_id: str) -> str:
    return f"{refund_id}:refund_hold"


def _postings(*legs: tuple[str, int, str]) -> tuple[Posting, ...]:
    """Postings without zero legs (a zero fee is simply no fee posting)."""
    return tuple(Posting(name, amount, currency) for name, amount, currency in legs if amount)


def _positive(amount_minor: int, param: str) -> None:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ledger_invalid(f"{param} must be a positive integer in minor units.", param)


def _differs(what: str, object_id: str) -> LedgerError:
    return LedgerError(
        message=f"The ledger already recorded {what} for {object_id} with other amounts.",
        kind=ErrorKind.ALREADY_EXISTS,
        code="transaction_exists_with_different_payload",
    )


# --- Authorization -------------------------------------------------------------------------------


async def record_authorization(
    db: AsyncConnection,
    *,
    account_id: str,
    charge_id: str,
    amount_minor: int,
    currency: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> LedgerTransaction:
    """Reserve an authorized amount (a pending transaction) until it is captured or voided.

    Expires at `expires_at` (default: 7 days) when neither happens; the expiry job voids it.
    """
    _positive(amount_minor, "amount")
    result = await journal.post(
        db,
        account_id,
        TransactionRequest(
            transaction_id=authorization_id_for(charge_id),
            postings=_postings(
                (ACQUIRER_CLEARING, -amount_minor, currency), (PENDING, amount_minor, currency)
            ),
            pending=True,
            metadata={"charge": charge_id},
            expires_at=expires_at or now + AUTHORIZATION_VALIDITY,
        ),
        now=now,
    )
    return result.transaction


async def record_authorization_voided(
    db: AsyncConnection, *, account_id: str, charge_id: str, now: datetime
) -> LedgerTransaction:
    """Release an uncaptured authorization (PaymentIntent canceled, or expired).

    Returns the voiding transaction; when the expiry job released it first, that one.
    """
    repo = JournalRepository(db)
    void_id = f"{charge_id}:void"
    # Read under the account's chain lock, which the expiry job takes to void the reservation
    # too: had it voided the reservation after an unlocked read, the void below would find it
    # voided already and fail a cancel the network has made.
    await repo.lock_for_posting(account_id, void_id)
    pending = await repo.get_transaction(account_id, authorization_id_for(charge_id))
    if pending is None:
        raise not_found("authorization", charge_id, param="charge")
    if pending.pending_status is PendingStatus.VOIDED and pending.resolved_by is not None:
        voided_by = await repo.get_transaction(account_id, pending.resolved_by)
        assert voided_by is not None
        return voided_by
    result = await journal.void_pending(
        db,
        account_id,
        pending_transaction_id=pending.id,
        transaction_id=void_id,
        metadata={"charge": charge_id},
        now=now,
    )
    return result.transaction


# --- Capture -------------------------------------------------------------------------------------


async def record_charge_captured(
    db: AsyncConnection,
    *,
    account_id: str,
    charge_id: str,
    gross_minor: int,
    currency: str,
    now: datetime,
    fee_minor: int | None = None,
    network_fee_minor: int | None = None,
    available_on: datetime | None = None,
    bypass_pending: bool = False,
    acquirer_reference: str | None = None,
    authorization_id: str | None = None,
    description: str | None = None,
    balance_transaction_id: str | None = None,
) -> BalanceTransaction:
    """Captured funds: gross into the merchant's pending balance, the fee to the platform, and
    the network's fee from the platform to the network.

    When `record_authorization` reserved this charge, the capture posts that reservation for
    `gross_minor` (a partial capture releases the rest); otherwise it posts directly.
    `fee_minor` defaults to the account's pricing (`fees.processing_fee`), `available_on` to
    now + the account's `available_delay_days`. `bypass_pending=True` (the test card
    4000000000000077, pm_card_bypassPending) makes the funds available at once.
    `acquirer_reference` is the reference the capture was sent to the acquirer with (default:
    the charge id); reconciliation matches settlement rows on it. `network_fee_minor` is what
    the acquirer said it withholds from this capture; None when it did not say (the capture is
    then booked as before network fees were, and reconciliation cannot check its fee).

    `balance_transaction_id` is the txn_ id the charge already shows (a new one by default).
    A capture made available at once records the account's `balance.available` event too
    (`available_events`), after its postings.

    Returns the charge's balance transaction (type charge, fee_details with the processing fee).
    """
    _positive(gross_minor, "amount")
    capture_id = f"{charge_id}:capture"
    balances = BalanceRepository(db)
    state = await balances.capture_state(account_id, capture_id, authorization_id_for(charge_id))
    if state is not None and state.existing is not None:
        existing = state.existing
        if (existing.amount, existing.currency) != (gross_minor, currency):
            raise _differs("a capture", charge_id)
        return existing
    if state is None:
        raise not_found("account", account_id, param="account")
    fee = processing_fee(gross_minor, currency, state.pricing) if fee_minor is None else fee_minor
    if not 0 <= fee <= gross_minor:
        raise ledger_invalid("The fee must be between 0 and the captured amount.", "fee")
    network_fee = network_fee_minor or 0
    if not 0 <= network_fee <= gross_minor:
        raise ledger_invalid(
            "The network fee must be between 0 and the captured amount.", "network_fee"
        )
    due = available_on or now + timedelta(days=state.available_delay_days)
    metadata = {"charge": charge_id}
    if network_fee_minor is not None:
        metadata[BOOKED_KEY] = str(network_fee_minor)
    authorization = None
    if state.authorized:
        authorization = await _reservation_under_lock(db, account_id, charge_id, capture_id)
        if authorization is not None:
            # Checked whether the reservation still holds or lapsed: a capture booked as a
            # lapsed one is the same charge, and may no more change its currency.
            _same_currency(authorization, currency)
        if authorization is not None and not _still_reserved(authorization, now):
            # The reservation lapsed (its 7 days passed, or the expiry job voided it) while
            # the network still captured: the money moved, so the capture posts on its own, as
            # an unreserved one does, and the lapsed reservation is released with it.
            await _release_lapsed(db, authorization, now)
            authorization = None
    txn = BalanceTransaction(
        id=balance_transaction_id or new_id("txn"),
        account_id=account_id,
        ledger_transaction_id=capture_id,
        type=BalanceTransactionType.CHARGE,
        amount=gross_minor,
        fee=fee,
        net=gross_minor - fee,
        currency=currency,
        status=BalanceTransactionStatus.PENDING,
        available_on=now if bypass_pending else due,
        created_at=now,
        fee_details=(FeeDetail(fee, currency, PROCESSING_FEE_DESCRIPTION, FEE_TYPE),)
        if fee
        else (),
        source_id=charge_id,
        charge_id=charge_id,
        description=description,
        acquirer_reference=acquirer_reference or charge_id,
        authorization_id=authorization_id,
    )
    if authorization is not None:
        await journal.post_pending(
            db,
            account_id,
            pending_transaction_id=authorization.id,
            transaction_id=capture_id,
            postings=_postings(
                (ACQUIRER_CLEARING, -gross_minor, currency), (PENDING, gross_minor, currency)
            ),
            metadata=metadata,
            now=now,
        )
        fee_posted = None
        if fee or network_fee:
            fee_posted = await journal.post(
                db,
                account_id,
                TransactionRequest(
                    transaction_id=f"{charge_id}:fee",
                    postings=_postings(
                        (PENDING, -fee, currency),
                        (FEES, fee, currency),
                        (ACQUIRER_CLEARING, network_fee, currency),
                        (NETWORK_FEES, -network_fee, currency),
                    ),
                    metadata=metadata,
                ),
                now=now,
                balance_transaction=txn,
            )
        if fee_posted is None or fee_posted.replayed:
            await balances.insert_balance_transaction(txn)
    else:
        # Nothing below depends on the answer, and the capture found no earlier balance
        # transaction and takes from no guarded account (it credits pending and fees; the
        # accounts it debits have no guard): the posting goes out with the caller's next
        # statement or its COMMIT (a retry of the same capture replays on the server).
        await journal.post_unanswered(
            db,
            account_id,
            TransactionRequest(
                transaction_id=capture_id,
                postings=_postings(
                    (ACQUIRER_CLEARING, -(gross_minor - network_fee), currency),
                    (PENDING, gross_minor - fee, currency),
                    (FEES, fee, currency),
                    (NETWORK_FEES, -network_fee, currency),
                ),
                metadata=metadata,
                description=description,
            ),
            now=now,
            balance_transaction=txn,
        )
    if bypass_pending:
        txn = await make_available(db, txn, now=now)
        # Last, as the release job's: the balance it shows is read under the chain lock the
        # postings above hold until the commit.
        await announce_available(db, account_id, now)
    return txn


async def _reservation_under_lock(
    db: AsyncConnection, account_id: str, charge_id: str, capture_id: str
) -> LedgerTransaction | None:
    """The charge's reservation, read under the account's chain lock (held to the commit).

    The expiry job and a cancel take that lock to void the reservation: read without it, the
    reservation could be voided between the read and the posting of it, which would then fail
    a capture the network has made. Read under it, whether the capture posts the reservation
    or finds it lapsed is decided on what the posting will find."""
    repo = JournalRepository(db)
    await repo.lock_for_posting(account_id, capture_id)
    return await repo.get_transaction(account_id, authorization_id_for(charge_id))


def _same_currency(authorization: LedgerTransaction, currency: str) -> None:
    if {p.currency for p in authorization.postings} != {currency}:
        raise ledger_invalid("The capture's currency differs from the authorization's.", "currency")


def _still_reserved(authorization: LedgerTransaction, now: datetime) -> bool:
    open_ = authorization.pending_status is PendingStatus.OPEN
    return open_ and (authorization.expires_at is None or authorization.expires_at > now)


async def _release_lapsed(
    db: AsyncConnection, authorization: LedgerTransaction, now: datetime
) -> None:
    """Void a reservation whose expiry has passed, as the expiry job would (whichever runs
    second replays)."""
    if authorization.pending_status is not PendingStatus.OPEN:
        return
    await journal.expire_pending(db, authorization.account_id, authorization.id, now=now)


async def make_available(
    db: AsyncConnection, txn: BalanceTransaction, *, now: datetime
) -> BalanceTransaction:
    """Move a pending balance transaction's net from pending to available."""
    if txn.status is BalanceTransactionStatus.AVAILABLE:
        return txn
    if txn.net:
        await journal.post(
            db,
            txn.account_id,
            TransactionRequest(
                transaction_id=f"{txn.id}:available",
                postings=_postings(
                    (PENDING, -txn.net, txn.currency), (AVAILABLE, txn.net, txn.currency)
                ),
                metadata={"balance_transaction": txn.id},
            ),
            now=now,
        )
    await BalanceRepository(db).mark_available([txn.id])
    return replace(txn, status=BalanceTransactionStatus.AVAILABLE)


# --- Refunds -------------------------------------------------------------------------------------

_REFUND_ROWS: Final = (
    BalanceTransactionType.CHARGE,
    BalanceTransactionType.REFUND,
    BalanceTransactionType.REFUND_FAILURE,
)


def _refund_transaction_id(refund_id: str) -> str:
    return f"{refund_id}:refund"


def _fee_returned(
    related: Sequence[BalanceTransaction],
    *,
    charge_id: str,
    amount_minor: int,
    currency: str,
    fee_policy: RefundFeePolicy,
) -> int:
    """The fee a new refund of `amount_minor` gives back, once it is checked against what is
    left of the charge: `related` are the charge's balance transactions and those of its
    refunds so far (a pending refund's included, a failed one's netted out by its failure)."""
    charge = next((t for t in related if t.type is BalanceTransactionType.CHARGE), None)
    if charge is None:
        raise not_found("captured charge", charge_id, param="charge")
    if charge.currency != currency:
        raise ledger_invalid("The refund's currency differs from the charge's.", "currency")
    refund_rows = [t for t in related if t.type is not BalanceTransactionType.CHARGE]
    refunded_before = -sum(t.amount for t in refund_rows)
    remaining = charge.amount - refunded_before
    if amount_minor > remaining:
        raise LedgerError(
            message=f"Refund amount ({amount_minor}) is greater than the unrefunded amount "
            f"of the charge ({remaining}).",
            kind=ErrorKind.INVALID_ARGUMENT,
            code="charge_already_refunded" if remaining == 0 else "amount_too_large",
            param="amount",
        )
    return fee_returned_by_refund(
        charge_gross_minor=charge.amount,
        charge_fee_minor=charge.fee,
        refunded_before_minor=refunded_before,
        fee_returned_before_minor=-sum(t.fee for t in refund_rows),
        refund_minor=amount_minor,
        policy=fee_policy,
    )


def _refund_shown(
    related: Sequence[BalanceTransaction], refund_id: str
) -> BalanceTransaction | None:
    """The refund's own balance transaction among its charge's, if it has one yet."""
    refunds = (t for t in related if t.type is BalanceTransactionType.REFUND)
    return next((t for t in refunds if t.source_id == refund_id), None)


def _refund_postings(amount_minor: int, fee_back: int, currency: str) -> tuple[Posting, ...]:
    return _postings(
        (AVAILABLE, -(amount_minor - fee_back), currency),
        (ACQUIRER_CLEARING, amount_minor, currency),
        (FEES, -fee_back, currency),
    )


async def record_refund_held(
    db: AsyncConnection,
    *,
    account_id: str,
    refund_id: str,
    charge_id: str,
    amount_minor: int,
    currency: str,
    now: datetime,
    balance_transaction_id: str | None = None,
    fee_policy: RefundFeePolicy = RefundFeePolicy.KEEP,
) -> BalanceTransaction:
    """Hold a refund's money from the moment the refund is created until the acquirer answers:
    a pending transaction taking the refund's net out of the spendable available balance, so a
    payout made meanwhile cannot pay out the same money. `record_refund` (the acquirer
    refunded) or `record_refund_released` (it refused, or the refund was canceled) resolves it.

    As on Stripe, the refund's balance transaction (type refund, available at once) is written
    with the hold: the balance the merchant sees is debited from the refund's creation, and the
    balance transactions add up to it. `balance_transaction_id` is the txn_ id the refund shows
    (a new one by default); it stays the same when the refund posts. The fee it gives back and
    the amount it may take are settled here, as `record_refund` settles them for a refund
    without a hold; refunding more than remains of the charge fails the same way.

    Unguarded, as the refund itself is: it may take the spendable balance below zero. It has
    no expiry, so the expiry job never lets the money go while the refund is still pending.
    Returns the refund's balance transaction (the one already written, on a repeat).

    What is left of the charge is read under the account's posting lock (held to the commit),
    which every refund of the charge takes before it reads: two refunds made at once are
    checked one after the other, the second against the first's hold. The ledger posts last in
    its caller's transaction, so the lock is taken last there too; it costs one answered
    statement, and the hold, sent after it, holds the lock already.
    """
    _positive(amount_minor, "amount")
    balances = BalanceRepository(db)
    hold_id = refund_hold_id_for(refund_id)
    await JournalRepository(db).lock_for_posting(account_id, hold_id)
    related = await balances.balance_transactions_for_charge(account_id, charge_id, _REFUND_ROWS)
    shown = _refund_shown(related, refund_id)
    if shown is not None:
        if (shown.amount, shown.currency) != (-amount_minor, currency):
            raise _differs("a refund", refund_id)
        return shown
    fee_back = _fee_returned(
        related,
        charge_id=charge_id,
        amount_minor=amount_minor,
        currency=currency,
        fee_policy=fee_policy,
    )
    txn = _refund_balance_transaction(
        balance_transaction_id or new_id("txn"),
        account_id=account_id,
        ledger_transaction_id=hold_id,
        refund_id=refund_id,
        charge_id=charge_id,
        amount_minor=amount_minor,
        fee_back=fee_back,
        currency=currency,
        now=now,
    )
    # The hold's id derives from a refund id just made (a repeat found its balance transaction
    # above), and none of its legs is guarded, so nothing can refuse it: it is sent, with its
    # balance transaction, with the caller's next statement or its COMMIT.
    await journal.post_unanswered(
        db,
        account_id,
        TransactionRequest(
            transaction_id=hold_id,
            postings=_refund_postings(amount_minor, fee_back, currency),
            pending=True,
            metadata={"charge": charge_id, "refund": refund_id},
        ),
        now=now,
        balance_transaction=txn,
    )
    return txn


def _refund_balance_transaction(
    txn_id: str,
    *,
    account_id: str,
    ledger_transaction_id: str,
    refund_id: str,
    charge_id: str,
    amount_minor: int,
    fee_back: int,
    currency: str,
    now: datetime,
    acquirer_reference: str | None = None,
    description: str | None = None,
) -> BalanceTransaction:
    """A refund's balance transaction: negative, out of the available balance at once.

    `acquirer_reference` is set once the acquirer made the refund (reconciliation pairs only
    those with its settlement rows): None while the refund only holds its money."""
    return BalanceTransaction(
        id=txn_id,
        account_id=account_id,
        ledger_transaction_id=ledger_transaction_id,
        type=BalanceTransactionType.REFUND,
        amount=-amount_minor,
        fee=-fee_back,
        net=-amount_minor + fee_back,
        currency=currency,
        status=BalanceTransactionStatus.AVAILABLE,
        available_on=now,
        created_at=now,
        fee_details=(FeeDetail(-fee_back, currency, PROCESSING_FEE_DESCRIPTION, FEE_TYPE),)
        if fee_back
        else (),
        source_id=refund_id,
        charge_id=charge_id,
        description=description,
        acquirer_reference=acquirer_reference,
    )


async def _release_hold(
    db: AsyncConnection, account_id: str, refund_id: str, now: datetime
) -> bool:
    """Let go of a refund's hold (the refund was posted, or it failed or was canceled before
    it was). Returns whether this call let it go: False for a hold released already (a
    repeat), and for a refund that has no hold (one created before refunds were held)."""
    repo = JournalRepository(db)
    hold = await repo.get_transaction(account_id, refund_hold_id_for(refund_id))
    if hold is None:
        return False
    if hold.pending_status is not PendingStatus.OPEN and hold.resolved_by is not None:
        return False
    result = await journal.void_pending(
        db,
        account_id,
        pending_transaction_id=hold.id,
        transaction_id=f"{refund_id}:refund_release",
        metadata={"refund": refund_id},
        now=now,
    )
    return not result.replayed


async def record_refund_released(
    db: AsyncConnection,
    *,
    account_id: str,
    refund_id: str,
    now: datetime,
    balance_transaction_id: str | None = None,
) -> BalanceTransaction | None:
    """A refund that failed, or was canceled, before it was posted: its hold lets the money go
    back to the available balance.

    As on Stripe, the refund's balance transaction stays, and a refund_failure one (under
    `balance_transaction_id`, a new id by default) gives the money back: the refund's
    `failure_balance_transaction`. Returns it (the earlier one on a repeat), or None for a
    refund whose hold showed no balance transaction (one created before holds did).

    The money back moves into the available balance: a release records the account's
    `balance.available` event (`available_events`) after its posting, the transaction's last
    writes, so the balance it shows is read under the chain lock the release holds until the
    commit. A repeat, or a refund without a hold, moves nothing and records none."""
    balances = BalanceRepository(db)
    release_id = f"{refund_id}:refund_release"
    existing = await balances.balance_transaction_for_ledger(account_id, release_id)
    if existing is not None:
        return existing
    held = await balances.balance_transaction_for_ledger(account_id, refund_hold_id_for(refund_id))
    released = await _release_hold(db, account_id, refund_id, now)
    txn = None
    if held is not None:
        txn = _refund_failure(held, balance_transaction_id or new_id("txn"), release_id, now)
        await balances.insert_balance_transaction(txn)
    if released:
        await announce_available(db, account_id, now)
    return txn


def _refund_failure(
    refund: BalanceTransaction, txn_id: str, ledger_transaction_id: str, now: datetime
) -> BalanceTransaction:
    """The refund_failure balance transaction that gives back what `refund` took."""
    return BalanceTransaction(
        id=txn_id,
        account_id=refund.account_id,
        ledger_transaction_id=ledger_transaction_id,
        type=BalanceTransactionType.REFUND_FAILURE,
        amount=-refund.amount,
        fee=-refund.fee,
        net=-refund.net,
        currency=refund.currency,
        status=BalanceTransactionStatus.AVAILABLE,
        available_on=now,
        created_at=now,
        fee_details=tuple(replace(d, amount=-d.amount) for d in refund.fee_details),
        source_id=refund.source_id,
        charge_id=refund.charge_id,
    )


async def record_refund(
    db: AsyncConnection,
    *,
    account_id: str,
    refund_id: str,
    charge_id: str,
    amount_minor: int,
    currency: str,
    now: datetime,
    fee_policy: RefundFeePolicy = RefundFeePolicy.KEEP,
    acquirer_reference: str | None = None,
    description: str | None = None,
    balance_transaction_id: str | None = None,
) -> BalanceTransaction:
    """A refund of a captured charge the acquirer made, taken from the available balance at
    once; the refund's hold (`record_refund_held`), if it has one, is released with it.

    A held refund's posting takes over from its hold under the balance transaction the hold
    wrote: the same id, amounts and fee (settled when the hold was placed), now naming this
    posting and the reference the acquirer refunded under. A refund without a hold (one
    created before refunds were held, or recorded without one) is checked and its fee settled
    here: as on Stripe, a refund may take the available balance below zero (payouts cannot),
    and the processing fee is kept unless `fee_policy` says otherwise (see `fees.py`).
    Refunding more than remains of the charge fails (`amount_too_large`, or
    `charge_already_refunded`). `balance_transaction_id` is the txn_ id such a refund shows (a
    new one by default).
    Returns the refund's balance transaction (type refund, negative amount).
    """
    _positive(amount_minor, "amount")
    refund_tx = _refund_transaction_id(refund_id)
    balances = BalanceRepository(db)
    related = await balances.balance_transactions_for_charge(account_id, charge_id, _REFUND_ROWS)
    shown = _refund_shown(related, refund_id)
    if shown is None:
        # A refund without a hold checks what is left of the charge itself: again under the
        # account's posting lock, as `record_refund_held` does, so that a refund made at the
        # same time is counted. A held refund (the usual one) was checked when it was held.
        await JournalRepository(db).lock_for_posting(account_id, refund_tx)
        related = await balances.balance_transactions_for_charge(
            account_id, charge_id, _REFUND_ROWS
        )
        shown = _refund_shown(related, refund_id)
    if shown is not None:
        if (shown.amount, shown.currency) != (-amount_minor, currency):
            raise _differs("a refund", refund_id)
        if shown.ledger_transaction_id == refund_tx:
            return shown
        fee_back = -shown.fee
    else:
        fee_back = _fee_returned(
            related,
            charge_id=charge_id,
            amount_minor=amount_minor,
            currency=currency,
            fee_policy=fee_policy,
        )
    # The refund's own posting takes over from its hold: one debit of the available balance,
    # under the one balance transaction the merchant sees.
    await _release_hold(db, account_id, refund_id, now)
    await journal.post(
        db,
        account_id,
        TransactionRequest(
            transaction_id=refund_tx,
            postings=_refund_postings(amount_minor, fee_back, currency),
            metadata={"charge": charge_id, "refund": refund_id},
            description=description,
        ),
        now=now,
    )
    reference = acquirer_reference or refund_id
    if shown is not None:
        posted = replace(shown, ledger_transaction_id=refund_tx, acquirer_reference=reference)
        await balances.attach_posting(posted)
        return posted
    txn = _refund_balance_transaction(
        balance_transaction_id or new_id("txn"),
        account_id=account_id,
        ledger_transaction_id=refund_tx,
        refund_id=refund_id,
        charge_id=charge_id,
        amount_minor=amount_minor,
        fee_back=fee_back,
        currency=currency,
        now=now,
        acquirer_reference=reference,
        description=description,
    )
    await balances.insert_balance_transaction(txn)
    return txn


async def record_refund_failed(
    db: AsyncConnection,
    *,
    account_id: str,
    refund_id: str,
    now: datetime,
    balance_transaction_id: str | None = None,
) -> BalanceTransaction:
    """A refund the card network could not deliver after it was posted: its money (and any fee
    it returned) comes back to the available balance. Returns the refund_failure balance
    transaction (under `balance_transaction_id`, a new id by default).

    As a released hold's (`record_refund_released`), the money back records the account's
    `balance.available` event last, after the reversal and its balance transaction; a repeat
    records none."""
    balances = BalanceRepository(db)
    failure_tx = f"{refund_id}:refund_failure"
    existing = await balances.balance_transaction_for_ledger(account_id, failure_tx)
    if existing is not None:
        return existing
    refund = await balances.balance_transaction_for_ledger(
        account_id, _refund_transaction_id(refund_id)
    )
    if refund is None:
        raise not_found("refund", refund_id, param="refund")
    await journal.reverse(
        db,
        account_id,
        transaction_id=refund.ledger_transaction_id,
        reversal_id=failure_tx,
        now=now,
    )
    txn = _refund_failure(refund, balance_transaction_id or new_id("txn"), failure_tx, now)
    await balances.insert_balance_transaction(txn)
    await announce_available(db, account_id, now)
    return txn


# --- Disputes ------------------------------------------------------------------------------------

DISPUTE_FEE_DESCRIPTION: Final = "Dispute fee"


def dispute_withdrawal_id_for(dispute_id: str, refund_id: str | None = None) -> str:
    """The ledger id of a dispute's withdrawal: of its amount when it opened, or (`refund_id`)
    of the money a refund of its charge gave back by failing after it opened, one per refund.
    The refund's id sits between the dispute's and the step, so the id still begins with its
    dispute and ends with the step (`own_transactions`)."""
    return f"{dispute_id}:dispute" if refund_id is None else f"{dispute_id}:{refund_id}:dispute"


def dispute_withdrawal(
    txn_id: str,
    *,
    account_id: str,
    dispute_id: str,
    charge_id: str,
    amount_minor: int,
    fee_minor: int,
    currency: str,
    now: datetime,
    refund_id: str | None = None,
) -> BalanceTransaction:
    """The balance transaction of a dispute's withdrawal, as Stripe shows it: an adjustment
    (reporting category dispute) of minus the disputed amount, the dispute fee as its fee,
    out of the available balance at once. Built before it is posted, so that the events that
    tell of the dispute, written before the ledger's posting (which runs last: it holds the
    account's chain lock to the commit), can show it. With `refund_id`: the withdrawal of what
    that refund of the charge gave back by failing after the dispute opened (fee 0: the
    dispute's fee was taken once)."""
    _positive(amount_minor, "amount")
    if fee_minor < 0:
        raise ledger_invalid("The dispute fee must not be negative.", "fee")
    return BalanceTransaction(
        id=txn_id,
        account_id=account_id,
        ledger_transaction_id=dispute_withdrawal_id_for(dispute_id, refund_id),
        type=BalanceTransactionType.ADJUSTMENT,
        amount=-amount_minor,
        fee=fee_minor,
        net=-amount_minor - fee_minor,
        currency=currency,
        status=BalanceTransactionStatus.AVAILABLE,
        available_on=now,
        created_at=now,
        fee_details=(FeeDetail(fee_minor, currency, DISPUTE_FEE_DESCRIPTION, FEE_TYPE),)
        if fee_minor
        else (),
        source_id=dispute_id,
        charge_id=charge_id,
        description=f"Chargeback withdrawal for {charge_id}",
        category=DISPUTE_REPORTING_CATEGORY,
    )


async def record_dispute_funds_withdrawn(
    db: AsyncConnection, withdrawal: BalanceTransaction, *, now: datetime
) -> None:
    """A dispute's withdrawal (`dispute_withdrawal`): the issuer takes the disputed amount back
    through the network, and the platform charges its dispute fee, both from the merchant's
    available balance ("dp:dispute": available -(amount + fee), acquirer_clearing +amount,
    fees +fee). Unguarded, as a refund is: it may take the balance below zero, as on Stripe.

    Its id derives from the dispute's, made once by the job that opens the dispute under the
    charge's lock, and none of its legs is guarded: nothing can refuse it, and it is sent,
    with its balance transaction, with the caller's next statement or its COMMIT. A repeat
    (the same posting again) replays on the server. The withdrawal of a refund that failed
    after the dispute opened ("dp:re:dispute") is posted the same way, once, in the
    transaction that records the refund's failure; its metadata names the refund too."""
    dispute_id = withdrawal.source_id
    assert dispute_id is not None
    head, _, step = withdrawal.ledger_transaction_id.rpartition(":")
    refund_id = head.removeprefix(f"{dispute_id}:") if head != dispute_id else None
    assert step == "dispute"
    assert withdrawal.ledger_transaction_id == dispute_withdrawal_id_for(dispute_id, refund_id)
    metadata = {"dispute": dispute_id, "charge": withdrawal.charge_id or ""}
    if refund_id is not None:
        metadata["refund"] = refund_id
    currency, fee = withdrawal.currency, withdrawal.fee
    await journal.post_unanswered(
        db,
        withdrawal.account_id,
        TransactionRequest(
            transaction_id=withdrawal.ledger_transaction_id,
            postings=_postings(
                (AVAILABLE, withdrawal.net, currency),
                (ACQUIRER_CLEARING, -withdrawal.amount, currency),
                (FEES, fee, currency),
            ),
            metadata=metadata,
            description=withdrawal.description,
        ),
        now=now,
        balance_transaction=withdrawal,
    )


def dispute_reinstatement_id_for(dispute_id: str) -> str:
    return f"{dispute_id}:dispute_reversal"


def dispute_reinstatement(
    txn_id: str,
    *,
    account_id: str,
    dispute_id: str,
    charge_id: str,
    amount_minor: int,
    currency: str,
    now: datetime,
) -> BalanceTransaction:
    """The balance transaction of a won dispute's reinstatement, as Stripe shows it: an
    adjustment (reporting category dispute_reversal) of plus the disputed amount, into the
    available balance at once. Built before it is posted, as the withdrawal is
    (`dispute_withdrawal`), for the events that tell of it.

    It has no fee: the dispute fee the withdrawal took stays taken. Whether Stripe gives a won
    dispute's fee back has depended on the account's country and pricing, and no source at
    hand settles it for the US fee remit charges (`remit.payments.disputes`); keeping it is
    the side that never shows the merchant money the platform might not give back."""
    _positive(amount_minor, "amount")
    return BalanceTransaction(
        id=txn_id,
        account_id=account_id,
        ledger_transaction_id=dispute_reinstatement_id_for(dispute_id),
        type=BalanceTransactionType.ADJUSTMENT,
        amount=amount_minor,
        fee=0,
        net=amount_minor,
        currency=currency,
        status=BalanceTransactionStatus.AVAILABLE,
        available_on=now,
        created_at=now,
        source_id=dispute_id,
        charge_id=charge_id,
        description=f"Chargeback reversal for {charge_id}",
        category=DISPUTE_REVERSAL_REPORTING_CATEGORY,
    )


async def record_dispute_funds_reinstated(
    db: AsyncConnection, reinstatement: BalanceTransaction, *, now: datetime
) -> None:
    """A won dispute's reinstatement (`dispute_reinstatement`): the network gives the disputed
    amount back, into the merchant's available balance ("dp:dispute_reversal": available
    +amount, acquirer_clearing -amount).

    Its id derives from the dispute's, posted once by the job that decides the dispute under
    the dispute's lock; as the withdrawal's, it is sent unanswered, and a repeat replays on
    the server. The `balance.available` event follows it, the transaction's last writes: the
    balance it shows is read under the chain lock the posting holds until the commit."""
    dispute_id = reinstatement.source_id
    assert dispute_id is not None
    assert reinstatement.ledger_transaction_id == dispute_reinstatement_id_for(dispute_id)
    currency = reinstatement.currency
    await journal.post_unanswered(
        db,
        reinstatement.account_id,
        TransactionRequest(
            transaction_id=reinstatement.ledger_transaction_id,
            postings=_postings(
                (AVAILABLE, reinstatement.net, currency),
                (ACQUIRER_CLEARING, -reinstatement.amount, currency),
            ),
            metadata={"dispute": dispute_id, "charge": reinstatement.charge_id or ""},
            description=reinstatement.description,
        ),
        now=now,
        balance_transaction=reinstatement,
    )
    await announce_available(db, reinstatement.account_id, now)
