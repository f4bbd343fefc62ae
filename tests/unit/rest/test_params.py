import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.statement_descriptors import statement_descriptor_problem
from remit.rest.forms import FormValue, decode_form
from remit.rest.params import (
    DEFAULT_LIST_LIMIT,
    LIST_PARAMS,
    UNSET,
    Array,
    Boolean,
    BooleanOrEnum,
    Currency,
    CurrencyCode,
    Email,
    Enum,
    ExpandList,
    Field,
    Integer,
    IntRange,
    Metadata,
    Object,
    PageRequest,
    ParamError,
    RangeFilter,
    Schema,
    StatementDescriptor,
    String,
    StringList,
    list_schema,
    search_schema,
)
from remit.rest.resources.payouts import CREATE as PAYOUT_CREATE
from tests.unit.rest.test_forms import sdk_form_body, sdk_query_string

ADDRESS = Object(
    {
        "line1": String(),
        "line2": String(unsettable=True),
        "city": String(),
        "postal_code": String(),
        "country": String(max_length=2),
    },
    required={"line1"},
)

PAYMENT_INTENT_CREATE = Schema(
    {
        "amount": Integer(min=1, max=99_999_999),
        "currency": Currency(),
        "metadata": Metadata(),
        "confirm": Boolean(),
        "expand": ExpandList(),
        "capture_method": Enum("automatic", "automatic_async", "manual"),
        "payment_method_types": StringList(),
        "shipping": Object(
            {"name": String(), "phone": String(unsettable=True), "address": ADDRESS},
            required={"name", "address"},
            unsettable=True,
        ),
        "description": String(max_length=1000, unsettable=True),
        "application_fee_amount": Integer(min=0, unsettable=True),
        "items": Array(Object({"price": String(), "quantity": Integer(min=1)}, required={"price"})),
    },
    required={"amount", "currency"},
)


def _error(schema: Schema, form: dict[str, FormValue]) -> ParamError:
    with pytest.raises(ParamError) as caught:
        schema.parse(form)
    return caught.value


def _field_error(field: Field[object], value: FormValue, param: str = "p") -> ParamError:
    with pytest.raises(ParamError) as caught:
        field.parse(value, param)
    return caught.value


# --- Schema ---------------------------------------------------------------------------------


def test_a_valid_form_parses_into_typed_values() -> None:
    form = decode_form(
        "amount=2000&currency=usd&confirm=true&capture_method=manual"
        "&payment_method_types[]=card&metadata[order]=42&expand[]=latest_charge"
        "&shipping[name]=Zoe&shipping[address][line1]=1+Main+St"
    )
    assert PAYMENT_INTENT_CREATE.parse(form) == {
        "amount": 2000,
        "currency": "usd",
        "confirm": True,
        "capture_method": "manual",
        "payment_method_types": ["card"],
        "metadata": {"order": "42"},
        "expand": ["latest_charge"],
        "shipping": {"name": "Zoe", "address": {"line1": "1 Main St"}},
    }


def test_the_sdk_encoding_of_a_create_call_parses_into_what_the_caller_meant() -> None:
    body = sdk_form_body(
        {
            "amount": 2000,
            "currency": "eur",
            "confirm": False,
            "items": [{"price": "price_a", "quantity": 3}, {"price": "price_b"}],
            "metadata": {"0": "zero", "1": "one"},
            "description": "",
        }
    )
    assert PAYMENT_INTENT_CREATE.parse(decode_form(body)) == {
        "amount": 2000,
        "currency": "eur",
        "confirm": False,
        "items": [{"price": "price_a", "quantity": 3}, {"price": "price_b"}],
        "metadata": {"0": "zero", "1": "one"},
        "description": UNSET,
    }


def test_the_result_holds_only_the_parameters_that_were_sent() -> None:
    assert PAYMENT_INTENT_CREATE.parse({"amount": "5", "currency": "usd"}) == {
        "amount": 5,
        "currency": "usd",
    }


def test_an_unknown_parameter_is_rejected_with_stripes_wording() -> None:
    error = _error(PAYMENT_INTENT_CREATE, {"amount": "5", "currency": "usd", "foo": "x"})
    assert (error.code, error.param) == ("parameter_unknown", "foo")
    assert error.message == "Received unknown parameter: foo"


# A Mastercard test number with a typo-free Luhn digit; cut, it would fail the Luhn check the
# masking of messages relies on.
_CARD = "5555555555554444"


def test_a_long_value_is_never_echoed_with_part_of_a_card_number() -> None:
    error = _field_error(AMOUNT, "aaaaa" + _CARD + "z" * 30)
    assert "5555" not in error.message
    assert error.message == f"Invalid integer: aaaaa...{'z' * 20}"


def test_a_long_unknown_parameter_is_never_named_with_part_of_a_card_number() -> None:
    name = "aaaaa" + _CARD + "z" * 30
    error = _error(PAYMENT_INTENT_CREATE, {"amount": "5", "currency": "usd", name: "1"})
    assert error.code == "parameter_unknown"
    assert "5555" not in error.message
    assert error.param is not None
    assert "5555" not in error.param


def test_a_near_miss_unknown_parameter_suggests_the_real_one() -> None:
    error = _error(PAYMENT_INTENT_CREATE, {"amout": "5", "currency": "usd"})
    assert error.message == "Received unknown parameter: amout. Did you mean amount?"


def test_several_unknown_parameters_are_all_named() -> None:
    error = _error(PAYMENT_INTENT_CREATE, {"foo": "1", "bar": "2"})
    assert error.message == "Received unknown parameters: foo, bar"
    assert error.param == "foo"


def test_an_unknown_nested_parameter_is_named_with_brackets() -> None:
    form = decode_form("amount=5&currency=usd&shipping[name]=Z&shipping[address][town]=Paris")
    error = _error(PAYMENT_INTENT_CREATE, form)
    assert (error.code, error.param) == ("parameter_unknown", "shipping[address][town]")
    assert error.message == "Received unknown parameter: shipping[address][town]"


def test_a_missing_required_parameter_is_reported_first_in_declaration_order() -> None:
    error = _error(PAYMENT_INTENT_CREATE, {})
    assert (error.code, error.param) == ("parameter_missing", "amount")
    assert error.message == "Missing required param: amount."


def test_a_missing_nested_required_parameter_is_named_with_brackets() -> None:
    form = decode_form("amount=5&currency=usd&shipping[name]=Z&shipping[address][city]=Paris")
    error = _error(PAYMENT_INTENT_CREATE, form)
    assert (error.code, error.param) == ("parameter_missing", "shipping[address][line1]")
    assert error.message == "Missing required param: shipping[address][line1]."


def test_errors_inside_arrays_of_objects_name_the_item_index() -> None:
    form = decode_form("amount=5&currency=usd&items[0][price]=a&items[1][quantity]=2")
    error = _error(PAYMENT_INTENT_CREATE, form)
    assert error.message == "Missing required param: items[1][price]."
    form = decode_form("amount=5&currency=usd&items[0][price]=a&items[0][quantity]=0")
    assert _error(PAYMENT_INTENT_CREATE, form).param == "items[0][quantity]"


def test_a_required_parameter_sent_empty_is_an_empty_value_error_not_a_missing_one() -> None:
    error = _error(PAYMENT_INTENT_CREATE, {"amount": "", "currency": "usd"})
    assert (error.code, error.param) == ("parameter_invalid_empty", "amount")


def test_unsettable_fields_parse_an_empty_string_to_unset() -> None:
    form = decode_form("amount=5&currency=usd&description=&shipping=&metadata=")
    parsed = PAYMENT_INTENT_CREATE.parse(form)
    assert parsed["description"] is UNSET
    assert parsed["shipping"] is UNSET
    assert parsed["metadata"] is UNSET


def test_an_unsettable_nested_field_parses_to_unset_in_place() -> None:
    form = decode_form(
        "amount=5&currency=usd&shipping[name]=Z&shipping[phone]=&shipping[address][line1]=x"
        "&shipping[address][line2]="
    )
    shipping = PAYMENT_INTENT_CREATE.parse(form)["shipping"]
    assert shipping == {"name": "Z", "phone": UNSET, "address": {"line1": "x", "line2": UNSET}}


def test_mutually_exclusive_parameters_are_rejected_with_stripes_wording() -> None:
    error = _error(list_schema(), {"starting_after": "pi_1", "ending_before": "pi_2"})
    assert error.code == "parameters_exclusive"
    assert error.message == (
        "Received both starting_after and ending_before parameters. Please pass in only one."
    )


def test_an_exclusive_group_of_three_names_everything_sent() -> None:
    schema = Schema({"a": String(), "b": String(), "c": String()}, exclusive=[("a", "b", "c")])
    assert schema.parse({"a": "1"}) == {"a": "1"}
    error = _error(schema, {"a": "1", "b": "2", "c": "3"})
    assert error.message == "Received more than one of a, b, c. Please pass in only one."


def test_a_schema_can_be_extended_with_more_fields_and_requirements() -> None:
    base = Schema({"a": String()})
    extended = base.extend({"b": Integer()}, required={"b"})
    assert extended.parse({"a": "x", "b": "2"}) == {"a": "x", "b": 2}
    assert _error(extended, {"a": "x"}).code == "parameter_missing"
    assert _error(base, {"b": "2"}).code == "parameter_unknown"


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Schema({"a": String()}, required={"b"}), "undeclared"),
        (lambda: Schema({"a": String()}, exclusive=[("a", "b")]), "undeclared"),
        (lambda: Schema({"a": String(unsettable=True)}, required={"a"}), "unsettable"),
        (lambda: Schema({"a": String()}, exclusive=[("a", "a")]), "two distinct"),
        (lambda: Enum(), "at least one value"),
    ],
)
def test_inconsistent_declarations_fail_when_the_schema_is_built(
    build: object, fragment: str
) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match=fragment):
        build()


# --- Integer --------------------------------------------------------------------------------

AMOUNT = Integer(min=1, max=99_999_999)


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("99999999", 99_999_999), ("007", 7)])
def test_integers_within_bounds_parse(text: str, number: int) -> None:
    assert AMOUNT.parse(text, "amount") == number


@pytest.mark.parametrize("text", ["abc", "1.5", "1e3", "12a", " 12", "+5", "١٢", "1_000", "0x10"])
def test_non_integers_are_rejected_with_stripes_wording(text: str) -> None:
    error = _field_error(AMOUNT, text, "amount")
    assert (error.code, error.param) == ("parameter_invalid_integer", "amount")
    assert error.message == f"Invalid integer: {text}"


def test_integers_outside_int64_are_invalid_integers() -> None:
    assert _field_error(Integer(), str(2**63)).code == "parameter_invalid_integer"
    assert Integer().parse(str(2**63 - 1), "p") == 2**63 - 1
    assert Integer().parse(str(-(2**63)), "p") == -(2**63)


@pytest.mark.parametrize("text", ["0", "-5"])
def test_amounts_below_the_minimum_are_rejected_with_stripes_wording(text: str) -> None:
    error = _field_error(AMOUNT, text, "amount")
    assert (error.code, error.param) == ("parameter_invalid_integer", "amount")
    assert error.message == "This value must be greater than or equal to 1."


def test_amounts_above_the_maximum_are_rejected() -> None:
    error = _field_error(AMOUNT, "100000000", "amount")
    assert error.code == "parameter_invalid_integer"
    assert error.message == "This value must be less than or equal to 99999999."


def test_an_integer_given_as_an_object_is_an_invalid_integer() -> None:
    error = _field_error(AMOUNT, {"value": "5"}, "amount")
    assert error.code == "parameter_invalid_integer"
    assert "must be a single value, not an object" in error.message


def test_an_empty_integer_uses_stripes_cannot_be_unset_message() -> None:
    error = _field_error(AMOUNT, "", "amount")
    assert (error.code, error.param) == ("parameter_invalid_empty", "amount")
    assert error.message == (
        "You passed an empty string for 'amount'. We assume empty values are an attempt to "
        "unset a parameter; however 'amount' cannot be unset. You should remove 'amount' from "
        "your request or supply a non-empty value."
    )


def test_a_long_invalid_integer_is_abbreviated_in_the_message() -> None:
    error = _field_error(AMOUNT, "9" * 20 + "x" * 1000 + "9" * 20)
    assert error.message == f"Invalid integer: {'9' * 20}...{'9' * 20}"


@given(st.integers(min_value=1, max_value=99_999_999))
def test_every_amount_in_range_round_trips_through_its_text(number: int) -> None:
    assert AMOUNT.parse(str(number), "amount") == number


# --- Boolean, String, Enum ------------------------------------------------------------------


def test_booleans_accept_only_lowercase_true_and_false() -> None:
    assert Boolean().parse("true", "confirm") is True
    assert Boolean().parse("false", "confirm") is False


@pytest.mark.parametrize("text", ["True", "1", "yes", "on", "FALSE"])
def test_other_boolean_spellings_are_rejected_with_stripes_wording(text: str) -> None:
    error = _field_error(Boolean(), text, "confirm")
    assert (error.code, error.param) == ("parameter_invalid", "confirm")
    assert error.message == f"Invalid boolean: {text}"


def test_an_empty_string_field_has_its_own_code() -> None:
    error = _field_error(String(), "", "customer")
    assert (error.code, error.param) == ("parameter_invalid_string_empty", "customer")
    assert "cannot be unset" in error.message


def test_a_string_over_its_maximum_length_is_rejected_with_stripes_wording() -> None:
    descriptor = String(max_length=22)
    assert descriptor.parse("x" * 22, "statement_descriptor") == "x" * 22
    error = _field_error(descriptor, "Lottery Results for the 2024 waiting line", "sd")
    assert (error.code, error.param) == ("parameter_invalid", "sd")
    # Only the start of the value is quoted, never the whole of it.
    assert error.message == "Invalid string: Lottery Resu...; must be at most 22 characters"


def test_an_over_long_string_never_quotes_a_card_number_or_the_start_of_one() -> None:
    for value in ("4242424242424242" + "x" * 30, "Card 4242 4242 4242 4242 " + "x" * 5000):
        error = _field_error(String(max_length=22), value, "description")
        assert "4242" not in error.message
        assert error.message.endswith("...; must be at most 22 characters")


def test_strings_default_to_stripes_five_thousand_character_limit() -> None:
    assert String().parse("x" * 5000, "p") == "x" * 5000
    assert "at most 5000" in _field_error(String(), "x" * 5001).message


def test_a_string_given_as_an_array_is_rejected() -> None:
    error = _field_error(String(), ["a"], "description")
    assert error.message == "Invalid string: description must be a single value, not an array."


CAPTURE_METHOD = Enum("automatic", "automatic_async", "manual")


def test_enums_accept_their_values() -> None:
    assert CAPTURE_METHOD.parse("automatic_async", "capture_method") == "automatic_async"


@pytest.mark.parametrize("value", ["Manual", "later", ["manual"]])
def test_enums_reject_anything_else_listing_the_choices(value: FormValue) -> None:
    error = _field_error(CAPTURE_METHOD, value, "capture_method")
    assert (error.code, error.param) == ("parameter_invalid", "capture_method")
    assert error.message == (
        "Invalid capture_method: must be one of automatic, automatic_async, or manual"
    )


def test_two_valued_enums_read_naturally() -> None:
    error = _field_error(Enum("on_session", "off_session"), "never", "setup_future_usage")
    assert error.message == "Invalid setup_future_usage: must be one of on_session or off_session"


def test_an_empty_enum_is_an_empty_value_error() -> None:
    assert _field_error(CAPTURE_METHOD, "").code == "parameter_invalid_empty"
    assert Enum("a", unsettable=True).parse("", "p") is UNSET


# --- Currency -------------------------------------------------------------------------------


def test_currencies_are_accepted_in_any_case_and_returned_lowercase() -> None:
    assert Currency().parse("usd", "currency") == "usd"
    assert Currency().parse("JPY", "currency") == "jpy"


@pytest.mark.parametrize("value", ["xyz", "us", "usdd", "€"])
def test_unsupported_currencies_are_rejected_naming_the_currency_param(value: str) -> None:
    error = _field_error(Currency(), value, "currency")
    assert (error.code, error.param) == ("parameter_invalid", "currency")
    assert error.message.startswith(f"Invalid currency: {value}. ")
    assert "usd" in error.message


def test_a_currency_filter_takes_any_currency_code_and_refuses_malformed_ones() -> None:
    assert CurrencyCode().parse("MNT", "currency") == "mnt"
    assert CurrencyCode().parse("usd", "currency") == "usd"
    for malformed in ("us", "usdd", "u$d", "€ur", "123"):
        error = _field_error(CurrencyCode(), malformed, "currency")
        assert (error.code, error.param) == ("parameter_invalid", "currency")
        assert error.message.startswith("Invalid currency: ")


def test_a_currency_table_can_be_narrowed_per_field() -> None:
    payouts = Currency(supported={"usd": 2})
    assert payouts.parse("usd", "currency") == "usd"
    assert _field_error(payouts, "eur", "currency").message.endswith("currencies: usd")


def test_the_currency_table_knows_each_currencys_minor_unit_exponent() -> None:
    expected = {"usd": 2, "eur": 2, "gbp": 2, "jpy": 0, "krw": 0, "vnd": 0, "kwd": 3, "bhd": 3}
    assert {code: SUPPORTED_CURRENCIES[code] for code in expected} == expected
    assert len(SUPPORTED_CURRENCIES) >= 40
    assert all(re.fullmatch(r"[a-z]{3}", code) for code in SUPPORTED_CURRENCIES)
    assert set(SUPPORTED_CURRENCIES.values()) == {0, 2, 3}


# --- Email and statement descriptors ------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["jenny@example.com", "j.rosen+shop@mail.example.co.uk", "o'brien@example.ie"]
)
def test_an_email_address_is_read_as_given(address: str) -> None:
    assert Email(max_length=800).parse(address, "receipt_email") == address


@pytest.mark.parametrize(
    "address", ["jenny", "jenny@", "@example.com", "jenny@example", "a b@example.com",
                "jenny@@example.com", "jenny@example..com", "jenny@example.com."],
)  # fmt: skip
def test_a_malformed_email_address_is_email_invalid(address: str) -> None:
    error = _field_error(Email(max_length=800), address, "receipt_email")
    assert (error.code, error.param) == ("email_invalid", "receipt_email")
    assert error.message == f"Invalid email address: {address}"


def test_an_unsettable_email_still_clears_with_an_empty_value() -> None:
    assert Email(max_length=800, unsettable=True).parse("", "receipt_email") is UNSET


def test_a_statement_descriptor_needs_a_letter_and_at_most_22_characters() -> None:
    field = StatementDescriptor()
    assert field.parse("ACME SHOP 42", "statement_descriptor") == "ACME SHOP 42"
    assert field.parse("x" * 22, "statement_descriptor") == "x" * 22
    no_letter = _field_error(field, "1234 5678", "statement_descriptor")
    assert (no_letter.code, no_letter.param) == ("parameter_invalid", "statement_descriptor")
    assert "at least one letter" in no_letter.message
    too_long = _field_error(field, "x" * 23, "statement_descriptor")
    assert too_long.param == "statement_descriptor"
    assert "at most 22 characters" in too_long.message


def test_a_statement_descriptor_suffix_may_be_digits_alone() -> None:
    suffix = StatementDescriptor(needs_letter=False)
    assert suffix.parse("12345", "statement_descriptor_suffix") == "12345"
    assert _field_error(suffix, "9" * 23, "statement_descriptor_suffix").code == (
        "parameter_invalid"
    )


@pytest.mark.parametrize(
    "text",
    ["shop<script>", "a\\bcdef", "a*bcdef", "SHOP'S PLACE", 'SAY "HI"', "a>b shop"],
)
@pytest.mark.parametrize("param", ["statement_descriptor", "statement_descriptor_suffix"])
def test_a_statement_descriptor_may_not_contain_the_characters_stripe_refuses(
    text: str, param: str
) -> None:
    field = StatementDescriptor(needs_letter=param == "statement_descriptor")
    error = _field_error(field, text, param)
    assert (error.code, error.param) == ("invalid_characters", param)
    assert text not in error.message


@pytest.mark.parametrize(
    "text", ["a\nbcdef", "shop\tone", "shop\x00", "日本語の店", "МАГАЗИН", "SHOP \u20ac5"]
)
@pytest.mark.parametrize("param", ["statement_descriptor", "statement_descriptor_suffix"])
def test_a_statement_descriptor_may_contain_only_latin_characters(text: str, param: str) -> None:
    field = StatementDescriptor(needs_letter=param == "statement_descriptor")
    error = _field_error(field, text, param)
    assert (error.code, error.param) == ("invalid_characters", param)


def test_a_statement_descriptor_may_have_latin_letters_and_punctuation() -> None:
    field = StatementDescriptor()
    for text in ("CAFÉ MÜLLER", "Straße 12", "A.B.C. & SONS-1", "shop #42 (web)"):
        assert field.parse(text, "statement_descriptor") == text


def test_a_full_statement_descriptor_has_at_least_five_characters_a_suffix_not() -> None:
    error = _field_error(StatementDescriptor(), "SHOP", "statement_descriptor")
    assert (error.code, error.param) == ("parameter_invalid", "statement_descriptor")
    assert "at least 5 characters" in error.message
    assert StatementDescriptor().parse("SHOPS", "statement_descriptor") == "SHOPS"
    suffix = StatementDescriptor(needs_letter=False)
    assert suffix.parse("A1", "statement_descriptor_suffix") == "A1"


@pytest.mark.parametrize(
    "text",
    ["SHOP", "2024-11-22", "shop<script>", "МАГАЗИН", "x" * 23, "REMIT STORE", "12345"],
)
@pytest.mark.parametrize("needs_letter", [True, False])
def test_the_rest_facade_refuses_exactly_what_the_rules_refuse_in_the_same_words(
    text: str, needs_letter: bool
) -> None:
    problem = statement_descriptor_problem(text, "statement_descriptor", needs_letter=needs_letter)
    field = StatementDescriptor(needs_letter=needs_letter)
    if problem is None:
        assert field.parse(text, "statement_descriptor") == text
        return
    with pytest.raises(ParamError) as refused:
        field.parse(text, "statement_descriptor")
    assert (refused.value.message, refused.value.code, refused.value.param) == (
        problem.message,
        problem.code,
        "statement_descriptor",
    )


def test_a_payout_descriptor_is_held_to_the_character_rules_and_needs_no_letter() -> None:
    form = {"amount": "100", "currency": "usd"}
    parsed = PAYOUT_CREATE.parse({**form, "statement_descriptor": "2024-06-30"})
    assert parsed["statement_descriptor"] == "2024-06-30"
    with pytest.raises(ParamError) as refused:
        PAYOUT_CREATE.parse({**form, "statement_descriptor": "JUNE <PAYOUT>"})
    assert (refused.value.code, refused.value.param) == (
        "invalid_characters",
        "statement_descriptor",
    )


# --- Metadata -------------------------------------------------------------------------------


def test_metadata_parses_to_a_string_map_keeping_empty_values_as_per_key_unsets() -> None:
    parsed = Metadata().parse({"order": "42", "stale": ""}, "metadata")
    assert parsed == {"order": "42", "stale": ""}


def test_clearing_all_metadata_parses_to_unset() -> None:
    assert Metadata().parse("", "metadata") is UNSET


def test_numeric_metadata_keys_survive_the_sdk_encoding() -> None:
    for metadata in ({"0": "a", "1": "b"}, {"2024": "budget"}, {"0": "a", "name": "b"}):
        form = decode_form(sdk_form_body({"metadata": metadata}))
        assert Metadata().parse(form["metadata"], "metadata") == metadata


def test_an_empty_metadata_key_is_refused_not_stored_under_an_index() -> None:
    # stripe-python encodes {"": "v"} as `metadata[]=v`, which the decoder reads as a list; a
    # map must not turn that into the key "0".
    # (Beside named keys, the decoder already refuses it as a mixed array.)
    form = decode_form(sdk_form_body({"metadata": {"": "v"}}))
    error = _field_error(Metadata(), form["metadata"], "metadata")
    assert (error.code, error.param) == ("parameter_invalid", "metadata")
    assert "keys must not be empty" in error.message
    assert _field_error(Metadata(), {"": "v"}, "metadata").param == "metadata"


def test_metadata_accepts_fifty_keys_but_not_fifty_one() -> None:
    fifty: dict[str, FormValue] = {f"k{index}": "v" for index in range(50)}
    assert Metadata().parse(fifty, "metadata") == fifty
    error = _field_error(Metadata(), {**fifty, "one_more": "v"}, "metadata")
    assert (error.code, error.param) == ("parameter_invalid", "metadata")
    assert "up to 50 keys" in error.message


def test_metadata_keys_may_have_forty_characters_but_not_forty_one() -> None:
    assert Metadata().parse({"k" * 40: "v"}, "metadata") == {"k" * 40: "v"}
    error = _field_error(Metadata(), {"k" * 41: "v"}, "metadata")
    assert error.param == "metadata"
    assert error.message == "Invalid key: kkkkkkkkkkkk... must be a string of at most 40 characters"


def test_metadata_values_may_have_five_hundred_characters_but_not_more() -> None:
    assert Metadata().parse({"k": "v" * 500}, "metadata") == {"k": "v" * 500}
    error = _field_error(Metadata(), {"k": "v" * 501}, "metadata")
    assert (error.code, error.param) == ("parameter_invalid", "metadata[k]")
    assert error.message.startswith("Invalid val: ")
    assert "at most 500 characters" in error.message


def test_nested_metadata_values_are_rejected_naming_the_key() -> None:
    error = _field_error(Metadata(), {"k": {"deep": "v"}}, "metadata")
    assert error.param == "metadata[k]"
    assert error.message == "Invalid val: metadata[k] must be a string, not an object"


def test_metadata_given_as_a_single_value_is_an_invalid_hash() -> None:
    error = _field_error(Metadata(), "order=42", "metadata")
    assert (error.code, error.param) == ("parameter_invalid", "metadata")
    assert error.message.startswith("Invalid hash")


# --- Arrays and expand ----------------------------------------------------------------------


def test_string_lists_parse_in_order() -> None:
    assert StringList().parse(["card", "link"], "payment_method_types") == ["card", "link"]


def test_a_single_value_where_an_array_belongs_is_stripes_invalid_array() -> None:
    error = _field_error(StringList(), "card", "payment_method_types")
    assert (error.code, error.param) == ("parameter_invalid", "payment_method_types")
    assert error.message.startswith("Invalid array")


def test_sparse_indexes_are_rejected_by_array_fields() -> None:
    form = decode_form("payment_method_types[0]=card&payment_method_types[2]=link")
    error = _error(PAYMENT_INTENT_CREATE, {**form, "amount": "5", "currency": "usd"})
    assert error.param == "payment_method_types"
    assert error.message == (
        "Invalid array: payment_method_types must be indexed from 0 without gaps, "
        "but has indexes 0, 2."
    )


def test_named_keys_where_an_array_belongs_are_an_invalid_array() -> None:
    error = _field_error(StringList(), {"first": "card"}, "payment_method_types")
    assert error.message.startswith("Invalid array: payment_method_types must be an array")


def test_empty_array_items_are_rejected_naming_the_index() -> None:
    error = _field_error(StringList(), ["card", ""], "payment_method_types")
    assert (error.code, error.param) == (
        "parameter_invalid_string_empty",
        "payment_method_types[1]",
    )


def test_arrays_can_limit_their_length() -> None:
    assert StringList(max_items=2).parse(["a", "b"], "p") == ["a", "b"]
    assert "at most 2 items" in _field_error(StringList(max_items=2), ["a", "b", "c"]).message


def test_typed_array_items_are_parsed_and_named_by_index() -> None:
    amounts = Array(Integer(min=0))
    assert amounts.parse(["1", "2"], "amounts") == [1, 2]
    assert _field_error(amounts, ["1", "x"], "amounts").param == "amounts[1]"


def test_expand_paths_are_deduplicated_in_order() -> None:
    parsed = ExpandList().parse(["customer", "data.customer", "customer"], "expand")
    assert parsed == ["customer", "data.customer"]


def test_expand_allows_four_levels_but_not_five() -> None:
    assert ExpandList().parse(["a.b.c.d"], "expand") == ["a.b.c.d"]
    error = _field_error(ExpandList(), ["ok", "a.b.c.d.e"], "expand")
    assert error.param == "expand[1]"
    assert error.message == (
        "You cannot expand more than 4 levels of a property. Property: a.b.c.d.e"
    )


def test_expand_allows_twenty_paths_but_not_twenty_one() -> None:
    twenty: list[FormValue] = [f"field_{index}" for index in range(20)]
    assert ExpandList().parse(twenty, "expand") == twenty
    error = _field_error(ExpandList(), [*twenty, "one_more"], "expand")
    assert error.param == "expand"
    assert "at most 20" in error.message


@pytest.mark.parametrize("path", ["a..b", ".a", "a.", "a b", "a[0]", "data.*"])
def test_malformed_expand_paths_are_rejected(path: str) -> None:
    error = _field_error(ExpandList(), [path], "expand")
    assert (error.code, error.param) == ("parameter_invalid", "expand[0]")
    assert error.message.startswith(f"Invalid expand path: {path}.")


def test_expand_given_without_brackets_is_stripes_invalid_array() -> None:
    error = _error(list_schema(), decode_form("expand=customer"))
    assert (error.param, error.message) == (
        "expand",
        "Invalid array: expand must be an array, such as expand[0]=value.",
    )


# --- Objects --------------------------------------------------------------------------------


def test_an_object_given_as_a_single_value_is_an_invalid_hash() -> None:
    form = decode_form("amount=5&currency=usd&shipping=Zoe")
    error = _error(PAYMENT_INTENT_CREATE, form)
    assert (error.code, error.param) == ("parameter_invalid", "shipping")
    assert error.message == "Invalid hash: shipping must be an object, such as shipping[key]=value."


def test_an_object_given_indexed_keys_reports_them_as_unknown() -> None:
    error = _error(Schema({"shipping": Object({"name": String()})}), {"shipping": ["a"]})
    assert (error.code, error.param) == ("parameter_unknown", "shipping[0]")


def test_nested_value_errors_carry_the_full_bracketed_name() -> None:
    form = decode_form(
        "amount=5&currency=usd&shipping[name]=Z&shipping[address][line1]=x"
        "&shipping[address][country]=FRA"
    )
    error = _error(PAYMENT_INTENT_CREATE, form)
    assert error.param == "shipping[address][country]"
    assert error.message.endswith("must be at most 2 characters")


# --- Lists, cursors, created, search --------------------------------------------------------


def test_list_params_are_the_pagination_building_blocks() -> None:
    assert set(LIST_PARAMS) == {"limit", "starting_after", "ending_before", "expand"}


def test_a_list_request_defaults_to_ten_results() -> None:
    page = PageRequest.from_params(list_schema().parse({}))
    assert page == PageRequest(limit=DEFAULT_LIST_LIMIT)
    assert page.limit == 10


def test_the_sdks_list_query_parses_into_a_page_request() -> None:
    query = sdk_query_string(
        {"limit": 3, "starting_after": "pi_9", "created": {"gte": 100, "lt": 200}}
    )
    page = PageRequest.from_params(list_schema().parse(decode_form(query)))
    assert page == PageRequest(
        limit=3, starting_after="pi_9", ending_before=None, created=IntRange(gte=100, lt=200)
    )


@pytest.mark.parametrize(
    ("limit", "message"),
    [("0", "greater than or equal to 1"), ("101", "less than or equal to 100")],
)
def test_list_limits_outside_one_to_a_hundred_are_rejected(limit: str, message: str) -> None:
    error = _error(list_schema(), {"limit": limit})
    assert (error.code, error.param) == ("parameter_invalid_integer", "limit")
    assert message in error.message


def test_created_as_an_integer_means_exactly_that_second() -> None:
    created = list_schema().parse({"created": "1700000000"})["created"]
    assert created == IntRange(gte=1700000000, lte=1700000000)
    assert isinstance(created, IntRange)
    assert created.contains(1700000000)
    assert not created.contains(1700000001)


def test_created_bounds_parse_and_filter_exclusively_or_inclusively() -> None:
    created = RangeFilter().parse({"gt": "10", "lte": "20"}, "created")
    assert created == IntRange(gt=10, lte=20)
    assert isinstance(created, IntRange)
    assert [value for value in (10, 11, 20, 21) if created.contains(value)] == [11, 20]


def test_unknown_created_bounds_are_unknown_parameters() -> None:
    error = _error(list_schema(), decode_form("created[after]=5"))
    assert (error.code, error.param) == ("parameter_unknown", "created[after]")


def test_a_non_integer_created_bound_names_the_bound() -> None:
    error = _error(list_schema(), decode_form("created[gte]=yesterday"))
    assert (error.code, error.param) == ("parameter_invalid_integer", "created[gte]")
    assert error.message == "Invalid integer: yesterday"


def test_list_schemas_compose_filters_and_can_leave_out_created() -> None:
    schema = list_schema({"customer": String()}, created=False)
    assert schema.parse({"customer": "cus_1", "limit": "5"}) == {"customer": "cus_1", "limit": 5}
    assert _error(schema, {"created": "5"}).code == "parameter_unknown"


def test_search_requires_a_query() -> None:
    schema = search_schema()
    assert schema.parse({"query": "status:'succeeded'", "page": "p2"}) == {
        "query": "status:'succeeded'",
        "page": "p2",
    }
    assert _error(schema, {"limit": "5"}).message == "Missing required param: query."


@pytest.mark.parametrize(
    ("given", "parsed"),
    [("true", True), ("false", False), ("one_off", "one_off"), ("recurring", "recurring")],
)
def test_a_boolean_or_enum_takes_a_flag_or_one_of_its_values(given: str, parsed: object) -> None:
    assert BooleanOrEnum("one_off", "recurring").parse_value(given, "off_session") == parsed


def test_a_boolean_or_enum_refuses_anything_else_naming_what_it_takes() -> None:
    with pytest.raises(ParamError) as refused:
        BooleanOrEnum("one_off", "recurring").parse_value("sometimes", "off_session")
    assert (refused.value.code, refused.value.param) == ("parameter_invalid", "off_session")
    assert "true, false or one of" in refused.value.message


def test_a_field_may_name_the_code_of_a_value_past_its_maximum() -> None:
    amount = Integer(min=1, max=99_999_999, over_max_code="amount_too_large")
    assert amount.parse_value("99999999", "amount") == 99_999_999
    with pytest.raises(ParamError) as over:
        amount.parse_value("100000000", "amount")
    assert (over.value.code, over.value.param) == ("amount_too_large", "amount")
    with pytest.raises(ParamError) as malformed:
        amount.parse_value("1e9", "amount")
    assert malformed.value.code == "parameter_invalid_integer"
