"""Removing the fields kept off the wire (the `internal` proto option) from latest-schema JSON.

Such a field is rendered into the latest schema only so that version changes can read it (a
charge's `authorization_released`). The renderer drops it from every object it rewrites; at a
version with no change to apply, `without_internal_fields` drops it instead, unless the caller
says the body holds none (built where `to_json` left them out, at a version for which
`reads_internal_fields` is false: see remit.core.jsonview.internal_fields_left_out).

Free-form maps (`metadata`) are not entered: a merchant's key named like a hidden field is
theirs.

Bodies may be shared (a stored event's data is rendered for every endpoint), so nothing is
changed in place: the objects on the way to a removed field are copied, everything else is
returned as it is, and a body without such fields comes back as the very same object.
"""

from collections.abc import Mapping
from functools import cache

from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.descriptors import free_form_fields, internal_fields
from remit.versioning.registry import plan

Hidden = Mapping[str, frozenset[str]]


@cache
def reads_internal_fields(version: str) -> bool:
    """Whether rendering at `version` applies a change that reads a field kept off the wire
    (the changes name what they read in `fields`): only then must a body hold them."""
    hidden = internal_fields()
    for kind, changes in plan(version).response_changes.items():
        names = hidden.get(kind, frozenset())
        if any(names & {field.partition(".")[0] for field in change.fields} for change in changes):
            return True
    return False


def without_internal_fields(body: JsonObject) -> JsonObject:
    hidden = internal_fields()
    if not hidden:
        return body
    stripped = _strip(body, hidden, None)
    assert isinstance(stripped, dict)
    return stripped


def _strip(value: JsonValue, hidden: Hidden, as_type: str | None) -> JsonValue:
    if isinstance(value, list):
        items = [_strip(item, hidden, None) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if not isinstance(value, dict):
        return value
    kind = value.get("object")
    type_name = kind if isinstance(kind, str) else as_type
    names = hidden.get(type_name, frozenset()) if type_name is not None else frozenset()
    changed: JsonObject = {}
    free_form = free_form_fields()
    for key, item in value.items():
        if key in free_form:
            continue
        if type_name == "event" and key == "data":
            stripped = _event_data(item, hidden)
        else:
            stripped = _strip(item, hidden, None)
        if stripped is not item:
            changed[key] = stripped
    if not changed and not names & value.keys():
        return value
    return {key: changed.get(key, item) for key, item in value.items() if key not in names}


def _event_data(data: JsonValue, hidden: Hidden) -> JsonValue:
    """An event's `data`: its object, and `previous_attributes` as a partial object of the
    same type (it has no `object` of its own)."""
    if not isinstance(data, dict):
        return _strip(data, hidden, None)
    inner = data.get("object")
    kind = inner.get("object") if isinstance(inner, dict) else None
    partial_type = kind if isinstance(kind, str) else None
    changed: JsonObject = {}
    for key, item in data.items():
        stripped = _strip(item, hidden, partial_type if key == "previous_attributes" else None)
        if stripped is not item:
            changed[key] = stripped
    return {**data, **changed} if changed else data
