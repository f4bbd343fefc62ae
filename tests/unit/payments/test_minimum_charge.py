"""Stripe's minimum charge amount per currency, in remit's minor units, on create and update."""

from datetime import UTC, datetime

import pytest

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.errors import ErrorKind, RemitError
from remit.payments.domain import (
    CaptureMethod,
    ConfirmationMethod,
    PaymentIntent,
    Status,
    UnexpectedStateError,
    Updated,
    transition,
)
from remit.payments.minimum_charge import (
    MINIMUM_CHARGE_MINOR,
    _in_minor_units,
    minimum_charge_minor,
    require_minimum_charge,
)

T = datetime(2026, 11, 1, tzinfo=UTC)


def _intent(
    amount_minor: int, currency: str, status: Status = Status.REQUIRES_PAYMENT_METHOD
) -> PaymentIntent:
    return PaymentIntent(
        id="pi_1",
        account_id="acct_1",
        amount_minor=amount_minor,
        currency=currency,
        status=status,
        capture_method=CaptureMethod.AUTOMATIC,
        confirmation_method=ConfirmationMethod.AUTOMATIC,
        client_secret="pi_1_secret_x",
        created_at=T,
        updated_at=T,
    )


def test_every_listed_currency_is_one_remit_accepts() -> None:
    assert set(MINIMUM_CHARGE_MINOR) <= set(SUPPORTED_CURRENCIES)


@pytest.mark.parametrize(
    ("currency", "minimum"),
    [
        ("usd", 50),  # 0.50
        ("gbp", 30),  # 0.30
        ("czk", 1500),  # 15.00
        ("mxn", 1000),  # 10
        ("jpy", 50),  # no minor unit: 50 yen
        ("huf", 17500),  # two decimals in remit's table: 175.00
        # Not listed by Stripe: one minor unit, whatever the exponent.
        ("krw", 1),
        ("ars", 1),
        ("kwd", 1),
    ],
)
def test_minimums_are_in_the_currencys_minor_units(currency: str, minimum: int) -> None:
    assert minimum_charge_minor(currency) == minimum


def test_a_minimum_finer_than_the_minor_unit_is_refused_as_a_table_mistake() -> None:
    with pytest.raises(ValueError, match="finer than"):
        _in_minor_units("jpy", "0.50")


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (49, "usd", "Amount must be at least 0.50 usd"),
        (0, "eur", "Amount must be at least 0.50 eur"),
        (49, "jpy", "Amount must be at least 50 jpy"),
        (17_499, "huf", "Amount must be at least 175.00 huf"),
        (0, "ars", "Amount must be at least 0.01 ars"),
        (-1, "kwd", "Amount must be at least 0.001 kwd"),
    ],
)
def test_an_amount_below_the_minimum_is_amount_too_small_on_amount(
    amount: int, currency: str, message: str
) -> None:
    with pytest.raises(RemitError) as refused:
        require_minimum_charge(amount, currency)
    error = refused.value
    assert (error.kind, error.error_type, error.code, error.param, error.message) == (
        ErrorKind.INVALID_ARGUMENT,
        "invalid_request_error",
        "amount_too_small",
        "amount",
        message,
    )


@pytest.mark.parametrize(
    ("amount", "currency"), [(50, "usd"), (50, "jpy"), (17_500, "huf"), (1, "krw")]
)
def test_exactly_the_minimum_is_accepted(amount: int, currency: str) -> None:
    require_minimum_charge(amount, currency)


def test_an_update_below_the_minimum_is_refused() -> None:
    with pytest.raises(RemitError) as refused:
        transition(_intent(1000, "usd"), Updated(at=T, amount_minor=49))
    assert (refused.value.code, refused.value.param) == ("amount_too_small", "amount")
    assert transition(_intent(1000, "usd"), Updated(at=T, amount_minor=50)).amount_minor == 50


def test_a_new_currency_that_leaves_the_amount_below_its_minimum_is_refused() -> None:
    """1000 is 10.00 usd but only 10.00 huf, under its 175.00."""
    with pytest.raises(RemitError) as refused:
        transition(_intent(1000, "usd"), Updated(at=T, currency="huf"))
    assert refused.value.message == "Amount must be at least 175.00 huf"
    moved = transition(_intent(1000, "usd"), Updated(at=T, currency="jpy"))
    assert (moved.amount_minor, moved.currency) == (1000, "jpy")


def test_an_update_that_leaves_the_amount_alone_does_not_judge_it() -> None:
    """An intent stored for less, before the minimum was enforced, can still be described."""
    small = _intent(1, "usd")
    after = transition(small, Updated(at=T, changes={"description": "old order"}))
    assert (after.amount_minor, after.description) == (1, "old order")


def test_an_amount_change_after_authorization_is_still_a_state_error() -> None:
    held = _intent(1000, "usd", Status.REQUIRES_CAPTURE)
    with pytest.raises(UnexpectedStateError):
        transition(held, Updated(at=T, amount_minor=1))
