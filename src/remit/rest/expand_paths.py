"""`expand[]` paths checked against the schema of what an operation answers, at the request's
version, before the operation runs.

Checked only while expanding, a path no object could have was refused after the work was done:
a PaymentIntent created and confirmed with `expand[]=charges` (a field of versions before
2022-11-15) charged the card, stored its success under the idempotency key and answered 400,
and the client's retry without the path, under a new key, charged the card again. Stripe
refuses such a path up front, and so does this.

The schema is the OpenAPI document's at the version (remit.versioning.openapi), which holds
what the version adds back (a PaymentIntent's `charges` before 2022-11-15) and what only
expanding shows (a charge's `refunds`). A path is valid if each of its fields exists, each one
it goes through is an object (or an id expandable into one, or a list's `data`), and its last
field is an expandable id, or an object or an array that expanding shows: a field shown only
when asked for (a charge's `refunds`, `expand.register_included`), or one that only older
versions show, embedded (a PaymentIntent's `charges`, a Customer's `sources` before
2020-08-27). An id of Stripe's that names an object remit does not serve (a customer's
`default_source`, a charge's `application_fee`: `expand.register_unfilled`) may end a path
too: remit never fills it, and expanding leaves its null as Stripe does. Any other object or
array (`metadata`, `shipping`, a charge's `outcome`) is there already and names nothing to
expand, and Stripe refuses it as it refuses a number or a string: 400 "This property cannot be
expanded (metadata)." Every path accepted is one `expand.expand` accepts for an object of
that shape, whatever its values, so that expanding the answer has no path left to refuse.
"""

from collections.abc import Iterable, Mapping, Sequence

from remit.core.jsonview import JsonObject, JsonValue
from remit.rest.expand import (
    can_fetch,
    can_include,
    cannot_expand,
    never_filled,
    never_shown,
)
from remit.versioning.openapi import document, response_schema
from versions import LATEST_VERSION

_REF = "#/components/schemas/"
_LIST_OBJECTS = frozenset({"list", "search_result"})

Schemas = Mapping[str, JsonValue]


def refuse_unexpandable(paths: Iterable[str], method: str, path: str, version: str) -> None:
    """Raise Stripe's 400 for the first of `paths` that the answer of `method` `path` at
    `version` cannot expand. An operation whose answer names no known resource is left to
    the expansion itself."""
    paths = list(paths)
    if not paths:
        return
    answer = response_schema(method, path)
    if answer == {"type": "object"}:
        return
    schemas = _schemas(version)
    latest = _schemas(LATEST_VERSION)
    for expand_path in paths:
        if not _expandable(answer, expand_path.split("."), schemas, latest):
            raise cannot_expand(expand_path)


def _schemas(version: str) -> Schemas:
    components = document(version)["components"]
    assert isinstance(components, dict)
    schemas = components["schemas"]
    assert isinstance(schemas, dict)
    return schemas


def _expandable(
    schema: JsonValue, segments: Sequence[str], schemas: Schemas, latest: Schemas
) -> bool:
    """`latest`: the schemas of the latest version, which tell the fields only older versions
    show."""
    head, rest = segments[0], segments[1:]
    shape = _object_shape(schema, schemas)
    if shape is None:
        return False
    properties = shape.get("properties")
    assert isinstance(properties, dict)
    if _is_list(properties) and head == "data":
        items = properties.get("data")
        assert isinstance(items, dict)
        return not rest or _expandable(items.get("items"), rest, schemas, latest)
    field = properties.get(head)
    component = _component_name(schema, schemas)
    if field is None:
        # Not in the answer unless expanded (a customer's `sources` since 2020-08-27), or an
        # id remit never fills and leaves out (a charge's `transfer`): named, never gone
        # through. Any other field the version lacks names nothing.
        return (
            not rest
            and component is not None
            and (can_include(component, head) or never_shown(component, head))
        )
    targets = [t for t in _expansion_targets(field) if can_fetch(t)]
    if targets:
        # An id that may name several resources (a balance transaction's `source`) may be gone
        # through to a field any one of them has: expanding leaves the others as they are.
        return not rest or any(
            _expandable({"$ref": _REF + t}, rest, schemas, latest) for t in targets
        )
    if not rest:
        if component is None:
            return False
        # An id remit never fills (a customer's `default_source`) is null, which expanding
        # leaves as it is. An object or an array is there already: only one that expanding
        # shows may be asked for; a number, a string or a flag names no object.
        return never_filled(component, head) or (
            _holds_values(field, schemas)
            and (can_include(component, head) or _only_older_versions_show(component, head, latest))
        )
    inner = _object_shape(field, schemas)
    return inner is not None and _expandable(inner, rest, schemas, latest)


def _component_name(schema: JsonValue, schemas: Schemas) -> str | None:
    """The name of the component `schema` refers to (a resource's is its `object`: "charge"),
    following references to references; None for an object described in place."""
    alternatives = _alternatives(schema)
    if len(alternatives) != 1:
        return None
    reference = alternatives[0].get("$ref")
    if not isinstance(reference, str):
        return None
    name = reference.removeprefix(_REF)
    return _component_name(schemas.get(name), schemas) or name


def _only_older_versions_show(component: str, field: str, latest: Schemas) -> bool:
    """Whether `field` of `component` is one a version change adds back for older versions
    (the latest schema lacks it): an object those versions embed, whose expansion they took."""
    shape = latest.get(component)
    properties = shape.get("properties") if isinstance(shape, dict) else None
    return isinstance(properties, dict) and field not in properties


def _alternatives(schema: JsonValue) -> list[JsonObject]:
    """What `schema` allows, nested `anyOf`s flattened and `null` left out."""
    if not isinstance(schema, dict):
        return []
    members = schema.get("anyOf")
    if isinstance(members, list):
        return [alternative for member in members for alternative in _alternatives(member)]
    return [] if schema.get("type") == "null" else [schema]


def _expansion_targets(schema: JsonValue) -> list[str]:
    """The resources an expandable id names: the schema is an id string or one of them."""
    alternatives = _alternatives(schema)
    if not any(alternative.get("type") == "string" for alternative in alternatives):
        return []
    return [
        reference.removeprefix(_REF)
        for alternative in alternatives
        if isinstance(reference := alternative.get("$ref"), str)
    ]


def _object_shape(schema: JsonValue, schemas: Schemas) -> JsonObject | None:
    """The object `schema` describes (its `$ref` followed), or None if it is anything else."""
    alternatives = _alternatives(schema)
    if len(alternatives) != 1:
        return None
    (only,) = alternatives
    reference = only.get("$ref")
    if isinstance(reference, str):
        return _object_shape(schemas.get(reference.removeprefix(_REF)), schemas)
    return only if isinstance(only.get("properties"), dict) else None


def _holds_values(schema: JsonValue, schemas: Schemas) -> bool:
    """Whether `schema` is an object (a map included) or an array."""
    for alternative in _alternatives(schema):
        reference = alternative.get("$ref")
        shape = schemas.get(reference.removeprefix(_REF)) if isinstance(reference, str) else None
        if isinstance(shape, dict):
            alternative = shape
        if alternative.get("type") in ("object", "array") or "properties" in alternative:
            return True
    return False


def _is_list(properties: Mapping[str, JsonValue]) -> bool:
    kind = properties.get("object")
    values = kind.get("enum") if isinstance(kind, dict) else None
    return isinstance(values, list) and bool(set(map(str, values)) & _LIST_OBJECTS)
