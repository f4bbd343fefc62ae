"""Each currency's decimals as Stripe's API has them, amounts written in major units with
them, and the granularity Stripe holds charges, refunds and payouts to."""

import pytest

from remit.core.currency import (
    FRACTIONAL_CHARGE_AMOUNT,
    SUPPORTED_CURRENCIES,
    charge_amount_step,
    major_units_text,
    payout_amount_step,
    require_whole_charge_amount,
)
from remit.core.errors import ErrorKind, RemitError


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        ("usd", 2),
        # ISO 4217 gives the króna no minor unit; Stripe's API takes hundredths of it.
        ("isk", 2),
        # Two-decimal on Stripe's API for charges, whatever their payouts are held to.
        ("huf", 2),
        ("twd", 2),
        ("jpy", 0),
        ("ugx", 0),
        ("kwd", 3),
    ],
)
def test_exponents_are_those_of_stripes_api(currency: str, exponent: int) -> None:
    assert SUPPORTED_CURRENCIES[currency] == exponent


# The exponent each currency's stored amounts were written with. A stored row does not say its
# unit, so changing one of these (or dropping a currency) changes the meaning of every amount
# already stored in it: isk went from 0 to 2, and came with a migration that stops the upgrade
# of a database holding isk amounts until its operator decides what they become (core 0089,
# acquirer 0007, `remit.storage.isk_amounts_guard`; README, Upgrading). Changing an exponent
# in `remit.core.currency` needs a guard like it and an upgrade note beside that one, and only
# then a change here. A currency added is no such change.
_STORED_EXPONENTS = {
    **dict.fromkeys(
        (
            "aed", "ars", "aud", "bdt", "brl", "cad", "chf", "cny", "cop", "czk", "dkk", "egp",
            "eur", "gbp", "hkd", "huf", "idr", "ils", "inr", "isk", "kes", "lkr", "mad", "mxn",
            "myr", "ngn", "nok", "nzd", "pen", "php", "pkr", "pln", "qar", "ron", "sar", "sek",
            "sgd", "thb", "try", "twd", "usd", "uyu", "zar",
        ),
        2,
    ),
    **dict.fromkeys(
        (
            "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
            "vuv", "xaf", "xof", "xpf",
        ),
        0,
    ),
    **dict.fromkeys(("bhd", "jod", "kwd", "omr", "tnd"), 3),
}  # fmt: skip


def test_no_currency_changes_the_exponent_its_amounts_are_stored_with() -> None:
    changed = {
        currency: (exponent, SUPPORTED_CURRENCIES.get(currency))
        for currency, exponent in _STORED_EXPONENTS.items()
        if SUPPORTED_CURRENCIES.get(currency) != exponent
    }
    assert changed == {}


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (50, "usd", "0.50"),
        (1099, "usd", "10.99"),
        (17_500, "huf", "175.00"),
        (500, "isk", "5.00"),
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


@pytest.mark.parametrize(
    ("currency", "step"),
    [
        ("isk", 100),
        *((three, 10) for three in ("bhd", "jod", "kwd", "omr", "tnd")),
        ("usd", 1),
        ("huf", 1),
        ("twd", 1),
        ("jpy", 1),
    ],
)
def test_charges_in_isk_are_whole_kronur_and_in_three_decimals_whole_hundredths(
    currency: str, step: int
) -> None:
    assert charge_amount_step(currency) == step


@pytest.mark.parametrize(
    ("currency", "step"),
    [("huf", 100), ("twd", 100), ("isk", 100), ("usd", 1), ("jpy", 1), ("kwd", 1)],
)
def test_payouts_in_huf_twd_and_isk_are_whole_major_units(currency: str, step: int) -> None:
    assert payout_amount_step(currency) == step


@pytest.mark.parametrize(
    ("amount", "currency", "param", "message"),
    [
        (5124, "kwd", "amount", "Invalid amount (5124): an amount in kwd must be a multiple of "
         "10, such as 5120 or 5130."),
        (1, "bhd", "amount", "Invalid amount (1): an amount in bhd must be a multiple of 10, "
         "such as 10."),
        (550, "isk", "amount_to_capture", "Invalid amount_to_capture (550): an amount in isk "
         "must be a multiple of 100, such as 500 or 600."),
    ],
)  # fmt: skip
def test_an_amount_finer_than_its_currency_charges_is_refused_naming_the_nearest(
    amount: int, currency: str, param: str, message: str
) -> None:
    with pytest.raises(RemitError) as refused:
        require_whole_charge_amount(amount, currency, param)
    error = refused.value
    assert (error.kind, error.code, error.param, error.message) == (
        ErrorKind.INVALID_ARGUMENT,
        FRACTIONAL_CHARGE_AMOUNT,
        param,
        message,
    )


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(500, "isk"), (5120, "kwd"), (5130, "tnd"), (12_345, "usd"), (12_345, "huf"), (7, "jpy")],
)
def test_an_amount_in_whole_steps_is_accepted(amount: int, currency: str) -> None:
    require_whole_charge_amount(amount, currency, "amount")
