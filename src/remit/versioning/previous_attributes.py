"""An event's `previous_attributes`: what changed between an object before the event and after
it, as Stripe has reported it since 2015-01-26; and the object before the event, rebuilt from
the object after it and them.

What changed is reported by its old value, except that a hash that changed (a `metadata` map, a
`shipping`, an `invoice_settings`) reports only its keys that changed, at any depth: the old
value of a key changed or removed, and `null` for a key added. `{"a": "1"}` becoming
`{"a": "1", "b": "2"}` is `{"b": null}`; becoming `{"a": "2"}`, `{"a": "1"}`. An array that
changed is shown whole (its elements are not compared: before 2017-05-25 a version change trims
it), and so is a hash that is another API resource than the one before it (its `object`, and
another `id`: the payment method of a new payment error), which was replaced rather than
updated. A key of the object itself that only the object after has is `null` too.

Rebuilding the object before is the reverse: the changed keys are laid over the hash after the
event, hash by hash. A `null` in a free-form map (`metadata`, whose values are strings) is a key
the map did not hold; anywhere else it is the key's old value, as an object's JSON holds every
key of its message, null when unset.
"""

from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.descriptors import free_form_fields


def changed_attributes(before: JsonObject, after: JsonObject) -> JsonObject:
    """`before`'s values of what differs from `after`, a changed hash by its changed keys."""
    return _changed_keys(before, after, free_form_fields())


def whole_object_before(after: JsonObject, previous_attributes: JsonObject) -> JsonObject:
    """The whole object before the event: `previous_attributes` laid over the object after it.
    The values are not copied: parts of the result are parts of the arguments."""
    return _laid_over(after, previous_attributes, free_form_fields(), in_map=False)


def value_before(name: str, previous: JsonValue, after: JsonValue) -> JsonValue:
    """The whole value the field `name` had before the event, from its `previous_attributes`
    entry and its value after the event: a hash's changed keys laid over the hash after."""
    free_form = free_form_fields()
    hashes = _hashes_compared_by_key(name, previous, after, free_form)
    if hashes is None:
        return previous
    changed, new = hashes
    return _laid_over(new, changed, free_form, in_map=name in free_form)


def is_other_object(old: JsonObject, new: JsonObject) -> bool:
    """Whether the hash `old` is an API resource other than `new`, at the same place: it was
    replaced, not updated, and shows whole."""
    return isinstance(old.get("object"), str) and old.get("id") != new.get("id")


def _hashes_compared_by_key(
    key: str, old: JsonValue, new: JsonValue, free_form: frozenset[str]
) -> tuple[JsonObject, JsonObject] | None:
    """`old` and `new`, the values of the field `key`, when they are hashes whose change is
    reported by key; else None."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return None
    # A merchant's map is theirs whatever its keys say, even `object` and `id`.
    if key in free_form or not is_other_object(old, new):
        return old, new
    return None


def _changed_keys(before: JsonObject, after: JsonObject, free_form: frozenset[str]) -> JsonObject:
    changed: JsonObject = {}
    for key, old in before.items():
        if key not in after:
            changed[key] = old
        elif after[key] != old:
            hashes = _hashes_compared_by_key(key, old, after[key], free_form)
            changed[key] = old if hashes is None else _changed_keys(*hashes, free_form)
    for key in after:
        if key not in before:
            changed[key] = None
    return changed


def _laid_over(
    after: JsonObject, changed: JsonObject, free_form: frozenset[str], *, in_map: bool
) -> JsonObject:
    before = dict(after)
    for key, old in changed.items():
        hashes = _hashes_compared_by_key(key, old, after.get(key), free_form)
        if in_map and old is None:
            before.pop(key, None)  # added by the event
        elif hashes is None:
            before[key] = old
        else:
            keys_changed, new = hashes
            before[key] = _laid_over(new, keys_changed, free_form, in_map=key in free_form)
    return before
