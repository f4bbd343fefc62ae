import json
import re
from collections.abc import Mapping
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stripe._api_requestor import _APIRequestor
from stripe._requestor_options import RequestorOptions

from remit.rest.forms import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_KEYS,
    FormDecodeError,
    FormValue,
    decode_form,
    decode_json_body,
)

_SDK = _APIRequestor(options=RequestorOptions(api_key="sk_test_forms"))


def _sdk_request(method: str, params: Mapping[str, object]) -> tuple[str, str | None]:
    """The URL and body stripe-python 16.1.0 would send, built by its own requestor (no I/O)."""
    args = _SDK._args_for_request_with_retries(
        method, "/v1/things", params, {}, base_address="api", api_mode="V1"
    )
    url, body = args[1], args[3]
    assert isinstance(url, str)
    assert body is None or isinstance(body, str)
    return url, body


def sdk_form_body(params: Mapping[str, object]) -> str:
    """The exact form body stripe-python sends for a POST with these params."""
    _url, body = _sdk_request("post", params)
    assert body is not None
    return body


def sdk_query_string(params: Mapping[str, object]) -> str:
    """The exact query string stripe-python sends for a GET with these params."""
    url, _body = _sdk_request("get", params)
    return url.partition("?")[2]


# --- Shapes ---------------------------------------------------------------------------------


def test_flat_parameters_decode_to_strings() -> None:
    assert decode_form(b"amount=1000&currency=usd") == {"amount": "1000", "currency": "usd"}


def test_plus_is_a_space_and_percent_escapes_are_decoded_in_keys_and_values() -> None:
    decoded = decode_form(b"description=Tea+%26+cake&metadata[order+id]=a%3Db")
    assert decoded == {"description": "Tea & cake", "metadata": {"order id": "a=b"}}


def test_bracketed_keys_build_nested_objects_to_any_allowed_depth() -> None:
    decoded = decode_form(b"metadata[k]=v&a[b][c]=deep&a[b][d]=other&a[e]=shallow")
    assert decoded == {
        "metadata": {"k": "v"},
        "a": {"b": {"c": "deep", "d": "other"}, "e": "shallow"},
    }


def test_indexed_and_bracket_arrays_decode_to_the_same_list() -> None:
    bracketed = decode_form(b"expand[]=customer&expand[]=latest_charge")
    indexed = decode_form(b"expand[0]=customer&expand[1]=latest_charge")
    assert bracketed == indexed == {"expand": ["customer", "latest_charge"]}


def test_percent_encoded_brackets_mean_the_same_as_literal_ones() -> None:
    encoded = decode_form(b"metadata%5Bk%5D=v&expand%5B%5D=a&items%5b0%5d%5bprice%5d=p")
    literal = decode_form(b"metadata[k]=v&expand[]=a&items[0][price]=p")
    assert (
        encoded
        == literal
        == {
            "metadata": {"k": "v"},
            "expand": ["a"],
            "items": [{"price": "p"}],
        }
    )


def test_arrays_of_objects_use_indexes() -> None:
    decoded = decode_form(b"items[0][price]=p1&items[0][quantity]=2&items[1][price]=p2")
    assert decoded == {"items": [{"price": "p1", "quantity": "2"}, {"price": "p2"}]}


def test_arrays_can_nest_inside_arrays() -> None:
    decoded = decode_form(b"grid[0][0]=a&grid[0][1]=b&grid[1][0]=c")
    assert decoded == {"grid": [["a", "b"], ["c"]]}


def test_indexes_are_ordered_numerically_not_by_arrival() -> None:
    pairs = "&".join(f"x[{index}]=v{index}" for index in reversed(range(12)))
    assert decode_form(pairs) == {"x": [f"v{index}" for index in range(12)]}


def test_an_empty_value_is_kept_as_an_empty_string_meaning_unset() -> None:
    assert decode_form(b"description=&metadata[k]=") == {"description": "", "metadata": {"k": ""}}


def test_a_key_without_an_equals_sign_has_an_empty_value() -> None:
    assert decode_form(b"flag&amount=5") == {"flag": "", "amount": "5"}


def test_only_the_first_equals_sign_separates_key_from_value() -> None:
    assert decode_form(b"note=a=b=c") == {"note": "a=b=c"}


def test_empty_pairs_from_stray_ampersands_are_ignored() -> None:
    assert decode_form(b"&a=1&&b=2&") == {"a": "1", "b": "2"}


def test_an_empty_input_decodes_to_no_parameters() -> None:
    assert decode_form(b"") == {}
    assert decode_form("") == {}


def test_text_and_bytes_inputs_decode_identically() -> None:
    raw = "name=Ren%C3%A9e&city=Z%C3%BCrich&metadata[caf\u00e9]=\u00e9t\u00e9"
    assert decode_form(raw) == decode_form(raw.encode("utf-8"))
    assert decode_form(raw) == {
        "name": "Ren\u00e9e",
        "city": "Z\u00fcrich",
        "metadata": {"caf\u00e9": "\u00e9t\u00e9"},
    }


def test_sparse_numeric_keys_stay_an_object_for_the_schema_to_judge() -> None:
    # metadata[2024]=x is a legitimate map; an array field rejects this shape in params.
    assert decode_form(b"metadata[2024]=budget") == {"metadata": {"2024": "budget"}}
    assert decode_form(b"x[0]=a&x[2]=b") == {"x": {"0": "a", "2": "b"}}


def test_numeric_keys_mixed_with_names_stay_an_object() -> None:
    assert decode_form(b"m[0]=a&m[name]=b") == {"m": {"0": "a", "name": "b"}}


def test_non_canonical_numbers_are_names_not_indexes() -> None:
    assert decode_form(b"m[00]=a&m[01]=b") == {"m": {"00": "a", "01": "b"}}


def test_top_level_numeric_names_never_become_a_list() -> None:
    assert decode_form(b"0=a&1=b") == {"0": "a", "1": "b"}


def test_values_may_contain_literal_brackets() -> None:
    assert decode_form(b"description=[draft]") == {"description": "[draft]"}


def test_nesting_up_to_the_depth_limit_is_accepted() -> None:
    key = "a" + "".join(f"[{level}]" for level in "bcdef")
    assert decode_form(f"{key}=v") == {"a": {"b": {"c": {"d": {"e": {"f": "v"}}}}}}


def test_exactly_the_key_limit_is_accepted() -> None:
    body = "&".join(f"k{index}=v" for index in range(MAX_KEYS))
    assert len(decode_form(body)) == MAX_KEYS


# --- Malformed input ------------------------------------------------------------------------


def _decode_error(raw: bytes | str) -> FormDecodeError:
    with pytest.raises(FormDecodeError) as caught:
        decode_form(raw)
    return caught.value


def test_a_scalar_given_twice_is_an_error_naming_it() -> None:
    error = _decode_error(b"amount=1&amount=2")
    assert error.param == "amount"
    assert "more than once" in error.message


def test_an_indexed_item_given_twice_is_an_error_naming_it() -> None:
    error = _decode_error(b"expand[0]=a&expand[0]=b")
    assert error.param == "expand[0]"
    assert "more than once" in error.message


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"shipping=x&shipping[name]=y", "shipping"),
        (b"shipping[name]=y&shipping=x", "shipping"),
        (b"a[b]=1&a[b][c]=2", "a[b]"),
        (b"expand[]=a&expand=b", "expand"),
    ],
)
def test_a_key_used_both_as_a_value_and_as_a_container_is_an_error(raw: bytes, param: str) -> None:
    error = _decode_error(raw)
    assert error.param == param
    assert "both as a single value and as an object or array" in error.message


@pytest.mark.parametrize(
    "raw",
    [b"x[]=a&x[0]=b", b"x[0]=a&x[]=b", b"x[]=a&x[name]=b", b"x[name]=a&x[]=b"],
)
def test_mixing_bracket_appends_with_indexed_or_named_keys_is_an_error(raw: bytes) -> None:
    error = _decode_error(raw)
    assert error.param == "x"
    assert error.message.startswith("Invalid array")


@pytest.mark.parametrize(
    "key", ["a[b", "a]b", "a[b]c", "a[b[c]]", "[a]", "a[b]]", "a[[b]]", "]", "a[b]["]
)
def test_unbalanced_or_misplaced_brackets_are_an_error_naming_the_key(key: str) -> None:
    error = _decode_error(f"{key}=v")
    assert error.param == key
    assert "brackets" in error.message


def test_percent_encoded_unbalanced_brackets_are_caught_too() -> None:
    assert _decode_error(b"a%5Bb=v").param == "a[b"


def test_bracket_append_may_only_end_a_key() -> None:
    error = _decode_error(b"items[][price]=p")
    assert error.param == "items[][price]"
    assert "items[0][price]" in error.message


def test_an_empty_parameter_name_is_an_error() -> None:
    assert "empty name" in _decode_error(b"=value").message


def test_nesting_beyond_the_depth_limit_is_an_error() -> None:
    key = "a" + "[x]" * (MAX_DEPTH + 1)
    error = _decode_error(f"{key}=v")
    assert error.param == key
    assert f"more than {MAX_DEPTH} levels" in error.message


def test_more_parameters_than_the_key_limit_is_an_error() -> None:
    body = "&".join(f"k{index}=v" for index in range(MAX_KEYS + 1))
    assert f"at most {MAX_KEYS}" in _decode_error(body).message


def test_a_body_over_one_mebibyte_is_an_error() -> None:
    assert "larger than" in _decode_error(b"a=" + b"x" * MAX_BODY_BYTES).message


@pytest.mark.parametrize("raw", [b"a=%G1", b"a=%4", b"a=%", b"a%zz=1", b"a=100%"])
def test_invalid_percent_encoding_is_an_error(raw: bytes) -> None:
    assert "percent-encoding" in _decode_error(raw).message


def test_invalid_utf8_in_a_value_is_an_error_naming_the_key() -> None:
    error = _decode_error(b"name=%FF%FE")
    assert error.param == "name"
    assert "UTF-8" in error.message


def test_invalid_utf8_in_a_key_or_raw_bytes_is_an_error() -> None:
    assert _decode_error(b"%C3=1").param is None
    assert "UTF-8" in _decode_error(b"name=\xff").message


def test_text_with_lone_surrogates_is_an_error() -> None:
    assert "UTF-8" in _decode_error("name=\udc80").message


def test_an_overlong_key_is_abbreviated_in_the_error() -> None:
    key = "a[" + "k" * 5000
    error = _decode_error(f"{key}=v")
    assert error.param is not None
    assert len(error.param) < 200
    assert len(error.message) < 300


# --- What stripe-python actually sends ------------------------------------------------------


def test_the_sdk_body_for_a_payment_intent_round_trips() -> None:
    params: dict[str, object] = {
        "amount": 2000,
        "currency": "usd",
        "confirm": True,
        "capture_method": "manual",
        "payment_method_types": ["card", "link"],
        "metadata": {"order id": "A&B=C", "note": "50% [off]"},
        "shipping": {"name": "Zo\u00eb", "address": {"line1": "1 Rue de la Paix", "city": "Paris"}},
        "expand": ["latest_charge", "customer"],
        "description": "",
        "statement_descriptor": None,
    }
    body = sdk_form_body(params)
    assert "payment_method_types[0]=card" in body
    assert "%5B" not in body
    decoded = decode_form(body)
    assert decoded == {
        "amount": "2000",
        "currency": "usd",
        "confirm": "true",
        "capture_method": "manual",
        "payment_method_types": ["card", "link"],
        "metadata": {"order id": "A&B=C", "note": "50% [off]"},
        "shipping": {"name": "Zo\u00eb", "address": {"line1": "1 Rue de la Paix", "city": "Paris"}},
        "expand": ["latest_charge", "customer"],
        "description": "",
    }


def test_the_sdk_query_string_for_a_list_request_round_trips() -> None:
    query = sdk_query_string(
        {"limit": 3, "created": {"gte": 1700000000, "lt": 1800000000}, "expand": ["data.customer"]}
    )
    assert decode_form(query) == {
        "limit": "3",
        "created": {"gte": "1700000000", "lt": "1800000000"},
        "expand": ["data.customer"],
    }


def test_the_sdk_encoding_of_arrays_of_objects_and_nested_arrays_round_trips() -> None:
    params: dict[str, object] = {
        "items": [{"price": "price_1", "quantity": 2}, {"price": "price_2"}],
        "grid": [["a", "b"], ["c"]],
    }
    assert decode_form(sdk_form_body(params)) == {
        "items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}],
        "grid": [["a", "b"], ["c"]],
    }


def test_the_sdk_encoding_of_eleven_items_keeps_their_order() -> None:
    items = [f"item{index}" for index in range(11)]
    assert decode_form(sdk_form_body({"items": items})) == {"items": items}


_CANONICAL_INDEX = re.compile(r"0|[1-9][0-9]*")
# Any text UTF-8 can carry but NUL, which is refused (test_nul_is_refused_in_names_and_values).
_text = st.characters(codec="utf-8", blacklist_characters="\x00")
_keys = st.text(_text, min_size=1, max_size=8).filter(
    lambda key: "[" not in key and "]" not in key and not _CANONICAL_INDEX.fullmatch(key)
)
_leaves = st.text(_text, max_size=12)


def _values(depth: int) -> st.SearchStrategy[FormValue]:
    """Values the SDK can encode without loss: non-empty containers, at most MAX_DEPTH deep."""
    if depth == MAX_DEPTH:
        return _leaves
    inner = st.deferred(lambda: _values(depth + 1))
    return st.one_of(
        _leaves,
        st.lists(inner, min_size=1, max_size=3),
        st.dictionaries(_keys, inner, min_size=1, max_size=3),
    )


@settings(max_examples=300, deadline=None)
@given(params=st.dictionaries(_keys, _values(0), max_size=4))
def test_anything_the_sdk_encodes_decodes_back_to_itself(params: dict[str, FormValue]) -> None:
    assert decode_form(sdk_form_body(params)) == params
    assert decode_form(sdk_query_string(params)) == params


@settings(max_examples=100, deadline=None)
@given(params=st.dictionaries(_keys, _values(0), max_size=4))
def test_fully_percent_encoded_bodies_decode_like_the_sdk_ones(
    params: dict[str, FormValue],
) -> None:
    strict = sdk_form_body(params).replace("[", quote("[")).replace("]", quote("]"))
    assert decode_form(strict) == params


# --- JSON bodies ----------------------------------------------------------------------------


def test_json_numbers_and_booleans_become_their_form_strings() -> None:
    body = b'{"amount": 12, "confirm": true, "off_session": false, "rate": 1.5, "big": 1e3}'
    assert decode_json_body(body) == {
        "amount": "12",
        "confirm": "true",
        "off_session": "false",
        "rate": "1.5",
        "big": "1e3",
    }


def test_json_null_means_unset() -> None:
    assert decode_json_body(b'{"description": null}') == {"description": ""}


def test_json_objects_and_arrays_decode_like_their_form_equivalents() -> None:
    params: dict[str, object] = {
        "metadata": {"k": "v"},
        "expand": ["customer"],
        "items": [{"price": "p", "quantity": 2}],
        "shipping": {"address": {"city": "Paris"}},
    }
    from_json = decode_json_body(json.dumps(params).encode())
    assert from_json == decode_form(sdk_form_body(params))


def test_empty_json_containers_are_kept() -> None:
    assert decode_json_body(b'{"metadata": {}, "expand": []}') == {"metadata": {}, "expand": []}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"[1, 2]", "must be an object"),
        (b'"text"', "must be an object"),
        (b"{", "Invalid JSON body"),
        (b"", "Invalid JSON body"),
        (b'{"a": NaN}', "NaN is not a number"),
        (b'{"a": Infinity}', "Infinity is not a number"),
        (b'{"a": 1, "a": 2}', "more than once"),
        (b'{"a\xff": 1}', "not valid UTF-8"),
    ],
)
def test_malformed_json_bodies_are_rejected(raw: bytes, fragment: str) -> None:
    with pytest.raises(FormDecodeError, match=re.escape(fragment)):
        decode_json_body(raw)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"metadata[k]": "v"}', "metadata[k]"),
        (b'{"metadata": {"a]b": "v"}}', "metadata[a]b]"),
        (b'{"": "v"}', ""),
    ],
)
def test_json_keys_must_be_non_empty_and_bracket_free(raw: bytes, param: str) -> None:
    with pytest.raises(FormDecodeError) as caught:
        decode_json_body(raw)
    assert caught.value.param == param


def test_json_nesting_beyond_the_depth_limit_is_rejected() -> None:
    within = {"a": {"b": {"c": {"d": {"e": {"f": "ok"}}}}}}
    assert decode_json_body(json.dumps(within).encode()) == within
    beyond = {"a": {"b": {"c": {"d": {"e": {"f": {"g": "no"}}}}}}}
    with pytest.raises(FormDecodeError) as caught:
        decode_json_body(json.dumps(beyond).encode())
    assert caught.value.param == "a[b][c][d][e][f]"


def test_pathologically_deep_json_is_rejected_without_crashing() -> None:
    with pytest.raises(FormDecodeError, match="nested"):
        decode_json_body(b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")


def test_json_with_more_values_than_the_key_limit_is_rejected() -> None:
    within = {"expand": ["x"] * MAX_KEYS}
    assert decode_json_body(json.dumps(within).encode()) == within
    with pytest.raises(FormDecodeError, match=f"at most {MAX_KEYS}"):
        decode_json_body(json.dumps({"expand": ["x"] * (MAX_KEYS + 1)}).encode())


def test_a_json_body_over_one_mebibyte_is_rejected() -> None:
    with pytest.raises(FormDecodeError, match="larger than"):
        decode_json_body(b'{"a": "' + b"x" * MAX_BODY_BYTES + b'"}')


def test_nul_is_refused_in_names_and_values() -> None:
    for body, param in (("a=x%00", "a"), ("a%00=x", None), ("m[k]=%00", "m[k]")):
        with pytest.raises(FormDecodeError, match="NUL") as refused:
            decode_form(body)
        assert refused.value.param == param
    with pytest.raises(FormDecodeError, match="NUL"):
        decode_json_body(b'{"m": {"k": "v\\u0000"}}')
    with pytest.raises(FormDecodeError, match="NUL"):
        decode_json_body(b'{"m": {"k\\u0000": "v"}}')


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"description": "a\\udc80"}', "description"),
        (b'{"description": "\\ud800"}', "description"),
        (b'{"card": {"number": "4242424242424242\\ud800"}}', "card[number]"),
        (b'{"card": {"cvc": "12\\udfff"}}', "card[cvc]"),
        (b'{"expand": ["customer", "x\\ud83d"]}', "expand[1]"),
        (b'{"items": [{"price": "\\ude00price_1"}]}', "items[0][price]"),
        # The halves of a pair in the wrong order are two lone surrogates.
        (b'{"description": "\\ude00\\ud83d"}', "description"),
    ],
)
def test_a_lone_surrogate_escaped_in_a_json_value_is_invalid_utf8_naming_it(
    raw: bytes, param: str
) -> None:
    """As bytes that are not UTF-8 are in a form value, and never quoting the value."""
    with pytest.raises(FormDecodeError) as refused:
        decode_json_body(raw)
    assert refused.value.param == param
    assert refused.value.message == f"Invalid UTF-8 in the value of {param}."


@pytest.mark.parametrize(
    "raw",
    [
        b'{"descr\\ud800iption": "x"}',
        b'{"metadata": {"order\\udc80": "6735"}}',
        b'{"card": {"4242424242424242\\ud800": "x"}}',
        b'{"items": [{"price\\ud800": "price_1"}]}',
        # Refused as not UTF-8 before it could be refused, quoted, as given twice.
        b'{"metadata": {"k\\ud800": "v", "k\\ud800": "w"}}',
    ],
)
def test_a_lone_surrogate_escaped_in_a_json_name_is_invalid_utf8(raw: bytes) -> None:
    with pytest.raises(FormDecodeError) as refused:
        decode_json_body(raw)
    assert (refused.value.message, refused.value.param) == ("Invalid UTF-8 in a name.", None)


def test_a_surrogate_pair_escaped_in_json_is_the_character_it_encodes() -> None:
    decoded = decode_json_body(b'{"metadata": {"\\ud83d\\ude00": "\\ud83d\\ude00 ok"}}')
    assert decoded == {"metadata": {"\U0001f600": "\U0001f600 ok"}}
