"""Card validation: Stripe's codes and params, per brand, and no card data in any error."""

from datetime import UTC, datetime

import pytest

from remit.core.errors import ErrorKind
from remit.core.secrets import Secret
from remit.vault.cards import Brand, CardValidationError, validate_card

NOW = datetime(2026, 6, 15, tzinfo=UTC)


def _validate(number: str, month: int = 12, year: int = 2030, cvc: str | None = "123") -> Brand:
    return validate_card(
        Secret(number), month, year, None if cvc is None else Secret(cvc), now=NOW
    ).brand


@pytest.mark.parametrize(
    ("number", "brand", "cvc"),
    [
        ("4242424242424242", Brand.VISA, "123"),
        ("4222222222222", Brand.VISA, "123"),
        ("5555555555554444", Brand.MASTERCARD, "123"),
        ("2223003122003222", Brand.MASTERCARD, "123"),
        ("2720990000000007", Brand.MASTERCARD, "123"),
        ("378282246310005", Brand.AMEX, "1234"),
        ("6011111111111117", Brand.DISCOVER, "123"),
        ("3566002020360505", Brand.JCB, "123"),
        ("3056930009020004", Brand.DINERS, "123"),
        ("36227206271667", Brand.DINERS, "123"),
        ("6200000000000005", Brand.UNIONPAY, "123"),
    ],
)
def test_each_brand_is_recognised_with_its_cvc_length(number: str, brand: Brand, cvc: str) -> None:
    assert _validate(number, cvc=cvc) is brand


def test_spaces_and_dashes_between_digit_groups_are_accepted() -> None:
    card = validate_card(Secret("4242 4242-4242 4242"), 1, 2027, None, now=NOW)
    assert card.number.reveal() == "4242424242424242"
    assert card.last4 == "4242"


def _error(
    number: str, month: int = 12, year: int = 2030, cvc: str | None = "123"
) -> tuple[str | None, str | None]:
    with pytest.raises(CardValidationError) as caught:
        _validate(number, month, year, cvc)
    error = caught.value
    assert error.kind is ErrorKind.CARD_DECLINED
    assert error.error_type == "card_error"
    if number:
        assert number not in error.message
        assert number not in repr(error)
    return error.code, error.param


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424241",  # Luhn fails
        "424242424242424",  # Visa of 15 digits
        "55555555555544440",  # Mastercard of 17 digits
        "4242a42424242424",
        "",
        "42424242",
    ],
)
def test_bad_numbers_are_incorrect_number_on_card_number(number: str) -> None:
    assert _error(number) == ("incorrect_number", "card[number]")


def test_a_month_outside_one_to_twelve_is_an_invalid_expiry_month() -> None:
    assert _error("4242424242424242", month=13) == ("invalid_expiry_month", "card[exp_month]")
    assert _error("4242424242424242", month=0) == ("invalid_expiry_month", "card[exp_month]")


def test_an_expiry_in_the_past_is_refused() -> None:
    assert _error("4242424242424242", year=2025) == ("invalid_expiry_year", "card[exp_year]")
    assert _error("4242424242424242", month=5, year=2026) == (
        "invalid_expiry_month",
        "card[exp_month]",
    )
    assert _validate("4242424242424242", month=6, year=2026) is Brand.VISA


def test_an_expiry_far_in_the_future_is_refused() -> None:
    assert _error("4242424242424242", year=2077) == ("invalid_expiry_year", "card[exp_year]")


def test_the_cvc_length_depends_on_the_brand() -> None:
    assert _error("378282246310005", cvc="123") == ("invalid_cvc", "card[cvc]")
    assert _error("4242424242424242", cvc="1234") == ("invalid_cvc", "card[cvc]")
    assert _error("4242424242424242", cvc="12a") == ("invalid_cvc", "card[cvc]")
    assert _validate("4242424242424242", cvc=None) is Brand.VISA
