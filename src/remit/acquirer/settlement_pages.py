"""A day's settlement report a page at a time: page sizes and page tokens.

The report is read oldest first, by (settled_at, operation id), and a page token names the last
row of the page it follows: the next page is the rows after it. A busy day thus reaches the
caller in messages of bounded size, where the whole day in one response outgrew gRPC's 4 MB
limit at about 26,000 rows.

Each page is its own read, and the acquirer keeps settling meanwhile: an operation settles at
the time its transaction takes, but is seen once that transaction commits, so one committed
between two pages may settle before the last row already returned. Read as it stands at each
page, the report would miss it while showing rows settled after it. So a report is the day as
the database's snapshot at its first page has it: the token carries that snapshot
(`pg_current_snapshot()`), and every page returns only the operations whose writing
transaction it sees as committed (acquirer migration 0003). A row committed while the pages
are read is in a later report, never in this one, and no row is on two pages.

A token also names the date and merchant it was made for: used with another, it would start
another report part-way, so it is refused instead.

Whether the report is partial is judged once, at its first page, and carried in the token
(`ResumedReport`): its rows are the first page's snapshot, so a later page judged again would
call whole a report read inside the day's grace, or refuse a report whose first page was taken
when a clock read a moment later (another replica's, or a reading stepped back) says the day
is not over. A token of the version before, which carried no judgement, leaves it to the page.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from remit.acquirer.domain import SettlementRow
from remit.core.errors import invalid

# A row holds at most about 430 bytes (a 255-character reference, three ids, a timestamp,
# three integers), so a full page stays near 2 MB, about half gRPC's default message limit.
MAX_PAGE_SIZE: Final = 5000


# pg_current_snapshot()'s text form: xmin:xmax:xip,xip,... (transaction ids, in decimal).
_SNAPSHOT = re.compile(r"([0-9]{1,19}):([0-9]{1,19}):([0-9]{1,19}(?:,[0-9]{1,19})*)?")


def _is_snapshot(text: str) -> bool:
    """Whether `text` is a snapshot PostgreSQL reads: 1 <= xmin <= xmax (0 is no transaction
    id, refused as either), and the transactions in progress between them, in order."""
    found = _SNAPSHOT.fullmatch(text)
    if found is None:
        return False
    xmin, xmax = int(found[1]), int(found[2])
    in_progress = [int(xid) for xid in found[3].split(",")] if found[3] else []
    within = all(xmin <= xid < xmax for xid in in_progress)
    return 1 <= xmin <= xmax and within and in_progress == sorted(in_progress)


@dataclass(frozen=True)
class SettlementCursor:
    """The last row a page returned; the next page starts after it, in the report's
    snapshot."""

    settled_at: datetime
    operation_id: str
    # The database snapshot the report's first page was read in, as pg_current_snapshot()
    # spells it: the report holds what had committed then.
    snapshot: str

    @staticmethod
    def after(row: SettlementRow, snapshot: str) -> "SettlementCursor":
        return SettlementCursor(row.settled_at, row.operation_id, snapshot)


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


@dataclass(frozen=True)
class ResumedReport:
    """What a page token carries: where the next page starts, and whether the report it
    continues was judged partial at its first page (None: a token of the version before,
    which did not say)."""

    cursor: SettlementCursor
    partial: bool | None


def page_token(
    cursor: SettlementCursor, day: date, merchant_id: str | None, *, partial: bool
) -> str:
    document = {
        "date": day.isoformat(),
        "merchant_id": merchant_id or "",
        "settled_at": cursor.settled_at.isoformat(),
        "operation_id": cursor.operation_id,
        "snapshot": cursor.snapshot,
        "partial": partial,
    }
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


def resumed_from_token(token: str, day: date, merchant_id: str | None) -> ResumedReport | None:
    """The report `token` continues (None for the first page, an empty token)."""
    if not token:
        return None
    refused = invalid(
        "page_token is not a next_page_token of this date's and merchant's report.", "page_token"
    )
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()))
        made_for = (document["date"], document["merchant_id"])
        cursor = SettlementCursor(
            datetime.fromisoformat(document["settled_at"]),
            str(document["operation_id"]),
            str(document["snapshot"]),
        )
        partial = document.get("partial")
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError, AttributeError):
        raise refused from None
    if made_for != (day.isoformat(), merchant_id or "") or cursor.settled_at.tzinfo is None:
        raise refused
    if partial is not None and not isinstance(partial, bool):
        raise refused
    # Checked here, not by the database: a malformed one would fail the query as remit's own
    # error rather than the caller's. A token of the earlier version, which had none, is
    # refused too: the report is read again from its first page.
    if not _is_snapshot(cursor.snapshot):
        raise refused
    return ResumedReport(cursor, partial)
