"""Amounts written in major units with each currency's own decimals."""

import pytest

from remit.core.currency import major_units_text


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (50, "usd", "0.50"),
        (1099, "usd", "10.99"),
        (17_500, "huf", "175.00"),
        (50, "jpy", "50"),
        (1, "kwd", "0.001"),
        (12_345, "bhd", "12.345"),
        (-5, "usd", "-0.05"),
        (0, "eur", "0.00"),
    ],
)
def test_major_units_keep_the_currencys_decimals(amount: int, currency: str, text: str) -> None:
    assert major_units_text(amount, currency) == text


def test_an_unsupported_currency_has_no_decimals_to_write() -> None:
    with pytest.raises(KeyError):
        major_units_text(50, "xyz")
