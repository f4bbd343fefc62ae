"""How much of one answer a page of objects may take. Every list a service answers holds at
most a page (100) of objects, but nothing else held their bytes: Stripe's limits count
characters (5,000 in a string, metadata of 50 keys of 40 and values of 500), and a character
may take 4 bytes, so one customer the API accepts takes ~450 KB and a page of 100 of them (or
of their events) ~45 MB, past what the facade receives in one answer (`FACADE_RECEIVE_BYTES`):
a page no client could ever read, refused again on every retry.

So a page stops at `PAGE_ANSWER_BYTES`, with `has_more` and fewer objects than its `limit`,
as Stripe's paging allows: a client (and stripe-python's auto-pager) asks for the next page
from the last object it got, for as long as `has_more` says. The first object is answered
however large, so that each page moves on. The database counts and cuts (`fetch_within`), so
the objects left out are never read into a service's memory. The lists a page embeds are cut
the same way, by the same measure (`json_bytes`; remit.payments.embedded_budget)."""

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import ColumnElement, FromClause, Row, Select, Text, asc, cast, desc, func, or_
from sqlalchemy import select as sql_select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlalchemy.sql.selectable import NamedFromClause

from remit.grpcutil.facade_limits import FACADE_RECEIVE_BYTES

PAGE_ANSWER_BYTES: Final = FACADE_RECEIVE_BYTES // 4
"""4 MiB of a 16 MiB answer, counted as `json_bytes` counts. A row's JSON text runs above its
protobuf message (names and timestamps spelled out, a string's bytes the same in both), so a
page's answer takes less than this. Its REST rendering is JSON too (non-ASCII characters
unescaped), and the facade asks for the lists old versions embed in answers of their own
(remit.rest.embedded_lists). ListCharges also answers the refunds its charges embed, within
`EMBEDDED_ANSWER_BYTES` more: either way an answer stays well within the facade's limit, with
room for the one object answered alone past the budget (~450 KB at most).

A row does not measure what an event answers, though: the core renders it at an old version
before answering (its `previous_attributes` whole before 2015-01-26, repeating what the object
held; each charge with its refunds before 2022-11-15, up to 100 of them, which its row does not
hold), and ListEvents answers each both as a message and as JSON unless asked for the JSON
alone. So ListEvents cuts its page again by the bytes it answers, after rendering
(remit.webhooks.grpc), against this same budget; the lists an event embeds are held to
`EMBEDDED_ANSWER_BYTES` of their own (remit.payments.related)."""

# Named apart from any table's columns, beside which they are selected.
_THROUGH: Final = "answer_bytes_through_row"


def json_bytes(rows: NamedFromClause) -> ColumnElement[int]:
    """The bytes of a row of `rows` as JSON text, as the database renders it: what an answer's
    budget counts, without reading the row."""
    return func.octet_length(cast(func.row_to_json(rows.table_valued()), Text))


async def fetch_within(
    db: AsyncConnection,
    query: Select[Any],
    keys: Sequence[ColumnElement[Any]],
    *,
    descending: bool,
    limit: int,
    budget_bytes: int = PAGE_ANSWER_BYTES,
) -> tuple[list[Row[Any]], bool]:
    """The first `limit` rows of `query` in the order of `keys` (unique together, all
    descending or all ascending), as many as fit `budget_bytes` (the first whether or not it
    does), and whether more lie beyond them: past the page, or past the budget.

    The database orders and limits the rows as the query alone would (an index or a top-N sort
    picks them), then sums their bytes in that order and answers those within the budget and
    the first one past them, which says `has_more` without being answered."""
    direction = desc if descending else asc
    page = query.order_by(*(direction(key) for key in keys)).limit(limit + 1).subquery()
    order = [direction(_column_of(page, key)) for key in keys]
    row_bytes = json_bytes(page)
    sized = sql_select(
        page,
        func.row_number().over(order_by=order).label("answer_position"),
        func.sum(row_bytes).over(order_by=order, rows=(None, 0)).label(_THROUGH),
        func.sum(row_bytes).over(order_by=order, rows=(None, -1)).label("answer_bytes_before_row"),
    ).subquery()
    answered_or_next: Select[Any] = (
        sql_select(*(sized.c[column.key] for column in page.c), sized.c[_THROUGH])
        .where(or_(sized.c.answer_position <= 2, sized.c.answer_bytes_before_row <= budget_bytes))
        .order_by(sized.c.answer_position)
    )
    rows = list((await db.execute(answered_or_next)).all())
    answered = [
        row
        for position, row in enumerate(rows)
        if position == 0 or row._mapping[_THROUGH] <= budget_bytes
    ][:limit]
    return answered, len(rows) > len(answered)


def _column_of(page: FromClause, key: ColumnElement[Any]) -> ColumnElement[Any]:
    column = page.corresponding_column(key) if isinstance(key, KeyedColumnElement) else None
    if column is None:
        raise ValueError(f"the page's query does not select its order key {key}")
    return column
