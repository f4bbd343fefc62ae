import pytest

from remit.rest.forms import FormValue
from remit.versioning import upgrade_request
from remit.versioning.operations import CREATE_PAYMENT_INTENT
from tests.support.versions import version_before
from versions import LATEST_VERSION

AT = "2023-08-16"
BEFORE = version_before(AT)
CONFIRMING: dict[str, FormValue] = {
    "amount": "2000",
    "currency": "usd",
    "payment_method": "pm_card_visa",
    "confirm": "true",
}


def test_before_2023_08_16_a_create_naming_no_payment_methods_asks_for_cards() -> None:
    """The old default, card only, is sent on (DefaultToAutomaticPaymentMethods) as the
    parameter that says so; the intent then has no automatic payment methods and its
    confirmation needs no return_url."""
    assert upgrade_request(CREATE_PAYMENT_INTENT, dict(CONFIRMING), BEFORE) == {
        **CONFIRMING,
        "payment_method_types": ["card"],
    }


@pytest.mark.parametrize("version", [AT, LATEST_VERSION])
def test_from_2023_08_16_the_create_is_sent_on_unchanged(version: str) -> None:
    """Without either parameter the facade turns automatic payment methods on, and the
    payments service asks a confirmation that may redirect for a return_url."""
    assert upgrade_request(CREATE_PAYMENT_INTENT, dict(CONFIRMING), version) == CONFIRMING


@pytest.mark.parametrize(
    "extra",
    [
        {"payment_method_types": ["card"]},
        {"automatic_payment_methods": {"enabled": "true"}},
        {"automatic_payment_methods": {"enabled": "false"}},
    ],
)
def test_before_2023_08_16_a_create_that_chooses_its_payment_methods_is_untouched(
    extra: dict[str, FormValue],
) -> None:
    form = {**CONFIRMING, **extra}
    assert upgrade_request(CREATE_PAYMENT_INTENT, dict(form), BEFORE) == form
