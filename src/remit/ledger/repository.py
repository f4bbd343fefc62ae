"""Journal persistence inside the caller's transaction; every query names the owner account."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import Row, and_, bindparam, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.ids import new_id
from remit.ledger.domain import (
    BalanceChange,
    LedgerAccount,
    LedgerTransaction,
    PendingStatus,
    Posting,
    TransactionKind,
)
from remit.ledger.tables import (
    ledger_accounts,
    ledger_chains,
    ledger_postings,
    ledger_transactions,
)


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

        An upsert that touches the row takes its lock in one round trip, and is safe when two
        first postings of a new account race.
        """
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

    async def advance_chain(self, account_id: str, sequence: int, last_hash: str) -> None:
        await self._db.execute(
            update(ledger_chains)
            .where(ledger_chains.c.account_id == account_id)
            .values(last_sequence=sequence, last_hash=last_hash)
        )

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

    async def apply_balance_changes(
        self, changes: Mapping[str, BalanceChange], *, now: datetime
    ) -> None:
        """Add each change to its ledger account's running balances (by la_ id)."""
        rows = [
            {
                "la_id": ledger_account_id,
                "d_posted": change.posted,
                "d_in": change.pending_incoming,
                "d_out": change.pending_outgoing,
                "now": now,
            }
            for ledger_account_id, change in sorted(changes.items())
        ]
        if not rows:
            return
        c = ledger_accounts.c
        statement = (
            update(ledger_accounts)
            .where(c.id == bindparam("la_id"))
            .values(
                posted_balance_minor=c.posted_balance_minor + bindparam("d_posted"),
                pending_incoming_minor=c.pending_incoming_minor + bindparam("d_in"),
                pending_outgoing_minor=c.pending_outgoing_minor + bindparam("d_out"),
                updated_at=bindparam("now"),
            )
        )
        await self._db.execute(statement.execution_options(synchronize_session=False), rows)

    async def insert_transaction(
        self,
        transaction: LedgerTransaction,
        *,
        payload_digest: str,
        ledger_account_ids: Mapping[tuple[str, str], str],
    ) -> None:
        await self._db.execute(
            ledger_transactions.insert().values(
                account_id=transaction.account_id,
                id=transaction.id,
                sequence=transaction.sequence,
                kind=transaction.kind.value,
                pending_transaction_id=transaction.pending_transaction_id,
                expires_at=transaction.expires_at,
                metadata=dict(transaction.metadata),
                description=transaction.description,
                payload_digest=payload_digest,
                hash=transaction.hash,
                previous_hash=transaction.previous_hash,
                created_at=transaction.created_at,
                pending_status=None
                if transaction.pending_status is None
                else transaction.pending_status.value,
            )
        )
        if transaction.postings:
            await self._db.execute(
                ledger_postings.insert(),
                [
                    {
                        "account_id": transaction.account_id,
                        "transaction_id": transaction.id,
                        "ledger_account_id": ledger_account_ids[posting.key],
                        "amount_minor": posting.amount_minor,
                    }
                    for posting in transaction.postings
                ],
            )

    async def payload_digest_of(self, account_id: str, transaction_id: str) -> str | None:
        c = ledger_transactions.c
        return (
            await self._db.execute(
                select(c.payload_digest).where(c.account_id == account_id, c.id == transaction_id)
            )
        ).scalar_one_or_none()

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

    async def set_reversed_by(self, account_id: str, transaction_id: str, reversal: str) -> None:
        c = ledger_transactions.c
        await self._db.execute(
            update(ledger_transactions)
            .where(c.account_id == account_id, c.id == transaction_id)
            .values(reversed_by=reversal)
        )

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

    async def due_open_pending(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(account, transaction) of open pending transactions whose expiry has passed."""
        c = ledger_transactions.c
        rows = await self._db.execute(
            select(c.account_id, c.id)
            .where(c.pending_status == PendingStatus.OPEN.value, c.expires_at <= now)
            .order_by(c.expires_at)
            .limit(limit)
        )
        return [(row.account_id, row.id) for row in rows]
