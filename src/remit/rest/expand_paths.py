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
field is an expandable id, an object or an array (nothing to expand there, but a charge's
`refunds` is shown only when asked for): what `expand.expand` accepts for an object of that
shape, whatever its values, so that expanding the answer has no path left to refuse.
"""

from collections.abc import Iterable, Mapping, Sequence

from remit.core.jsonview import JsonObject, JsonValue
from remit.rest.expand import can_fetch, cannot_expand
from remit.versioning.openapi import document, response_schema

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
    components = document(version)["components"]
    assert isinstance(components, dict)
    schemas = components["schemas"]
    assert isinstance(schemas, dict)
    for expand_path in paths:
        if not _expandable(answer, expand_path.split("."), schemas):
            raise cannot_expand(expand_path)


def _expandable(schema: JsonValue, segments: Sequence[str], schemas: Schemas) -> bool:
    head, rest = segments[0], segments[1:]
    shape = _object_shape(schema, schemas)
    if shape is None:
        return False
    properties = shape.get("properties")
    assert isinstance(properties, dict)
    if _is_list(properties) and head == "data":
        items = properties.get("data")
        assert isinstance(items, dict)
        return not rest or _expandable(items.get("items"), rest, schemas)
    field = properties.get(head)
    if field is None:
        return False
    targets = [t for t in _expansion_targets(field) if can_fetch(t)]
    if targets:
        return not rest or any(_expandable({"$ref": _REF + t}, rest, schemas) for t in targets)
    if not rest:
        # An object or an array holds nothing to expand but may be asked for (a charge's
        # `refunds` is shown only then); a number, a string or a flag names no object.
        return _holds_values(field, schemas)
    inner = _object_shape(field, schemas)
    return inner is not None and _expandable(inner, rest, schemas)


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
