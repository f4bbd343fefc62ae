import pytest
from hypothesis import given
from hypothesis import strategies as st

from remit.core.money import Money, allocate, divide_round_half_even


@given(
    total=st.integers(min_value=-(10**12), max_value=10**12),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_allocated_parts_always_sum_to_the_total(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = total * weight / weight_sum
        assert abs(part - exact) < 1


def test_a_three_way_split_of_a_dollar_gives_the_spare_cent_to_the_first_part() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]


def test_a_zero_weight_part_gets_nothing() -> None:
    assert allocate(10, [0, 1]) == [0, 10]


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1]])
def test_allocation_rejects_weights_that_cannot_split(weights: list[int]) -> None:
    with pytest.raises(ValueError, match="weight"):
        allocate(100, weights)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(5, 2, 2), (7, 2, 4), (-5, 2, -2), (-7, 2, -4), (1, 3, 0), (2, 3, 1), (10, -4, -2)],
)
def test_half_even_rounding_sends_ties_to_the_even_neighbour(
    numerator: int, denominator: int, expected: int
) -> None:
    assert divide_round_half_even(numerator, denominator) == expected


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "usd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot combine"):
        _ = Money(1, "usd") + Money(1, "eur")
    assert Money(150, "usd") - Money(50, "usd") == Money(100, "usd")
