from remit.rest.errors import StripeError
from remit.versioning import render_error
from tests.support.versions import error_body, version_before
from versions.v2015_10_12 import ReturnBadRequestForInvalidCardParameters

AT = "2015-10-12"
BEFORE = version_before(AT)


def test_an_invalid_card_parameter_is_a_402_card_error_before_2015_10_12_and_a_400_from_it() -> (
    None
):
    error = StripeError.invalid_request(
        "Invalid integer: thirteen", code="parameter_invalid_integer", param="card[exp_month]"
    )
    at = render_error(400, error_body(error), AT)
    before = render_error(400, error_body(error), BEFORE)
    assert ReturnBadRequestForInvalidCardParameters.version == AT
    assert (at.http_status, at.error["type"]) == (400, "invalid_request_error")
    assert (before.http_status, before.error["type"]) == (402, "card_error")
    assert {k: v for k, v in before.error.items() if k != "type"} == {
        k: v for k, v in at.error.items() if k != "type"
    }


def test_a_missing_card_hash_is_also_402_before_2015_10_12() -> None:
    error = StripeError.invalid_request(
        "Missing required param: card.", code="parameter_missing", param="card"
    )
    assert render_error(400, error_body(error), BEFORE).http_status == 402


def test_other_invalid_parameters_stay_400_before_2015_10_12() -> None:
    error = StripeError.invalid_request(
        "Invalid integer: x", code="parameter_invalid_integer", param="amount"
    )
    before = render_error(400, error_body(error), BEFORE)
    assert (before.http_status, before.error["type"]) == (400, "invalid_request_error")
    assert before.body == error.to_body()
