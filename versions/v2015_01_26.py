"""2015-01-26: an event's `previous_attributes` show a hash that changed by its keys that
changed."""

import copy

from remit.core.jsonview import JsonObject
from remit.versioning.change import VersionChange
from remit.versioning.previous_attributes import value_before


class RenderOnlyChangedKeysOfHashes(VersionChange):
    """An event's `previous_attributes` show a hash that changed (`metadata`, `shipping`,
    `invoice_settings`) by its keys that changed, at any depth: the old value of a key changed
    or removed, `null` for a key added. Before 2015-01-26 they showed the whole hash as it was
    before the event.

    `metadata` going from `{"a": "1"}` to `{"a": "1", "b": "2"}` is reported as
    `{"metadata": {"b": null}}`, and before 2015-01-26 as `{"metadata": {"a": "1"}}`. Arrays
    and other values are reported as at 2015-01-26: an array that changed as 2017-05-25's
    change says (only its elements that changed, at versions this old), one that did not, inside
    a hash shown whole, as it was. A hash that is another object than before (another `id`: the
    payment method of a new payment error) was replaced, not updated, and shows whole at every
    version.

    Source: https://docs.stripe.com/changelog/2015-01-26/events-previous-attributes-render-differences
    """

    resources = ("event",)
    fields = ("data.previous_attributes",)

    def downgrade_previous_attributes(self, previous: JsonObject, obj: JsonObject) -> None:
        for name, value in previous.items():
            # Copied: what the event did not change would otherwise be shared with `obj`.
            previous[name] = copy.deepcopy(value_before(name, value, obj.get(name)))
