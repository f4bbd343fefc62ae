import pytest

from remit.rest.forms import FormValue
from remit.versioning import RequestRefusedError, upgrade_request
from remit.versioning.operations import (
    CONFIRM_PAYMENT_INTENT,
    CREATE_PAYMENT_INTENT,
    UPDATE_PAYMENT_INTENT,
)
from tests.support.versions import version_before
from versions import LATEST_VERSION
from versions.v2026_09_30 import RefuseWritablePaymentMethodTypes

AT = "2026-09-30.endive"
BEFORE = version_before(AT)


@pytest.mark.parametrize(
    "operation", [CREATE_PAYMENT_INTENT, CONFIRM_PAYMENT_INTENT, UPDATE_PAYMENT_INTENT]
)
@pytest.mark.parametrize("version", [AT, LATEST_VERSION])
def test_writing_payment_method_types_is_refused_from_endive(operation: str, version: str) -> None:
    assert RefuseWritablePaymentMethodTypes.version == AT
    with pytest.raises(RequestRefusedError) as refused:
        upgrade_request(operation, {"payment_method_types": ["card"]}, version)
    assert refused.value.code == "payment_method_types_no_longer_supported"
    assert refused.value.param == "payment_method_types"


@pytest.mark.parametrize(
    "operation", [CREATE_PAYMENT_INTENT, CONFIRM_PAYMENT_INTENT, UPDATE_PAYMENT_INTENT]
)
def test_writing_payment_method_types_is_passed_through_before_endive(operation: str) -> None:
    form: dict[str, FormValue] = {
        "amount": "100",
        "currency": "usd",
        "payment_method_types": ["card"],
    }
    assert BEFORE == "2026-08-26.dahlia"
    assert upgrade_request(operation, dict(form), BEFORE) == form


@pytest.mark.parametrize(
    "operation", [CREATE_PAYMENT_INTENT, CONFIRM_PAYMENT_INTENT, UPDATE_PAYMENT_INTENT]
)
def test_requests_without_payment_method_types_are_untouched_at_endive(operation: str) -> None:
    form: dict[str, FormValue] = {
        "amount": "100",
        "currency": "usd",
        "allowed_payment_method_types": ["card"],
        "excluded_payment_method_types": ["ideal"],
    }
    assert upgrade_request(operation, dict(form), AT) == form
