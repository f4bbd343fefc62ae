"""Journal persistence inside the caller's transaction; every query names the owner account."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    DateTime,
    Row,
    Text,
    and_,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.ids import new_id
from remit.ledger.balance_repository import balance_transaction_values
from remit.ledger.domain import (
    BalanceChange,
    LedgerAccount,
    LedgerTransaction,
    PendingStatus,
    Posting,
    TransactionKind,
    canonical_encoding_around_sequence,
)
from remit.ledger.objects import BalanceTransaction
from remit.ledger.tables import (
    balance_transactions,
    ledger_accounts,
    ledger_chains,
    ledger_postings,
    ledger_transactions,
)
from remit.storage.fastsql import Statement

# The lock and write phases of a posting run on every payment, so they go straight to the
# driver (remit.storage.fastsql). The lock phase: see migrations 0007_ledger_fast_path and
# 0008_ledger_chain_lock.
_LOCK_FOR_POSTING = Statement(
    "SELECT * FROM ledger_lock_for_posting("
    "CAST(%(account_id)s AS text), CAST(%(transaction_id)s AS text), "
    "CAST(%(names)s AS text[]), CAST(%(currencies)s AS text[]))"
)

# The write phase of a posting. Data-modifying CTEs all run to completion, in one snapshot and
# one round trip; the foreign keys of the postings are checked at the end of the statement, when
# their transaction row exists. The arrays keep the text (and so the prepared statement) the
# same whatever the number of postings.
_WRITE_PARTS = """
WITH written AS (
    INSERT INTO ledger_transactions (
        account_id, id, sequence, kind, pending_transaction_id, expires_at, metadata,
        description, payload_digest, hash, previous_hash, created_at, pending_status
    ) VALUES (
        CAST(%(account_id)s AS text), CAST(%(id)s AS text), CAST(%(sequence)s AS bigint),
        CAST(%(kind)s AS text), CAST(%(pending_transaction_id)s AS text),
        CAST(%(expires_at)s AS timestamptz), CAST(%(metadata)s AS jsonb),
        CAST(%(description)s AS text),
        CAST(%(payload_digest)s AS text), CAST(%(hash)s AS text), CAST(%(previous_hash)s AS text),
        CAST(%(created_at)s AS timestamptz), CAST(%(pending_status)s AS text)
    )
), legs AS (
    INSERT INTO ledger_postings (account_id, transaction_id, ledger_account_id, amount_minor)
    SELECT CAST(%(account_id)s AS text), CAST(%(id)s AS text), leg.ledger_account_id,
        leg.amount_minor
    FROM unnest(CAST(%(posting_accounts)s AS text[]), CAST(%(posting_amounts)s AS bigint[]))
        WITH ORDINALITY AS leg(ledger_account_id, amount_minor, position)
    ORDER BY leg.position
), balances AS (
    UPDATE ledger_accounts AS la SET
        posted_balance_minor = la.posted_balance_minor + delta.posted,
        pending_incoming_minor = la.pending_incoming_minor + delta.incoming,
        pending_outgoing_minor = la.pending_outgoing_minor + delta.outgoing,
        updated_at = CAST(%(now)s AS timestamptz)
    FROM unnest(
        CAST(%(change_accounts)s AS text[]), CAST(%(posted)s AS bigint[]),
        CAST(%(incoming)s AS bigint[]), CAST(%(outgoing)s AS bigint[])
    ) AS delta(id, posted, incoming, outgoing)
    WHERE la.id = delta.id
    RETURNING la.id, la.currency
), head AS (
    UPDATE ledger_chains SET
        last_sequence = CAST(%(sequence)s AS bigint), last_hash = CAST(%(hash)s AS text)
    WHERE account_id = CAST(%(account_id)s AS text)
    RETURNING account_id
)"""
# Every ledger account exists (locked or created by the caller) and so does the chain head
# (locked first): a write that touches fewer is a bug, and the statement fails on the server
# (`remit_require`) so that the caller's transaction cannot commit half a posting, even when
# the write goes out together with its COMMIT.
#
# So does a write whose legs do not sum to zero in each currency (each ledger account's, as its
# update returns it), or whose balance changes are not the ones its legs and the pending legs
# it releases make (`domain.balance_changes`, again): the caller computed them all, and a bug
# there must not reach the books. `ledger_write_balanced` (core migration
# 0063_ledger_balanced_on_server) checks that over the arrays sent and the few rows updated,
# reading no table. Both the legs it releases and those it posts must also be what the pending
# transaction reserved, as the database stored them: `ledger_write_releases` (core migration
# 0071_ledger_releases_reserved) reads them (a few rows by index) in this same statement. A
# reversal's legs must be exactly the negation of the transaction it reverses, which must not be
# reversed already nor be a reversal itself: `ledger_write_reversal` (core migration
# 0072_ledger_reversals_negate) reads it likewise, and records it as reversed.
_WRITE_RESULT = """
SELECT remit_require(
    (SELECT count(*) FROM balances) = CAST(%(expected_balances)s AS bigint)
        AND (SELECT count(*) FROM head) = 1,
    'RM500', CAST(%(incomplete)s AS text)
) AND (
    SELECT ledger_write_balanced(
        CAST(%(id)s AS text), CAST(%(kind)s AS text),
        array_agg(balances.id), array_agg(balances.currency),
        CAST(%(change_accounts)s AS text[]), CAST(%(posted)s AS bigint[]),
        CAST(%(incoming)s AS bigint[]), CAST(%(outgoing)s AS bigint[]),
        CAST(%(posting_accounts)s AS text[]), CAST(%(posting_amounts)s AS bigint[]),
        CAST(%(released_accounts)s AS text[]), CAST(%(released_amounts)s AS bigint[])
    ) FROM balances
) AND ledger_write_releases(
    CAST(%(account_id)s AS text), CAST(%(id)s AS text), CAST(%(kind)s AS text),
    CAST(%(pending_transaction_id)s AS text),
    CAST(%(posting_accounts)s AS text[]), CAST(%(posting_amounts)s AS bigint[]),
    CAST(%(released_accounts)s AS text[]), CAST(%(released_amounts)s AS bigint[])
) AND ledger_write_reversal(
    CAST(%(account_id)s AS text), CAST(%(id)s AS text), CAST(%(kind)s AS text),
    CAST(%(metadata)s AS jsonb),
    CAST(%(posting_accounts)s AS text[]), CAST(%(posting_amounts)s AS bigint[])
) AS written
"""
# The balance transaction a money movement writes with its ledger transaction, as one more CTE
# of the same statement (its parameters are the columns prefixed with "bt_").
_ENTRY_COLUMNS = ", ".join(column.name for column in balance_transactions.c)
_SQL_TYPES: dict[type[object], str] = {
    Text: "text",
    BigInteger: "bigint",
    DateTime: "timestamptz",
    JSONB: "jsonb",
}
_ENTRY_VALUES = ", ".join(
    f"CAST(%(bt_{column.name})s AS {_SQL_TYPES[type(column.type)]})"
    for column in balance_transactions.c
)
_WRITE_JSON = frozenset(
    {
        "metadata",
        *(
            f"bt_{column.name}"
            for column in balance_transactions.c
            if isinstance(column.type, JSONB)
        ),
    }
)
_WRITE_TRANSACTION = Statement(_WRITE_PARTS + _WRITE_RESULT, _WRITE_JSON)

# A whole POSTED or PENDING posting in one statement (core migration 0010_ledger_post; its
# current body is 0063_ledger_balanced_on_server's, which first refuses legs that do not
# balance and balance changes that are not the legs'): the chain head is locked on the server
# and released at the commit, with no round trip to the client in between.
_POSTED = """
WITH posted AS (
    SELECT * FROM ledger_post(
        CAST(%(account_id)s AS text), CAST(%(id)s AS text), CAST(%(kind)s AS text),
        CAST(%(pending_status)s AS text), CAST(%(expires_at)s AS timestamptz),
        CAST(%(metadata)s AS jsonb), CAST(%(description)s AS text),
        CAST(%(payload_digest)s AS text), CAST(%(created_at)s AS timestamptz),
        CAST(%(encoding_head)s AS bytea), CAST(%(encoding_tail)s AS bytea),
        CAST(%(names)s AS text[]), CAST(%(currencies)s AS text[]), CAST(%(new_ids)s AS text[]),
        CAST(%(flagged_by_default)s AS boolean[]), CAST(%(guarded)s AS boolean[]),
        CAST(%(posted)s AS bigint[]), CAST(%(incoming)s AS bigint[]),
        CAST(%(outgoing)s AS bigint[]), CAST(%(posting_keys)s AS integer[]),
        CAST(%(posting_amounts)s AS bigint[])
    )
)"""
# The balance transaction of the movement, written when the posting was (a retry of the same
# posting writes it too, as a replay does; the table's unique ledger transaction id keeps it
# to one row).
_POSTED_ENTRY = f"""
, entry AS (
    INSERT INTO balance_transactions ({_ENTRY_COLUMNS})
    SELECT {_ENTRY_VALUES} FROM posted
    WHERE posted.outcome = 'written' OR (
        posted.outcome = 'exists'
        AND posted.existing_digest = CAST(%(payload_digest)s AS text)
        AND CAST(%(entry_on_replay)s AS boolean)
    )
)"""  # noqa: S608 (column names and types from the table definition)
_ANSWER = " SELECT * FROM posted"
_POST = Statement(_POSTED + _ANSWER, _WRITE_JSON)
_POST_WITH_ENTRY = Statement(_POSTED + _POSTED_ENTRY + _ANSWER, _WRITE_JSON)
# For a caller with nothing to decide from the answer: the posting must be written, or be the
# same posting again; anything else fails the statement on the server (and so the caller's
# transaction, even when it travels with the COMMIT).
_REQUIRE_POSTED = """
SELECT remit_require(
    posted.outcome = 'written' OR (
        posted.outcome = 'exists' AND posted.existing_digest = CAST(%(payload_digest)s AS text)
    ),
    'RM500',
    format('Ledger transaction %%s was not recorded (%%s%%s).', CAST(%(id)s AS text),
        posted.outcome,
        coalesce(' in ' || posted.refused_name || ' ' || posted.refused_currency, ''))
) AS written FROM posted
"""
_POST_UNANSWERED = Statement(_POSTED + _REQUIRE_POSTED, _WRITE_JSON)
_POST_UNANSWERED_WITH_ENTRY = Statement(_POSTED + _POSTED_ENTRY + _REQUIRE_POSTED, _WRITE_JSON)


def _entry_params(balance_transaction: BalanceTransaction | None) -> dict[str, object]:
    """The parameters of the balance transaction CTE (columns prefixed with "bt_")."""
    if balance_transaction is None:
        return {}
    values = balance_transaction_values(balance_transaction)
    return {f"bt_{name}": value for name, value in values.items()}


class DuePending(NamedTuple):
    """An open pending transaction past its expiry, for the expiry job."""

    account_id: str
    transaction_id: str
    expires_at: datetime


@dataclass(frozen=True)
class Posted:
    """What `ledger_post` did: wrote the transaction at (sequence, hash, previous hash), found
    the id taken (its payload digest), or refused it (the first guarded ledger account that
    would go below zero: name, currency, what it has, what the posting takes)."""

    chain: tuple[int, str, str] | None
    existing_digest: str | None
    refused: tuple[str, str, int, int] | None


@dataclass(frozen=True)
class PostingLocks:
    """What the lock phase of a posting found: the chain head (last sequence, last hash) and
    the payload digest of the transaction id when it already exists."""

    chain: tuple[int, str]
    existing_digest: str | None


def ledger_account_from_row(row: Row[tuple[object, ...]]) -> LedgerAccount:
    m = row._mapping
    return LedgerAccount(
        id=m["id"],
        account_id=m["account_id"],
        name=m["name"],
        currency=m["currency"],
        non_negative=m["non_negative"],
        posted_balance_minor=m["posted_balance_minor"],
        pending_incoming_minor=m["pending_incoming_minor"],
        pending_outgoing_minor=m["pending_outgoing_minor"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def transaction_from_row(
    row: Row[tuple[object, ...]], postings: Sequence[Posting]
) -> LedgerTransaction:
    m = row._mapping
    return LedgerTransaction(
        account_id=m["account_id"],
        id=m["id"],
        sequence=m["sequence"],
        kind=TransactionKind(m["kind"]),
        postings=tuple(postings),
        metadata=dict(m["metadata"]),
        description=m["description"],
        created_at=m["created_at"],
        hash=m["hash"],
        previous_hash=m["previous_hash"],
        pending_transaction_id=m["pending_transaction_id"],
        expires_at=m["expires_at"],
        pending_status=None if m["pending_status"] is None else PendingStatus(m["pending_status"]),
        resolved_by=m["resolved_by"],
        reversed_by=m["reversed_by"],
    )


class JournalRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def lock_chain(self, account_id: str) -> tuple[int, str]:
        """Create or lock the account's chain head; returns (last sequence, last hash).

        The account's turn comes first, as in every path that locks the chain head (core
        migration 0018_ledger_turn); then an upsert that touches the row takes its lock, and is
        safe when two first postings of a new account race.
        """
        await self._db.execute(
            text("SELECT ledger_wait_turn(:account_id)"), {"account_id": account_id}
        )
        statement = (
            insert(ledger_chains)
            .values(account_id=account_id, last_sequence=0, last_hash="")
            .on_conflict_do_update(
                index_elements=["account_id"],
                set_={"last_sequence": ledger_chains.c.last_sequence},
            )
            .returning(ledger_chains.c.last_sequence, ledger_chains.c.last_hash)
        )
        row = (await self._db.execute(statement)).one()
        return int(row.last_sequence), str(row.last_hash)

    async def lock_ledger_accounts(
        self, account_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], LedgerAccount]:
        """Lock the existing ledger accounts among `keys`, always in (name, currency) order so
        two transactions never wait on each other's locks in opposite orders."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        c = ledger_accounts.c
        rows = await self._db.execute(
            select(ledger_accounts)
            .where(c.account_id == account_id, tuple_(c.name, c.currency).in_(wanted))
            .order_by(c.name, c.currency)
            .with_for_update()
        )
        accounts = [ledger_account_from_row(row) for row in rows]
        return {(a.name, a.currency): a for a in accounts}

    async def create_ledger_accounts(
        self,
        account_id: str,
        keys: Iterable[tuple[str, str]],
        *,
        non_negative: Mapping[str, bool],
        now: datetime,
    ) -> dict[tuple[str, str], str]:
        """Insert empty ledger accounts; returns their ids by (name, currency)."""
        created: dict[tuple[str, str], str] = {}
        values = []
        for name, currency in sorted(set(keys)):
            ledger_account_id = new_id("la")
            created[(name, currency)] = ledger_account_id
            values.append(
                {
                    "id": ledger_account_id,
                    "account_id": account_id,
                    "name": name,
                    "currency": currency,
                    "non_negative": non_negative.get(name, False),
                    "posted_balance_minor": 0,
                    "pending_incoming_minor": 0,
                    "pending_outgoing_minor": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if values:
            await self._db.execute(insert(ledger_accounts), values)
        return created

    async def lock_for_posting(self, account_id: str, transaction_id: str) -> PostingLocks:
        """The lock phase of a pending resolution or a reversal, in one round trip
        (`ledger_lock_for_posting`, migrations 0007 and 0008): create or lock the chain head,
        then read the payload digest of `transaction_id` with a fresh snapshot, exactly as
        separate statements would. Their ledger accounts are locked afterwards
        (`lock_ledger_accounts`): they come from a transaction read under this lock."""
        row = await _LOCK_FOR_POSTING.first(
            self._db,
            {
                "account_id": account_id,
                "transaction_id": transaction_id,
                "names": [],
                "currencies": [],
            },
        )
        assert row is not None  # the function always returns the chain head's row
        return PostingLocks(
            chain=(int(row["chain_sequence"]), str(row["chain_hash"])),
            existing_digest=row["existing_digest"],
        )

    async def post(
        self,
        unsigned: LedgerTransaction,
        *,
        payload_digest: str,
        changes: Mapping[tuple[str, str], BalanceChange],
        flagged_by_default: Mapping[str, bool],
        guards: frozenset[str] = frozenset(),
        balance_transaction: BalanceTransaction | None = None,
        answered: bool = True,
    ) -> Posted | None:
        """A POSTED or PENDING transaction in one statement (`ledger_post`): lock the chain
        head, check the id, lock and guard the ledger accounts, create the missing ones, hash
        onto the chain and write it all. `unsigned` carries everything but its place in the
        chain (sequence, hash, previous hash), which the server gives it.

        `answered=False` defers the statement (it goes out with the unit's next statement or
        its COMMIT) and returns None: the posting must then be written, or be the same posting
        again; anything else fails the unit on the server."""
        head, tail = canonical_encoding_around_sequence(unsigned)
        keys = sorted(changes)
        position = {key: index for index, key in enumerate(keys, start=1)}
        params = _entry_params(balance_transaction) | {
            "account_id": unsigned.account_id,
            "id": unsigned.id,
            "kind": unsigned.kind.value,
            "pending_status": None
            if unsigned.pending_status is None
            else unsigned.pending_status.value,
            "expires_at": unsigned.expires_at,
            "metadata": dict(unsigned.metadata),
            "description": unsigned.description,
            "payload_digest": payload_digest,
            "created_at": unsigned.created_at,
            "encoding_head": head,
            "encoding_tail": tail,
            "names": [name for name, _ in keys],
            "currencies": [currency for _, currency in keys],
            "new_ids": [new_id("la") for _ in keys],
            "flagged_by_default": [flagged_by_default.get(name, False) for name, _ in keys],
            "guarded": [name in guards for name, _ in keys],
            "posted": [changes[key].posted for key in keys],
            "incoming": [changes[key].pending_incoming for key in keys],
            "outgoing": [changes[key].pending_outgoing for key in keys],
            "posting_keys": [position[posting.key] for posting in unsigned.postings],
            "posting_amounts": [posting.amount_minor for posting in unsigned.postings],
            "entry_on_replay": True,
        }
        if not answered:
            unanswered = (
                _POST_UNANSWERED if balance_transaction is None else _POST_UNANSWERED_WITH_ENTRY
            )
            await unanswered.defer(self._db, params)
            return None
        statement = _POST if balance_transaction is None else _POST_WITH_ENTRY
        # An answered caller writes the entry of a replay itself (it decides on the replay).
        row = await statement.first(self._db, params | {"entry_on_replay": False})
        assert row is not None
        if row["outcome"] == "written":
            return Posted(
                chain=(int(row["sequence"]), str(row["hash"]), str(row["previous_hash"])),
                existing_digest=None,
                refused=None,
            )
        if row["outcome"] == "exists":
            return Posted(chain=None, existing_digest=str(row["existing_digest"]), refused=None)
        return Posted(
            chain=None,
            existing_digest=None,
            refused=(
                str(row["refused_name"]),
                str(row["refused_currency"]),
                int(row["refused_available"]),
                int(row["refused_needed"]),
            ),
        )

    async def write_transaction(
        self,
        transaction: LedgerTransaction,
        *,
        payload_digest: str,
        ledger_account_ids: Mapping[tuple[str, str], str],
        changes: Mapping[str, BalanceChange],
        released: Sequence[Posting] = (),
        now: datetime,
    ) -> None:
        """Everything a pending resolution or a reversal writes, in one statement: the
        transaction, its postings (in order), each ledger account's running balances (by la_
        id; already locked by the caller), the chain head advanced to the transaction, and for
        a reversal the `reversed_by` of the transaction it reverses (on the server,
        `ledger_write_reversal`).
        `released` are the legs of the pending transaction it lets go of (none for a
        reversal), which `changes` include.
        Nothing waits on it: in a batched unit of work it goes out with the next statement, or
        with the COMMIT, and it checks itself on the server."""
        ordered = sorted(changes.items())
        await _WRITE_TRANSACTION.defer(
            self._db,
            {
                "account_id": transaction.account_id,
                "id": transaction.id,
                "sequence": transaction.sequence,
                "kind": transaction.kind.value,
                "pending_transaction_id": transaction.pending_transaction_id,
                "expires_at": transaction.expires_at,
                "metadata": dict(transaction.metadata),
                "description": transaction.description,
                "payload_digest": payload_digest,
                "hash": transaction.hash,
                "previous_hash": transaction.previous_hash,
                "created_at": transaction.created_at,
                "pending_status": None
                if transaction.pending_status is None
                else transaction.pending_status.value,
                "posting_accounts": [
                    ledger_account_ids[posting.key] for posting in transaction.postings
                ],
                "posting_amounts": [posting.amount_minor for posting in transaction.postings],
                "released_accounts": [ledger_account_ids[posting.key] for posting in released],
                "released_amounts": [posting.amount_minor for posting in released],
                "change_accounts": [ledger_account_id for ledger_account_id, _ in ordered],
                "posted": [change.posted for _, change in ordered],
                "incoming": [change.pending_incoming for _, change in ordered],
                "outgoing": [change.pending_outgoing for _, change in ordered],
                "now": now,
                "expected_balances": len(ordered),
                "incomplete": f"Ledger write of {transaction.id!r} did not update all "
                f"{len(ordered)} of its ledger accounts and the account's chain head.",
            },
        )

    async def get_transaction(
        self, account_id: str, transaction_id: str
    ) -> LedgerTransaction | None:
        c = ledger_transactions.c
        row = (
            await self._db.execute(
                select(ledger_transactions).where(
                    c.account_id == account_id, c.id == transaction_id
                )
            )
        ).first()
        if row is None:
            return None
        postings = await self.postings_of(account_id, [transaction_id])
        return transaction_from_row(row, postings.get(transaction_id, []))

    async def postings_of(
        self, account_id: str, transaction_ids: Sequence[str]
    ) -> dict[str, list[Posting]]:
        p, la = ledger_postings.c, ledger_accounts.c
        rows = await self._db.execute(
            select(p.transaction_id, la.name, la.currency, p.amount_minor)
            .join(ledger_accounts, la.id == p.ledger_account_id)
            .where(p.account_id == account_id, p.transaction_id.in_(list(transaction_ids)))
            .order_by(p.id)
        )
        found: dict[str, list[Posting]] = defaultdict(list)
        for row in rows:
            found[row.transaction_id].append(Posting(row.name, row.amount_minor, row.currency))
        return found

    async def set_pending_outcome(
        self, account_id: str, transaction_id: str, status: PendingStatus, resolved_by: str
    ) -> None:
        c = ledger_transactions.c
        await self._db.execute(
            update(ledger_transactions)
            .where(c.account_id == account_id, c.id == transaction_id)
            .values(pending_status=status.value, resolved_by=resolved_by)
        )

    async def reversed_by(self, account_id: str, transaction_id: str) -> str | None:
        """The reversal of `transaction_id`, if it was reversed (None too if there is no such
        transaction)."""
        c = ledger_transactions.c
        found = await self._db.execute(
            select(c.reversed_by).where(c.account_id == account_id, c.id == transaction_id)
        )
        return found.scalar_one_or_none()

    async def get_ledger_account(
        self, account_id: str, name: str, currency: str
    ) -> LedgerAccount | None:
        c = ledger_accounts.c
        row = (
            await self._db.execute(
                select(ledger_accounts).where(
                    c.account_id == account_id, c.name == name, c.currency == currency
                )
            )
        ).first()
        return None if row is None else ledger_account_from_row(row)

    async def ledger_accounts_named(
        self, account_id: str, names: Sequence[str]
    ) -> list[LedgerAccount]:
        c = ledger_accounts.c
        rows = await self._db.execute(
            select(ledger_accounts)
            .where(c.account_id == account_id, c.name.in_(list(names)))
            .order_by(c.currency, c.name)
        )
        return [ledger_account_from_row(row) for row in rows]

    async def list_ledger_accounts(
        self,
        account_id: str,
        *,
        limit: int,
        after: tuple[str, str] | None,
        before: tuple[str, str] | None,
        name_prefix: str | None,
        currency: str | None,
    ) -> tuple[list[LedgerAccount], bool]:
        """By (name, currency); `before` pages backwards."""
        c = ledger_accounts.c
        conditions = [c.account_id == account_id]
        if name_prefix:
            conditions.append(func.starts_with(c.name, name_prefix))
        if currency:
            conditions.append(c.currency == currency)
        query = select(ledger_accounts)
        if before is not None:
            conditions.append(tuple_(c.name, c.currency) < before)
            query = query.order_by(c.name.desc(), c.currency.desc())
        else:
            if after is not None:
                conditions.append(tuple_(c.name, c.currency) > after)
            query = query.order_by(c.name, c.currency)
        rows = (await self._db.execute(query.where(and_(*conditions)).limit(limit + 1))).all()
        page = [ledger_account_from_row(row) for row in rows[:limit]]
        if before is not None:
            page.reverse()
        return page, len(rows) > limit

    async def ledger_account_by_id(self, account_id: str, la_id: str) -> LedgerAccount | None:
        c = ledger_accounts.c
        row = (
            await self._db.execute(
                select(ledger_accounts).where(c.account_id == account_id, c.id == la_id)
            )
        ).first()
        return None if row is None else ledger_account_from_row(row)

    async def due_open_pending(
        self, now: datetime, limit: int, *, after: tuple[datetime, str, str] | None = None
    ) -> list[DuePending]:
        """Open pending transactions whose expiry has passed, by (expiry, account, id), and
        only past `after` in that order when given."""
        c = ledger_transactions.c
        past = [] if after is None else [tuple_(c.expires_at, c.account_id, c.id) > tuple_(*after)]
        rows = await self._db.execute(
            select(c.account_id, c.id, c.expires_at)
            .where(c.pending_status == PendingStatus.OPEN.value, c.expires_at <= now, *past)
            .order_by(c.expires_at, c.account_id, c.id)
            .limit(limit)
        )
        return [DuePending(row.account_id, row.id, row.expires_at) for row in rows]
