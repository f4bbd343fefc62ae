import contextlib
import json
from collections.abc import Iterator
from dataclasses import FrozenInstanceError

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st
from stripe._api_requestor import _APIRequestor
from stripe._requestor_options import RequestorOptions

from remit.rest.errors import StripeError, mask_api_key
from remit.rest.forms import FormDecodeError
from remit.rest.params import ParamError

_SDK = _APIRequestor(options=RequestorOptions(api_key="sk_test_errors"))
_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


def _raised_by_sdk(error: StripeError) -> stripe.StripeError:
    """The exception stripe-python 16.1.0 raises for this response."""
    body = json.dumps(error.to_body())
    with pytest.raises(stripe.StripeError) as caught:
        _SDK.handle_error_response(body, error.http_status, json.loads(body), {}, "V1")
    return caught.value


# --- The error object -----------------------------------------------------------------------


def test_the_body_has_type_and_message_and_only_the_fields_that_are_set() -> None:
    error = StripeError(400, "invalid_request_error", "Bad.", param="amount")
    assert error.to_body() == {
        "error": {"type": "invalid_request_error", "message": "Bad.", "param": "amount"}
    }


def test_an_error_with_a_code_links_stripes_page_on_it() -> None:
    """As Stripe does: the code's page, its underscores as hyphens."""
    error = StripeError(400, "invalid_request_error", "Bad.", code="parameter_missing")
    assert error.to_body() == {
        "error": {
            "type": "invalid_request_error",
            "message": "Bad.",
            "code": "parameter_missing",
            "doc_url": "https://stripe.com/docs/error-codes/parameter-missing",
        }
    }
    assert StripeError.rate_limited().to_body()["error"]["doc_url"] == (
        "https://stripe.com/docs/error-codes/rate-limit"
    )
    sdk_error = _raised_by_sdk(StripeError.resource_missing("charge", "ch_1"))
    assert sdk_error.error is not None
    assert sdk_error.error.doc_url == "https://stripe.com/docs/error-codes/resource-missing"


def test_a_card_error_body_carries_its_decline_details_and_embedded_objects() -> None:
    payment_intent = {"id": "pi_1", "object": "payment_intent", "status": "requires_payment_method"}
    error = StripeError(
        402,
        "card_error",
        "Your card was declined.",
        code="card_declined",
        decline_code="insufficient_funds",
        charge="ch_1",
        payment_intent=payment_intent,
        advice_code="try_again_later",
        doc_url="https://stripe.com/docs/error-codes/card-declined",
    )
    assert error.to_body() == {
        "error": {
            "type": "card_error",
            "message": "Your card was declined.",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "charge": "ch_1",
            "payment_intent": payment_intent,
            "advice_code": "try_again_later",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        }
    }
    sdk_error = _raised_by_sdk(error)
    assert isinstance(sdk_error, stripe.CardError)
    assert sdk_error.error is not None
    assert sdk_error.error.decline_code == "insufficient_funds"
    assert sdk_error.error.payment_intent is not None
    assert sdk_error.error.payment_intent.id == "pi_1"


def test_should_retry_is_a_header_matter_and_never_in_the_body() -> None:
    error = StripeError.rate_limited(should_retry=True)
    assert error.should_retry is True
    assert "should_retry" not in error.to_body()["error"]


def test_the_body_is_json_serialisable_and_a_copy() -> None:
    payment_intent = {"id": "pi_1"}
    body = StripeError(402, "card_error", "Declined.", payment_intent=payment_intent).to_body()
    assert json.loads(json.dumps(body)) == body
    assert body["error"]["payment_intent"] is not payment_intent


def test_an_error_reads_as_its_message() -> None:
    assert str(StripeError.resource_missing("customer", "cus_1")) == "No such customer: 'cus_1'"


def test_an_errors_fields_cannot_be_reassigned_or_deleted() -> None:
    error = StripeError.api_error()
    with pytest.raises(FrozenInstanceError):
        error.http_status = 200
    with pytest.raises(FrozenInstanceError):
        del error.message
    assert error.http_status == 500


def test_an_error_can_be_raised_through_a_context_manager_and_annotated() -> None:
    @contextlib.contextmanager
    def passthrough() -> Iterator[None]:
        yield

    with pytest.raises(StripeError) as caught, passthrough():
        raise StripeError.missing_api_key()
    caught.value.add_note("seen by the test")
    assert caught.value.http_status == 401
    assert caught.value.__notes__ == ["seen by the test"]


# --- Constructors ---------------------------------------------------------------------------


def test_a_missing_api_key_is_a_401_with_stripes_message() -> None:
    error = StripeError.missing_api_key()
    assert (error.http_status, error.type) == (401, "invalid_request_error")
    assert error.message == (
        "You did not provide an API key. You need to provide your API key in the Authorization "
        "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
        "https://stripe.com/docs/api#authentication for details, or we can help at "
        "https://support.stripe.com/."
    )
    assert isinstance(_raised_by_sdk(error), stripe.AuthenticationError)


def test_an_invalid_api_key_is_a_401_that_shows_only_a_masked_key() -> None:
    error = StripeError.invalid_api_key(_KEY)
    assert (error.http_status, error.type) == (401, "invalid_request_error")
    assert error.message == "Invalid API Key provided: sk_test_********p7dc"
    assert _KEY not in json.dumps(error.to_body())
    assert _KEY not in repr(error)
    assert isinstance(_raised_by_sdk(error), stripe.AuthenticationError)


def test_an_empty_api_key_is_reported_as_empty() -> None:
    assert StripeError.invalid_api_key("").message == "Invalid API Key provided: (an empty key)"


@pytest.mark.parametrize(
    ("presented", "shown"),
    [
        ("sk_live_abcdefghijklmnop1234", "sk_live_********1234"),
        ("rk_test_abcdefghijkl9876", "rk_test_********9876"),
        ("pk_test_short", "pk_test_********"),
        ("my_password_is_hunter2hunter2", "********"),
        ("Basic dXNlcjpwYXNz", "********"),
        ("sk_test_has spaces in it 1234", "********"),
    ],
)
def test_keys_are_masked_down_to_their_mode_prefix_and_last_four(
    presented: str, shown: str
) -> None:
    assert mask_api_key(presented) == shown


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=12)
)
def test_no_presented_key_is_ever_echoed_whole(presented: str) -> None:
    invalid = StripeError.invalid_api_key(presented).message
    expired = StripeError.expired_api_key(presented).message
    echoed = [
        invalid.removeprefix("Invalid API Key provided: "),
        expired.removeprefix("Expired API Key provided: "),
    ]
    assert echoed == [mask_api_key(presented)] * 2
    assert presented not in echoed[0]


def test_an_expired_key_is_a_401_with_its_code() -> None:
    error = StripeError.expired_api_key(_KEY)
    assert (error.http_status, error.code) == (401, "api_key_expired")
    assert error.message == "Expired API Key provided: sk_test_********p7dc"


def test_permission_denied_is_a_403_that_the_sdk_raises_as_permission_error() -> None:
    error = StripeError.permission_denied()
    assert (error.http_status, error.type) == (403, "invalid_request_error")
    assert "permissions" in error.message
    assert isinstance(_raised_by_sdk(error), stripe.PermissionError)
    assert StripeError.permission_denied("Custom.").message == "Custom."


def test_a_publishable_key_on_a_secret_endpoint_is_denied() -> None:
    error = StripeError.publishable_key_not_allowed()
    assert error.http_status == 403
    assert error.message == (
        "This API call cannot be made with a publishable API key. Please use a secret API key."
    )


def test_a_missing_resource_is_a_404_with_stripes_message_and_code() -> None:
    error = StripeError.resource_missing("payment_intent", "pi_123", param="intent")
    assert error.to_body() == {
        "error": {
            "type": "invalid_request_error",
            "message": "No such payment_intent: 'pi_123'",
            "code": "resource_missing",
            "param": "intent",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        }
    }
    assert error.http_status == 404
    sdk_error = _raised_by_sdk(error)
    assert isinstance(sdk_error, stripe.InvalidRequestError)
    assert (sdk_error.code, sdk_error.param) == ("resource_missing", "intent")


def test_an_unknown_route_is_a_404_with_stripes_message() -> None:
    error = StripeError.route_not_found("get", "/v1/foo")
    assert error.http_status == 404
    assert error.message == (
        "Unrecognized request URL (GET: /v1/foo). Please see https://stripe.com/docs or we can "
        "help at https://support.stripe.com/."
    )
    assert isinstance(_raised_by_sdk(error), stripe.InvalidRequestError)


def test_a_wrong_method_on_a_known_path_looks_exactly_like_an_unknown_route() -> None:
    wrong_method = StripeError.method_not_allowed("DELETE", "/v1/balance")
    assert wrong_method.http_status == 404
    assert wrong_method.to_body() == StripeError.route_not_found("DELETE", "/v1/balance").to_body()


def test_an_enormous_path_is_truncated_in_the_message() -> None:
    error = StripeError.route_not_found("GET", "/v1/" + "x" * 10_000)
    assert len(error.message) < 400


def test_a_param_error_becomes_a_400_invalid_request_error() -> None:
    error = StripeError.from_param_error(
        ParamError("Invalid integer: abc", code="parameter_invalid_integer", param="amount")
    )
    assert error.http_status == 400
    assert error.to_body() == {
        "error": {
            "type": "invalid_request_error",
            "message": "Invalid integer: abc",
            "code": "parameter_invalid_integer",
            "param": "amount",
            "doc_url": "https://stripe.com/docs/error-codes/parameter-invalid-integer",
        }
    }
    sdk_error = _raised_by_sdk(error)
    assert isinstance(sdk_error, stripe.InvalidRequestError)
    assert (sdk_error.param, sdk_error.code) == ("amount", "parameter_invalid_integer")


def test_a_form_error_becomes_a_400_naming_the_parameter() -> None:
    error = StripeError.from_form_error(FormDecodeError("Received a twice.", "a"))
    assert error.http_status == 400
    assert error.to_body() == {
        "error": {"type": "invalid_request_error", "message": "Received a twice.", "param": "a"}
    }


def test_an_unknown_api_version_is_a_400_that_names_the_newest_and_lists_the_known() -> None:
    known = ("2020-08-27", "2026-10-28.endive", "2011-01-01")
    error = StripeError.unknown_api_version("2099-01-01", known)
    assert (error.http_status, error.type) == (400, "invalid_request_error")
    assert "'2099-01-01'" in error.message
    assert (
        "The newest is 2026-10-28.endive; known versions: 2026-10-28.endive, 2020-08-27, "
        "2011-01-01." in error.message
    )


def test_reusing_an_idempotency_key_with_other_params_is_an_idempotency_error() -> None:
    error = StripeError.idempotency_mismatch("key-1")
    assert (error.http_status, error.type) == (400, "idempotency_error")
    assert error.message == (
        "Keys for idempotent requests can only be used with the same parameters they were first "
        "used with. Try using a key other than 'key-1' if you meant to execute a different "
        "request."
    )
    assert isinstance(_raised_by_sdk(error), stripe.IdempotencyError)


def test_an_idempotency_key_in_flight_is_a_409_the_sdk_treats_as_retryable() -> None:
    error = StripeError.idempotency_in_use()
    assert (error.http_status, error.type, error.code) == (
        409,
        "idempotency_error",
        "idempotency_key_in_use",
    )
    sdk_error = _raised_by_sdk(error)
    assert type(sdk_error) is stripe.APIError


def test_an_overlong_idempotency_key_is_a_400() -> None:
    error = StripeError.idempotency_key_too_long()
    assert (error.http_status, error.type) == (400, "invalid_request_error")
    assert "255" in error.message


def test_rate_limiting_is_a_429_with_the_rate_limit_code() -> None:
    error = StripeError.rate_limited()
    assert (error.http_status, error.type, error.code) == (
        429,
        "invalid_request_error",
        "rate_limit",
    )
    assert error.should_retry is None
    assert isinstance(_raised_by_sdk(error), stripe.RateLimitError)


def test_an_api_error_is_a_500_with_a_generic_message_unless_given_one() -> None:
    error = StripeError.api_error()
    assert (error.http_status, error.type) == (500, "api_error")
    assert error.to_body()["error"].keys() == {"type", "message"}
    assert StripeError.api_error("Ledger unavailable.").message == "Ledger unavailable."
    assert type(_raised_by_sdk(error)) is stripe.APIError


def test_a_generic_invalid_request_carries_code_and_param() -> None:
    error = StripeError.invalid_request(
        "This PaymentIntent's amount could not be updated because it has a status of canceled.",
        code="payment_intent_unexpected_state",
    )
    assert (error.http_status, error.code, error.param) == (
        400,
        "payment_intent_unexpected_state",
        None,
    )


def test_a_card_number_sent_as_a_form_key_is_masked_where_the_error_names_it() -> None:
    from remit.rest.app import error_response

    pan = "4242424242424242"
    refused = StripeError.invalid_request(f"Received unknown parameter: {pan}", param=pan)
    body = json.loads(bytes(error_response(refused, "req_1").body))
    assert body["error"]["param"] == "[card ****4242]"
    assert pan not in json.dumps(body)
