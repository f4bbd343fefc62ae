"""2017-05-25: an update event's `previous_attributes` show an array that changed whole; before,
only the elements of it that changed."""

from remit.core.jsonview import JsonObject, JsonValue, to_json
from remit.versioning import render_event
from tests.support import resources
from tests.support.versions import version_before
from versions.v2017_05_25 import RenderChangedArraysWhole

AT = "2017-05-25"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


def _intent_updated(now: list[str], was: list[str]) -> JsonObject:
    intent = to_json(resources.payment_intent())
    intent["payment_method_types"] = list(now)
    previous: JsonObject = {"payment_method_types": list(was)}
    return to_json(
        resources.event(intent, previous_attributes=previous, event_type="payment_intent.updated")
    )


def _previous(event: JsonObject, version: str) -> JsonValue:
    data = render_event(event, version, RELATED)["data"]
    assert isinstance(data, dict)
    return data["previous_attributes"]


def test_an_array_that_lost_an_element_shows_only_that_element_before_2017_05_25() -> None:
    event = _intent_updated(now=["card"], was=["card", "link"])
    assert RenderChangedArraysWhole.version == AT
    # `payment_method_types` is `allowed_source_types` at both versions (until 2019-02-11).
    assert _previous(event, AT) == {"allowed_source_types": ["card", "link"]}
    assert _previous(event, BEFORE) == {"allowed_source_types": ["link"]}


def test_an_element_replaced_in_place_is_shown_and_an_array_that_only_grew_shows_none() -> None:
    replaced = _intent_updated(now=["card", "link"], was=["card", "us_bank_account"])
    assert _previous(replaced, AT) == {"allowed_source_types": ["card", "us_bank_account"]}
    assert _previous(replaced, BEFORE) == {"allowed_source_types": ["us_bank_account"]}

    grown = _intent_updated(now=["card", "link"], was=["card"])
    assert _previous(grown, AT) == {"allowed_source_types": ["card"]}
    assert _previous(grown, BEFORE) == {"allowed_source_types": []}


def test_arrays_inside_a_hash_are_trimmed_and_the_other_changes_kept() -> None:
    """The hash shows its keys that changed at both versions (since 2015-01-26); its array
    shows only the elements that changed before 2017-05-25."""
    customer = to_json(resources.customer())
    kept: JsonObject = {"name": "PO", "value": "42"}
    dropped: JsonObject = {"name": "VAT", "value": "GB1"}
    customer["invoice_settings"] = {"custom_fields": [kept], "footer": "Thanks"}
    customer["metadata"] = {"tier": "gold"}
    previous: JsonObject = {
        "invoice_settings": {"custom_fields": [kept, dropped]},
        "metadata": {"tier": "silver", "since": "2016"},
        "email": "old@b.test",
    }
    event = to_json(
        resources.event(customer, previous_attributes=previous, event_type="customer.updated")
    )
    assert _previous(event, AT) == previous
    assert _previous(event, BEFORE) == {
        "invoice_settings": {"custom_fields": [dropped]},
        "metadata": {"tier": "silver", "since": "2016"},
        "email": "old@b.test",
    }


def test_an_array_that_became_null_is_shown_whole_at_both_versions() -> None:
    customer = to_json(resources.customer())
    customer["invoice_settings"] = {"custom_fields": None}
    fields: list[JsonValue] = [{"name": "PO", "value": "42"}]
    previous: JsonObject = {"invoice_settings": {"custom_fields": fields}}
    event = to_json(
        resources.event(customer, previous_attributes=previous, event_type="customer.updated")
    )
    assert _previous(event, BEFORE) == _previous(event, AT) == previous
