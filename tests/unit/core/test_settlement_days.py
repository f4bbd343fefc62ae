"""Which days reconciliation and the settlement report take: those that are over, and one not
over only as partial; the date spelt YYYY-MM-DD and nothing else."""

from datetime import UTC, date, datetime, timedelta

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.core.settlement_days import day_over_at, is_partial, parse_day, settlement_day

TODAY = date(2026, 11, 2)
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 2, tzinfo=UTC)
GRACE = timedelta(seconds=97)


def test_a_day_that_is_over_is_taken() -> None:
    assert settlement_day("2026-11-01", now=NOW, allow_partial=False) == date(2026, 11, 1)


@pytest.mark.parametrize("allow_partial", [False, True])
def test_a_day_not_begun_is_refused(allow_partial: bool) -> None:
    with pytest.raises(RemitError) as refused:
        settlement_day("2026-11-03", now=NOW, allow_partial=allow_partial)
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "date")
    assert "has not begun" in refused.value.message


def test_today_is_refused_unless_a_partial_result_is_asked_for() -> None:
    with pytest.raises(RemitError) as refused:
        settlement_day("2026-11-02", now=NOW, allow_partial=False)
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    assert not refused.value.should_retry
    assert refused.value.code == "day_not_over"
    assert "--allow-partial" in refused.value.message
    assert settlement_day("2026-11-02", now=NOW, allow_partial=True) == TODAY


def test_yesterday_is_not_over_until_its_grace_has_passed() -> None:
    """A movement stamped in yesterday's last moments may commit after midnight: until the
    grace has passed, yesterday is taken only as partial, and said to be so."""
    just_after = MIDNIGHT + timedelta(seconds=0.5)
    with pytest.raises(RemitError) as not_yet:
        settlement_day("2026-11-01", now=just_after, allow_partial=False, grace=GRACE)
    assert not_yet.value.code == "day_not_over"
    assert "2026-11-02 00:01:37 UTC" in not_yet.value.message
    assert settlement_day("2026-11-01", now=just_after, allow_partial=True, grace=GRACE)
    assert is_partial(date(2026, 11, 1), now=just_after, grace=GRACE)
    assert is_partial(date(2026, 11, 1), now=MIDNIGHT + GRACE - timedelta(microseconds=1),
                      grace=GRACE)  # fmt: skip
    over = MIDNIGHT + GRACE
    assert day_over_at(date(2026, 11, 1), grace=GRACE) == over
    assert not is_partial(date(2026, 11, 1), now=over, grace=GRACE)
    assert settlement_day("2026-11-01", now=over, allow_partial=False, grace=GRACE)


def test_yesterday_within_its_grace_is_not_refused_but_to_be_asked_again_shortly() -> None:
    """A nightly run started at 00:00:30 is granted the same request a minute later: it is
    told to retry then (UNAVAILABLE, should_retry, exit 75 from the commands), not refused
    as if running it again would not help."""
    with pytest.raises(RemitError) as not_yet:
        settlement_day(
            "2026-11-01", now=MIDNIGHT + timedelta(seconds=30), allow_partial=False, grace=GRACE
        )
    assert (not_yet.value.kind, not_yet.value.should_retry) == (ErrorKind.UNAVAILABLE, True)
    assert "Retry from 2026-11-02 00:01:37 UTC" in not_yet.value.message


# A week date, the basic format, a short field, a time, digits of another script.
@pytest.mark.parametrize(
    "raw", ["2026-W44-1", "20261102", "2026-11-2", "2026-11-02T00", "\u0662026-11-02"]
)
def test_only_a_calendar_date_spelt_yyyy_mm_dd_is_taken(raw: str) -> None:
    with pytest.raises(RemitError) as refused:
        parse_day(raw)
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "date")
    assert "YYYY-MM-DD" in refused.value.message


def test_without_a_grace_only_a_result_for_today_is_partial() -> None:
    assert is_partial(TODAY, now=NOW)
    assert not is_partial(date(2026, 11, 1), now=NOW)
    assert not is_partial(date(2026, 11, 1), now=MIDNIGHT)
