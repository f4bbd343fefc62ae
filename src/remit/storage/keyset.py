"""Newest-first keyset pagination over (created_at, id), the order of every Stripe list."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Table, and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.storage.answer_budget import fetch_within


async def fetch_page(
    db: AsyncConnection,
    table: Table,
    conditions: Sequence[ColumnElement[bool]],
    *,
    limit: int,
    starting_after: tuple[datetime, str] | None = None,
    ending_before: tuple[datetime, str] | None = None,
    created_column: str = "created_at",
    id_column: str = "id",
) -> tuple[list[Row[tuple[object, ...]]], bool]:
    """One page, newest first, and whether more rows lie beyond it in the paging direction: at
    most `limit`, fewer when they would take an answer past its budget
    (remit.storage.answer_budget)."""
    created, ident = table.c[created_column], table.c[id_column]
    where = list(conditions)
    if starting_after is not None:
        at, cursor = starting_after
        where.append(or_(created < at, and_(created == at, ident < cursor)))
    elif ending_before is not None:
        at, cursor = ending_before
        where.append(or_(created > at, and_(created == at, ident > cursor)))
    backwards = starting_after is None and ending_before is not None
    page, has_more = await fetch_within(
        db, select(table).where(*where), (created, ident), descending=not backwards, limit=limit
    )
    if backwards:
        page.reverse()
    return page, has_more
