"""A stored reconciliation's rows a page at a time (Reconcile, GetReconciliation,
ListReconciliationRows): page sizes, page tokens, and the read of one page.

A busy day compares tens of thousands of items, nearly all matched. Every row in one message
outgrew gRPC's 4 MB limit at about 26,500 rows: the run was stored, and no gRPC caller could
read it. So Reconcile and GetReconciliation answer the run's counts and its first page, and
ListReconciliationRows the rest.

The rows that differ come first, then the matched ones, each in the order the run stored them
(the rows' ids): what an operator acts on is on the first page, whatever the day's volume. A
page token names the last row of the page it follows, as (matched, id): the next page is the
rows after it in that order. A stored run's rows never change, so the pages need no snapshot
(as the acquirer's settlement report's do) to hold each row exactly once.

A token also names the run, and the status it was made for: used with another, it would start
another listing part-way, so it is refused instead.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import invalid
from remit.ledger.reconcile import ReconciliationRow, RowStatus, row_of_record
from remit.ledger.tables import reconciliation_rows

# A row holds a few hundred bytes (about 160 for a matched one; a long reference and a
# mismatch's differences make it at most a couple of kB), so a full page stays well inside
# gRPC's default 4 MB message limit.
MAX_PAGE_SIZE: Final = 1000
DEFAULT_PAGE_SIZE: Final = 500
# The rows Reconcile and GetReconciliation answer with the run: a run this size or smaller
# reaches its caller whole, as before pages.
FIRST_PAGE_SIZE: Final = MAX_PAGE_SIZE


@dataclass(frozen=True)
class RowCursor:
    """The last row a page returned; the next page starts after it."""

    matched: bool
    row_id: int


@dataclass(frozen=True)
class RowsPage:
    rows: list[ReconciliationRow]
    # Where the next page starts; None when this page is the last.
    next: RowCursor | None


def page_limit(page_size: int) -> int:
    """Rows for a page of `page_size`: the default for 0, at most MAX_PAGE_SIZE."""
    if page_size < 0:
        raise invalid("page_size must be 0 (the default) or more.", "page_size")
    return DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)


def page_token(cursor: RowCursor, reconciliation_id: str, status: RowStatus | None) -> str:
    document = {
        "reconciliation_id": reconciliation_id,
        "status": "" if status is None else status.value,
        "matched": cursor.matched,
        "row_id": cursor.row_id,
    }
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


def cursor_from_token(
    token: str, reconciliation_id: str, status: RowStatus | None
) -> RowCursor | None:
    """Where the page `token` asks for starts (None for the first page, an empty token)."""
    if not token:
        return None
    refused = invalid(
        "page_token is not a next_page_token of this reconciliation's rows (of this status).",
        "page_token",
    )
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()))
        made_for = (document["reconciliation_id"], document["status"])
        matched, row_id = document["matched"], document["row_id"]
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError, AttributeError):
        raise refused from None
    if made_for != (reconciliation_id, "" if status is None else status.value):
        raise refused
    # bool is an int to Python: a row id of `true` is not one.
    if not isinstance(matched, bool) or isinstance(row_id, bool) or not isinstance(row_id, int):
        raise refused
    return RowCursor(matched, row_id)


def page_query(
    reconciliation_id: str, *, status: RowStatus | None, after: RowCursor | None, limit: int
) -> Select[Any]:
    """The run's rows after `after`, those that differ first, one more than `limit`: whether
    there is a next page. Read by the index in that order (core migration 0082), a page reads
    its own rows, not all of a busy day's."""
    c = reconciliation_rows.c
    # False sorts before true: the rows that differ first.
    matched = c.status == RowStatus.MATCHED.value
    query = select(reconciliation_rows, matched.label("matched")).where(
        c.reconciliation_id == reconciliation_id
    )
    if status is not None:
        query = query.where(c.status == status.value)
    if after is not None:
        query = query.where(
            tuple_(matched, c.id) > tuple_(literal(after.matched), literal(after.row_id))
        )
    return query.order_by(matched, c.id).limit(limit + 1)


async def rows_page(
    db: AsyncConnection,
    reconciliation_id: str,
    *,
    status: RowStatus | None,
    after: RowCursor | None,
    limit: int,
) -> RowsPage:
    """The `limit` rows of the run after `after`, those that differ first."""
    query = page_query(reconciliation_id, status=status, after=after, limit=limit)
    found = list(await db.execute(query))
    page = found[:limit]
    more = len(found) > limit
    return RowsPage(
        rows=[row_of_record(record) for record in page],
        next=RowCursor(page[-1].matched, page[-1].id) if more else None,
    )
