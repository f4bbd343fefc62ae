"""What an event's `previous_attributes` report of a change (Stripe's shape since 2015-01-26),
and the object before the event rebuilt from them."""

from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.previous_attributes import (
    changed_attributes,
    value_before,
    whole_object_before,
)


def test_a_key_added_to_a_map_is_null() -> None:
    assert changed_attributes({"metadata": {"a": "1"}}, {"metadata": {"a": "1", "b": "2"}}) == {
        "metadata": {"b": None}
    }


def test_a_key_changed_or_removed_shows_its_old_value_and_the_others_nothing() -> None:
    before: JsonObject = {"metadata": {"a": "1", "b": "2", "c": "3"}}
    after: JsonObject = {"metadata": {"a": "2", "b": "2"}}
    assert changed_attributes(before, after) == {"metadata": {"a": "1", "c": "3"}}


def test_hashes_are_compared_at_any_depth() -> None:
    before: JsonObject = {
        "shipping": {"name": "Ada", "address": {"line1": "1 High St", "line2": None}},
        "amount": 100,
    }
    after: JsonObject = {
        "shipping": {"name": "Ada", "address": {"line1": "1 High St", "line2": "Flat 2"}},
        "amount": 100,
    }
    assert changed_attributes(before, after) == {"shipping": {"address": {"line2": None}}}


def test_arrays_scalars_and_hashes_that_appear_or_go_show_their_old_value_whole() -> None:
    before: JsonObject = {
        "payment_method_types": ["card", "link"],
        "status": "processing",
        "shipping": None,
        "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://x"}},
    }
    after: JsonObject = {
        "payment_method_types": ["card"],
        "status": "succeeded",
        "shipping": {"name": "Ada"},
        "next_action": None,
    }
    assert changed_attributes(before, after) == before


def test_an_array_of_hashes_shows_whole_even_if_one_key_of_one_element_changed() -> None:
    before: JsonObject = {"custom_fields": [{"name": "PO", "value": "1"}, {"name": "VAT"}]}
    after: JsonObject = {"custom_fields": [{"name": "PO", "value": "2"}, {"name": "VAT"}]}
    assert changed_attributes(before, after) == before


def test_nothing_changed_reports_nothing_and_a_field_only_after_has_is_null() -> None:
    same: JsonObject = {"metadata": {"a": "1"}, "shipping": {"name": "Ada"}}
    assert changed_attributes(same, dict(same)) == {}
    assert changed_attributes({"a": 1}, {"a": 1, "b": {"c": 2}}) == {"b": None}


def test_another_object_in_place_of_one_shows_whole_and_the_same_one_by_its_keys() -> None:
    def method(method_id: str, last4: str) -> JsonObject:
        return {"object": "payment_method", "id": method_id, "card": {"last4": last4}}

    replaced = changed_attributes(
        {"error": {"code": "a", "payment_method": method("pm_1", "4242")}},
        {"error": {"code": "b", "payment_method": method("pm_2", "4242")}},
    )
    assert replaced == {"error": {"code": "a", "payment_method": method("pm_1", "4242")}}
    updated = changed_attributes(
        {"error": {"payment_method": method("pm_1", "4242")}},
        {"error": {"payment_method": method("pm_1", "0002")}},
    )
    assert updated == {"error": {"payment_method": {"card": {"last4": "4242"}}}}


def test_a_map_whose_keys_look_like_an_object_is_still_compared_by_key() -> None:
    before: JsonObject = {"metadata": {"object": "charge", "id": "order-41", "x": "1"}}
    after: JsonObject = {"metadata": {"object": "charge", "id": "order-42", "x": "1"}}
    assert changed_attributes(before, after) == {"metadata": {"id": "order-41"}}
    assert whole_object_before(after, {"metadata": {"id": "order-41"}}) == before


def test_the_object_before_lays_the_changed_keys_over_the_object_after() -> None:
    after: JsonObject = {
        "metadata": {"a": "2", "b": "2"},
        "shipping": {"name": "Ada", "address": {"line1": "1 High St", "line2": "Flat 2"}},
        "status": "succeeded",
    }
    previous: JsonObject = {
        "metadata": {"a": "1", "b": None, "c": "3"},
        "shipping": {"address": {"line2": None}},
        "status": "processing",
    }
    assert whole_object_before(after, previous) == {
        # A null in a map is a key it did not hold; elsewhere, a field that was null.
        "metadata": {"a": "1", "c": "3"},
        "shipping": {"name": "Ada", "address": {"line1": "1 High St", "line2": None}},
        "status": "processing",
    }
    assert after["metadata"] == {"a": "2", "b": "2"}  # left as it was


def test_the_value_before_of_one_field() -> None:
    assert value_before("metadata", {"b": None}, {"a": "1", "b": "2"}) == {"a": "1"}
    assert value_before("shipping", {"name": None}, {"name": "Ada", "phone": None}) == {
        "name": None,
        "phone": None,
    }
    assert value_before("status", "processing", "succeeded") == "processing"
    assert value_before("shipping", {"name": "Ada"}, None) == {"name": "Ada"}


# Objects as remit renders them: every field of a message present (null when unset), maps
# (`metadata`) holding only the keys they hold, and embedded objects with an id.
Json = st.SearchStrategy[JsonValue]
_SCALARS: Json = st.none() | st.integers(-2, 2) | st.sampled_from(["x", "y"])
_MAPS = cast(
    Json, st.dictionaries(st.sampled_from(["a", "b", "c", "object", "id"]), st.sampled_from("12"))
)
_RESOURCES = cast(
    Json,
    st.fixed_dictionaries(
        {
            "object": st.just("payment_method"),
            "id": st.sampled_from(["pm_1", "pm_2"]),
            "brands": st.lists(st.sampled_from(["visa", "cartes_bancaires"]), max_size=2),
        }
    ),
)


def _messages(depth: int) -> st.SearchStrategy[JsonObject]:
    value: Json = _SCALARS | st.lists(_SCALARS, max_size=3)
    if depth:
        value = value | cast(Json, _messages(depth - 1))
    return st.fixed_dictionaries(
        {"p": value, "q": value, "metadata": _MAPS, "method": st.none() | _RESOURCES}
    )


@settings(max_examples=300, deadline=None)
@given(_messages(2), _messages(2))
def test_the_object_before_is_rebuilt_exactly_from_the_object_after_and_the_change(
    before: JsonObject, after: JsonObject
) -> None:
    changed = changed_attributes(before, after)
    assert whole_object_before(after, changed) == before
    assert all(value_before(k, v, after[k]) == before[k] for k, v in changed.items())
    assert changed_attributes(before, before) == {}
