"""Persistence of intents, charges and refunds in the caller's transaction; every query names
the account, so one account can never reach another's objects."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Row,
    Select,
    Subquery,
    Table,
    Text,
    and_,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments.charges import (
    CardSnapshot,
    Charge,
    ChargeStatus,
    Refund,
    RefundReason,
    RefundStatus,
)
from remit.payments.disputes import Dispute, DisputeReason, DisputeStatus
from remit.payments.domain import (
    CancellationReason,
    CaptureMethod,
    ConfirmationMethod,
    PaymentIntent,
    Status,
)
from remit.payments.tables import charges, disputes, payment_intents, refunds
from remit.storage.answer_budget import json_bytes
from remit.storage.fastsql import TableStatements
from remit.storage.pagination import ANY_TIME, CreatedBounds, Cursor, fetch_page

AnyRow = Row[tuple[object, ...]]
Fields = Mapping[Any, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class FirstPage(Generic[T]):
    """The first page of what one object embeds (a PaymentIntent's charges, a Charge's
    refunds), newest first, whether more follow, and how many there are in all."""

    first: list[T]
    has_more: bool
    total_count: int


@dataclass(frozen=True)
class FirstPages(Generic[T]):
    """The first pages of the parents asked, in the order asked, as many as fit the answer's
    byte budget (all of them without one); `left_out` holds the ids of the others, in the
    order asked, for a later call to ask again."""

    pages: dict[str, FirstPage[T]]
    left_out: list[str]
    answered_bytes: int = 0
    """With an `ItemBudget`, the bytes of the items answered, as it counts them."""


@dataclass(frozen=True)
class Budget:
    """How many bytes the pages of one answer may take (remit.payments.embedded_budget). With
    `first_whole`, the first page comes back even when it alone takes more, so that each
    answer of a call that holds only such pages answers one parent at least (and a caller that
    asks again for those left out gets them all); without it, that page is left out like those
    after it, for a call whose answer holds a page of its own besides (ListCharges: its
    caller asks for the refunds left out through the former kind of call)."""

    bytes: int
    first_whole: bool = True


@dataclass(frozen=True)
class ItemBudget:
    """How many bytes the items of one answer's lists may take together, cut between items
    rather than between parents: for a rendering that shows every parent's list, as much of it
    as fits (an event at a version before 2022-11-15, remit.payments.related). Each parent is
    answered, in the order asked, with its newest items as long as they fit; a list cut short,
    or left empty once the budget is spent, says `has_more` (and its `total_count` counts
    every item), as Stripe's embedded lists do for the items past their first page."""

    bytes: int


Firsts = tuple[dict[str, tuple[list[Fields], bool]], list[str]]
"""The first rows of each parent answered and whether it has more; the parents left out."""


def _intent_values(intent: PaymentIntent) -> dict[str, object]:
    return {
        "amount_minor": intent.amount_minor,
        "currency": intent.currency,
        "status": intent.status.value,
        "capture_method": intent.capture_method.value,
        "confirmation_method": intent.confirmation_method.value,
        "client_secret": intent.client_secret,
        "customer_id": intent.customer_id,
        "payment_method_id": intent.payment_method_id,
        "description": intent.description,
        "receipt_email": intent.receipt_email,
        "statement_descriptor": intent.statement_descriptor,
        "statement_descriptor_suffix": intent.statement_descriptor_suffix,
        "shipping": None if intent.shipping is None else dict(intent.shipping),
        "setup_future_usage": intent.setup_future_usage,
        "return_url": intent.return_url,
        "metadata": dict(intent.metadata),
        "amount_capturable_minor": intent.amount_capturable_minor,
        "amount_received_minor": intent.amount_received_minor,
        "latest_charge_id": intent.latest_charge_id,
        "cancellation_reason": None
        if intent.cancellation_reason is None
        else intent.cancellation_reason.value,
        "canceled_at": intent.canceled_at,
        "last_payment_error": None
        if intent.last_payment_error is None
        else dict(intent.last_payment_error),
        "next_action": None if intent.next_action is None else dict(intent.next_action),
        "review_id": intent.review_id,
        "automatic_payment_methods": None
        if intent.automatic_payment_methods is None
        else dict(intent.automatic_payment_methods),
        "allowed_payment_method_types": _json_list(intent.allowed_payment_method_types),
        "excluded_payment_method_types": _json_list(intent.excluded_payment_method_types),
        "request_three_d_secure": intent.request_three_d_secure,
        "updated_at": intent.updated_at,
    }


def _json_list(items: tuple[str, ...] | None) -> list[str] | None:
    return None if items is None else list(items)


def _tuple_or_none(items: list[str] | None) -> tuple[str, ...] | None:
    return None if items is None else tuple(items)


def intent_from_row(m: Fields) -> PaymentIntent:
    return PaymentIntent(
        id=m["id"],
        account_id=m["account_id"],
        amount_minor=m["amount_minor"],
        currency=m["currency"],
        status=Status(m["status"]),
        capture_method=CaptureMethod(m["capture_method"]),
        confirmation_method=ConfirmationMethod(m["confirmation_method"]),
        client_secret=m["client_secret"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        metadata=m["metadata"],
        customer_id=m["customer_id"],
        payment_method_id=m["payment_method_id"],
        description=m["description"],
        receipt_email=m["receipt_email"],
        statement_descriptor=m["statement_descriptor"],
        statement_descriptor_suffix=m["statement_descriptor_suffix"],
        shipping=m["shipping"],
        setup_future_usage=m["setup_future_usage"],
        return_url=m["return_url"],
        amount_capturable_minor=m["amount_capturable_minor"],
        amount_received_minor=m["amount_received_minor"],
        latest_charge_id=m["latest_charge_id"],
        cancellation_reason=None
        if m["cancellation_reason"] is None
        else CancellationReason(m["cancellation_reason"]),
        canceled_at=m["canceled_at"],
        last_payment_error=m["last_payment_error"],
        next_action=m["next_action"],
        review_id=m["review_id"],
        automatic_payment_methods=m["automatic_payment_methods"],
        allowed_payment_method_types=_tuple_or_none(m["allowed_payment_method_types"]),
        excluded_payment_method_types=_tuple_or_none(m["excluded_payment_method_types"]),
        request_three_d_secure=m["request_three_d_secure"],
    )


def _charge_values(charge: Charge) -> dict[str, object]:
    return {
        "payment_intent_id": charge.payment_intent_id,
        "amount_minor": charge.amount_minor,
        "amount_captured_minor": charge.amount_captured_minor,
        "amount_refunded_minor": charge.amount_refunded_minor,
        "currency": charge.currency,
        "status": charge.status.value,
        "captured": charge.captured,
        "capture_requested": charge.capture_requested,
        "authorization_released": charge.authorization_released,
        "payment_method_id": charge.payment_method_id,
        "customer_id": charge.customer_id,
        "card": charge.card.as_json(),
        "outcome": None if charge.outcome is None else dict(charge.outcome),
        "failure_code": charge.failure_code,
        "failure_message": charge.failure_message,
        "decline_code": charge.decline_code,
        "authorization_id": charge.authorization_id,
        "authorized_at": charge.authorized_at,
        "network_result": None if charge.network_result is None else dict(charge.network_result),
        "requested_capture_minor": charge.requested_capture_minor,
        "capture_attempts": charge.capture_attempts,
        "requested_capture_changes": None
        if charge.requested_capture_changes is None
        else dict(charge.requested_capture_changes),
        "description": charge.description,
        "metadata": dict(charge.metadata),
        "risk": None if charge.risk is None else dict(charge.risk),
        "authentication": None if charge.authentication is None else dict(charge.authentication),
        "review_id": charge.review_id,
        "balance_transaction_id": charge.balance_transaction_id,
        "dispute_id": charge.dispute_id,
        "updated_at": charge.updated_at,
    }


def _charge_snapshot(charge: Charge) -> dict[str, object]:
    """The columns a charge copies when it is made: inserted with the row, and updated only by
    a call that names them (a capture's statement descriptors, a confirmation continuing an
    attempt with its own receipt email or shipping)."""
    return {
        "billing_details": dict(charge.billing_details),
        "receipt_email": charge.receipt_email,
        "statement_descriptor": charge.statement_descriptor,
        "statement_descriptor_suffix": charge.statement_descriptor_suffix,
        "shipping": None if charge.shipping is None else dict(charge.shipping),
    }


def charge_from_row(m: Fields) -> Charge:
    return Charge(
        id=m["id"],
        account_id=m["account_id"],
        payment_intent_id=m["payment_intent_id"],
        amount_minor=m["amount_minor"],
        currency=m["currency"],
        status=ChargeStatus(m["status"]),
        payment_method_id=m["payment_method_id"],
        card=CardSnapshot.from_json(m["card"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        amount_captured_minor=m["amount_captured_minor"],
        amount_refunded_minor=m["amount_refunded_minor"],
        captured=m["captured"],
        capture_requested=m["capture_requested"],
        authorization_released=m["authorization_released"],
        customer_id=m["customer_id"],
        outcome=m["outcome"],
        failure_code=m["failure_code"],
        failure_message=m["failure_message"],
        decline_code=m["decline_code"],
        authorization_id=m["authorization_id"],
        authorized_at=m["authorized_at"],
        network_result=m["network_result"],
        requested_capture_minor=m["requested_capture_minor"],
        capture_attempts=m["capture_attempts"],
        requested_capture_changes=m["requested_capture_changes"],
        description=m["description"],
        metadata=m["metadata"],
        risk=m["risk"],
        authentication=m["authentication"],
        review_id=m["review_id"],
        balance_transaction_id=m["balance_transaction_id"],
        billing_details=m["billing_details"],
        receipt_email=m["receipt_email"],
        statement_descriptor=m["statement_descriptor"],
        statement_descriptor_suffix=m["statement_descriptor_suffix"],
        shipping=m["shipping"],
        dispute_id=m["dispute_id"],
    )


def _refund_values(refund: Refund) -> dict[str, object]:
    return {
        "charge_id": refund.charge_id,
        "payment_intent_id": refund.payment_intent_id,
        "amount_minor": refund.amount_minor,
        "currency": refund.currency,
        "status": refund.status.value,
        "reason": None if refund.reason is None else refund.reason.value,
        "failure_reason": refund.failure_reason,
        "acquirer_refund_id": refund.acquirer_refund_id,
        "metadata": dict(refund.metadata),
        "balance_transaction_id": refund.balance_transaction_id,
        "customer_id": refund.customer_id,
        "payment_method_id": refund.payment_method_id,
        "failure_balance_transaction_id": refund.failure_balance_transaction_id,
        "updated_at": refund.updated_at,
    }


def refund_from_row(m: Fields) -> Refund:
    return Refund(
        id=m["id"],
        account_id=m["account_id"],
        charge_id=m["charge_id"],
        payment_intent_id=m["payment_intent_id"],
        amount_minor=m["amount_minor"],
        currency=m["currency"],
        status=RefundStatus(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        reason=None if m["reason"] is None else RefundReason(m["reason"]),
        failure_reason=m["failure_reason"],
        acquirer_refund_id=m["acquirer_refund_id"],
        metadata=m["metadata"],
        balance_transaction_id=m["balance_transaction_id"],
        customer_id=m["customer_id"],
        payment_method_id=m["payment_method_id"],
        failure_balance_transaction_id=m["failure_balance_transaction_id"],
    )


class _AccountScoped:
    table: Table
    # Single-row reads and writes go straight to the driver (see remit.storage.fastsql);
    # lists keep SQLAlchemy's query building.
    statements: TableStatements

    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def _get_row(self, account_id: str, object_id: str, for_update: bool) -> Fields | None:
        statement = self.statements.select_for_update if for_update else self.statements.select
        return await statement.first(self._db, {"account_id": account_id, "id": object_id})

    async def _insert(
        self, object_id: str, account_id: str, created_at: object, values: Mapping[str, object]
    ) -> None:
        row = {"id": object_id, "account_id": account_id, "created_at": created_at, **values}
        await self.statements.insert(list(row)).defer(self._db, row)

    async def _update(self, account_id: str, object_id: str, values: Mapping[str, object]) -> int:
        return await self.statements.update(list(values)).run(
            self._db, {**values, "account_id": account_id, "id": object_id}
        )

    async def _save(self, account_id: str, object_id: str, values: Mapping[str, object]) -> None:
        """Update a row this unit of work read (and locked, or made): nothing waits on it."""
        await self.statements.update(list(values)).defer(
            self._db, {**values, "account_id": account_id, "id": object_id}
        )

    async def _page(
        self,
        account_id: str,
        filters: list[ColumnElement[bool]],
        *,
        limit: int,
        starting_after: Cursor | None,
        ending_before: Cursor | None,
        created: CreatedBounds,
    ) -> tuple[list[AnyRow], bool]:
        return await fetch_page(
            self._db,
            self.table,
            [self.table.c.account_id == account_id, *filters, *created.conditions(self.table)],
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )

    async def _first_of_each(
        self,
        account_id: str,
        parent: Column[Any],
        parent_ids: Sequence[str],
        *,
        limit: int,
        created: CreatedBounds,
        budget: Budget | ItemBudget | None,
    ) -> Firsts:
        """The newest `limit` rows of each of `parent_ids` (by the `parent` column), and
        whether it has more, in one query however many parents there are: each parent's rows
        are ranked newest first and only the first `limit` + 1 of each (the one past the page
        says `has_more`) come back. Every id answered has an entry, empty when it has no rows.

        With a `Budget`, the pages come back whole, in the order asked, as long as they fit its
        bytes, and the parents after them are left out (`_within_budget`): the database cuts
        them, so the pages left out are never read into memory. With an `ItemBudget`, every
        parent has an entry, its rows cut where the budget runs out (`_items_within`); a
        parent cut short, or past the cut, says it has more (`_first_pages` counts its rows,
        and says none when it has none)."""
        found: dict[str, list[Fields]] = {parent_id: [] for parent_id in parent_ids}
        if not found:
            return {}, []
        asked = list(found)
        table = self.table
        rank = (
            func.row_number()
            .over(partition_by=parent, order_by=(table.c.created_at.desc(), table.c.id.desc()))
            .label("rank_in_parent")
        )
        ranked = (
            select(table, rank)
            .where(
                table.c.account_id == account_id,
                parent.in_(asked),
                *created.conditions(table),
            )
            .subquery()
        )
        if isinstance(budget, ItemBudget):
            return await self._items_of_each(
                _items_within(ranked, parent.name, asked, limit=limit, budget=budget),
                parent.name,
                asked,
                limit=limit,
                budget=budget,
            )
        if budget is None:
            query = (
                select(ranked)
                .where(ranked.c.rank_in_parent <= limit + 1)
                .order_by(ranked.c[parent.name], ranked.c.rank_in_parent)
            )
        else:
            query = _within_budget(ranked, parent.name, asked, limit=limit, budget=budget)
        last: Fields | None = None
        for row in await self._db.execute(query):
            last = row._mapping
            found[last[parent.name]].append(last)
        left_out: list[str] = []
        if budget is not None and last is not None:
            answered, cut = _answered(last, budget)
            if cut:
                left_out = asked[answered:]
                for parent_id in left_out:
                    del found[parent_id]
        pages = {parent_id: (rows[:limit], len(rows) > limit) for parent_id, rows in found.items()}
        return pages, left_out

    async def _items_of_each(
        self, query: Select[Any], parent_name: str, asked: list[str], *, limit: int,
        budget: ItemBudget,
    ) -> Firsts:  # fmt: skip
        """The rows `_items_within` answers, by parent: each parent's within the budget, and
        whether it has more (past its page, or past the budget, where the parents after the
        first one cut say so until `_first_pages` counts them)."""
        found: dict[str, tuple[list[Fields], bool]] = {
            parent_id: ([], False) for parent_id in asked
        }
        cut_at: int | None = None
        for row in await self._db.execute(query):
            m = row._mapping
            rows, _ = found[m[parent_name]]
            if m["rank_in_parent"] > limit:
                found[m[parent_name]] = (rows, True)
            elif m["item_bytes_through"] <= budget.bytes:
                rows.append(m)
            else:
                cut_at = int(m["parent_position"])
        if cut_at is not None:
            for parent_id in asked[cut_at - 1 :]:
                found[parent_id] = (found[parent_id][0], True)
        return found, []

    async def _first_pages(
        self,
        account_id: str,
        parent: Column[Any],
        parent_ids: Sequence[str],
        *,
        limit: int,
        created: CreatedBounds,
        budget: Budget | ItemBudget | None,
    ) -> tuple[dict[str, tuple[list[Fields], bool, int]], list[str]]:
        """`_first_of_each`, with how many rows each parent answered has in all: counted for
        the parents with more than a page, all of them in one more query."""
        firsts, left_out = await self._first_of_each(
            account_id, parent, parent_ids, limit=limit, created=created, budget=budget
        )
        longer = [parent_id for parent_id, (_, more) in firsts.items() if more]
        totals: dict[str, int] = {}
        if longer:
            counted = await self._db.execute(
                select(parent, func.count())
                .where(
                    self.table.c.account_id == account_id,
                    parent.in_(longer),
                    *created.conditions(self.table),
                )
                .group_by(parent)
            )
            totals = {str(row[0]): int(row[1]) for row in counted}
        pages: dict[str, tuple[list[Fields], bool, int]] = {}
        for parent_id, (rows, more) in firsts.items():
            # A parent past an `ItemBudget`'s cut may have no rows at all.
            total = totals.get(parent_id, 0) if more else len(rows)
            pages[parent_id] = (rows, total > len(rows), total)
        return pages, left_out


def _within_budget(
    ranked: Subquery, parent_name: str, asked: list[str], *, limit: int, budget: Budget
) -> Select[Any]:
    """The first `limit` + 1 rows of each parent of `ranked` (ranked within its parent), whole
    pages in the order of `asked`, up to the page that would take them past the budget's bytes
    (the first page comes back whole, however large, when the budget says so; otherwise the
    first row of the page past the budget comes back, to say where it stops). A row's bytes
    are those of its JSON text (`json_bytes`), which runs above its protobuf message's, as
    every page's budget counts them (remit.storage.answer_budget); the row past a page
    (`has_more`) counts none, as it is not answered. Each row says the position of its parent
    in `asked` (`parent_position`, from 1), the bytes of the pages through its parent's
    (`bytes_through_parent`) and of its parent's alone (`bytes_of_parent`), and the last
    position of a parent with rows (`last_parent_position`): `_answered` reads where the
    answer stops from them."""
    parent = ranked.c[parent_name]
    position = func.array_position(literal(asked, ARRAY(Text)), parent)
    row_bytes = case((ranked.c.rank_in_parent <= limit, json_bytes(ranked)), else_=0)
    sized = (
        select(
            ranked,
            position.label("parent_position"),
            # Through the end of the row's parent page (its rows are peers in this order).
            func.sum(row_bytes).over(order_by=position).label("bytes_through_parent"),
            func.sum(row_bytes).over(partition_by=parent).label("bytes_of_parent"),
            func.max(position).over().label("last_parent_position"),
        )
        .where(ranked.c.rank_in_parent <= limit + 1)
        .subquery()
    )
    through, alone = sized.c.bytes_through_parent, sized.c.bytes_of_parent
    if budget.first_whole:
        past_the_budget = through == alone  # the first page
    else:
        past_the_budget = and_(sized.c.rank_in_parent == 1, through - alone <= budget.bytes)
    return (
        select(sized)
        .where(or_(through <= budget.bytes, past_the_budget))
        .order_by(sized.c.parent_position, sized.c.rank_in_parent)
    )


def _items_within(
    ranked: Subquery, parent_name: str, asked: list[str], *, limit: int, budget: ItemBudget
) -> Select[Any]:
    """The first `limit` + 1 rows of each parent of `ranked` (ranked within its parent), in
    the order of `asked` and then within each parent's, as long as the rows before them fit
    the budget's bytes: the first row past it comes back too, to say where the answer stops
    (as remit.storage.answer_budget cuts a page). A row's bytes are those of its JSON text
    (`json_bytes`); the row past a page (`has_more`) counts none, as it is not answered. Each
    row says the position of its parent in `asked` (`parent_position`, from 1) and the bytes of
    the rows through it (`item_bytes_through`), and its own (`item_bytes`)."""
    parent = ranked.c[parent_name]
    position = func.array_position(literal(asked, ARRAY(Text)), parent)
    row_bytes = case((ranked.c.rank_in_parent <= limit, json_bytes(ranked)), else_=0)
    in_order = (position, ranked.c.rank_in_parent)
    sized = (
        select(
            ranked,
            position.label("parent_position"),
            row_bytes.label("item_bytes"),
            func.sum(row_bytes).over(order_by=in_order, rows=(None, 0)).label("item_bytes_through"),
        )
        .where(ranked.c.rank_in_parent <= limit + 1)
        .subquery()
    )
    before = sized.c.item_bytes_through - sized.c.item_bytes
    return (
        select(sized)
        .where(before <= budget.bytes)
        .order_by(sized.c.parent_position, sized.c.rank_in_parent)
    )


def _answered_bytes(pages: Iterable[tuple[list[Fields], bool, int]]) -> int:
    """The bytes an `ItemBudget` counted of the rows answered (none without one)."""
    return sum(int(row.get("item_bytes", 0)) for rows, _, _ in pages for row in rows)


def _answered(last: Fields, budget: Budget) -> tuple[int, bool]:
    """From the last row `_within_budget` answered: how many of the parents asked are answered
    (their pages whole), and whether some are left out."""
    position = int(last["parent_position"])
    whole = last["bytes_through_parent"] <= budget.bytes or (
        budget.first_whole and last["bytes_through_parent"] == last["bytes_of_parent"]
    )
    answered = position if whole else position - 1
    return answered, answered < int(last["last_parent_position"])


class PaymentIntentRepository(_AccountScoped):
    table = payment_intents
    statements = TableStatements(payment_intents)

    async def insert(self, intent: PaymentIntent) -> None:
        await self._insert(intent.id, intent.account_id, intent.created_at, _intent_values(intent))

    async def get(
        self, account_id: str, intent_id: str, *, for_update: bool = False
    ) -> PaymentIntent | None:
        row = await self._get_row(account_id, intent_id, for_update)
        return None if row is None else intent_from_row(row)

    async def save(self, intent: PaymentIntent) -> None:
        await self._save(intent.account_id, intent.id, _intent_values(intent))

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: Cursor | None = None,
        ending_before: Cursor | None = None,
        created: CreatedBounds = ANY_TIME,
        customer_id: str | None = None,
    ) -> tuple[list[PaymentIntent], bool]:
        filters = [] if customer_id is None else [self.table.c.customer_id == customer_id]
        rows, more = await self._page(
            account_id,
            filters,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            created=created,
        )
        return [intent_from_row(row._mapping) for row in rows], more


class ChargeRepository(_AccountScoped):
    table = charges
    statements = TableStatements(charges)

    async def insert(self, charge: Charge) -> None:
        await self._insert(
            charge.id,
            charge.account_id,
            charge.created_at,
            {**_charge_values(charge), **_charge_snapshot(charge)},
        )

    async def get(
        self, account_id: str, charge_id: str, *, for_update: bool = False
    ) -> Charge | None:
        row = await self._get_row(account_id, charge_id, for_update)
        return None if row is None else charge_from_row(row)

    async def save(self, charge: Charge, *, snapshot: bool = False) -> None:
        """Update the charge; its copied details too with `snapshot` (bound into the same
        statement)."""
        values = _charge_values(charge)
        if snapshot:
            values.update(_charge_snapshot(charge))
        await self._save(charge.account_id, charge.id, values)

    async def store_network_result(
        self, account_id: str, charge_id: str, result: Mapping[str, object], *, now: datetime
    ) -> None:
        """Keep the network's answer on the charge until it is applied (one column, no read)."""
        changed = await self._update(
            account_id, charge_id, {"network_result": dict(result), "updated_at": now}
        )
        if changed != 1:
            raise LookupError(f"charge {charge_id} is missing")

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: Cursor | None = None,
        ending_before: Cursor | None = None,
        created: CreatedBounds = ANY_TIME,
        customer_id: str | None = None,
        payment_intent_id: str | None = None,
    ) -> tuple[list[Charge], bool]:
        filters: list[ColumnElement[bool]] = []
        if customer_id is not None:
            filters.append(self.table.c.customer_id == customer_id)
        if payment_intent_id is not None:
            filters.append(self.table.c.payment_intent_id == payment_intent_id)
        rows, more = await self._page(
            account_id,
            filters,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            created=created,
        )
        return [charge_from_row(row._mapping) for row in rows], more

    async def first_pages_of_intents(
        self,
        account_id: str,
        intent_ids: Sequence[str],
        *,
        limit: int,
        created: CreatedBounds = ANY_TIME,
        budget: Budget | ItemBudget | None = None,
    ) -> FirstPages[Charge]:
        """The newest `limit` charges of each PaymentIntent, whether it has more and how many
        it has, in two queries however many intents there are: for as many intents as fit
        `budget` bytes (`_first_of_each`), all of them without one."""
        pages, left_out = await self._first_pages(
            account_id,
            self.table.c.payment_intent_id,
            intent_ids,
            limit=limit,
            created=created,
            budget=budget,
        )
        return FirstPages(
            {
                intent_id: FirstPage([charge_from_row(row) for row in rows], more, total)
                for intent_id, (rows, more, total) in pages.items()
            },
            left_out,
            _answered_bytes(pages.values()),
        )


class RefundRepository(_AccountScoped):
    table = refunds
    statements = TableStatements(refunds)

    async def insert(self, refund: Refund) -> None:
        await self._insert(refund.id, refund.account_id, refund.created_at, _refund_values(refund))

    async def get(
        self, account_id: str, refund_id: str, *, for_update: bool = False
    ) -> Refund | None:
        row = await self._get_row(account_id, refund_id, for_update)
        return None if row is None else refund_from_row(row)

    async def save(self, refund: Refund) -> None:
        await self._save(refund.account_id, refund.id, _refund_values(refund))

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: Cursor | None = None,
        ending_before: Cursor | None = None,
        created: CreatedBounds = ANY_TIME,
        charge_id: str | None = None,
        payment_intent_id: str | None = None,
    ) -> tuple[list[Refund], bool]:
        filters: list[ColumnElement[bool]] = []
        if charge_id is not None:
            filters.append(self.table.c.charge_id == charge_id)
        if payment_intent_id is not None:
            filters.append(self.table.c.payment_intent_id == payment_intent_id)
        rows, more = await self._page(
            account_id,
            filters,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            created=created,
        )
        return [refund_from_row(row._mapping) for row in rows], more

    async def of_charge(self, account_id: str, charge_id: str) -> list[Refund]:
        """Every refund of the charge, in no particular order."""
        c = self.table.c
        rows = await self._db.execute(
            select(self.table).where(c.account_id == account_id, c.charge_id == charge_id)
        )
        return [refund_from_row(row._mapping) for row in rows]

    async def first_of_charges(
        self,
        account_id: str,
        charge_ids: Sequence[str],
        *,
        limit: int,
        created: CreatedBounds = ANY_TIME,
        budget: Budget | None = None,
    ) -> tuple[dict[str, tuple[list[Refund], bool]], list[str]]:
        """The newest `limit` refunds of each charge, and whether it has more, in one query
        however many charges there are: for as many charges as fit `budget` bytes
        (`_first_of_each`), all of them without one; the others are left out (listed last)."""
        rows, left_out = await self._first_of_each(
            account_id,
            self.table.c.charge_id,
            charge_ids,
            limit=limit,
            created=created,
            budget=budget,
        )
        pages = {
            charge_id: ([refund_from_row(row) for row in first], more)
            for charge_id, (first, more) in rows.items()
        }
        return pages, left_out

    async def first_pages_of_charges(
        self,
        account_id: str,
        charge_ids: Sequence[str],
        *,
        limit: int,
        created: CreatedBounds = ANY_TIME,
        budget: Budget | ItemBudget | None = None,
    ) -> FirstPages[Refund]:
        """The newest `limit` refunds of each charge, whether it has more and how many it has,
        in two queries however many charges there are: for as many charges as fit `budget`
        bytes (`_first_of_each`), all of them without one."""
        pages, left_out = await self._first_pages(
            account_id,
            self.table.c.charge_id,
            charge_ids,
            limit=limit,
            created=created,
            budget=budget,
        )
        return FirstPages(
            {
                charge_id: FirstPage([refund_from_row(row) for row in rows], more, total)
                for charge_id, (rows, more, total) in pages.items()
            },
            left_out,
            _answered_bytes(pages.values()),
        )


def _dispute_values(dispute: Dispute) -> dict[str, object]:
    return {
        "charge_id": dispute.charge_id,
        "payment_intent_id": dispute.payment_intent_id,
        "amount_minor": dispute.amount_minor,
        "currency": dispute.currency,
        "reason": dispute.reason.value,
        "status": dispute.status.value,
        "evidence": dict(dispute.evidence),
        "evidence_due_by": dispute.evidence_due_by,
        "submission_count": dispute.submission_count,
        "past_due": dispute.past_due,
        "balance_transaction_ids": list(dispute.balance_transaction_ids),
        "metadata": dict(dispute.metadata),
        "card_brand": dispute.card_brand,
        "updated_at": dispute.updated_at,
    }


def dispute_from_row(m: Fields) -> Dispute:
    return Dispute(
        id=m["id"],
        account_id=m["account_id"],
        charge_id=m["charge_id"],
        payment_intent_id=m["payment_intent_id"],
        amount_minor=m["amount_minor"],
        currency=m["currency"],
        reason=DisputeReason(m["reason"]),
        status=DisputeStatus(m["status"]),
        evidence_due_by=m["evidence_due_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        evidence=m["evidence"],
        submission_count=m["submission_count"],
        past_due=m["past_due"],
        balance_transaction_ids=tuple(m["balance_transaction_ids"]),
        metadata=m["metadata"],
        card_brand=m["card_brand"],
    )


class DisputeRepository(_AccountScoped):
    table = disputes
    statements = TableStatements(disputes)

    async def insert(self, dispute: Dispute) -> None:
        await self._insert(
            dispute.id, dispute.account_id, dispute.created_at, _dispute_values(dispute)
        )

    async def get(
        self, account_id: str, dispute_id: str, *, for_update: bool = False
    ) -> Dispute | None:
        row = await self._get_row(account_id, dispute_id, for_update)
        return None if row is None else dispute_from_row(row)

    async def save(self, dispute: Dispute) -> None:
        await self._save(dispute.account_id, dispute.id, _dispute_values(dispute))

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: Cursor | None = None,
        ending_before: Cursor | None = None,
        created: CreatedBounds = ANY_TIME,
        charge_id: str | None = None,
        payment_intent_id: str | None = None,
    ) -> tuple[list[Dispute], bool]:
        filters: list[ColumnElement[bool]] = []
        if charge_id is not None:
            filters.append(self.table.c.charge_id == charge_id)
        if payment_intent_id is not None:
            filters.append(self.table.c.payment_intent_id == payment_intent_id)
        rows, more = await self._page(
            account_id,
            filters,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            created=created,
        )
        return [dispute_from_row(row._mapping) for row in rows], more
