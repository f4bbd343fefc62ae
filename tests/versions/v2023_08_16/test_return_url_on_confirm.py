import pytest

from remit.rest.forms import FormValue
from remit.versioning import RequestRefusedError, upgrade_request
from remit.versioning.operations import CREATE_PAYMENT_INTENT
from tests.support.versions import version_before
from versions.v2023_08_16 import RequireReturnUrlToConfirm

AT = "2023-08-16"
BEFORE = version_before(AT)
CONFIRMING: dict[str, FormValue] = {
    "amount": "2000",
    "currency": "usd",
    "payment_method": "pm_card_visa",
    "confirm": "true",
}


def test_confirming_on_create_without_a_return_url_is_refused_from_2023_08_16() -> None:
    assert RequireReturnUrlToConfirm.version == AT
    with pytest.raises(RequestRefusedError) as refused:
        upgrade_request(CREATE_PAYMENT_INTENT, dict(CONFIRMING), AT)
    assert (refused.value.code, refused.value.param) == ("parameter_missing", "return_url")
    assert "return_url" in refused.value.message


def test_the_same_request_is_accepted_unchanged_before_2023_08_16() -> None:
    assert upgrade_request(CREATE_PAYMENT_INTENT, dict(CONFIRMING), BEFORE) == CONFIRMING


@pytest.mark.parametrize(
    "extra",
    [
        {"return_url": "https://shop.test/done"},
        {"off_session": "true"},
        {"payment_method_types": ["card"]},
        {"automatic_payment_methods": {"enabled": "true", "allow_redirects": "never"}},
        {"automatic_payment_methods": {"enabled": "false"}},
        {"confirm": "false"},
    ],
)
def test_a_return_url_is_not_needed_when_no_redirect_can_happen(
    extra: dict[str, FormValue],
) -> None:
    form = {**CONFIRMING, **extra}
    assert upgrade_request(CREATE_PAYMENT_INTENT, dict(form), AT) == form
