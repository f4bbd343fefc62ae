"""The ledger's values and the pure rules over them: balance, canonical form, hash chain.

Sign convention: a ledger account's balance is the sum of its postings, positive meaning money
held in it. A transaction's postings sum to zero in every currency, so money only ever moves
between ledger accounts; it is never created or destroyed.
"""

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Final, assert_never

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.errors import ErrorKind, RemitError

_NAME: Final = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
MAX_TRANSACTION_ID_LENGTH: Final = 255
MAX_POSTINGS: Final = 64
# The most one posting moves, either way: far beyond any real balance, and small enough that
# the sums of a transaction's postings never overflow the database's bigint.
MAX_POSTING_AMOUNT: Final = 2**62 - 1


class LedgerError(RemitError):
    """Root of the errors the ledger raises."""


def ledger_invalid(
    message: str, param: str | None = None, code: str = "parameter_invalid"
) -> LedgerError:
    return LedgerError(message=message, param=param, code=code)


def balance_insufficient(message: str) -> LedgerError:
    return LedgerError(
        message=message, kind=ErrorKind.FAILED_PRECONDITION, code="balance_insufficient"
    )


class TransactionKind(Enum):
    POSTED = "posted"
    PENDING = "pending"
    POST_PENDING = "post_pending"
    VOID_PENDING = "void_pending"


class PendingStatus(Enum):
    OPEN = "open"
    POSTED = "posted"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg: `amount_minor` added to the ledger account (`ledger_account`, `currency`)."""

    ledger_account: str
    amount_minor: int
    currency: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.ledger_account, self.currency)


@dataclass(frozen=True)
class TransactionRequest:
    """What a caller asks the journal to record (POSTED or PENDING)."""

    transaction_id: str
    postings: tuple[Posting, ...]
    pending: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    # Pending only: when an open reservation is voided by the expiry job.
    expires_at: datetime | None = None
    # Ledger accounts that must not end below zero because of this transaction (a balance lock
    # on entries), on top of the accounts flagged non_negative for good.
    guards: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LedgerTransaction:
    account_id: str
    id: str
    sequence: int
    kind: TransactionKind
    postings: tuple[Posting, ...]
    metadata: Mapping[str, str]
    description: str | None
    created_at: datetime
    hash: str
    previous_hash: str
    pending_transaction_id: str | None = None
    expires_at: datetime | None = None
    pending_status: PendingStatus | None = None
    resolved_by: str | None = None
    reversed_by: str | None = None


@dataclass(frozen=True)
class LedgerAccount:
    id: str
    account_id: str
    name: str
    currency: str
    non_negative: bool
    posted_balance_minor: int
    pending_incoming_minor: int
    pending_outgoing_minor: int
    created_at: datetime
    updated_at: datetime

    @property
    def spendable_minor(self) -> int:
        """What a guard protects: posted money not already promised to a pending transaction."""
        return self.posted_balance_minor - self.pending_outgoing_minor


@dataclass(frozen=True)
class PostResult:
    transaction: LedgerTransaction
    replayed: bool


# --- Validation ---------------------------------------------------------------------------------


def validate_transaction_id(transaction_id: str, param: str = "transaction_id") -> None:
    if not transaction_id or len(transaction_id) > MAX_TRANSACTION_ID_LENGTH:
        raise ledger_invalid(
            f"A ledger transaction id must be 1 to {MAX_TRANSACTION_ID_LENGTH} characters.", param
        )


def validate_postings(postings: Sequence[Posting], *, param: str = "postings") -> None:
    """At least two non-zero legs, known currencies, well-formed names, zero sum per currency."""
    if len(postings) < 2:
        raise ledger_invalid("A ledger transaction needs at least two postings.", param)
    if len(postings) > MAX_POSTINGS:
        raise ledger_invalid(f"A ledger transaction has at most {MAX_POSTINGS} postings.", param)
    for index, posting in enumerate(postings):
        where = f"{param}[{index}]"
        if not _NAME.fullmatch(posting.ledger_account):
            raise ledger_invalid(
                f"Invalid ledger account name {posting.ledger_account[:70]!r}: use lowercase "
                "letters, digits and _.:- (at most 64 characters).",
                f"{where}[ledger_account]",
            )
        if posting.currency not in SUPPORTED_CURRENCIES:
            raise ledger_invalid(
                f"Invalid currency: {posting.currency[:10]}.",
                f"{where}[currency]",
                code="invalid_currency",
            )
        if isinstance(posting.amount_minor, bool) or not isinstance(posting.amount_minor, int):
            raise ledger_invalid("Posting amounts must be integers.", f"{where}[amount_minor]")
        if posting.amount_minor == 0:
            raise ledger_invalid("Posting amounts cannot be zero.", f"{where}[amount_minor]")
        if abs(posting.amount_minor) > MAX_POSTING_AMOUNT:
            raise ledger_invalid("Posting amount out of range.", f"{where}[amount_minor]")
    if len({p.key for p in postings}) != len(postings):
        raise ledger_invalid(
            "Each ledger account may appear once per transaction; merge its postings.", param
        )
    for currency, total in sums_by_currency(postings).items():
        if total != 0:
            raise ledger_invalid(
                f"Postings must sum to zero per currency; {currency} sums to {total}.",
                param,
                code="transaction_unbalanced",
            )


def currency_filter(currency: str | None) -> str | None:
    """A list's currency filter as the ledger holds currencies, lower case: None for none, and
    refused (`invalid_currency`) if it names no currency the ledger holds, as a posting's would
    be, rather than matching nothing. Only ASCII is lower-cased: some other letters lower-case
    to ASCII ones (the Kelvin sign to k)."""
    if currency is None:
        return None
    lowered = currency.lower() if currency.isascii() else currency
    if lowered not in SUPPORTED_CURRENCIES:
        raise ledger_invalid(f"Invalid currency: {currency[:10]}.", "currency",
                             code="invalid_currency")  # fmt: skip
    return lowered


def sums_by_currency(postings: Iterable[Posting]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        totals[posting.currency] += posting.amount_minor
    return dict(totals)


def validate_partial_post(pending: Sequence[Posting], requested: Sequence[Posting]) -> None:
    """A partial post names legs of the pending transaction, with the same sign, no larger."""
    by_key = {p.key: p for p in pending}
    for index, posting in enumerate(requested):
        reserved = by_key.get(posting.key)
        where = f"postings[{index}]"
        if reserved is None:
            raise ledger_invalid(
                f"{posting.ledger_account}/{posting.currency} is not part of the pending "
                "transaction.",
                where,
            )
        if (posting.amount_minor > 0) != (reserved.amount_minor > 0):
            raise ledger_invalid("A posted amount must have the sign of the reserved one.", where)
        if abs(posting.amount_minor) > abs(reserved.amount_minor):
            raise ledger_invalid(
                f"Cannot post {abs(posting.amount_minor)} of {posting.ledger_account}: only "
                f"{abs(reserved.amount_minor)} was reserved.",
                where,
                code="amount_too_large",
            )
    validate_postings(requested)


# --- Canonical form and hash chain -------------------------------------------------------------


def _canonical_postings(postings: Iterable[Posting]) -> list[list[object]]:
    return sorted([p.ledger_account, p.currency, p.amount_minor] for p in postings)


def _micros(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return round(moment.timestamp() * 1_000_000)


def payload_digest(
    kind: TransactionKind,
    postings: Iterable[Posting],
    *,
    metadata: Mapping[str, str],
    description: str | None,
    pending_transaction_id: str | None = None,
) -> str:
    """What a retry with the same transaction id must repeat exactly. Times are left out: a
    retry computed at a later moment (a default expiry of now + 7 days) is the same request."""
    body = {
        "kind": kind.value,
        "postings": _canonical_postings(postings),
        "metadata": dict(sorted(metadata.items())),
        "description": description,
        "pending_transaction_id": pending_transaction_id,
    }
    return hashlib.sha256(_canonical_json(body)).hexdigest()


def canonical_encoding(transaction: LedgerTransaction) -> bytes:
    """The bytes a transaction's hash covers: everything except its mutable outcome columns."""
    body = {
        "account_id": transaction.account_id,
        "id": transaction.id,
        "sequence": transaction.sequence,
        "kind": transaction.kind.value,
        "postings": _canonical_postings(transaction.postings),
        "metadata": dict(sorted(transaction.metadata.items())),
        "description": transaction.description,
        "created": _micros(transaction.created_at),
        "pending_transaction_id": transaction.pending_transaction_id,
        "expires_at": _micros(transaction.expires_at),
    }
    return _canonical_json(body)


_SEQUENCE_KEY = b'"sequence":'


def canonical_encoding_around_sequence(transaction: LedgerTransaction) -> tuple[bytes, bytes]:
    """The canonical encoding of `transaction` cut where its sequence number is written: the
    bytes before the number and the bytes after it.

    A posting made in one statement (`ledger_post`, core migration 0010_ledger_post) learns its
    sequence only on the server, under the chain head's lock; the server joins head, sequence
    and tail and hashes them as `chain_hash` would. Keys are sorted and every other string is
    quoted (a quote inside one is escaped), so `"sequence":` followed by a digit occurs once."""
    encoded = canonical_encoding(replace(transaction, sequence=0))
    marker = _SEQUENCE_KEY + b"0"
    head, found, tail = encoded.partition(marker)
    if not found or marker in tail:
        raise RuntimeError(f"cannot cut the encoding of {transaction.id!r} at its sequence")
    return head + _SEQUENCE_KEY, tail


def _canonical_json(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(previous_hash: str, transaction: LedgerTransaction) -> str:
    """SHA-256 over the previous hash and the canonical encoding, hex."""
    digest = hashlib.sha256()
    digest.update(previous_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_encoding(transaction))
    return digest.hexdigest()


# --- Balances ------------------------------------------------------------------------------------


@dataclass
class BalanceChange:
    """How one transaction moves one ledger account's three balances."""

    posted: int = 0
    pending_incoming: int = 0
    pending_outgoing: int = 0


def balance_changes(
    kind: TransactionKind, postings: Iterable[Posting], released: Iterable[Posting] = ()
) -> dict[tuple[str, str], BalanceChange]:
    """The per-account effect of a transaction.

    POSTED and POST_PENDING postings move posted balances; PENDING postings reserve (incoming
    for positive legs, outgoing for negative ones); `released` are the pending legs a
    POST_PENDING or VOID_PENDING transaction lets go of.
    """
    changes: dict[tuple[str, str], BalanceChange] = defaultdict(BalanceChange)
    for posting in released:
        change = changes[posting.key]
        if posting.amount_minor > 0:
            change.pending_incoming -= posting.amount_minor
        else:
            change.pending_outgoing -= -posting.amount_minor
    match kind:
        case TransactionKind.POSTED | TransactionKind.POST_PENDING:
            for posting in postings:
                changes[posting.key].posted += posting.amount_minor
        case TransactionKind.PENDING:
            for posting in postings:
                change = changes[posting.key]
                if posting.amount_minor > 0:
                    change.pending_incoming += posting.amount_minor
                else:
                    change.pending_outgoing += -posting.amount_minor
        case TransactionKind.VOID_PENDING:
            pass
        case unreachable:
            assert_never(unreachable)
    return dict(changes)
