"""Velocity rings: exact counts in sliding windows, a fixed-size row whatever the history."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from remit.radar.velocity import HOUR_SLOTS, MINUTE_SLOTS, STREAK_LAPSE, Counter

START = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def attempts(counter: Counter, at: datetime, n: int) -> Counter:
    for _ in range(n):
        counter = counter.with_attempt(at)
    return counter


def test_counts_include_the_current_attempt_and_slide_out_after_an_hour() -> None:
    counter = attempts(Counter.empty(START), START, 3)
    assert (counter.hourly, counter.daily) == (3, 3)
    later = counter.with_attempt(START + timedelta(minutes=30))
    assert later.hourly == 4
    after_hour = later.at(START + timedelta(minutes=61))
    assert (after_hour.hourly, after_hour.daily) == (1, 4)
    next_day = after_hour.at(START + timedelta(hours=25))
    assert (next_day.hourly, next_day.daily) == (0, 0)


def test_a_year_of_history_is_still_one_fixed_size_row() -> None:
    counter = Counter.empty(START)
    for day in range(365):
        counter = counter.with_attempt(START + timedelta(days=day))
    assert len(counter.attempts_by_minute) == MINUTE_SLOTS
    assert len(counter.attempts_by_hour) == HOUR_SLOTS
    assert counter.daily == 1


def test_declines_in_a_row_reset_on_an_approval_and_checks_are_kept() -> None:
    counter = Counter.empty(START)
    for _ in range(3):
        counter = counter.with_result(START, declined=True, cvc_check="fail", postal_check=None)
    assert (counter.declines_in_a_row, counter.declines_daily) == (3, 3)
    counter = counter.with_result(START, declined=False, cvc_check=None, postal_check="pass")
    assert (counter.declines_in_a_row, counter.declines_daily) == (0, 3)
    assert (counter.last_cvc_check, counter.last_postal_check) == ("fail", "pass")


def test_a_clock_that_steps_back_never_erases_counts() -> None:
    counter = attempts(Counter.empty(START), START, 2)
    assert counter.with_attempt(START - timedelta(minutes=5)).hourly == 3


def declined(counter: Counter, at: datetime) -> Counter:
    return counter.with_result(at, declined=True, cvc_check=None, postal_check=None)


def test_declines_in_a_row_lapse_a_day_after_the_last_one() -> None:
    counter = Counter.empty(START)
    for minute in range(3):
        counter = declined(counter, START + timedelta(minutes=minute))
    last = START + timedelta(minutes=2)
    assert counter.at(last + STREAK_LAPSE - timedelta(seconds=1)).declines_in_a_row == 3
    assert counter.at(last + STREAK_LAPSE).declines_in_a_row == 0
    # A decline after the lapse starts a new streak.
    assert declined(counter, last + timedelta(days=30)).declines_in_a_row == 1


def test_a_later_decline_keeps_the_streak_for_a_day_from_itself() -> None:
    counter = declined(Counter.empty(START), START)
    counter = declined(counter, START + timedelta(hours=20))
    assert counter.at(START + timedelta(hours=30)).declines_in_a_row == 2
    assert counter.at(START + timedelta(hours=44)).declines_in_a_row == 0


def test_a_streak_stored_before_its_time_was_recorded_lapses_after_the_rings_last_hour() -> None:
    """Rows written before `last_declined_at` existed: the end of the hour the rings last moved
    to is the latest the streak's last decline can have been."""
    counter = replace(declined(Counter.empty(START), START), last_declined_at=None)
    end_of_hour = START.replace(minute=0, second=0) + timedelta(hours=1)
    assert counter.at(end_of_hour + STREAK_LAPSE - timedelta(seconds=1)).declines_in_a_row == 1
    assert counter.at(end_of_hour + STREAK_LAPSE).declines_in_a_row == 0


def test_a_streak_stored_before_its_time_was_recorded_lapses_while_the_card_keeps_trying() -> None:
    """Each attempt moves the rings to its hour; the stand-in for the last decline must stay
    the end of the hour the stored row had, or a card retrying daily is never let go."""
    counter = replace(Counter.empty(START), declines_in_a_row=3, last_declined_at=None)
    end_of_hour = START.replace(minute=0, second=0) + timedelta(hours=1)
    lapse = end_of_hour + STREAK_LAPSE
    for at in (
        START + timedelta(hours=1),
        START + timedelta(hours=23),
        lapse - timedelta(seconds=1),
    ):
        counter = counter.with_attempt(at)
        assert counter.declines_in_a_row == 3
    assert counter.with_attempt(lapse).declines_in_a_row == 0
