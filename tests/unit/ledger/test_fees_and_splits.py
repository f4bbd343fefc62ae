"""Fees in integer minor units with one rounding rule, and splits that never lose a cent."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remit.accounts.domain import Pricing
from remit.ledger.fees import (
    RefundFeePolicy,
    fee_returned_by_refund,
    fixed_fee_minor,
    processing_fee,
    split,
)

DEFAULT = Pricing()


@pytest.mark.parametrize(
    ("amount", "currency", "fee"),
    [
        (1_000, "usd", 59),  # 2.9% of 10.00 = 0.29, plus 0.30
        (1_050, "usd", 60),  # 30.45 + 30 = 60.45 -> 60
        (1_250, "usd", 66),  # 36.25 + 30 = 66.25 -> 66
        (50, "usd", 31),  # 1.45 + 30 = 31.45 -> 31
        (1_000, "jpy", 29),  # 29 yen + 0.30 yen = 29.3 -> 29: no fixed fee to speak of
        (1_500, "jpy", 44),  # 43.5 + 0.3 = 43.8 -> 44
        (1_000, "kwd", 329),  # 1.000 KWD: 29 fils + 0.300 KWD
        (50_000, "isk", 1_480),  # 500 kr in hundredths: 14.50 kr + 0.30 kr, not 1,450 kr
        (10, "usd", 10),  # never more than the amount itself
        (0, "usd", 0),
    ],
)
def test_the_default_fee_per_currency_exponent(amount: int, currency: str, fee: int) -> None:
    assert processing_fee(amount, currency, DEFAULT) == fee


@pytest.mark.parametrize(
    ("fixed", "currency", "fee"),
    [
        (1500, "usd", 1500),  # 15.00
        (1500, "jpy", 15),
        (1500, "kwd", 15_000),  # 15.000
        (30, "jpy", 0),  # 0.30 yen rounds away
        (250, "jpy", 2),  # 2.50 yen: half to even
        (350, "jpy", 4),
    ],
)
def test_a_fixed_fee_is_the_same_share_of_a_major_unit_in_every_currency(
    fixed: int, currency: str, fee: int
) -> None:
    assert fixed_fee_minor(fixed, currency) == fee


@pytest.mark.parametrize(
    "pricing",
    [
        Pricing(fee_percent_bps=-1000, fee_fixed_minor=30),
        Pricing(fee_percent_bps=290, fee_fixed_minor=-500),
        Pricing(fee_percent_bps=-1, fee_fixed_minor=-1),
    ],
)
def test_a_fee_is_never_negative_whatever_the_pricing(pricing: Pricing) -> None:
    # Settings are checked when written; a row stored before that must still never make the
    # platform pay the merchant, nor fail the capture the network has made.
    assert processing_fee(1_000, "usd", pricing) == 0


@given(
    amount=st.integers(0, 10**9),
    bps=st.integers(-(10**6), 10**6),
    fixed=st.integers(-(10**9), 10**9),
    currency=st.sampled_from(["usd", "jpy", "kwd"]),
)
def test_a_fee_lies_between_zero_and_the_amount(
    amount: int, bps: int, fixed: int, currency: str
) -> None:
    fee = processing_fee(amount, currency, Pricing(fee_percent_bps=bps, fee_fixed_minor=fixed))
    assert 0 <= fee <= amount


def test_ties_round_to_even() -> None:
    pricing = Pricing(fee_percent_bps=50, fee_fixed_minor=0)  # 0.5%
    assert processing_fee(100, "usd", pricing) == 0  # 0.5 -> 0
    assert processing_fee(300, "usd", pricing) == 2  # 1.5 -> 2
    assert processing_fee(500, "usd", pricing) == 2  # 2.5 -> 2


@given(
    gross=st.integers(1, 10**9),
    refunds=st.lists(st.integers(1, 100), min_size=1, max_size=12),
    fee_bps=st.integers(0, 1_000),
)
def test_proportional_refunds_of_a_whole_charge_return_exactly_its_fee(
    gross: int, refunds: list[int], fee_bps: int
) -> None:
    fee = processing_fee(gross, "usd", Pricing(fee_percent_bps=fee_bps))
    parts = split(gross, refunds)
    returned = 0
    refunded = 0
    for part in parts:
        back = fee_returned_by_refund(
            charge_gross_minor=gross,
            charge_fee_minor=fee,
            refunded_before_minor=refunded,
            fee_returned_before_minor=returned,
            refund_minor=part,
            policy=RefundFeePolicy.PROPORTIONAL,
        )
        assert back >= 0
        returned += back
        refunded += part
    assert refunded == gross
    assert returned == fee


def test_the_default_policy_keeps_the_fee() -> None:
    assert (
        fee_returned_by_refund(
            charge_gross_minor=1_000,
            charge_fee_minor=59,
            refunded_before_minor=0,
            fee_returned_before_minor=0,
            refund_minor=1_000,
            policy=RefundFeePolicy.KEEP,
        )
        == 0
    )


def test_ten_thousand_random_splits_sum_exactly_and_stay_within_a_unit_of_fair() -> None:
    rng = random.Random(20261102)
    for _ in range(10_000):
        total = rng.randint(-(10**12), 10**12)
        weights = [rng.randint(0, 10**6) for _ in range(rng.randint(1, 12))]
        if not any(weights):
            weights[0] = 1
        parts = split(total, weights)
        assert sum(parts) == total
        weight_sum = sum(weights)
        for part, weight in zip(parts, weights, strict=True):
            exact = abs(total) * weight / weight_sum
            assert abs(abs(part) - exact) < 1 + 1e-6 * max(1.0, exact)


@given(st.integers(-(10**15), 10**15), st.lists(st.integers(0, 10**9), min_size=1, max_size=30))
def test_any_split_sums_to_the_whole(total: int, weights: list[int]) -> None:
    if not any(weights):
        weights = [*weights[:-1], 1]
    assert sum(split(total, weights)) == total
