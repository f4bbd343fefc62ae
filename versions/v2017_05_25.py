"""2017-05-25: events name the request that caused them with its id and idempotency key, and
report an array that changed whole in `previous_attributes`."""

from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.change import RenderContext, VersionChange
from remit.versioning.descriptors import free_form_fields
from remit.versioning.previous_attributes import is_other_object
from remit.versioning.schema_edit import set_property


class NestEventRequestIdAndIdempotencyKey(VersionChange):
    """`Event.request` is an object `{"id", "idempotency_key"}`; before 2017-05-25 it was the
    request id as a string (or null).

    Source: https://docs.stripe.com/changelog/2017-05-25/events-specify-request-id-idempotency-key
    """

    resources = ("event",)
    fields = ("request", "request.id")

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        request = obj.get("request")
        if isinstance(request, dict):
            request_id = request.get("id")
            obj["request"] = request_id if isinstance(request_id, str) else None

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        set_property(schemas, "event", "request", {"anyOf": [{"type": "string"}, {"type": "null"}]})


class RenderChangedArraysWhole(VersionChange):
    """An event's `previous_attributes` show an array that changed whole, as it was before the
    event; before 2017-05-25 they showed only the elements of the array that changed.

    An element counts as changed when the array after the event holds another one at its
    place, or none (it was removed): `payment_method_types` going from `["card", "link"]` to
    `["card"]` is reported as `["card", "link"]`, and before 2017-05-25 as `["link"]`; an array
    that only grew shows no element of its own. Arrays inside a hash that changed (the `data`
    of an embedded list) are reported the same way, whether the hash shows only its keys that
    changed or, before 2015-01-26, whole (its arrays that did not change as they were). An
    object that replaced another (another `id`: the payment method of a new payment error) was
    not updated: it shows whole, its arrays too.

    Source: https://docs.stripe.com/changelog/2017-05-25/events-previous-attributes-render-complete-sub-array
    """

    resources = ("event",)
    fields = ("data.previous_attributes",)

    def downgrade_previous_attributes(self, previous: JsonObject, obj: JsonObject) -> None:
        free_form = free_form_fields()
        for name, value in previous.items():
            if name not in free_form:
                previous[name] = _changed_elements(value, obj.get(name), free_form)


def _changed_elements(before: JsonValue, after: JsonValue, free_form: frozenset[str]) -> JsonValue:
    """`before` with each array in it (itself, or at any depth of its hashes) holding only the
    elements that `after`'s array at the same place does not hold at theirs. An object that
    replaced another has no counterpart in it: its arrays stay whole."""
    if isinstance(before, list):
        kept = after if isinstance(after, list) else []
        return [item for at, item in enumerate(before) if at >= len(kept) or kept[at] != item]
    if isinstance(before, dict):
        replaced = isinstance(after, dict) and is_other_object(before, after)
        counterpart = after if isinstance(after, dict) and not replaced else {}
        return {
            name: value
            if name in free_form
            else _changed_elements(value, counterpart.get(name), free_form)
            for name, value in before.items()
        }
    return before
