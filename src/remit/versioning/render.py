"""The engine: render latest-schema JSON at a version, and upgrade a version's request.

Rendering walks the JSON once. At each object (a dict with an `object` key) it applies, newest
first, only the changes that touch that object's type, then renders the object's values, so
nested and expanded objects, list envelopes and event payloads are all rendered at the same
version. An event's `data.previous_attributes` are what differs between the object before the
event (`object_before`) and after it, reported as `remit.versioning.previous_attributes` says (a
hash that changed by its changed keys), both rendered at the version: a field that a change
derives from the ones that changed (a charge's `amount_refunded` from its capture, before
2025-03-31) is among them, and one that differs only at the latest schema is not. The nested
values the two objects share are rendered once for both. It never
enters a free-form map (`metadata`): what a merchant put there comes back as
it was, even a key named `object`. A version with no change newer than itself returns its input
as it is, less the fields kept off the wire (`remit.versioning.internal`): taken out on a walk
of the body, unless the caller says it holds none.
"""

import copy
from collections.abc import Mapping

from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.change import (
    ErrorResponse,
    Form,
    Need,
    RelatedPage,
    RenderContext,
)
from remit.versioning.descriptors import free_form_fields, internal_fields
from remit.versioning.internal import without_internal_fields
from remit.versioning.previous_attributes import changed_attributes, whole_object_before
from remit.versioning.registry import VersionPlan, plan

Related = Mapping[tuple[Need, str], RelatedPage]
NO_RELATED: Related = {}


def render(
    body: JsonObject,
    version: str,
    related: Related = NO_RELATED,
    *,
    holds_internal_fields: bool = True,
    related_unavailable: bool = False,
) -> JsonObject:
    """`body` (latest schema: a resource, a list envelope, an event) rendered at `version`.

    `holds_internal_fields=False` promises that no field kept off the wire is anywhere in
    `body` (it was built inside `internal_fields_left_out()`); at a version with no change to
    apply, `body` then comes back as it is, unwalked. `related_unavailable`: gathering the
    related data failed, so what `related` lacks is left out (lists not shown, ids not
    expanded) instead of refused."""
    version_plan = plan(version)
    if not version_plan.renders_responses:
        return without_internal_fields(body) if holds_internal_fields else body
    context = RenderContext(related, leave_out_missing=related_unavailable)
    rendered = _Renderer(version_plan, context).value(body)
    assert isinstance(rendered, dict)
    return rendered


def render_event(event: JsonObject, version: str, related: Related = NO_RELATED) -> JsonObject:
    """A stored event (latest-schema `data`) as delivered at `version`: `data.object` and
    `data.previous_attributes` rendered, the event's own fields rendered (`request` is a string
    before 2017-05-25), and `api_version` set to `version`."""
    rendered = dict(render(event, version, related))
    rendered["api_version"] = version
    return rendered


def render_error(
    http_status: int,
    body: JsonObject,
    version: str,
    related: Related = NO_RELATED,
    *,
    operation: str | None = None,
    related_unavailable: bool = False,
) -> ErrorResponse:
    """An error response at `version`: its status and fields, and the objects it embeds.
    `operation` ("POST /v1/tokens") is the one that answered it, for the changes to errors
    that concern some operations only; `related_unavailable` as for `render`."""
    version_plan = plan(version)
    rendered = render(body, version, related, related_unavailable=related_unavailable)
    response = ErrorResponse(http_status, rendered, operation)
    if version_plan.error_changes:
        error = response.error
        response.body = {**response.body, "error": dict(error)}
        for change in version_plan.error_changes:
            change.downgrade_error(response)
    return response


def upgrade_request(operation: str, form: Form, version: str) -> Form:
    """A request sent at `version` for `operation` ("POST /v1/payment_intents"), rewritten to
    the latest schema's parameters; raises `RequestRefusedError` for what `version` refuses."""
    version_plan = plan(version)
    upgrades = [c for c in version_plan.request_upgrades if operation in c.operations]
    checks = [c for c in version_plan.request_checks if operation in c.operations]
    if not upgrades and not checks:
        return form
    upgraded = dict(form)
    for change in upgrades:
        change.upgrade_request(operation, upgraded)
    for change in checks:
        change.check_request(operation, upgraded)
    return upgraded


class _Renderer:
    def __init__(self, version_plan: VersionPlan, context: RenderContext) -> None:
        self._changes = version_plan.response_changes
        self._previous_attributes_changes = version_plan.previous_attributes_changes
        self._context = context
        self._internal = internal_fields()
        self._free_form = free_form_fields()
        self._shared: dict[int, tuple[JsonValue, JsonValue]] | None = None
        """While an event's object is rendered before and after it: each nested value rendered
        so far (kept, so its id stays its own), by id, with what it rendered to."""

    def value(self, value: JsonValue) -> JsonValue:
        if self._shared is not None and isinstance(value, dict | list):
            # Rendering depends on the value alone: the same value, met again in the object
            # before the event, renders to the same thing.
            known = self._shared.get(id(value))
            if known is not None and known[0] is value:
                return known[1]
            rendered = self._value(value)
            self._shared[id(value)] = (value, rendered)
            return rendered
        return self._value(value)

    def _value(self, value: JsonValue) -> JsonValue:
        if isinstance(value, dict):
            return self.mapping(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    def mapping(self, source: JsonObject) -> JsonObject:
        kind = source.get("object")
        type_name = kind if isinstance(kind, str) else None
        obj = dict(source)
        if type_name is not None:
            for change in self._changes.get(type_name, ()):
                change.downgrade(obj, self._context)
            for name in self._internal.get(type_name, ()):
                obj.pop(name, None)  # read by the changes above, never shown
        if type_name == "event":
            self._event_data(obj)
        for key, item in obj.items():
            if key in self._free_form or (type_name == "event" and key == "data"):
                continue
            if isinstance(item, dict | list):
                obj[key] = self.value(item)
        return obj

    def _event_data(self, event: JsonObject) -> None:
        data = event.get("data")
        if not isinstance(data, dict):
            return
        rendered = dict(data)
        inner = data.get("object")
        before = object_before(data)
        if isinstance(inner, dict) and before is None:
            rendered["object"] = self.mapping(inner)
        elif isinstance(inner, dict) and before is not None:
            # The object before the event shares all but a few fields with the object after
            # it: what they share (nested objects, embedded lists) is rendered once for both.
            # The objects themselves go through their changes each, as those derive fields
            # from the ones that changed.
            outer, self._shared = self._shared, {}
            try:
                after = self.mapping(inner)
                previous = _changed(self.mapping(before), after)
            finally:
                self._shared = outer
            for change in self._previous_attributes_changes:
                change.downgrade_previous_attributes(previous, after)
            rendered["object"] = after
            rendered["previous_attributes"] = previous
        event["data"] = rendered


def object_before(data: JsonValue) -> JsonObject | None:
    """The whole object as it was before an event, from the event's `data`: its object with
    `previous_attributes` laid over it, a changed hash key by key (None for an event without
    them)."""
    if not isinstance(data, dict):
        return None
    inner, previous = data.get("object"), data.get("previous_attributes")
    if not isinstance(inner, dict) or not isinstance(previous, dict):
        return None
    return whole_object_before(inner, previous)


def _changed(before: JsonObject, after: JsonObject) -> JsonObject:
    """What differs from `before` to `after`, as `previous_attributes` report it, copied:
    rendered once for both, a part of one may be shared with `after`, and the two are handed
    on as separate values."""
    return copy.deepcopy(changed_attributes(before, after))
