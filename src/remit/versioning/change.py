"""What a version change is: one breaking change, the resources it touches, and the small pure
functions that render the latest schema back to the previous version's shape (responses) and
turn the previous version's requests into the new shape.

A change belongs to the version that introduced it (its module `versions/vYYYY_MM_DD.py`).
Requests and responses at that version or newer see the new behaviour; older ones go through
the change. Changes never do I/O: data a change needs beyond the object itself (the charges of
a PaymentIntent, the refunds of a Charge) is declared as a `RelatedList` and gathered by the
caller before rendering (see `remit.versioning.related`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from remit.core.jsonview import JsonObject, JsonValue
from remit.rest.forms import FormValue
from versions import KNOWN_VERSIONS

Form = dict[str, FormValue]
"""Request parameters as decoded from the form or JSON body, before the schema parses them."""


@dataclass(frozen=True)
class RelatedList:
    """Objects a change lists inside another object for old versions, which the latest schema
    leaves out: e.g. the charges of a PaymentIntent (`resource="charge"`, listed with the
    filter `payment_intent=<the intent's id>`)."""

    resource: str
    filter_param: str
    url_template: str
    """The `url` of the rendered list, with `{id}` for the parent's id."""
    empty_when_null: str | None = None
    """A field of the parent that, when null, proves the list is empty (no fetch needed)."""


@dataclass(frozen=True)
class RelatedObject:
    """An object a change shows in place of the id a field of the parent holds, for old
    versions that expanded it without being asked: e.g. the Radar rule that decided a charge
    (`resource="rule"`, `field="outcome.rule"`). It is fetched by that id; one gone since
    (a deleted rule) is not found, and the id stays."""

    resource: str
    field: str
    """The parent's field (dotted path) holding the id."""
    as_of_parent: bool = False
    """The object as the parent knew it (a rule as it was when it decided the charge), not as
    it is now: found once for each parent, by the parent's id and its own (`key_in`)."""

    def id_in(self, parent: JsonObject) -> str | None:
        """The id the parent's field holds; None when it holds none (null, or an object the
        client expanded already)."""
        value: JsonValue = parent
        for name in self.field.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(name)
        return value if isinstance(value, str) else None

    def key_in(self, parent: JsonObject) -> str | None:
        """What the object is found by for this parent: its id, or for one shown
        `as_of_parent` the parent's id and its own, a space between (ids hold none); None
        when the field names no object."""
        object_id = self.id_in(parent)
        parent_id = parent.get("id")
        if object_id is None or not self.as_of_parent or not isinstance(parent_id, str):
            return object_id
        return self.key_of(parent_id, object_id)

    @staticmethod
    def key_of(parent_id: str | None, object_id: str) -> str:
        """The key of the object as the parent knew it (or as it is, with no parent's id)."""
        return object_id if parent_id is None else f"{parent_id} {object_id}"

    @staticmethod
    def ids_in(key: str) -> tuple[str | None, str]:
        """The parent's id (None when the key has none) and the object's, from a `key_in`."""
        parent_id, space, object_id = key.partition(" ")
        return (parent_id, object_id) if space else (None, key)


Need = RelatedList | RelatedObject
"""What a change may ask to have gathered before rendering."""


@dataclass(frozen=True)
class RelatedPage:
    """A related list as an old version embeds it: its first items (at most a page), whether
    more follow, and how many there are in all."""

    data: list[JsonObject]
    has_more: bool
    total_count: int

    @classmethod
    def whole(cls, items: list[JsonObject]) -> "RelatedPage":
        """A list shown in full."""
        return cls(list(items), has_more=False, total_count=len(items))


@dataclass
class ErrorResponse:
    """An error as the engine versions it: the HTTP status and the `{"error": {...}}` body,
    and the operation that answered it ("POST /v1/tokens"; None when no operation did, e.g. an
    unknown path)."""

    http_status: int
    body: JsonObject
    operation: str | None = None

    @property
    def error(self) -> JsonObject:
        inner = self.body.get("error")
        assert isinstance(inner, dict)
        return inner


class RequestRefusedError(Exception):
    """A request that a version refuses (a parameter it no longer accepts, a rule it adds).
    The facade answers it as a 400 `invalid_request_error` with this code and param."""

    def __init__(self, message: str, *, code: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


class RenderContext:
    """What a response change may consult besides the object: related lists gathered for it.

    `leave_out_missing`: related data could not be gathered (a fetch failed), and what is
    missing is left out rather than refused: a list is not shown, an object keeps its id."""

    def __init__(
        self, related: Mapping[tuple[Need, str], RelatedPage], *, leave_out_missing: bool = False
    ) -> None:
        self._related = related
        self._leave_out_missing = leave_out_missing

    def related_page(self, need: RelatedList, parent: JsonObject) -> RelatedPage | None:
        """The list, or None when it could not be gathered (`leave_out_missing`): the change
        then shows none."""
        if need.empty_when_null is not None and parent.get(need.empty_when_null) is None:
            return RelatedPage.whole([])
        parent_id = parent.get("id")
        key = (need, parent_id if isinstance(parent_id, str) else "")
        if key not in self._related:
            if self._leave_out_missing:
                return None
            raise RelatedDataMissingError(
                f"rendering {parent.get('object')} {parent_id} needs its {need.resource} list "
                "(gather it with remit.versioning.gather_related first)"
            )
        return self._related[key]

    def related_object(self, need: RelatedObject, parent: JsonObject) -> JsonObject | None:
        """The object the parent's field names, or None when it names none, the object is
        gone, or it could not be gathered (`leave_out_missing`): the id then stays."""
        object_id = need.key_in(parent)
        if object_id is None:
            return None
        key = (need, object_id)
        if key not in self._related:
            if self._leave_out_missing:
                return None
            raise RelatedDataMissingError(
                f"rendering {parent.get('object')} {parent.get('id')} needs the {need.resource} "
                f"{need.ids_in(object_id)[1]} (gather it with remit.versioning.gather_related "
                "first)"
            )
        found = self._related[key].data
        return found[0] if found else None


class RelatedDataMissingError(LookupError):
    """A change needed related data that was not gathered before rendering."""


class VersionChange:
    """One breaking change. Subclasses set the class attributes and override the hooks they need.

    - The docstring is the changelog entry (Markdown; the first line is its title).
    - `resources`: the Stripe `object` names whose responses the change rewrites, or
      `("error",)` for changes to error responses. Every change touches at least one.
    - `fields`: latest-schema fields (dotted paths allowed) the change reads or rewrites; each
      must exist in every resource's message.
    - `adds_back`: fields the change renders for old versions that the latest schema no longer
      has; each must be absent from every resource's message.
    - `operations`, `params`, `old_params`: for request changes, the operations
      ("POST /v1/payment_intents") whose parameters change, the latest-schema parameters the
      change writes (each must be a field of the operation's gRPC request message) and the old
      parameter names it reads (which must not be). An error change that concerns some
      operations only names them too, and compares them with `ErrorResponse.operation`.
    - `needs`: related lists and objects to gather before rendering (see `RelatedList`,
      `RelatedObject`).
    """

    version: ClassVar[str]
    """The version whose module (`versions/vYYYY_MM_DD.py`) defines the change, set when the
    class is defined, so it is known before (and without) the registry loading."""
    resources: ClassVar[tuple[str, ...]] = ()
    fields: ClassVar[tuple[str, ...]] = ()
    adds_back: ClassVar[tuple[str, ...]] = ()
    operations: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[tuple[str, ...]] = ()
    old_params: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[tuple[Need, ...]] = ()
    refused_params: ClassVar[tuple[str, ...]] = ()
    """Parameters `check_request` refuses from this version on (left out of its OpenAPI)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        version = version_of_module(cls.__module__)
        if version is not None:
            cls.version = version

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        """Rewrite `obj`, a resource in this change's version's shape, into the previous
        version's shape, in place. Only touch `obj`'s own keys (nested objects are rendered on
        their own, after this); tolerate absent keys. An event's `previous_attributes` are made
        from whole objects rendered before and after the event, never passed here alone."""

    def downgrade_previous_attributes(self, previous: JsonObject, obj: JsonObject) -> None:
        """Rewrite an event's `previous_attributes` into how the previous version reported a
        change, in place: for changes to how events report what changed (`resources =
        ("event",)`). `previous` is what differs between the whole object before the event and
        after it, both rendered at the version being rendered, as the latest version reports it
        (a changed hash by its changed keys: `remit.versioning.previous_attributes`), then as
        the newer changes of this kind left it; `obj` is the object after it, as rendered
        there."""

    def downgrade_error(self, error: ErrorResponse) -> None:
        """Rewrite an error response into the previous version's status and shape, in place."""

    def upgrade_request(self, operation: str, form: Form) -> None:
        """Rewrite the previous version's parameters for `operation` into this version's, in
        place; raise `RequestRefusedError` for what neither version accepts."""

    def check_request(self, operation: str, form: Form) -> None:
        """Refuse, at this version and newer, a request that this version no longer accepts
        (raise `RequestRefusedError`). Runs on the upgraded form of every request in force."""

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        """Rewrite the OpenAPI component schemas (keyed by object name: "payment_intent") the
        way `downgrade` rewrites objects, so each version's document describes its shapes."""

    def downgrade_params(self, operation: str, properties: dict[str, JsonObject]) -> None:
        """Rewrite an operation's parameter schemas (by name) the way `upgrade_request`
        reads them, in reverse: the previous version's names and types."""


def version_of_module(module: str) -> str | None:
    """The known version a change module is named for (`versions.v2025_03_31` ->
    `2025-03-31.basil`), or None for a module outside `versions/`."""
    package, _, name = module.rpartition(".")
    if package != "versions" or not name.startswith("v"):
        return None
    date = name.removeprefix("v").replace("_", "-")
    return next((known for known in KNOWN_VERSIONS if known.split(".")[0] == date), None)


def json_list(items: list[JsonObject], *, url: str) -> JsonObject:
    """A list envelope as Stripe rendered embedded lists (with `total_count`), in full."""
    return json_page(RelatedPage.whole(items), url=url)


def json_page(page: RelatedPage, *, url: str) -> JsonObject:
    """The envelope of an embedded list's first page: `has_more` when items were left out,
    and `total_count` counting them too."""
    data: list[JsonValue] = list(page.data)
    return {
        "object": "list",
        "data": data,
        "has_more": page.has_more,
        "total_count": page.total_count,
        "url": url,
    }
