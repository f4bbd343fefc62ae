"""A day's settlement report a page at a time: page sizes and page tokens.

The report is read oldest first, by (settled_at, operation id), and a page token names the last
row of the page it follows: the next page is the rows after it, however many settled since.
A busy day thus reaches the caller in messages of bounded size, where the whole day in one
response outgrew gRPC's 4 MB limit at about 26,000 rows.

A token also names the date and merchant it was made for: used with another, it would start
another report part-way, so it is refused instead.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from remit.acquirer.domain import SettlementRow
from remit.core.errors import invalid

# A row holds at most about 430 bytes (a 255-character reference, three ids, a timestamp,
# three integers), so a full page stays near 2 MB, about half gRPC's default message limit.
MAX_PAGE_SIZE: Final = 5000


@dataclass(frozen=True)
class SettlementCursor:
    """The last row a page returned; the next page starts after it."""

    settled_at: datetime
    operation_id: str

    @staticmethod
    def after(row: SettlementRow) -> "SettlementCursor":
        return SettlementCursor(row.settled_at, row.operation_id)


@dataclass(frozen=True)
class SettlementPage:
    rows: list[SettlementRow]
    # Where the next page starts; None when this page is the last.
    next: SettlementCursor | None


def page_limit(page_size: int) -> int | None:
    """Rows for a page of `page_size`: None (every row) for 0, at most MAX_PAGE_SIZE."""
    if page_size < 0:
        raise invalid("page_size must be 0 (every row) or more.", "page_size")
    return None if page_size == 0 else min(page_size, MAX_PAGE_SIZE)


def page_token(cursor: SettlementCursor, day: date, merchant_id: str | None) -> str:
    document = {
        "date": day.isoformat(),
        "merchant_id": merchant_id or "",
        "settled_at": cursor.settled_at.isoformat(),
        "operation_id": cursor.operation_id,
    }
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


def cursor_from_token(token: str, day: date, merchant_id: str | None) -> SettlementCursor | None:
    """The cursor `token` carries (None for the first page, an empty token)."""
    if not token:
        return None
    refused = invalid(
        "page_token is not a next_page_token of this date's and merchant's report.", "page_token"
    )
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()))
        made_for = (document["date"], document["merchant_id"])
        cursor = SettlementCursor(
            datetime.fromisoformat(document["settled_at"]), str(document["operation_id"])
        )
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError):
        raise refused from None
    if made_for != (day.isoformat(), merchant_id or "") or cursor.settled_at.tzinfo is None:
        raise refused
    return cursor
