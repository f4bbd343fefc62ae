"""Gathering the related lists and objects that response changes need (see `RelatedList` and
`RelatedObject`), before the pure rendering step. This is the only I/O the versioning layer
causes, and only for versions old enough to show data the latest schema leaves out (a
PaymentIntent's `charges`, a Charge's auto-expanded `refunds` and Radar rule).

The caller supplies `fetch`, which looks up what one need asks for many objects at once
(latest schema, newest first); the REST facade fetches over gRPC (remit.rest.related), the core
from its database (remit.payments.related), tests from a dictionary (`one_by_one`). Gathering
goes level by level: every need of the body (a page of 100 intents asks for the charges of all
of them) in one call per need, then every need of what that fetched (the refunds of all those
charges), and so on, so a list costs a few calls whatever its length.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from remit.core.jsonview import JsonObject, JsonValue
from remit.versioning.change import Need, RelatedObject, RelatedPage, VersionChange
from remit.versioning.descriptors import free_form_fields
from remit.versioning.registry import plan
from remit.versioning.render import Related, object_before

Fetch = Callable[[Need, Sequence[str]], Awaitable[Mapping[str, RelatedPage]]]
"""For a `RelatedList` and its parents' ids, each parent's list: its first page (`MAX_EMBEDDED`
items) with its total count. For a `RelatedObject` and its keys (each a `key_in` a parent: the
object's id, or for one shown `as_of_parent` the parent's and the object's), a page holding
each object, or an empty page for one that no longer exists. Every key asked has an entry; no
key is asked twice."""

FetchOne = Callable[[Need, str], Awaitable[RelatedPage]]
"""`Fetch` for a single key."""

MAX_EMBEDDED: Final = 100
"""Stripe embedded at most this many items in such lists (more meant `has_more`)."""

MAX_DEPTH = 4
"""Fetched objects may need their own lists (a charge's refunds and rule); no change nests
deeper."""


def one_by_one(fetch_one: FetchOne) -> Fetch:
    """A `Fetch` that asks `fetch_one` for each key in turn: for sources that answer from
    memory (tests), where one call per key costs nothing."""

    async def fetch(need: Need, keys: Sequence[str]) -> Mapping[str, RelatedPage]:
        return {key: await fetch_one(need, key) for key in keys}

    return fetch


async def gather_related(body: JsonValue, version: str, fetch: Fetch) -> Related:
    """Every related list and object that rendering `body` at `version` will ask for."""
    changes = plan(version).response_changes
    if not any(change.needs for items in changes.values() for change in items):
        return {}
    found: dict[tuple[Need, str], RelatedPage] = {}
    level: list[JsonValue] = [body]
    for _ in range(MAX_DEPTH):
        wanted = _Wanted(changes, found)
        for value in level:
            wanted.visit(value)
        if not wanted.keys:
            break
        level = []
        for need, keys in wanted.keys.items():
            pages = await fetch(need, keys)
            for key in keys:
                if key not in pages:
                    continue  # left out: rendering says what is missing
                found[need, key] = pages[key]
                if not isinstance(need, RelatedObject):
                    level.extend(pages[key].data)  # their own needs, on the next level
    return found


class _Wanted:
    """The keys one level of objects needs, by need, in the order met, each once and none
    already found."""

    def __init__(
        self,
        changes: Mapping[str, tuple[VersionChange, ...]],
        found: Mapping[tuple[Need, str], RelatedPage],
    ) -> None:
        self._changes = changes
        self._found = found
        self._free_form = free_form_fields()
        self.keys: dict[Need, list[str]] = {}
        self._asked: set[tuple[Need, str]] = set()

    def visit(self, value: JsonValue) -> None:
        if isinstance(value, list):
            for item in value:
                self.visit(item)
            return
        if not isinstance(value, dict):
            return
        kind = value.get("object")
        if isinstance(kind, str) and isinstance(value.get("id"), str):
            for change in self._changes.get(kind, ()):
                for need in change.needs:
                    self._want(need, value)
        if kind == "event":
            # Its previous_attributes render from the whole object before it, which may name
            # other related objects (another rule) than the object after it.
            before = object_before(value.get("data"))
            if before is not None:
                self.visit(before)
        for name, item in value.items():
            # A merchant's metadata holds no objects, whatever its keys say.
            if name not in self._free_form and isinstance(item, dict | list):
                self.visit(item)

    def _want(self, need: Need, parent: JsonObject) -> None:
        if isinstance(need, RelatedObject):
            # Keyed by the object's own id, which charges a rule decided share, unless it is
            # shown as each parent knew it (then by both ids).
            key = need.key_in(parent)
            if key is None:
                return
        else:
            if need.empty_when_null and parent.get(need.empty_when_null) is None:
                return
            parent_id = parent.get("id")
            assert isinstance(parent_id, str)
            key = parent_id
        if (need, key) in self._found or (need, key) in self._asked:
            return
        self._asked.add((need, key))
        self.keys.setdefault(need, []).append(key)
