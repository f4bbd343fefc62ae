"""Newest-first keyset pagination over (created_at, id), the order of every Stripe list."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Table, and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection


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
    """One page, newest first, and whether more rows lie beyond it in the paging direction."""
    created, ident = table.c[created_column], table.c[id_column]
    where = list(conditions)
    query = select(table)
    if starting_after is not None:
        at, cursor = starting_after
        where.append(or_(created < at, and_(created == at, ident < cursor)))
        query = query.order_by(created.desc(), ident.desc())
    elif ending_before is not None:
        at, cursor = ending_before
        where.append(or_(created > at, and_(created == at, ident > cursor)))
        query = query.order_by(created.asc(), ident.asc())
    else:
        query = query.order_by(created.desc(), ident.desc())
    rows = list((await db.execute(query.where(*where).limit(limit + 1))).all())
    page = rows[:limit]
    if ending_before is not None:
        page.reverse()
    return page, len(rows) > limit
