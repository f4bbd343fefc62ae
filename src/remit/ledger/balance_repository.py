"""Balance transactions, payouts and ledger events inside the caller's transaction."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, case, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from remit.accounts.domain import Pricing
from remit.ledger.objects import (
    REPORTING_CATEGORY,
    BalanceTransaction,
    BalanceTransactionStatus,
    BalanceTransactionType,
    FeeDetail,
    Payout,
    PayoutMethod,
    PayoutStatus,
)
from remit.ledger.tables import (
    balance_release_failures,
    balance_transactions,
    ledger_events,
    payouts,
)
from remit.storage.answer_budget import fetch_within
from remit.storage.fastsql import Statement

# How many references `settled_under` asks for in one statement.
_REFERENCES_PER_QUERY = 1000

_BT_PREFIX = "bt_"

# The three reads a capture starts with, in one statement sent straight to the driver (every
# payment runs it): the capture's balance transaction if already written, the account's
# pricing and availability delay, and whether the authorization was recorded in the ledger.
_BT_COLUMNS = ", ".join(f"bt.{c.name} AS {_BT_PREFIX}{c.name}" for c in balance_transactions.c)
_CAPTURE_STATE = Statement(
    "SELECT a.fee_percent_bps, a.fee_fixed_minor, a.available_delay_days, "  # noqa: S608
    "EXISTS (SELECT 1 FROM ledger_transactions AS lt WHERE lt.account_id = %(account_id)s "
    "AND lt.id = %(authorization_id)s) AS authorized, "
    + _BT_COLUMNS
    + " FROM accounts AS a LEFT OUTER JOIN balance_transactions AS bt "
    "ON bt.account_id = a.id AND bt.ledger_transaction_id = %(capture_id)s "
    "WHERE a.id = %(account_id)s"
)


@dataclass(frozen=True)
class CaptureState:
    """What recording a capture reads before it posts: the capture's balance transaction when
    it was already recorded, the account's pricing and availability delay, and whether an
    authorization of the charge was recorded."""

    existing: BalanceTransaction | None
    pricing: Pricing
    available_delay_days: int
    authorized: bool


@dataclass(frozen=True)
class TimeRange:
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None

    def conditions(self, column: ColumnElement[datetime]) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.gt is not None:
            found.append(column > self.gt)
        if self.gte is not None:
            found.append(column >= self.gte)
        if self.lt is not None:
            found.append(column < self.lt)
        if self.lte is not None:
            found.append(column <= self.lte)
        return found


def balance_transaction_from_row(row: Row[tuple[object, ...]]) -> BalanceTransaction:
    return _balance_transaction_from_mapping(row._mapping)


def _balance_transaction_from_mapping(m: Mapping[Any, Any]) -> BalanceTransaction:
    return BalanceTransaction(
        id=m["id"],
        account_id=m["account_id"],
        ledger_transaction_id=m["ledger_transaction_id"],
        type=BalanceTransactionType(m["type"]),
        amount=m["amount"],
        fee=m["fee"],
        net=m["net"],
        currency=m["currency"],
        status=BalanceTransactionStatus(m["status"]),
        available_on=m["available_on"],
        created_at=m["created_at"],
        fee_details=tuple(FeeDetail(**detail) for detail in m["fee_details"]),
        source_id=m["source_id"],
        description=m["description"],
        payout_id=m["payout_id"],
        charge_id=m["charge_id"],
        acquirer_reference=m["acquirer_reference"],
        authorization_id=m["authorization_id"],
        category=_own_category(m),
    )


def _own_category(m: Mapping[Any, Any]) -> str | None:
    """The row's reporting category when it is not its type's (a dispute's adjustment); rows
    read without the column have their type's."""
    stored = m.get("reporting_category")
    return (
        None if stored in (None, REPORTING_CATEGORY[BalanceTransactionType(m["type"])]) else stored
    )


def balance_transaction_values(txn: BalanceTransaction) -> dict[str, object]:
    """A balance transaction's row, by column name."""
    return {
        "id": txn.id,
        "account_id": txn.account_id,
        "ledger_transaction_id": txn.ledger_transaction_id,
        "type": txn.type.value,
        "reporting_category": txn.reporting_category,
        "amount": txn.amount,
        "fee": txn.fee,
        "net": txn.net,
        "currency": txn.currency,
        "status": txn.status.value,
        "available_on": txn.available_on,
        "created_at": txn.created_at,
        "fee_details": [detail.__dict__ for detail in txn.fee_details],
        "source_id": txn.source_id,
        "description": txn.description,
        "payout_id": txn.payout_id,
        "charge_id": txn.charge_id,
        "acquirer_reference": txn.acquirer_reference,
        "authorization_id": txn.authorization_id,
    }


def payout_from_row(row: Row[tuple[object, ...]]) -> Payout:
    m = row._mapping
    return Payout(
        id=m["id"],
        account_id=m["account_id"],
        amount=m["amount"],
        currency=m["currency"],
        status=PayoutStatus(m["status"]),
        arrival_date=m["arrival_date"],
        automatic=m["automatic"],
        method=PayoutMethod(m["method"]),
        source_type=m["source_type"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        metadata=dict(m["metadata"]),
        balance_transaction_id=m["balance_transaction_id"],
        failure_balance_transaction_id=m["failure_balance_transaction_id"],
        failure_code=m["failure_code"],
        failure_message=m["failure_message"],
        description=m["description"],
        destination=m["destination"],
        statement_descriptor=m["statement_descriptor"],
    )


def payout_due_at(payout: Payout, submission_delay: timedelta) -> datetime:
    """When the simulated bank moves `payout` on: what `BalanceRepository.claim_due_payouts`
    orders by (keep the two in step)."""
    if payout.status is PayoutStatus.PENDING:
        return payout.created_at + submission_delay
    return payout.arrival_date


def _payout_values(payout: Payout) -> dict[str, object]:
    return {
        "amount": payout.amount,
        "currency": payout.currency,
        "status": payout.status.value,
        "arrival_date": payout.arrival_date,
        "automatic": payout.automatic,
        "method": payout.method.value,
        "source_type": payout.source_type,
        "balance_transaction_id": payout.balance_transaction_id,
        "failure_balance_transaction_id": payout.failure_balance_transaction_id,
        "failure_code": payout.failure_code,
        "failure_message": payout.failure_message,
        "description": payout.description,
        "destination": payout.destination,
        "statement_descriptor": payout.statement_descriptor,
        "metadata": dict(payout.metadata),
        "updated_at": payout.updated_at,
    }


async def _page(
    db: AsyncConnection,
    table: object,
    conditions: list[ColumnElement[bool]],
    *,
    created: ColumnElement[datetime],
    ident: ColumnElement[str],
    limit: int,
    starting_after: tuple[datetime, str] | None,
    ending_before: tuple[datetime, str] | None,
) -> tuple[list[Row[tuple[object, ...]]], bool]:
    """Newest first, keyset-paginated on (created, id); returns rows and has_more: at most
    `limit` rows, fewer when they would take an answer past its budget
    (remit.storage.answer_budget)."""
    if starting_after is not None:
        at, cursor = starting_after
        conditions.append(or_(created < at, and_(created == at, ident < cursor)))
    elif ending_before is not None:
        at, cursor = ending_before
        conditions.append(or_(created > at, and_(created == at, ident > cursor)))
    backwards = starting_after is None and ending_before is not None
    query = select(table).where(*conditions)  # type: ignore[call-overload]
    page, has_more = await fetch_within(
        db, query, (created, ident), descending=not backwards, limit=limit
    )
    if backwards:
        page.reverse()
    return page, has_more


class BalanceRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    # --- balance transactions ---------------------------------------------------------------

    async def insert_balance_transaction(self, txn: BalanceTransaction) -> None:
        await self._db.execute(
            balance_transactions.insert().values(**balance_transaction_values(txn))
        )

    async def attach_posting(self, txn: BalanceTransaction) -> None:
        """A held refund's balance transaction now describes the refund's posting: it names
        that ledger transaction and the reference the acquirer refunded under. Nothing the
        merchant sees changes (id, amounts, status, payout)."""
        c = balance_transactions.c
        await self._db.execute(
            update(balance_transactions)
            .where(c.account_id == txn.account_id, c.id == txn.id)
            .values(
                ledger_transaction_id=txn.ledger_transaction_id,
                acquirer_reference=txn.acquirer_reference,
            )
        )

    async def capture_state(
        self, account_id: str, capture_id: str, authorization_id: str
    ) -> CaptureState | None:
        """One statement for the three reads a capture starts with; None: no such account."""
        bt = balance_transactions.c
        m = await _CAPTURE_STATE.first(
            self._db,
            {
                "account_id": account_id,
                "capture_id": capture_id,
                "authorization_id": authorization_id,
            },
        )
        if m is None:
            return None
        existing = None
        if m[_BT_PREFIX + "id"] is not None:
            existing = _balance_transaction_from_mapping(
                {column.name: m[_BT_PREFIX + column.name] for column in bt}
            )
        return CaptureState(
            existing=existing,
            pricing=Pricing(
                fee_percent_bps=m["fee_percent_bps"], fee_fixed_minor=m["fee_fixed_minor"]
            ),
            available_delay_days=m["available_delay_days"],
            authorized=bool(m["authorized"]),
        )

    async def get_balance_transaction(
        self, account_id: str, txn_id: str
    ) -> BalanceTransaction | None:
        c = balance_transactions.c
        row = (
            await self._db.execute(
                select(balance_transactions).where(c.account_id == account_id, c.id == txn_id)
            )
        ).first()
        return None if row is None else balance_transaction_from_row(row)

    async def balance_transaction_for_ledger(
        self, account_id: str, ledger_transaction_id: str
    ) -> BalanceTransaction | None:
        c = balance_transactions.c
        row = (
            await self._db.execute(
                select(balance_transactions).where(
                    c.account_id == account_id, c.ledger_transaction_id == ledger_transaction_id
                )
            )
        ).first()
        return None if row is None else balance_transaction_from_row(row)

    async def balance_transactions_for_charge(
        self, account_id: str, charge_id: str, types: Sequence[BalanceTransactionType]
    ) -> list[BalanceTransaction]:
        c = balance_transactions.c
        rows = await self._db.execute(
            select(balance_transactions)
            .where(
                c.account_id == account_id,
                c.charge_id == charge_id,
                c.type.in_([t.value for t in types]),
            )
            .order_by(c.created_at, c.id)
        )
        return [balance_transaction_from_row(row) for row in rows]

    async def list_balance_transactions(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: tuple[datetime, str] | None,
        ending_before: tuple[datetime, str] | None,
        created: TimeRange,
        payout_id: str | None,
        source_id: str | None,
        type: BalanceTransactionType | None,
        currency: str | None,
    ) -> tuple[list[BalanceTransaction], bool]:
        c = balance_transactions.c
        conditions: list[ColumnElement[bool]] = [c.account_id == account_id]
        conditions += created.conditions(c.created_at)
        for column, value in (
            (c.payout_id, payout_id),
            (c.source_id, source_id),
            (c.type, None if type is None else type.value),
            (c.currency, currency),
        ):
            if value is not None:
                conditions.append(column == value)
        rows, has_more = await _page(
            self._db,
            balance_transactions,
            conditions,
            created=c.created_at,
            ident=c.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [balance_transaction_from_row(row) for row in rows], has_more

    async def claim_due_balance_transactions(
        self,
        *,
        now: datetime,
        limit: int,
        account_id: str | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[BalanceTransaction]:
        """Pending rows whose funds are due, locked, by (available_on, id) and only past `after`
        in that order when given; rows another worker holds are skipped, and so are those set
        aside (`set_aside_release`)."""
        c = balance_transactions.c
        set_aside = select(balance_release_failures.c.id).where(
            balance_release_failures.c.id == c.id
        )
        conditions = [
            c.status == BalanceTransactionStatus.PENDING.value,
            c.available_on <= now,
            ~set_aside.exists(),
        ]
        if account_id is not None:
            conditions.append(c.account_id == account_id)
        if after is not None:
            conditions.append(tuple_(c.available_on, c.id) > tuple_(*after))
        rows = await self._db.execute(
            select(balance_transactions)
            .where(*conditions)
            .order_by(c.available_on, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [balance_transaction_from_row(row) for row in rows]

    async def set_aside_release(
        self, txn: BalanceTransaction, *, error: str, now: datetime
    ) -> None:
        """Record that `txn`'s funds cannot be made available (`error` says why): the release
        job claims it no more until the row is deleted."""
        await self._db.execute(
            insert(balance_release_failures)
            .values(id=txn.id, account_id=txn.account_id, failed_at=now, error=error)
            .on_conflict_do_nothing(index_elements=["id"])
        )

    async def mark_available(self, txn_ids: Sequence[str]) -> None:
        c = balance_transactions.c
        await self._db.execute(
            update(balance_transactions)
            .where(c.id.in_(list(txn_ids)))
            .values(status=BalanceTransactionStatus.AVAILABLE.value)
        )

    async def unlinked_available(
        self, account_id: str, currency: str, *, up_to: datetime
    ) -> list[tuple[str, int]]:
        """(id, net) of the available rows of a currency no payout has taken, oldest funds
        first."""
        c = balance_transactions.c
        rows = await self._db.execute(
            select(c.id, c.net)
            .where(
                c.account_id == account_id,
                c.currency == currency,
                c.status == BalanceTransactionStatus.AVAILABLE.value,
                c.payout_id.is_(None),
                c.created_at <= up_to,
            )
            .order_by(c.available_on, c.created_at, c.id)
        )
        return [(row.id, int(row.net)) for row in rows]

    async def link_to_payout(self, account_id: str, payout_id: str, txn_ids: Sequence[str]) -> int:
        """Mark these rows as paid out by the payout (`payout=` on the list answers them)."""
        if not txn_ids:
            return 0
        c = balance_transactions.c
        result = await self._db.execute(
            update(balance_transactions)
            .where(c.account_id == account_id, c.id.in_(list(txn_ids)))
            .values(payout_id=payout_id)
        )
        return int(result.rowcount)

    async def for_reconciliation(
        self, *, start: datetime, end: datetime, account_id: str | None
    ) -> list[BalanceTransaction]:
        c = balance_transactions.c
        conditions = [
            c.created_at >= start,
            c.created_at < end,
            c.type.in_([BalanceTransactionType.CHARGE.value, BalanceTransactionType.REFUND.value]),
            # A refund the acquirer has not made (still pending, or refused) has no reference:
            # there is nothing of it to settle.
            c.acquirer_reference.is_not(None),
        ]
        if account_id is not None:
            conditions.append(c.account_id == account_id)
        rows = await self._db.execute(select(balance_transactions).where(*conditions))
        return [balance_transaction_from_row(row) for row in rows]

    async def settled_under(
        self, references: Collection[str], account_id: str | None
    ) -> list[BalanceTransaction]:
        """The charge and refund balance transactions recorded under these acquirer references,
        whenever they were recorded."""
        c = balance_transactions.c
        ordered = sorted(references)
        found: list[BalanceTransaction] = []
        # In batches: a statement carries at most 65535 parameters.
        for start in range(0, len(ordered), _REFERENCES_PER_QUERY):
            conditions: list[ColumnElement[bool]] = [
                c.acquirer_reference.in_(ordered[start : start + _REFERENCES_PER_QUERY]),
                c.type.in_(
                    [BalanceTransactionType.CHARGE.value, BalanceTransactionType.REFUND.value]
                ),
            ]
            if account_id is not None:
                conditions.append(c.account_id == account_id)
            rows = await self._db.execute(select(balance_transactions).where(*conditions))
            found.extend(balance_transaction_from_row(row) for row in rows)
        return found

    async def charge_authorizations(
        self, charges: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The acquirer's authorization each (account id, charge id)'s capture recorded; charges
        captured before captures recorded it are left out."""
        c = balance_transactions.c
        ordered = sorted(charges)
        found: dict[tuple[str, str], str] = {}
        for start in range(0, len(ordered), _REFERENCES_PER_QUERY):
            rows = await self._db.execute(
                select(c.account_id, c.charge_id, c.authorization_id).where(
                    tuple_(c.account_id, c.charge_id).in_(
                        ordered[start : start + _REFERENCES_PER_QUERY]
                    ),
                    c.type == BalanceTransactionType.CHARGE.value,
                    c.authorization_id.is_not(None),
                )
            )
            found |= {(row.account_id, row.charge_id): row.authorization_id for row in rows}
        return found

    async def refunds_given_back(
        self, refunds: Collection[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Those of these (account id, refund id) whose money a refund_failure balance
        transaction gave back: the refund failed or was canceled, before it posted or after."""
        return {
            (txn.account_id, txn.source_id or "")
            for txn in await self._by_source(refunds, BalanceTransactionType.REFUND_FAILURE)
        }

    async def refunds_without_reference(
        self, refunds: Collection[tuple[str, str]]
    ) -> list[BalanceTransaction]:
        """The refund balance transactions of these (account id, refund id) that name no
        acquirer reference: the acquirer had not made the refund when it ended or, still
        pending, has not answered yet."""
        found = await self._by_source(refunds, BalanceTransactionType.REFUND)
        return [txn for txn in found if txn.acquirer_reference is None]

    async def _by_source(
        self, sources: Collection[tuple[str, str]], type: BalanceTransactionType
    ) -> list[BalanceTransaction]:
        c = balance_transactions.c
        ordered = sorted(sources)
        found: list[BalanceTransaction] = []
        for start in range(0, len(ordered), _REFERENCES_PER_QUERY):
            rows = await self._db.execute(
                select(balance_transactions).where(
                    tuple_(c.account_id, c.source_id).in_(
                        ordered[start : start + _REFERENCES_PER_QUERY]
                    ),
                    c.type == type.value,
                )
            )
            found.extend(balance_transaction_from_row(row) for row in rows)
        return found

    async def net_by_status(
        self, account_id: str | None
    ) -> dict[tuple[str, str, BalanceTransactionStatus], int]:
        """Sum of `net` per (account, currency, status): what Stripe's balance must equal."""
        c = balance_transactions.c
        query = select(c.account_id, c.currency, c.status, func.sum(c.net).label("net")).group_by(
            c.account_id, c.currency, c.status
        )
        if account_id is not None:
            query = query.where(c.account_id == account_id)
        rows = await self._db.execute(query)
        return {
            (row.account_id, row.currency, BalanceTransactionStatus(row.status)): int(row.net)
            for row in rows
        }

    # --- payouts ----------------------------------------------------------------------------

    async def insert_payout(self, payout: Payout) -> None:
        await self._db.execute(
            payouts.insert().values(
                id=payout.id,
                account_id=payout.account_id,
                created_at=payout.created_at,
                **_payout_values(payout),
            )
        )

    async def save_payout(self, payout: Payout) -> None:
        await self._db.execute(
            update(payouts)
            .where(payouts.c.account_id == payout.account_id, payouts.c.id == payout.id)
            .values(**_payout_values(payout))
        )

    async def get_payout(
        self, account_id: str, payout_id: str, *, for_update: bool = False
    ) -> Payout | None:
        query = select(payouts).where(payouts.c.account_id == account_id, payouts.c.id == payout_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).first()
        return None if row is None else payout_from_row(row)

    async def list_payouts(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: tuple[datetime, str] | None,
        ending_before: tuple[datetime, str] | None,
        created: TimeRange,
        arrival_date: TimeRange,
        status: PayoutStatus | None,
        destination: str | None,
    ) -> tuple[list[Payout], bool]:
        c = payouts.c
        conditions: list[ColumnElement[bool]] = [c.account_id == account_id]
        conditions += created.conditions(c.created_at)
        conditions += arrival_date.conditions(c.arrival_date)
        if status is not None:
            conditions.append(c.status == status.value)
        if destination is not None:
            conditions.append(c.destination == destination)
        rows, has_more = await _page(
            self._db,
            payouts,
            conditions,
            created=c.created_at,
            ident=c.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [payout_from_row(row) for row in rows], has_more

    async def claim_due_payouts(
        self,
        *,
        now: datetime,
        submission_delay: timedelta,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[Payout]:
        """In-flight payouts the simulated bank can move on now, locked, soonest due first
        (`payout_due_at`, then id), and only past `after` in that order when given: pending
        ones past the submission delay, in-transit ones past their arrival date. Rows
        another worker holds are skipped, and payouts not yet due are neither read nor locked,
        so however many wait in transit, the due ones are reached and stay cancelable."""
        c = payouts.c
        pending = and_(
            c.status == PayoutStatus.PENDING.value, c.created_at <= now - submission_delay
        )
        arrived = and_(c.status == PayoutStatus.IN_TRANSIT.value, c.arrival_date <= now)
        # Keep in step with `payout_due_at`.
        due_at = case(
            (c.status == PayoutStatus.PENDING.value, c.created_at + submission_delay),
            else_=c.arrival_date,
        )
        past = [] if after is None else [tuple_(due_at, c.id) > tuple_(*after)]
        rows = await self._db.execute(
            select(payouts)
            .where(or_(pending, arrived), *past)
            .order_by(due_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [payout_from_row(row) for row in rows]

    # --- events -----------------------------------------------------------------------------

    async def insert_event(
        self,
        *,
        account_id: str,
        type: str,
        object_id: str | None,
        data: Mapping[str, object],
        now: datetime,
    ) -> None:
        await self._db.execute(
            ledger_events.insert().values(
                account_id=account_id,
                type=type,
                object_id=object_id,
                data=dict(data),
                created_at=now,
                # Handed to the webhooks outbox in the same transaction.
                consumed_at=now,
            )
        )
