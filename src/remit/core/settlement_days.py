"""Which settlement day a command over one day's settlement takes (`remit reconcile`, `remit
settlement-report`, and the RPCs behind them: Reconcile, GetSettlementReport).

A day that is over is taken whole. A day that has not begun is refused: nothing has settled on
it. A day not over lacks what settles later on it: it is taken only when the caller asks for a
partial result, which then says it is partial. One rule, so that the commands agree on which
days they take and say so in the same words.

A day is over `grace` after its end in UTC (`day_over_at`): a movement stamped with a time of
the day's last moments may still be committing after midnight, and a report read before it
commits would leave it out, while the next day's report does not list it either (the acquirer's
`remit.acquirer.settlement_clock` says how long that can take there). Within the grace the day
is not refused but "not yet" (UNAVAILABLE, to retry at the time the message gives): a nightly
run started at midnight succeeds when run again a minute or two later.
"""

import re
from datetime import UTC, date, datetime, time, timedelta

from remit.core.errors import ErrorKind, RemitError, invalid

# `date.fromisoformat` alone also takes 20261102 and week dates such as 2026-W44-1.
_CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

NO_GRACE = timedelta(0)


def parse_day(value: str) -> date:
    """The calendar date `value` spells as YYYY-MM-DD; INVALID_ARGUMENT on `date` otherwise."""
    try:
        if not _CALENDAR_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(f"Invalid date {value[:20]!r}: use YYYY-MM-DD.", "date") from None


def day_over_at(day: date, *, grace: timedelta = NO_GRACE) -> datetime:
    """When a result for `day` is whole: `grace` after the day's end in UTC."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) + grace


def settlement_day(
    value: str, *, now: datetime, allow_partial: bool, grace: timedelta = NO_GRACE
) -> date:
    """The day `value` names, refused when it has not begun at `now`, and when it is today
    unless `allow_partial`; UNAVAILABLE, to retry (`day_still_settling`), when it has ended but
    is within its grace, unless `allow_partial`."""
    day = parse_day(value)
    today = now.astimezone(UTC).date()
    if day > today:
        raise invalid(
            f"{day} has not begun (it is {today} in UTC): nothing has settled on it yet.", "date"
        )
    if is_partial(day, now=now, grace=grace) and not allow_partial:
        over_at = day_over_at(day, grace=grace)
        if day == today:
            raise RemitError(
                message=f"{day} is not over in UTC: what settles on it later would be left out, "
                "and movements still in flight would show as missing. Ask again once it is over "
                f"(from {over_at:%Y-%m-%d %H:%M:%S} UTC), or for a partial result "
                "(--allow-partial), which is marked partial.",
                kind=ErrorKind.FAILED_PRECONDITION,
                code="day_not_over",
                param="date",
            )
        raise day_still_settling(day, over_at)
    return day


def day_still_settling(day: date, over_at: datetime) -> RemitError:
    """`day` has ended but is within its grace: not a refusal of the request, which the same
    request made at `over_at` is granted, but "not yet". UNAVAILABLE and to be retried, so that
    a nightly run started just after midnight is told to run again shortly (exit 75), not that
    running it again will not help (exit 2)."""
    return RemitError(
        message=f"{day} ended at midnight UTC, but movements it stamped may still be "
        "committing and would be left out, or show as missing. Retry from "
        f"{over_at:%Y-%m-%d %H:%M:%S} UTC, when the day is whole, or ask for a partial result "
        "(--allow-partial), which is marked partial.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        code="day_not_over",
        param="date",
        should_retry=True,
    )


def is_partial(day: date, *, now: datetime, grace: timedelta = NO_GRACE) -> bool:
    """Whether a result for `day` taken at `now` covers only part of it: it is not over yet."""
    return now < day_over_at(day, grace=grace)
