"""Small edits of OpenAPI component schemas, for the `downgrade_schema` hooks of changes."""

from remit.core.jsonview import JsonObject, JsonValue


def properties(schemas: dict[str, JsonObject], resource: str) -> dict[str, JsonValue]:
    props = schemas[resource]["properties"]
    assert isinstance(props, dict)
    return props


def rename_property(schemas: dict[str, JsonObject], resource: str, new: str, old: str) -> None:
    """The property called `new` at the latest version was called `old` (keeps its place)."""
    props = properties(schemas, resource)
    renamed = {(old if name == new else name): value for name, value in props.items()}
    props.clear()
    props.update(renamed)


def set_property(
    schemas: dict[str, JsonObject], resource: str, name: str, schema: JsonObject
) -> None:
    properties(schemas, resource)[name] = schema


def rename_enum_values(schema: JsonValue, renames: dict[str, str]) -> None:
    """Rename values of every `enum` inside `schema` (a nullable enum is an anyOf)."""
    if isinstance(schema, dict):
        values = schema.get("enum")
        if isinstance(values, list):
            schema["enum"] = [
                renames.get(value, value) if isinstance(value, str) else value for value in values
            ]
        for item in schema.values():
            rename_enum_values(item, renames)
    elif isinstance(schema, list):
        for item in schema:
            rename_enum_values(item, renames)


def list_of(item: JsonObject) -> JsonObject:
    """The schema of an embedded list envelope (with `total_count`)."""
    return {
        "type": "object",
        "required": ["object", "data", "has_more", "url"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": item},
            "has_more": {"type": "boolean"},
            "total_count": {"type": "integer"},
            "url": {"type": "string"},
        },
    }
