"""Core migration 0059 repairs a pricing out of bounds only when the nearest pricing within
bounds books every fee the earlier version booked with it; the others are left to an operator.

Checked against the earlier version's fee, written out here as it was: the exact fee rounded
once and capped at the amount but not at 0, a fee below 0 refused by the capture's posting."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remit.accounts.domain import Pricing
from remit.core.currency import minor_unit_exponent
from remit.core.money import divide_round_half_even
from remit.ledger.fees import processing_fee
from tests.support.migration_modules import migration_module

_MIGRATION = migration_module("core", "0059_account_settings_in_bounds")
_MAX_AMOUNT = 99_999_999


def _earlier_fee(amount: int, currency: str, bps: int, fixed: int) -> int | None:
    """The fee the earlier version booked on a capture of `amount`; None: the capture failed."""
    exponent = minor_unit_exponent(currency)
    numerator = amount * bps * 100 + fixed * 10**exponent * 10_000
    fee = min(divide_round_half_even(numerator, 1_000_000), amount)
    return fee if fee >= 0 else None


def _repaired(bps: int, fixed: int) -> Pricing:
    return Pricing(
        fee_percent_bps=min(max(bps, 0), 10_000), fee_fixed_minor=min(max(fixed, 0), 99_999_999)
    )


@given(
    bps=st.integers(-(10**6), 10**6),
    fixed=st.integers(-(10**12), 10**12),
    amount=st.integers(1, _MAX_AMOUNT),
    currency=st.sampled_from(["usd", "jpy", "kwd"]),
)
def test_a_repaired_pricing_books_every_fee_the_earlier_version_booked(
    bps: int, fixed: int, amount: int, currency: str
) -> None:
    if not _MIGRATION._pricing_kept_by_repair(bps, fixed):
        return
    before = _earlier_fee(amount, currency, bps, fixed)
    if before is not None:
        assert processing_fee(amount, currency, _repaired(bps, fixed)) == before


@pytest.mark.parametrize(
    ("bps", "fixed", "amount", "currency"),
    [
        (290, -30, 10_000, "usd"),  # 2.9% of 100.00 less 0.30: 2.60, not 2.90
        (-10, 30, 1_000, "usd"),  # 0.30 less 0.1% of 10.00: 0.29, not 0.30
        (290, 10**10, 50_000_000, "jpy"),  # the whole amount, not 2.9% plus 1 000 000
    ],
)
def test_a_pricing_the_repair_would_charge_otherwise_is_left_to_an_operator(
    bps: int, fixed: int, amount: int, currency: str
) -> None:
    before = _earlier_fee(amount, currency, bps, fixed)
    assert before is not None
    assert processing_fee(amount, currency, _repaired(bps, fixed)) != before
    assert not _MIGRATION._pricing_kept_by_repair(bps, fixed)


def test_only_a_delay_that_never_gave_a_date_is_cut_to_a_year() -> None:
    today = date(2026, 12, 7)
    last = (date.max - today).days
    assert today + timedelta(days=last) == date.max
    assert _MIGRATION._delay_kept_by_repair(-3, today)
    assert _MIGRATION._delay_kept_by_repair(365, today)
    assert not _MIGRATION._delay_kept_by_repair(366, today)
    assert not _MIGRATION._delay_kept_by_repair(last, today)
    assert _MIGRATION._delay_kept_by_repair(last + 1, today)
