import pytest

from remit.rest.errors import StripeError
from remit.rest.forms import decode_form
from remit.rest.params import ParamError, Schema
from remit.rest.resources import balance_transactions, payment_intents, payment_methods, tokens
from remit.rest.routes import all_operations
from remit.versioning import operation_key, render_error
from remit.versioning.operations import CREATE_TOKEN
from tests.support.versions import error_body, version_before
from versions.v2015_10_12 import ReturnBadRequestForInvalidCardParameters

AT = "2015-10-12"
BEFORE = version_before(AT)


def _refused(schema: Schema, query: str) -> StripeError:
    """The error the facade answers `query` with, for an operation with `schema`."""
    with pytest.raises(ParamError) as refused:
        schema.parse(decode_form(query))
    return StripeError.from_param_error(refused.value)


def test_an_invalid_card_parameter_is_a_402_card_error_before_2015_10_12_and_a_400_from_it() -> (
    None
):
    error = _refused(tokens.CREATE, "card[number]=4242424242424242&card[exp_month]=thirteen")
    assert error.param == "card[exp_month]"
    at = render_error(400, error_body(error), AT, operation=CREATE_TOKEN)
    before = render_error(400, error_body(error), BEFORE, operation=CREATE_TOKEN)
    assert ReturnBadRequestForInvalidCardParameters.version == AT
    assert (at.http_status, at.error["type"]) == (400, "invalid_request_error")
    assert (before.http_status, before.error["type"]) == (402, "card_error")
    assert {k: v for k, v in before.error.items() if k != "type"} == {
        k: v for k, v in at.error.items() if k != "type"
    }


@pytest.mark.parametrize("query", ["card[exp_month]=12", "", "card=tok_visa"])
def test_a_missing_or_malformed_card_hash_is_also_402_before_2015_10_12(query: str) -> None:
    error = _refused(tokens.CREATE, query)
    assert error.param in ("card", "card[number]")
    before = render_error(400, error_body(error), BEFORE, operation=CREATE_TOKEN)
    assert (before.http_status, before.error["type"]) == (402, "card_error")


@pytest.mark.parametrize(
    ("operation", "schema", "query"),
    [
        # Not a card hash at all, though named alike.
        ("GET /v1/balance_transactions", balance_transactions.LIST, "source[x]=ch_1"),
        # PaymentMethods came years after 2015-10-12: their card hash, on its own or inside
        # payment_method_data, never answered 402 for a bad parameter.
        ("POST /v1/payment_methods", payment_methods.CREATE, "type=card&card[exp_month]=x"),
        (
            "POST /v1/payment_intents",
            payment_intents.CREATE,
            "amount=100&currency=usd&payment_method_data[type]=card"
            "&payment_method_data[card][exp_month]=x",
        ),
        # A parameter no version knows is not an invalid card parameter.
        ("POST /v1/tokens", tokens.CREATE, "card[number]=4242424242424242&card[colour]=red"),
    ],
)
def test_other_refused_parameters_stay_400_before_2015_10_12(
    operation: str, schema: Schema, query: str
) -> None:
    error = _refused(schema, query)
    before = render_error(400, error_body(error), BEFORE, operation=operation)
    assert (before.http_status, before.error["type"]) == (400, "invalid_request_error")
    assert before.body == error.to_body()


def test_other_invalid_parameters_of_a_token_stay_400_before_2015_10_12() -> None:
    error = StripeError.invalid_request(
        "Invalid integer: x", code="parameter_invalid_integer", param="amount"
    )
    before = render_error(400, error_body(error), BEFORE, operation=CREATE_TOKEN)
    assert (before.http_status, before.error["type"]) == (400, "invalid_request_error")
    assert before.body == error.to_body()


def test_the_token_operation_is_one_the_facade_serves() -> None:
    served = {operation_key(op.method, op.path) for op in all_operations()}
    assert CREATE_TOKEN in served
