"""An update leaves an intent with an amount its currency can charge: whole krónur in isk,
whole hundredths of a three-decimal currency."""

from datetime import UTC, datetime

import pytest

from remit.core.currency import FRACTIONAL_CHARGE_AMOUNT
from remit.core.errors import RemitError
from remit.payments.domain import (
    CaptureMethod,
    ConfirmationMethod,
    PaymentIntent,
    Status,
    Updated,
    transition,
)

T = datetime(2026, 11, 1, tzinfo=UTC)


def _intent(amount_minor: int, currency: str) -> PaymentIntent:
    return PaymentIntent(
        id="pi_1",
        account_id="acct_1",
        amount_minor=amount_minor,
        currency=currency,
        status=Status.REQUIRES_PAYMENT_METHOD,
        capture_method=CaptureMethod.AUTOMATIC,
        confirmation_method=ConfirmationMethod.AUTOMATIC,
        client_secret="pi_1_secret_x",
        created_at=T,
        updated_at=T,
    )


@pytest.mark.parametrize(
    ("intent", "update"),
    [
        (_intent(5000, "kwd"), Updated(at=T, amount_minor=5124)),
        (_intent(50_000, "isk"), Updated(at=T, amount_minor=50_050)),
        # 1055 is 10.55 usd, but 1.055 kwd: the new currency is judged with the amount.
        (_intent(1055, "usd"), Updated(at=T, currency="kwd")),
        (_intent(1055, "usd"), Updated(at=T, currency="isk")),
    ],
)
def test_an_update_to_an_amount_finer_than_the_currency_charges_is_refused(
    intent: PaymentIntent, update: Updated
) -> None:
    with pytest.raises(RemitError) as refused:
        transition(intent, update)
    assert (refused.value.code, refused.value.param) == (FRACTIONAL_CHARGE_AMOUNT, "amount")


def test_an_update_to_whole_amounts_is_accepted() -> None:
    moved = transition(_intent(1000, "usd"), Updated(at=T, currency="isk"))
    assert (moved.amount_minor, moved.currency) == (1000, "isk")
    changed = transition(_intent(5000, "kwd"), Updated(at=T, amount_minor=5130))
    assert changed.amount_minor == 5130


def test_an_update_that_leaves_the_money_alone_does_not_judge_it() -> None:
    """An intent stored before the granularity was enforced can still be described."""
    after = transition(_intent(5124, "kwd"), Updated(at=T, changes={"description": "old"}))
    assert (after.amount_minor, after.description) == (5124, "old")
