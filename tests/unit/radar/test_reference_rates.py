"""Every currency a payment may be in has an amount in USD for rules and the model."""

from decimal import Decimal

import pytest

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.radar.signals import USD_PER_UNIT, amount_in_usd


def test_every_supported_currency_has_a_reference_rate() -> None:
    assert set(SUPPORTED_CURRENCIES) <= set(USD_PER_UNIT)
    assert all(rate > 0 for rate in USD_PER_UNIT.values())


# About $50,000 in each currency, in its minor units, at rates found independently of the
# table (late 2023): two-decimal, three-decimal and zero-decimal currencies alike.
FIFTY_THOUSAND_DOLLARS = [
    ("zar", 935_000_00),  # R 935,000.00
    ("kwd", 15_400_000),  # KD 15,400.000
    ("thb", 1_775_000_00),  # 1,775,000.00 baht
    ("jpy", 7_450_000),  # 7,450,000 yen
    ("idr", 780_000_000_00),  # Rp 780,000,000.00
]


@pytest.mark.parametrize(("currency", "amount_minor"), FIFTY_THOUSAND_DOLLARS)
def test_fifty_thousand_dollars_in_any_currency_is_about_fifty_thousand_in_usd(
    currency: str, amount_minor: int
) -> None:
    usd = amount_in_usd(amount_minor, currency)
    assert usd is not None
    assert Decimal(25_000) < usd < Decimal(100_000)
