"""Which settlement day a command over one day's settlement takes (`remit reconcile`, `remit
settlement-report`, and the RPCs behind them: Reconcile, GetSettlementReport).

A day that is over in UTC is taken whole. A day that has not begun is refused: nothing has
settled on it. Today is not over, so what it shows lacks what settles later today: it is taken
only when the caller asks for a partial result, which then says it is partial. One rule, so
that the commands agree on which days they take and say so in the same words.
"""

import re
from datetime import date

from remit.core.errors import ErrorKind, RemitError, invalid

# `date.fromisoformat` alone also takes 20261102 and week dates such as 2026-W44-1.
_CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(value: str) -> date:
    """The calendar date `value` spells as YYYY-MM-DD; INVALID_ARGUMENT on `date` otherwise."""
    try:
        if not _CALENDAR_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(f"Invalid date {value[:20]!r}: use YYYY-MM-DD.", "date") from None


def settlement_day(value: str, *, today: date, allow_partial: bool) -> date:
    """The day `value` names, refused when it has not begun, and when it is `today` (not over,
    in UTC) unless `allow_partial`."""
    day = parse_day(value)
    if day > today:
        raise invalid(
            f"{day} has not begun (it is {today} in UTC): nothing has settled on it yet.", "date"
        )
    if day == today and not allow_partial:
        raise RemitError(
            message=f"{day} is not over in UTC: what settles on it later would be left out, "
            "and movements still in flight would show as missing. Ask again after midnight "
            "UTC, or for a partial result (--allow-partial), which is marked partial.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="day_not_over",
            param="date",
        )
    return day


def is_partial(day: date, *, today: date) -> bool:
    """Whether a result for `day` covers only part of it: the day is not over yet."""
    return day >= today
