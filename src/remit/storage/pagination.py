"""Keyset pagination, newest first, as every Stripe list pages: by (created_at, id)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Row, Table, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.storage.answer_budget import fetch_within


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str


@dataclass(frozen=True)
class CreatedBounds:
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None

    def conditions(self, table: Table) -> list[ColumnElement[bool]]:
        column = table.c.created_at
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


ANY_TIME = CreatedBounds()


async def fetch_page(
    db: AsyncConnection,
    table: Table,
    conditions: Sequence[ColumnElement[bool]],
    *,
    limit: int,
    starting_after: Cursor | None = None,
    ending_before: Cursor | None = None,
) -> tuple[list[Row[tuple[object, ...]]], bool]:
    """One page of rows, newest first, and whether more lie beyond it in that direction: at
    most `limit`, fewer when they would take an answer past its budget
    (remit.storage.answer_budget)."""
    created, ident = table.c.created_at, table.c.id
    where = list(conditions)
    if ending_before is not None:
        at, cursor_id = ending_before.created_at, ending_before.id
        where.append(or_(created > at, and_(created == at, ident > cursor_id)))
    elif starting_after is not None:
        at, cursor_id = starting_after.created_at, starting_after.id
        where.append(or_(created < at, and_(created == at, ident < cursor_id)))
    page, has_more = await fetch_within(
        db,
        select(table).where(*where),
        (created, ident),
        descending=ending_before is None,
        limit=limit,
    )
    if ending_before is not None:
        page.reverse()
    return page, has_more


async def cursor_for(
    db: AsyncConnection, table: Table, account_id: str, object_id: str
) -> Cursor | None:
    row = (
        await db.execute(
            select(table.c.created_at, table.c.id).where(
                table.c.account_id == account_id, table.c.id == object_id
            )
        )
    ).first()
    return None if row is None else Cursor(row.created_at, row.id)
