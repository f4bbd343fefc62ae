"""The smallest amount a PaymentIntent may charge in each currency, as Stripe enforces it.

Stripe refuses an intent for less than "$0.50 US or equivalent in charge currency" and
publishes that equivalent for each currency it settles in (its currencies page, "minimum and
maximum charge amounts"). The table below copies those figures in major units and converts
them to minor units with remit's own exponents (`remit.core.currency`): `jpy` has no minor
unit there, so its minimum is 50; `huf` has two decimals there, so its minimum of 175.00 is
17500.

A currency the table does not list keeps the one rule remit can state without an exchange
rate: at least one minor unit. "The equivalent of $0.50" would need a rate, and remit has none.

The refusal reads "Amount must be at least 0.50 usd": the minimum in major units, with the
currency's decimals, then its code. Stripe prefixes a symbol as well ("$0.50 usd"); remit
names every currency by its code alone rather than keep a table of symbols.
"""

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from remit.core.currency import major_units_text, minor_unit_exponent
from remit.core.errors import RemitError, invalid

# Stripe's published minimums, in major units. Stripe also lists BGN (1.00), which remit does
# not accept as a currency at all.
_PUBLISHED_MINIMUMS: Final[Mapping[str, str]] = {
    "usd": "0.50",
    "aed": "2.00",
    "aud": "0.50",
    "brl": "0.50",
    "cad": "0.50",
    "chf": "0.50",
    "czk": "15.00",
    "dkk": "2.50",
    "eur": "0.50",
    "gbp": "0.30",
    "hkd": "4.00",
    "huf": "175.00",
    "inr": "0.50",
    "jpy": "50",
    "mxn": "10",
    "myr": "2",
    "nok": "3.00",
    "nzd": "0.50",
    "pln": "2.00",
    "ron": "2.00",
    "sek": "3.00",
    "sgd": "0.50",
    "thb": "10",
}

# The minimum of every currency the table does not list.
SMALLEST_AMOUNT_MINOR: Final = 1


def _in_minor_units(currency: str, major: str) -> int:
    minor = Decimal(major).scaleb(minor_unit_exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"the minimum {major} {currency} is finer than the currency's minor unit")
    return int(minor)


MINIMUM_CHARGE_MINOR: Final[Mapping[str, int]] = MappingProxyType(
    {currency: _in_minor_units(currency, major) for currency, major in _PUBLISHED_MINIMUMS.items()}
)


def minimum_charge_minor(currency: str) -> int:
    """The smallest amount, in minor units, an intent in `currency` may charge."""
    return MINIMUM_CHARGE_MINOR.get(currency, SMALLEST_AMOUNT_MINOR)


def require_minimum_charge(amount_minor: int, currency: str) -> None:
    """Refuse, as Stripe does (`amount_too_small` on `amount`), an intent's amount below its
    currency's minimum charge. `currency` must be one remit supports."""
    minimum = minimum_charge_minor(currency)
    if amount_minor < minimum:
        raise amount_too_small(minimum, currency)


def amount_too_small(minimum_minor: int, currency: str) -> RemitError:
    return invalid(
        f"Amount must be at least {major_units_text(minimum_minor, currency)} {currency}",
        "amount",
        code="amount_too_small",
    )
