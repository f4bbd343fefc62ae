"""2015-01-26: an update event's `previous_attributes` show a hash that changed by its keys that
changed (`null` for one added); before, the whole hash as it was."""

from remit.core.jsonview import JsonObject, JsonValue, to_json
from remit.versioning import render_event
from tests.support import resources
from tests.support.versions import version_before
from versions.v2015_01_26 import RenderOnlyChangedKeysOfHashes

AT = "2015-01-26"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


def _customer_updated(customer: JsonObject, previous: JsonObject) -> JsonObject:
    return to_json(
        resources.event(customer, previous_attributes=previous, event_type="customer.updated")
    )


def _previous(event: JsonObject, version: str) -> JsonValue:
    data = render_event(event, version, RELATED)["data"]
    assert isinstance(data, dict)
    return data["previous_attributes"]


def test_a_key_added_to_metadata_is_null_and_before_2015_01_26_the_old_map_is_whole() -> None:
    customer = to_json(resources.customer())
    customer["metadata"] = {"a": "1", "b": "2"}
    event = _customer_updated(customer, {"metadata": {"b": None}})
    assert RenderOnlyChangedKeysOfHashes.version == AT
    assert _previous(event, AT) == {"metadata": {"b": None}}
    assert _previous(event, BEFORE) == {"metadata": {"a": "1"}}


def test_keys_changed_and_removed_show_their_old_values_beside_the_keys_kept() -> None:
    customer = to_json(resources.customer())
    customer["metadata"] = {"a": "2", "kept": "k"}
    customer["email"] = "new@b.test"
    event = _customer_updated(
        customer, {"metadata": {"a": "1", "gone": "3"}, "email": "old@b.test"}
    )
    assert _previous(event, AT) == {"metadata": {"a": "1", "gone": "3"}, "email": "old@b.test"}
    assert _previous(event, BEFORE) == {
        "metadata": {"a": "1", "kept": "k", "gone": "3"},
        "email": "old@b.test",
    }


def test_a_hash_inside_a_hash_shows_its_changed_keys_and_before_the_outer_hash_whole() -> None:
    customer = to_json(resources.customer())
    address: JsonObject = {
        "city": "London", "country": "GB", "line1": "1 High St", "line2": "Flat 2",
        "postal_code": "N1 1AA", "state": None,
    }  # fmt: skip
    customer["shipping"] = {"address": address, "name": "Ada", "phone": None}
    event = _customer_updated(customer, {"shipping": {"address": {"line2": None}}})
    assert _previous(event, AT) == {"shipping": {"address": {"line2": None}}}
    assert _previous(event, BEFORE) == {
        "shipping": {"address": {**address, "line2": None}, "name": "Ada", "phone": None}
    }


def test_a_hash_that_was_null_or_became_null_is_shown_as_it_was_at_both_versions() -> None:
    customer = to_json(resources.customer())
    customer["shipping"] = {"address": None, "name": "Ada", "phone": None}
    appeared = _customer_updated(customer, {"shipping": None})
    assert _previous(appeared, BEFORE) == _previous(appeared, AT) == {"shipping": None}

    customer["shipping"] = None
    was: JsonObject = {"address": None, "name": "Ada", "phone": None}
    cleared = _customer_updated(customer, {"shipping": was})
    assert _previous(cleared, BEFORE) == _previous(cleared, AT) == {"shipping": was}


def test_arrays_in_a_whole_hash_before_2015_01_26_show_only_their_changed_elements() -> None:
    """2017-05-25's rule holds at both sides of 2015-01-26: a changed array shows only the
    elements that changed. Before 2015-01-26 the hash around it shows whole, its other values,
    arrays that did not change included, as they were."""
    customer = to_json(resources.customer())
    settings: JsonObject = {
        "custom_fields": None, "default_payment_method": None, "footer": None,
        "rendering_options": None,
    }  # fmt: skip
    kept: JsonObject = {"name": "PO", "value": "42"}
    dropped: JsonObject = {"name": "VAT", "value": "GB1"}
    customer["invoice_settings"] = {**settings, "custom_fields": [kept], "footer": "Thanks"}
    event = _customer_updated(customer, {"invoice_settings": {"custom_fields": [kept, dropped]}})
    assert _previous(event, "2017-05-25") == {
        "invoice_settings": {"custom_fields": [kept, dropped]}
    }
    assert _previous(event, AT) == {"invoice_settings": {"custom_fields": [dropped]}}
    assert _previous(event, BEFORE) == {
        "invoice_settings": {**settings, "custom_fields": [dropped], "footer": "Thanks"}
    }

    refooted = _customer_updated(customer, {"invoice_settings": {"footer": None}})
    assert _previous(refooted, AT) == {"invoice_settings": {"footer": None}}
    assert _previous(refooted, BEFORE) == {
        "invoice_settings": {**settings, "custom_fields": [kept], "footer": None}
    }


def test_an_object_that_replaced_another_shows_whole_at_both_versions() -> None:
    """The payment method of a new payment error is another object, not the old one updated:
    the old one shows whole, its arrays too, where the error around it shows by its keys."""
    intent = to_json(resources.payment_intent())

    def method(method_id: str, brands: list[JsonValue]) -> JsonObject:
        return {"object": "payment_method", "id": method_id, "type": "card",
                "card": {"brand": "visa", "networks": {"available": brands}}}  # fmt: skip

    error: JsonObject = {
        "code": "card_declined", "decline_code": "insufficient_funds",
        "payment_method": method("pm_2", ["visa"]), "type": "card_error",
    }  # fmt: skip
    intent["last_payment_error"] = error
    earlier = method("pm_1", ["visa"])
    event = to_json(
        resources.event(
            intent,
            previous_attributes={
                "last_payment_error": {"decline_code": "generic_decline", "payment_method": earlier}
            },
            event_type="payment_intent.payment_failed",
        )
    )
    changed = {"decline_code": "generic_decline", "payment_method": earlier}
    for version in ("2017-05-25", "2017-04-06", AT):
        assert _previous(event, version) == {"last_payment_error": changed}
    assert _previous(event, BEFORE) == {"last_payment_error": {**error, **changed}}
