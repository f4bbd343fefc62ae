"""The currencies remit accepts, with each one's minor-unit exponent and the granularity
Stripe holds their amounts to.

Exponents are those of Stripe's API, which follows ISO 4217 (`jpy` has no minor unit, `kwd` has
three decimals) but for `isk`: ISO gives the króna no minor unit, while Stripe takes `isk`
amounts in hundredths, for backwards compatibility. An amount of `1000` therefore means 10.00
usd, 1000 jpy, 1.000 kwd and 10 isk. `huf` and `twd` are two-decimal on Stripe's API as well.

An amount must also be a whole number of what can be paid, which is coarser than the minor unit
in a few currencies (Stripe's currencies page, "special cases"):

- A payment, its capture or a refund (`charge_amount_step`): an `isk` amount is a multiple of
  100 (whole krónur: 100 is 1 kr), and a three-decimal one a multiple of 10 (5.124 kwd has to be
  sent as 5120 or 5130), which Stripe refuses otherwise with
  `invalid_charge_amount_no_decimal_compatible`.
- A payout (`payout_amount_step`): `huf` and `twd` are paid out in whole forints and dollars,
  so a multiple of 100 of their hundredths; `isk` in whole krónur, as it is charged.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from remit.core.errors import RemitError, invalid

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
        "huf": 2,  # paid out in whole forints (`payout_amount_step`)
        "idr": 2,
        "ils": 2,
        "inr": 2,
        # ISO's exponent is 0; Stripe's API takes hundredths, charged in whole krónur only
        # (`charge_amount_step`).
        "isk": 2,
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
        "twd": 2,  # paid out in whole dollars (`payout_amount_step`)
        "usd": 2,
        "uyu": 2,
        "zar": 2,
        # No minor unit
        "bif": 0,
        "clp": 0,
        "djf": 0,
        "gnf": 0,
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
        # Three decimals, charged in hundredths only (`charge_amount_step`)
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


# What an amount must be a multiple of, in minor units, where that is more than 1 (a currency
# not listed here: any whole number of minor units).
# A three-decimal currency is charged in hundredths, so its step follows from its exponent: a
# three-decimal currency added above needs no entry of its own here.
CHARGE_STEPS: Final[Mapping[str, int]] = MappingProxyType(
    {"isk": 100} | {code: 10 for code, exponent in SUPPORTED_CURRENCIES.items() if exponent == 3}
)
PAYOUT_STEPS: Final[Mapping[str, int]] = MappingProxyType({"huf": 100, "isk": 100, "twd": 100})

FRACTIONAL_CHARGE_AMOUNT: Final = "invalid_charge_amount_no_decimal_compatible"


def charge_amount_step(currency: str) -> int:
    """What an amount charged, captured or refunded in `currency` must be a multiple of, in
    minor units: 100 for `isk`, 10 for a three-decimal currency, else 1."""
    return CHARGE_STEPS.get(currency, 1)


def payout_amount_step(currency: str) -> int:
    """What an amount paid out in `currency` must be a multiple of, in minor units: 100 for
    `huf`, `twd` and `isk`, else 1."""
    return PAYOUT_STEPS.get(currency, 1)


def require_whole_charge_amount(amount_minor: int, currency: str, param: str) -> None:
    """Refuse, as Stripe does (`invalid_charge_amount_no_decimal_compatible`), an amount to
    charge, capture or refund in `currency` that is not a multiple of its `charge_amount_step`.
    `param` names the amount in the request (`amount`, `amount_to_capture`)."""
    step = charge_amount_step(currency)
    if amount_minor % step:
        raise fractional_charge_amount(amount_minor, currency, param)


def nearest_multiples(amount_minor: int, step: int) -> str:
    """The multiples of `step` either side of `amount_minor` (the positive ones), for a refusal's
    message: "5120 or 5130"."""
    lower = amount_minor - amount_minor % step
    return " or ".join(str(near) for near in (lower, lower + step) if near > 0)


def fractional_charge_amount(amount_minor: int, currency: str, param: str) -> RemitError:
    step = charge_amount_step(currency)
    return invalid(
        f"Invalid {param} ({amount_minor}): an amount in {currency} must be a multiple of "
        f"{step}, such as {nearest_multiples(amount_minor, step)}.",
        param,
        code=FRACTIONAL_CHARGE_AMOUNT,
    )


def major_units_text(amount_minor: int, currency: str) -> str:
    """`amount_minor` written in major units with `currency`'s decimals: 50 usd is "0.50",
    50 jpy is "50", 1 kwd is "0.001". For messages; amounts are never parsed back from it."""
    exponent = minor_unit_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{exponent}d}"
