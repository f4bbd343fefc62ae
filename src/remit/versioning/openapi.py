"""An OpenAPI 3.1 document per API version, generated from the latest schema (the protobuf
descriptors of the resource messages and the parameter schemas of the REST operations) and the
version changes (`downgrade_schema`, `downgrade_params`, `refused_params`).

Component schemas are named by Stripe object name for resources ("payment_intent") and by
message name for nested messages ("NextAction"). Nullability follows the JSON converter: unset
messages and `optional` scalars render as null.
"""

import json
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Final

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from remit.core.jsonview import (
    JsonObject,
    JsonValue,
    absent_when_unset,
    enum_wire_values,
    expandable_resource,
    internal,
    null_when_empty,
)
from remit.rest import params as p
from remit.versioning.descriptors import message_for, resource_messages
from remit.versioning.operations import operation_key
from remit.versioning.registry import newer_than, version_modules
from versions import KNOWN_VERSIONS

if TYPE_CHECKING:
    from remit.rest.app import Operation

OPENAPI_VERSION: Final = "3.1.0"
_REF: Final = "#/components/schemas/"
_INTEGER_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)  # fmt: skip
_SKIPPED_OBJECTS: Final = frozenset({"list", "error"})


def ref(name: str) -> JsonObject:
    return {"$ref": _REF + name}


def nullable(schema: JsonObject) -> JsonObject:
    return {"anyOf": [schema, {"type": "null"}]}


class _SchemaBuilder:
    """Turns messages into component schemas, each message once."""

    def __init__(self) -> None:
        self.schemas: dict[str, JsonObject] = {}
        self._names: dict[str, str] = {}
        primary = resource_messages()
        for name, descriptor in primary.items():
            if name not in _SKIPPED_OBJECTS:
                self._names[descriptor.full_name] = name

    def name_of(self, descriptor: Descriptor) -> str:
        if descriptor.full_name not in self._names:
            taken = set(self._names.values())
            name = descriptor.name
            if name in taken:
                name = descriptor.full_name.removeprefix("remit_api.").replace(".", "_")
            self._names[descriptor.full_name] = name
        return self._names[descriptor.full_name]

    def message(self, descriptor: Descriptor) -> JsonObject:
        """A `$ref` to the message's schema, building it on first use."""
        name = self.name_of(descriptor)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive messages refer to themselves
            self.schemas[name] = self._object_schema(descriptor)
        return ref(name)

    def _object_schema(self, descriptor: Descriptor) -> JsonObject:
        properties: dict[str, JsonValue] = {}
        from remit.core.jsonview import object_name

        resource = object_name(descriptor)
        required: list[JsonValue] = []
        if resource is not None:
            properties["object"] = {"type": "string", "enum": [resource]}
            required.append("object")
        for field in descriptor.fields:
            if not internal(field):  # never shown on the wire
                properties[field.name] = self.field(field)
        if "id" in properties:
            required.append("id")
        schema: JsonObject = {
            "type": "object",
            "title": descriptor.name,
            "properties": properties,
        }
        if required:
            schema["required"] = required
        return schema

    def field(self, field: FieldDescriptor) -> JsonObject:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            value = self.single(message.fields_by_name["value"])
            return {"type": "object", "additionalProperties": value}
        if field.is_repeated:
            array: JsonObject = {"type": "array", "items": self.single(field)}
            return nullable(array) if null_when_empty(field) else array
        schema = self.single(field)
        targets = _expansion_targets(field)
        if targets:
            schema = {"anyOf": [schema, *(self.message(message_for(t)) for t in targets)]}
        # A field left out when unset is never null: its key is there only with a value.
        if (message is not None or field.has_presence) and not absent_when_unset(field):
            return nullable(schema)
        return schema

    def single(self, field: FieldDescriptor) -> JsonObject:
        message = field.message_type
        if message is not None:
            if message.full_name == timestamp_pb2.Timestamp.DESCRIPTOR.full_name:
                return {"type": "integer", "description": "Unix time in seconds."}
            if message.full_name in (
                struct_pb2.Struct.DESCRIPTOR.full_name,
                struct_pb2.Value.DESCRIPTOR.full_name,
            ):
                return {"type": "object"}
            if message.full_name == struct_pb2.ListValue.DESCRIPTOR.full_name:
                return {"type": "array"}
            if message.full_name.startswith("google.protobuf.") and "value" in (
                message.fields_by_name
            ):
                return self.single(message.fields_by_name["value"])
            return self.message(message)
        if field.type == FieldDescriptor.TYPE_ENUM:
            values = [v for v in enum_wire_values(field.enum_type).values() if v is not None]
            return {"type": "string", "enum": list(values)}
        if field.type == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if field.type in _INTEGER_TYPES:
            return {"type": "integer"}
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {"type": "number"}
        return {"type": "string"}


def param_schema(field: p.Field[object]) -> JsonObject:
    """The JSON schema of one declared REST parameter."""
    schema: JsonObject
    if isinstance(field, p.Integer):
        schema = {"type": "integer"}
        if field.minimum is not None:
            schema["minimum"] = field.minimum
        if field.maximum is not None:
            schema["maximum"] = field.maximum
    elif isinstance(field, p.Boolean):
        schema = {"type": "boolean"}
    elif isinstance(field, p.BooleanOrEnum):
        values: list[JsonValue] = list(field.values)
        schema = {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": values}]}
    elif isinstance(field, p.Enum):
        schema = {"type": "string", "enum": list(field.values)}
    elif isinstance(field, p.String):
        schema = {"type": "string", "maxLength": field.max_length}
    elif isinstance(field, p.Currency):
        currencies: list[JsonValue] = [*sorted(field.supported)]
        schema = {"type": "string", "enum": currencies}
    elif isinstance(field, p.CurrencyCode):
        schema = {"type": "string", "pattern": "^[A-Za-z]{3}$"}
    elif isinstance(field, p.Metadata):
        schema = {
            "type": "object",
            "maxProperties": p.METADATA_MAX_KEYS,
            "propertyNames": {"minLength": 1, "maxLength": p.METADATA_KEY_MAX_LENGTH},
            "additionalProperties": {"type": "string", "maxLength": p.METADATA_VALUE_MAX_LENGTH},
        }
    elif isinstance(field, p.ExpandList):
        schema = {"type": "array", "items": {"type": "string"}}
    elif isinstance(field, p.Array):
        schema = {"type": "array", "items": param_schema(field.item)}
    elif isinstance(field, p.Object):
        schema = {
            "type": "object",
            "properties": {name: param_schema(f) for name, f in field.schema.fields.items()},
        }
    elif isinstance(field, p.RangeFilter):
        bounds: JsonObject = {bound: {"type": "integer"} for bound in ("gt", "gte", "lt", "lte")}
        schema = {"anyOf": [{"type": "integer"}, {"type": "object", "properties": bounds}]}
    else:
        schema = {}
    if field.unsettable:
        return {"anyOf": [schema, {"type": "string", "enum": [""]}]}
    return schema


def _expansion_targets(field: FieldDescriptor) -> list[str]:
    """The resources an expandable id field may name: its one resource, or, for a polymorphic
    field (a balance transaction's `source`), each of its `any_of`."""
    from remit_api.options.v1 import options_pb2

    single = expandable_resource(field)
    if single is not None:
        return [single]
    options = field.GetOptions()
    if not options.HasExtension(options_pb2.expandable):
        return []
    return list(options.Extensions[options_pb2.expandable].any_of)


def _answered_resource(segments: Sequence[str]) -> tuple[str, int] | None:
    """The resource an operation's path answers with, and the index of the segment naming it:
    the last segment that names one, as an action (`/capture`) answers the object before it
    and a nested collection (`/charges/{charge}/refunds`) its own. A namespaced collection
    (`/radar/value_lists`) names `radar.value_list`."""
    resources = resource_messages()
    for index in range(len(segments) - 1, -1, -1):
        segment = segments[index]
        if segment.startswith("{"):
            continue
        for name in (segment, segment.removesuffix("s")):
            for candidate in (name, f"{segments[0]}.{name}"):
                if candidate in resources and candidate not in _SKIPPED_OBJECTS:
                    return candidate, index
    return None


def response_schema(method: str, path: str) -> JsonObject:
    """The schema of what the operation at `method` `path` answers with: a resource, or a list
    (or search result) of one; `{"type": "object"}` when the path names no resource."""
    segments = [s for s in path.split("/") if s and s != "v1"]
    answered = _answered_resource(segments)
    if answered is None:
        return {"type": "object"}
    resource, index = answered
    item = ref(resource)
    collection = index == len(segments) - 1 and segments[index] != resource.rpartition(".")[2]
    if segments[-1] == "search":
        kind = "search_result"
    elif method == "GET" and collection:
        kind = "list"
    else:
        return item
    return {
        "type": "object",
        "required": ["object", "data", "has_more", "url"],
        "properties": {
            "object": {"type": "string", "enum": [kind]},
            "data": {"type": "array", "items": item},
            "has_more": {"type": "boolean"},
            "url": {"type": "string"},
            "next_page": nullable({"type": "string"}),
            "total_count": {"type": "integer"},
        },
    }


def _error_schema() -> JsonObject:
    fields = (
        "code", "decline_code", "message", "param", "charge", "doc_url", "payment_method_type",
        "advice_code", "network_advice_code", "network_decline_code", "user_message",
    )  # fmt: skip
    properties: dict[str, JsonValue] = {
        "type": {
            "type": "string",
            "enum": ["api_error", "card_error", "idempotency_error", "invalid_request_error"],
        }
    }
    properties.update({name: {"type": "string"} for name in fields})
    for embedded in ("payment_intent", "payment_method", "setup_intent"):
        properties[embedded] = {"type": "object"}
    return {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["type"], "properties": properties}},
    }


def _operation_id(method: str, path: str) -> str:
    words = [s.strip("{}") for s in path.split("/") if s]
    return "_".join([method.lower(), *words])


@cache
def document(version: str) -> JsonObject:
    """The OpenAPI document of `version` for every route (KeyError for an unknown version)."""
    from remit.rest.routes import all_operations

    return build_document(version, all_operations())


def build_document(version: str, operations: Sequence["Operation"]) -> JsonObject:
    """The OpenAPI document of `version` for `operations`."""
    if version not in KNOWN_VERSIONS:
        raise KeyError(version)
    builder = _SchemaBuilder()
    for name in resource_messages():
        if name not in _SKIPPED_OBJECTS:
            builder.message(resource_messages()[name])
    changes = [c() for m in version_modules() for c in m.changes]
    newer = [c for c in changes if newer_than(c.version, version)]
    in_force = [c for c in changes if not newer_than(c.version, version)]
    for change in newer:  # newest first, as responses are rendered
        change.downgrade_schema(builder.schemas)

    paths: dict[str, JsonObject] = {}
    for operation in operations:
        key = operation_key(operation.method, operation.path)
        properties = {n: param_schema(f) for n, f in operation.schema.fields.items()}
        for change in in_force:
            if key in change.operations:
                for refused in change.refused_params:
                    properties.pop(refused, None)
        for change in newer:
            if key in change.operations:
                change.downgrade_params(key, properties)
        path_item = paths.setdefault(operation.path, {})
        path_item[operation.method.lower()] = _operation(
            operation.method,
            operation.path,
            properties,
            sorted(operation.schema.required & properties.keys()),
            response_schema(operation.method, operation.path),
        )
    builder.schemas["error"] = _error_schema()
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "remit API",
            "version": version,
            "description": "remit's Stripe-compatible REST API as rendered at this version.",
        },
        "servers": [{"url": "/"}],
        "security": [{"basicAuth": []}, {"bearerAuth": []}],
        "paths": dict[str, JsonValue](paths),
        "components": {
            "schemas": dict[str, JsonValue](builder.schemas),
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic"},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }


@cache
def openapi_json(version: str) -> bytes:
    """The document of `version`, serialized once."""
    return json.dumps(document(version), separators=(",", ":")).encode()


def _operation(
    method: str,
    path: str,
    properties: dict[str, JsonObject],
    required: Sequence[str],
    response: JsonObject,
) -> JsonObject:
    operation: JsonObject = {
        "operationId": _operation_id(method, path),
        "responses": {
            "200": {
                "description": "Successful response.",
                "content": {"application/json": {"schema": response}},
            },
            "default": {
                "description": "Error response.",
                "content": {"application/json": {"schema": ref("error")}},
            },
        },
    }
    parameters: list[JsonValue] = [
        {
            "name": name.strip("{}"),
            "in": "path",
            "required": True,
            "schema": {"type": "string", "maxLength": p.PATH_PARAM.max_length},
        }
        for name in path.split("/")
        if name.startswith("{")
    ]
    if method in ("GET", "DELETE"):
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": schema,
                "style": "deepObject",
                "explode": True,
            }
            for name, schema in properties.items()
        ]
    else:
        body: JsonObject = {"type": "object", "properties": dict(properties)}
        if required:
            body["required"] = list(required)
        operation["requestBody"] = {
            "required": bool(required),
            "content": {"application/x-www-form-urlencoded": {"schema": body}},
        }
    if parameters:
        operation["parameters"] = parameters
    return operation
