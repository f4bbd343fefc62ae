"""The journal: records ledger transactions inside the caller's database transaction.

Every operation follows the same order, so concurrent postings can neither deadlock nor lose an
update: lock the account's chain head (which serialises the account), check the transaction id
(a retry with the same payload replays, another payload is refused), lock the ledger accounts
touched in (name, currency) order, compute the new balances and check the guards, and only then
write anything. A refused posting therefore writes nothing the caller could commit by mistake
(at most the empty chain head of an account's very first posting).

A POSTED or PENDING posting is one statement (`JournalRepository.post`, the `ledger_post`
function of core migration 0010): the steps above run on the server, which also hashes the
transaction onto the chain (the caller sends its canonical encoding cut where the sequence
goes, so the hash stays the one `verify` recomputes). The chain head is therefore held only
while the server writes and the caller commits, never across a round trip to this process.
Pending resolutions and reversals learn their ledger accounts from a transaction they read
under the chain lock, so they take two round trips: the lock phase
(`JournalRepository.lock_for_posting`) and the write phase (`write_transaction`), with the hash
computed here in between.

Only recorded transactions keep their id. A refused one (insufficient funds, a guard) leaves
nothing behind, by design: its id is not remembered, so the same request sent again later with
the same id is a new attempt, judged on the balances of then, and is written if they now allow
it. A PostTransaction refused for insufficient funds therefore succeeds when retried with the
same id once the money is there. The id makes a retry of what was recorded safe (it replays,
or is refused when its payload differs); a caller that must not have a refused request go
through later uses a new id for the next attempt, or keeps the refusal itself.

Nothing here commits: callers (the ledger's own service, or payments inside its own unit of
work) decide when the transaction ends.
"""

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import ErrorKind, not_found
from remit.ledger.chart import NON_NEGATIVE
from remit.ledger.domain import (
    LedgerError,
    LedgerTransaction,
    PendingStatus,
    Posting,
    PostResult,
    TransactionKind,
    TransactionRequest,
    balance_changes,
    balance_insufficient,
    chain_hash,
    ledger_invalid,
    payload_digest,
    validate_partial_post,
    validate_postings,
    validate_transaction_id,
)
from remit.ledger.objects import BalanceTransaction
from remit.ledger.repository import JournalRepository, Posted


def _exists_with_different_payload(transaction_id: str) -> LedgerError:
    return LedgerError(
        message=f"Ledger transaction {transaction_id!r} already exists with different postings "
        "or details; a retry must repeat the original request exactly.",
        kind=ErrorKind.ALREADY_EXISTS,
        code="transaction_exists_with_different_payload",
        param="transaction_id",
    )


def _pending_error(message: str, code: str) -> LedgerError:
    return LedgerError(
        message=message,
        kind=ErrorKind.FAILED_PRECONDITION,
        code=code,
        param="pending_transaction_id",
    )


async def _replay_or_refuse(
    repo: JournalRepository,
    account_id: str,
    transaction_id: str,
    digest: str,
    existing_digest: str | None,
) -> PostResult | None:
    """`existing_digest` is what the lock phase read for `transaction_id` under the chain lock."""
    if existing_digest is None:
        return None
    if existing_digest != digest:
        raise _exists_with_different_payload(transaction_id)
    existing = await repo.get_transaction(account_id, transaction_id)
    assert existing is not None
    return PostResult(existing, replayed=True)


async def _record(
    repo: JournalRepository,
    account_id: str,
    *,
    chain: tuple[int, str],
    kind: TransactionKind,
    transaction_id: str,
    postings: Sequence[Posting],
    released: Sequence[Posting] = (),
    metadata: Mapping[str, str],
    description: str | None,
    digest: str,
    now: datetime,
    pending_transaction_id: str | None = None,
) -> LedgerTransaction:
    """A pending resolution or a reversal, under the chain lock the caller took: lock its
    ledger accounts in (name, currency) order, check the guards, hash it onto the chain and
    write it. (A POSTED or PENDING posting does all of this on the server: `post`.)"""
    changes = balance_changes(kind, postings, released)
    locked = await repo.lock_ledger_accounts(account_id, changes.keys())
    for key, change in sorted(changes.items()):
        name, currency = key
        current = locked.get(key)
        flagged = current.non_negative if current else NON_NEGATIVE.get(name, False)
        taking = change.posted - change.pending_outgoing
        if not flagged or taking >= 0:
            continue
        spendable = 0 if current is None else current.spendable_minor
        if spendable + taking < 0:
            raise balance_insufficient(
                f"Insufficient funds in {name} ({currency}): {max(spendable, 0)} available, "
                f"{-taking} needed."
            )
    ids = {key: account.id for key, account in locked.items()}
    missing = [key for key in changes if key not in locked]
    ids |= await repo.create_ledger_accounts(
        account_id, missing, non_negative=NON_NEGATIVE, now=now
    )
    last_sequence, last_hash = chain
    unsigned = LedgerTransaction(
        account_id=account_id,
        id=transaction_id,
        sequence=last_sequence + 1,
        kind=kind,
        postings=tuple(postings),
        metadata=dict(metadata),
        description=description,
        created_at=now,
        hash="",
        previous_hash=last_hash,
        pending_transaction_id=pending_transaction_id,
    )
    transaction = replace(unsigned, hash=chain_hash(last_hash, unsigned))
    await repo.write_transaction(
        transaction,
        payload_digest=digest,
        ledger_account_ids=ids,
        changes={ids[key]: change for key, change in changes.items()},
        released=released,
        now=now,
    )
    return transaction


def _checked_request(
    account_id: str, request: TransactionRequest, now: datetime
) -> tuple[LedgerTransaction, str]:
    """The transaction `request` asks for, before it has a place in the chain (sequence 0,
    no hash), and its payload digest."""
    validate_transaction_id(request.transaction_id)
    validate_postings(request.postings)
    if request.expires_at is not None and not request.pending:
        raise ledger_invalid("Only a pending transaction can expire.", "expires_at")
    kind = TransactionKind.PENDING if request.pending else TransactionKind.POSTED
    digest = payload_digest(
        kind,
        request.postings,
        metadata=request.metadata,
        description=request.description,
    )
    unsigned = LedgerTransaction(
        account_id=account_id,
        id=request.transaction_id,
        sequence=0,
        kind=kind,
        postings=tuple(request.postings),
        metadata=dict(request.metadata),
        description=request.description,
        created_at=now,
        hash="",
        previous_hash="",
        expires_at=request.expires_at,
        pending_status=PendingStatus.OPEN if kind is TransactionKind.PENDING else None,
    )
    return unsigned, digest


async def post(
    db: AsyncConnection,
    account_id: str,
    request: TransactionRequest,
    *,
    now: datetime,
    balance_transaction: BalanceTransaction | None = None,
) -> PostResult:
    """Record a POSTED transaction, or reserve a PENDING one for two-phase posting, in one
    statement (`JournalRepository.post`): the account's chain head is locked on the server and
    held only until the caller commits, never across a round trip to this process.

    `balance_transaction`, the movement's balance transaction, is written with the transaction
    (the same statement); a replay writes nothing, so the caller writes it then if it must."""
    unsigned, digest = _checked_request(account_id, request, now)
    repo = JournalRepository(db)
    posted = await _send(repo, request, unsigned, digest, balance_transaction, answered=True)
    assert posted is not None
    replay = await _replay_or_refuse(
        repo, account_id, request.transaction_id, digest, posted.existing_digest
    )
    if replay is not None:
        return replay
    if posted.refused is not None:
        name, currency, available, needed = posted.refused
        raise balance_insufficient(
            f"Insufficient funds in {name} ({currency}): {available} available, {needed} needed."
        )
    assert posted.chain is not None
    sequence, chain_hash_, previous_hash = posted.chain
    transaction = replace(
        unsigned, sequence=sequence, hash=chain_hash_, previous_hash=previous_hash
    )
    return PostResult(transaction, replayed=False)


async def post_unanswered(
    db: AsyncConnection,
    account_id: str,
    request: TransactionRequest,
    *,
    now: datetime,
    balance_transaction: BalanceTransaction | None = None,
) -> None:
    """`post` for a caller that has nothing to decide from the answer: the statement is
    deferred (in a batched unit it goes out with the COMMIT, so the chain head is locked for
    no longer than the server takes to write and commit).

    The posting must be new, or the same posting again (a replay, which writes
    `balance_transaction` if it is missing); an id taken by another payload, or a guard that
    refuses, fails the caller's unit of work on the server. Only for postings whose caller has
    already ruled both out (a capture checks for its earlier balance transaction and credits
    only)."""
    unsigned, digest = _checked_request(account_id, request, now)
    repo = JournalRepository(db)
    await _send(repo, request, unsigned, digest, balance_transaction, answered=False)


def _send(
    repo: JournalRepository,
    request: TransactionRequest,
    unsigned: LedgerTransaction,
    digest: str,
    balance_transaction: BalanceTransaction | None,
    *,
    answered: bool,
) -> Awaitable[Posted | None]:
    return repo.post(
        unsigned,
        payload_digest=digest,
        changes=balance_changes(unsigned.kind, unsigned.postings),
        flagged_by_default=NON_NEGATIVE,
        guards=request.guards,
        balance_transaction=balance_transaction,
        answered=answered,
    )


async def _open_pending(
    repo: JournalRepository, account_id: str, pending_transaction_id: str
) -> LedgerTransaction:
    pending = await repo.get_transaction(account_id, pending_transaction_id)
    if pending is None or pending.kind is not TransactionKind.PENDING:
        raise not_found(
            "pending ledger transaction", pending_transaction_id, param="pending_transaction_id"
        )
    if pending.pending_status is PendingStatus.POSTED:
        raise _pending_error(
            f"Pending transaction {pending_transaction_id!r} was already posted.",
            "pending_transaction_already_posted",
        )
    if pending.pending_status is PendingStatus.VOIDED:
        raise _pending_error(
            f"Pending transaction {pending_transaction_id!r} was already voided.",
            "pending_transaction_already_voided",
        )
    return pending


async def post_pending(
    db: AsyncConnection,
    account_id: str,
    *,
    pending_transaction_id: str,
    transaction_id: str,
    postings: Sequence[Posting] = (),
    metadata: Mapping[str, str] | None = None,
    now: datetime,
) -> PostResult:
    """Post an open pending transaction, all of it (no postings) or part; the rest is released."""
    validate_transaction_id(transaction_id)
    meta = dict(metadata or {})
    digest = payload_digest(
        TransactionKind.POST_PENDING,
        postings,
        metadata=meta,
        description=None,
        pending_transaction_id=pending_transaction_id,
    )
    repo = JournalRepository(db)
    locks = await repo.lock_for_posting(account_id, transaction_id)
    replay = await _replay_or_refuse(
        repo, account_id, transaction_id, digest, locks.existing_digest
    )
    if replay is not None:
        return replay
    pending = await _open_pending(repo, account_id, pending_transaction_id)
    if pending.expires_at is not None and pending.expires_at <= now:
        raise _pending_error(
            f"Pending transaction {pending_transaction_id!r} expired; it can only be voided.",
            "pending_transaction_expired",
        )
    posted = tuple(postings) if postings else pending.postings
    if postings:
        validate_partial_post(pending.postings, postings)
    transaction = await _record(
        repo,
        account_id,
        chain=locks.chain,
        kind=TransactionKind.POST_PENDING,
        transaction_id=transaction_id,
        postings=posted,
        released=pending.postings,
        metadata=meta,
        description=None,
        digest=digest,
        now=now,
        pending_transaction_id=pending_transaction_id,
    )
    await repo.set_pending_outcome(
        account_id, pending_transaction_id, PendingStatus.POSTED, transaction_id
    )
    return PostResult(transaction, replayed=False)


async def void_pending(
    db: AsyncConnection,
    account_id: str,
    *,
    pending_transaction_id: str,
    transaction_id: str,
    metadata: Mapping[str, str] | None = None,
    now: datetime,
) -> PostResult:
    """Release an open pending transaction (a cancel, or its expiry); its postings record what
    was released."""
    validate_transaction_id(transaction_id)
    meta = dict(metadata or {})
    digest = payload_digest(
        TransactionKind.VOID_PENDING,
        (),
        metadata=meta,
        description=None,
        pending_transaction_id=pending_transaction_id,
    )
    repo = JournalRepository(db)
    locks = await repo.lock_for_posting(account_id, transaction_id)
    replay = await _replay_or_refuse(
        repo, account_id, transaction_id, digest, locks.existing_digest
    )
    if replay is not None:
        return replay
    pending = await _open_pending(repo, account_id, pending_transaction_id)
    transaction = await _record(
        repo,
        account_id,
        chain=locks.chain,
        kind=TransactionKind.VOID_PENDING,
        transaction_id=transaction_id,
        postings=pending.postings,
        released=pending.postings,
        metadata=meta,
        description=None,
        digest=digest,
        now=now,
        pending_transaction_id=pending_transaction_id,
    )
    await repo.set_pending_outcome(
        account_id, pending_transaction_id, PendingStatus.VOIDED, transaction_id
    )
    return PostResult(transaction, replayed=False)


async def expire_pending(
    db: AsyncConnection, account_id: str, pending_transaction_id: str, *, now: datetime
) -> PostResult:
    """Release a pending transaction whose expiry has passed. The expiry job and a capture that
    finds its reservation lapsed both call this: one id and one payload, so whichever runs
    second replays."""
    return await void_pending(
        db,
        account_id,
        pending_transaction_id=pending_transaction_id,
        transaction_id=f"{pending_transaction_id}:expired",
        metadata={"reason": "expired"},
        now=now,
    )


async def reverse(
    db: AsyncConnection,
    account_id: str,
    *,
    transaction_id: str,
    reversal_id: str,
    description: str | None = None,
    now: datetime,
) -> PostResult:
    """Post the exact negation of a posted transaction: the ledger's only way to correct one.
    A transaction is reversed at most once, and a reversal is not reversed (posting the
    original again is a transaction of its own). The write records the original as reversed
    (`ledger_write_reversal`, which checks all of this again on the server)."""
    validate_transaction_id(reversal_id, "reversal_id")
    repo = JournalRepository(db)
    locks = await repo.lock_for_posting(account_id, reversal_id)
    original = await repo.get_transaction(account_id, transaction_id)
    if original is None:
        raise not_found("ledger transaction", transaction_id, param="transaction_id")
    if original.kind not in (TransactionKind.POSTED, TransactionKind.POST_PENDING):
        raise ledger_invalid(
            "Only posted transactions can be reversed; void a pending one instead.",
            "transaction_id",
        )
    negated = tuple(
        Posting(p.ledger_account, -p.amount_minor, p.currency) for p in original.postings
    )
    metadata = {"reverses": transaction_id}
    digest = payload_digest(
        TransactionKind.POSTED, negated, metadata=metadata, description=description
    )
    replay = await _replay_or_refuse(repo, account_id, reversal_id, digest, locks.existing_digest)
    if replay is not None:
        return replay
    if original.reversed_by is not None:
        raise LedgerError(
            message=f"Ledger transaction {transaction_id!r} was already reversed by "
            f"{original.reversed_by!r}.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="transaction_already_reversed",
            param="transaction_id",
        )
    # A reversal names what it reverses, which names it back; only then is one read more made
    # (a transaction's metadata may carry "reverses" without being a reversal).
    reverses = original.metadata.get("reverses")
    if reverses is not None and await repo.reversed_by(account_id, reverses) == transaction_id:
        raise LedgerError(
            message=f"Ledger transaction {transaction_id!r} is the reversal of {reverses!r}, "
            "and a reversal is not reversed: post the original's legs again instead.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="transaction_is_reversal",
            param="transaction_id",
        )
    transaction = await _record(
        repo,
        account_id,
        chain=locks.chain,
        kind=TransactionKind.POSTED,
        transaction_id=reversal_id,
        postings=negated,
        metadata=metadata,
        description=description,
        digest=digest,
        now=now,
    )
    return PostResult(transaction, replayed=False)
