"""Gathering the related lists and objects that response changes need (see `RelatedList` and
`RelatedObject`), before the pure rendering step. This is the only I/O the versioning layer
causes, and only for versions old enough to show data the latest schema leaves out (a
PaymentIntent's `charges`, a Charge's auto-expanded `refunds` and Radar rule).

The caller supplies `fetch`, which lists the objects (latest schema, newest first); the REST
facade fetches over gRPC (remit.rest.related), tests pass a dictionary lookup.
"""

from collections.abc import Awaitable, Callable
from typing import Final

from remit.core.jsonview import JsonValue
from remit.versioning.change import Need, RelatedObject, RelatedPage
from remit.versioning.descriptors import free_form_fields
from remit.versioning.registry import plan
from remit.versioning.render import Related, object_before

Fetch = Callable[[Need, str], Awaitable[RelatedPage]]
"""For a `RelatedList` and the parent's id, the list's first page (`MAX_EMBEDDED` items), with
its total count; for a `RelatedObject` and its `key_in` the parent (the object's id, or for one
shown `as_of_parent` the parent's and the object's), a page holding the object, or an empty
page when it no longer exists."""

MAX_EMBEDDED: Final = 100
"""Stripe embedded at most this many items in such lists (more meant `has_more`)."""

MAX_DEPTH = 4
"""Fetched objects may need their own lists (a charge's refunds and rule); no change nests
deeper."""


async def gather_related(body: JsonValue, version: str, fetch: Fetch) -> Related:
    """Every related list that rendering `body` at `version` will ask for."""
    changes = plan(version).response_changes
    if not any(change.needs for items in changes.values() for change in items):
        return {}
    found: dict[tuple[Need, str], RelatedPage] = {}
    free_form = free_form_fields()

    async def visit(value: JsonValue, depth: int) -> None:
        if isinstance(value, list):
            for item in value:
                await visit(item, depth)
            return
        if not isinstance(value, dict):
            return
        kind = value.get("object")
        object_id = value.get("id")
        if isinstance(kind, str) and isinstance(object_id, str) and depth < MAX_DEPTH:
            for change in changes.get(kind, ()):
                for need in change.needs:
                    if isinstance(need, RelatedObject):
                        # Keyed by the object's own id, which charges a rule decided share,
                        # unless it is shown as each parent knew it (then by both ids).
                        target = need.key_in(value)
                        if target is not None and (need, target) not in found:
                            found[need, target] = await fetch(need, target)
                        continue
                    key = (need, object_id)
                    if key in found:
                        continue
                    if need.empty_when_null and value.get(need.empty_when_null) is None:
                        continue
                    found[key] = await fetch(need, object_id)
                    for item in found[key].data:
                        await visit(item, depth + 1)
        if kind == "event":
            # Its previous_attributes render from the whole object before it, which may name
            # other related objects (another rule) than the object after it.
            before = object_before(value.get("data"))
            if before is not None:
                await visit(before, depth)
        for name, item in value.items():
            # A merchant's metadata holds no objects, whatever its keys say.
            if name not in free_form and isinstance(item, dict | list):
                await visit(item, depth)

    await visit(body, 0)
    return found
