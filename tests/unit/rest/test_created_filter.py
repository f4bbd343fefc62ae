"""Whole-second `created` ranges become the instants the services compare against."""

from remit.rest.listing import created_filter
from remit.rest.params import IntRange


def _bounds(created: IntRange) -> dict[str, int]:
    message = created_filter(created)
    return {name: getattr(message, name).seconds for name in ("gt", "gte", "lt", "lte")
            if message.HasField(name)}  # fmt: skip


def test_a_second_covers_every_instant_within_it() -> None:
    assert _bounds(IntRange.exactly(1_700_000_000)) == {
        "gte": 1_700_000_000,
        "lt": 1_700_000_001,
    }
    assert _bounds(IntRange(gt=10)) == {"gte": 11}
    assert _bounds(IntRange(lte=10)) == {"lt": 11}
    assert _bounds(IntRange(gte=10, lt=20)) == {"gte": 10, "lt": 20}


def test_the_tighter_of_two_bounds_on_one_side_wins() -> None:
    assert _bounds(IntRange(gt=10, gte=3, lt=100, lte=50)) == {"gte": 11, "lt": 51}
    assert _bounds(IntRange(gt=2, gte=30, lt=40, lte=50)) == {"gte": 30, "lt": 40}


def test_bounds_beyond_a_timestamps_years_are_clamped_not_refused() -> None:
    assert _bounds(IntRange(gt=-(2**63), lte=2**63 - 1)) == {
        "gte": -62_135_596_800,
        "lt": 253_402_300_799,
    }


def test_no_range_is_no_bound() -> None:
    assert _bounds(IntRange()) == {}
    assert not created_filter(None).ListFields()
