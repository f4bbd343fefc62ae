"""Card numbers, expiries and CVCs checked the way Stripe checks them, with Stripe's codes.

Pure functions over `Secret` values: nothing here logs, stores or echoes a number. Errors name
the parameter at fault in the facade's form notation (`card[number]`) and never quote input.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

from remit.core.errors import ErrorKind, RemitError
from remit.core.logging import luhn_valid
from remit.core.secrets import Secret

MAX_YEARS_AHEAD: Final = 50


class Brand(Enum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    JCB = "jcb"
    DINERS = "diners"
    UNIONPAY = "unionpay"
    UNKNOWN = "unknown"


class Funding(Enum):
    CREDIT = "credit"
    DEBIT = "debit"
    PREPAID = "prepaid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BrandRule:
    brand: Brand
    # Inclusive ranges of leading digits, compared on as many digits as the bounds have.
    prefixes: tuple[tuple[int, int], ...]
    lengths: frozenset[int]
    cvc_length: int


# Order matters only where ranges could overlap; they do not here.
BRAND_RULES: Final = (
    BrandRule(Brand.VISA, ((4, 4),), frozenset({13, 16, 19}), 3),
    # The 2-series (2221-2720) has been issued since 2017 next to the classic 51-55.
    BrandRule(Brand.MASTERCARD, ((51, 55), (2221, 2720)), frozenset({16}), 3),
    BrandRule(Brand.AMEX, ((34, 34), (37, 37)), frozenset({15}), 4),
    BrandRule(Brand.DISCOVER, ((6011, 6011), (644, 649), (65, 65)), frozenset({16, 17, 18, 19}), 3),
    BrandRule(Brand.JCB, ((3528, 3589),), frozenset({16, 17, 18, 19}), 3),
    BrandRule(
        Brand.DINERS, ((300, 305), (3095, 3095), (36, 36), (38, 39)), frozenset(range(14, 20)), 3
    ),
    BrandRule(Brand.UNIONPAY, ((62, 62), (81, 81)), frozenset({16, 17, 18, 19}), 3),
)
UNKNOWN_RULE: Final = BrandRule(Brand.UNKNOWN, (), frozenset(range(13, 20)), 3)


class CardValidationError(RemitError):
    """The card details are not usable: Stripe answers these with a 402 card_error."""


def _card_error(message: str, code: str, param: str) -> CardValidationError:
    return CardValidationError(
        message=message, kind=ErrorKind.CARD_DECLINED, error_type="card_error", code=code,
        param=param,
    )  # fmt: skip


def incorrect_number() -> CardValidationError:
    return _card_error("Your card number is incorrect.", "incorrect_number", "card[number]")


def invalid_expiry_month() -> CardValidationError:
    return _card_error(
        "Your card's expiration month is invalid.", "invalid_expiry_month", "card[exp_month]"
    )


def invalid_expiry_year() -> CardValidationError:
    return _card_error(
        "Your card's expiration year is invalid.", "invalid_expiry_year", "card[exp_year]"
    )


def invalid_cvc() -> CardValidationError:
    return _card_error("Your card's security code is invalid.", "invalid_cvc", "card[cvc]")


def rule_for(digits: str) -> BrandRule:
    for rule in BRAND_RULES:
        for low, high in rule.prefixes:
            width = len(str(low))
            if len(digits) >= width and low <= int(digits[:width]) <= high:
                return rule
    return UNKNOWN_RULE


def brand_of(number: Secret[str]) -> Brand:
    return rule_for(number.reveal()).brand


@dataclass(frozen=True)
class ValidCard:
    """A card that passed every check; `number` holds digits only."""

    number: Secret[str]
    exp_month: int
    exp_year: int
    cvc: Secret[str] | None
    brand: Brand

    @property
    def last4(self) -> str:
        return self.number.reveal()[-4:]


def normalize_number(raw: Secret[str]) -> Secret[str]:
    """Digits only; the spaces and dashes people type between groups are dropped."""
    text = raw.reveal().replace(" ", "").replace("-", "")
    if not text.isascii() or not text.isdigit():
        raise incorrect_number()
    return Secret(text)


def validate_card(
    number: Secret[str],
    exp_month: int,
    exp_year: int,
    cvc: Secret[str] | None,
    *,
    now: datetime,
) -> ValidCard:
    """Check number (digits, length for its brand, Luhn), expiry and CVC, in Stripe's order."""
    digits = normalize_number(number)
    rule = rule_for(digits.reveal())
    if len(digits.reveal()) not in rule.lengths or not luhn_valid(digits.reveal()):
        raise incorrect_number()
    if not 1 <= exp_month <= 12:
        raise invalid_expiry_month()
    if exp_year < now.year or exp_year > now.year + MAX_YEARS_AHEAD:
        raise invalid_expiry_year()
    if exp_year == now.year and exp_month < now.month:
        raise invalid_expiry_month()
    if cvc is not None:
        code = cvc.reveal()
        if not (code.isascii() and code.isdigit() and len(code) == rule.cvc_length):
            raise invalid_cvc()
    return ValidCard(
        number=digits, exp_month=exp_month, exp_year=exp_year, cvc=cvc, brand=rule.brand
    )
