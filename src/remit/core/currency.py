"""The currencies remit accepts, with each one's minor-unit exponent.

Exponents follow ISO 4217 (`jpy` has no minor unit, `kwd` has three decimals), so an amount of
`1000` means 10.00 usd, 1000 jpy and 1.000 kwd. Stripe layers special cases on a few of these
(it treats `isk` and `huf` amounts as two-decimal for backwards compatibility, for example);
those rules are not modelled here.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

SUPPORTED_CURRENCIES: Final[Mapping[str, int]] = MappingProxyType(
    {
        # Two decimals
        "aed": 2,
        "ars": 2,
        "aud": 2,
        "bdt": 2,
        "brl": 2,
        "cad": 2,
        "chf": 2,
        "cny": 2,
        "cop": 2,
        "czk": 2,
        "dkk": 2,
        "egp": 2,
        "eur": 2,
        "gbp": 2,
        "hkd": 2,
        "huf": 2,
        "idr": 2,
        "ils": 2,
        "inr": 2,
        "kes": 2,
        "lkr": 2,
        "mad": 2,
        "mxn": 2,
        "myr": 2,
        "ngn": 2,
        "nok": 2,
        "nzd": 2,
        "pen": 2,
        "php": 2,
        "pkr": 2,
        "pln": 2,
        "qar": 2,
        "ron": 2,
        "sar": 2,
        "sek": 2,
        "sgd": 2,
        "thb": 2,
        "try": 2,
        "twd": 2,
        "usd": 2,
        "uyu": 2,
        "zar": 2,
        # No minor unit
        "bif": 0,
        "clp": 0,
        "djf": 0,
        "gnf": 0,
        "isk": 0,
        "jpy": 0,
        "kmf": 0,
        "krw": 0,
        "mga": 0,
        "pyg": 0,
        "rwf": 0,
        "ugx": 0,
        "vnd": 0,
        "vuv": 0,
        "xaf": 0,
        "xof": 0,
        "xpf": 0,
        # Three decimals
        "bhd": 3,
        "jod": 3,
        "kwd": 3,
        "omr": 3,
        "tnd": 3,
    }
)


def minor_unit_exponent(currency: str) -> int:
    """Decimal places of `currency`'s minor unit; KeyError for an unsupported currency."""
    return SUPPORTED_CURRENCIES[currency]


def major_units_text(amount_minor: int, currency: str) -> str:
    """`amount_minor` written in major units with `currency`'s decimals: 50 usd is "0.50",
    50 jpy is "50", 1 kwd is "0.001". For messages; amounts are never parsed back from it."""
    exponent = minor_unit_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{exponent}d}"
