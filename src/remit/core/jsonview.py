"""Latest-schema JSON for any resource message, derived from its protobuf descriptor.

One generic converter, so every resource gets the same wire rules: integers stay integers
(protobuf's own JSON mapping would quote int64s), timestamps become unix seconds, enums become
Stripe's lowercase strings, unset optional fields and unset messages become `null` (or are left
out, key and all, where Stripe leaves them out: the `absent_when_unset` option), and
`object` names the resource (from the `(remit_api.options.v1.resource)` message option).

The conversion plan of each message type is computed once and cached, since rendering sits on
every request's path.

Fields kept off the wire (the `internal` option) are rendered only for the version changes that
read them; where none will (a response at a version newer than all such changes), the caller
renders inside `internal_fields_left_out()` and the converter never writes them, so nothing has
to walk the body to take them out again.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Final, TypeAlias

from google.protobuf import any_pb2, struct_pb2, symbol_database, timestamp_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
JsonObject: TypeAlias = dict[str, JsonValue]

_TIMESTAMP: Final = timestamp_pb2.Timestamp.DESCRIPTOR.full_name
_STRUCT: Final = struct_pb2.Struct.DESCRIPTOR.full_name
_VALUE: Final = struct_pb2.Value.DESCRIPTOR.full_name
_LIST_VALUE: Final = struct_pb2.ListValue.DESCRIPTOR.full_name
_ANY: Final = any_pb2.Any.DESCRIPTOR.full_name
_WRAPPERS: Final = frozenset(
    f"google.protobuf.{name}"
    for name in (
        "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value",
        "BoolValue", "StringValue", "BytesValue",
    )
)  # fmt: skip

Render = Callable[[Message], JsonValue]

_LEAVE_OUT_INTERNAL: ContextVar[bool] = ContextVar("leave_out_internal", default=False)


@contextmanager
def internal_fields_left_out(leave_out: bool = True) -> Iterator[None]:
    """`to_json` in this block, and in the tasks it starts, renders no field kept off the
    wire when `leave_out` (and renders them, as everywhere else, when not)."""
    token = _LEAVE_OUT_INTERNAL.set(leave_out)
    try:
        yield
    finally:
        _LEAVE_OUT_INTERNAL.reset(token)


def leaves_out_internal_fields() -> bool:
    """Whether `to_json` here renders no field kept off the wire."""
    return _LEAVE_OUT_INTERNAL.get()


def object_name(descriptor: Descriptor) -> str | None:
    """Stripe's `object` value for a resource message, or None for a plain nested message."""
    from remit_api.options.v1 import options_pb2

    options = descriptor.GetOptions()
    if not options.HasExtension(options_pb2.resource):
        return None
    name = options.Extensions[options_pb2.resource].object
    return str(name) or None


def expandable_resource(field: FieldDescriptor) -> str | None:
    """The resource an id field expands to with `expand[]`, or None."""
    from remit_api.options.v1 import options_pb2

    options = field.GetOptions()
    if not options.HasExtension(options_pb2.expandable):
        return None
    return str(options.Extensions[options_pb2.expandable].resource) or None


def null_when_empty(field: FieldDescriptor) -> bool:
    """Whether an empty repeated `field` renders as null (its `null_when_empty` option)."""
    from remit_api.options.v1 import options_pb2

    options = field.GetOptions()
    return options.HasExtension(options_pb2.null_when_empty) and bool(
        options.Extensions[options_pb2.null_when_empty]
    )


def absent_when_unset(field: FieldDescriptor) -> bool:
    """Whether an unset `field` leaves its key out of the JSON instead of rendering null (its
    `absent_when_unset` option)."""
    from remit_api.options.v1 import options_pb2

    options = field.GetOptions()
    return options.HasExtension(options_pb2.absent_when_unset) and bool(
        options.Extensions[options_pb2.absent_when_unset]
    )


def internal(field: FieldDescriptor) -> bool:
    """Whether `field` is kept off the wire (its `internal` option): rendered for the version
    changes, removed by the versioning engine before the JSON leaves remit."""
    from remit_api.options.v1 import options_pb2

    options = field.GetOptions()
    return options.HasExtension(options_pb2.internal) and bool(
        options.Extensions[options_pb2.internal]
    )


@cache
def enum_wire_values(enum: EnumDescriptor) -> dict[int, str | None]:
    """Map each enum number to Stripe's string: `CAPTURE_METHOD_MANUAL` -> `manual`."""
    prefix = _upper_snake(enum.name) + "_"
    values: dict[int, str | None] = {}
    for value in enum.values:
        name = value.name.removeprefix(prefix)
        values[value.number] = None if name == "UNSPECIFIED" else name.lower()
    return values


@cache
def enum_numbers(enum: EnumDescriptor) -> dict[str, int]:
    """The inverse of `enum_wire_values`, for parsing Stripe strings into enum numbers."""
    return {wire: number for number, wire in enum_wire_values(enum).items() if wire is not None}


def _upper_snake(camel: str) -> str:
    out: list[str] = []
    for index, char in enumerate(camel):
        previous = camel[index - 1] if index > 0 else ""
        following = camel[index + 1] if index + 1 < len(camel) else ""
        # A word starts at a capital after a small letter, or at the last capital of a run
        # followed by a small letter: ThreeDSecure -> THREE_D_SECURE.
        if char.isupper() and previous and (previous.islower() or following.islower()):
            out.append("_")
        out.append(char.upper())
    return "".join(out)


def to_json(message: Message) -> JsonObject:
    """Render a message as latest-schema JSON (without the fields kept off the wire inside
    `internal_fields_left_out()`)."""
    rendered = _message_renderer(message.DESCRIPTOR, _LEAVE_OUT_INTERNAL.get())(message)
    assert isinstance(rendered, dict)
    return rendered


@cache
def _message_renderer(descriptor: Descriptor, public: bool = False) -> Render:
    """`public`: without the fields kept off the wire, at any depth."""
    full_name = descriptor.full_name
    if full_name == _TIMESTAMP:
        return lambda m: int(m.seconds)  # type: ignore[attr-defined]
    if full_name in (_STRUCT, _VALUE, _LIST_VALUE):
        return _render_struct_like
    if full_name == _ANY:
        return _render_public_any if public else _render_any
    if full_name in _WRAPPERS:
        return _wrapper_renderer(descriptor)
    fields = [
        (field.name, _field_renderer(field, public), absent_when_unset(field))
        for field in descriptor.fields
        if not (public and internal(field))
    ]
    resource = object_name(descriptor)

    def render(message: Message) -> JsonValue:
        out: JsonObject = {}
        if resource is not None:
            out["object"] = resource
        for name, render_field, only_when_set in fields:
            if not only_when_set or message.HasField(name):
                out[name] = render_field(message)
        return out

    return render


def _wrapper_renderer(descriptor: Descriptor) -> Render:
    inner = _scalar_converter(descriptor.fields_by_name["value"])
    return lambda m: inner(m.value)  # type: ignore[attr-defined]


def _scalar_converter(field: FieldDescriptor) -> Callable[[object], JsonValue]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        wire = enum_wire_values(field.enum_type)
        return lambda number: wire.get(number)  # type: ignore[call-overload]
    if field.type == FieldDescriptor.TYPE_BYTES:
        return lambda raw: raw.hex()  # type: ignore[attr-defined]
    return lambda value: value  # type: ignore[return-value]


def _field_renderer(field: FieldDescriptor, public: bool) -> Callable[[Message], JsonValue]:
    name = field.name
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        if value_field.message_type is not None:
            render_value = _message_renderer(value_field.message_type, public)
            return lambda m: {k: render_value(v) for k, v in getattr(m, name).items()}
        convert_value = _scalar_converter(value_field)
        return lambda m: {k: convert_value(v) for k, v in getattr(m, name).items()}
    if field.is_repeated:
        if field.message_type is not None:
            render_item = _message_renderer(field.message_type, public)
            return lambda m: [render_item(item) for item in getattr(m, name)]
        convert_item = _scalar_converter(field)
        if null_when_empty(field):
            return lambda m: [convert_item(item) for item in getattr(m, name)] or None
        return lambda m: [convert_item(item) for item in getattr(m, name)]
    if field.message_type is not None:
        render_message = _message_renderer(field.message_type, public)
        return lambda m: render_message(getattr(m, name)) if m.HasField(name) else None
    convert = _scalar_converter(field)
    if field.has_presence:
        return lambda m: convert(getattr(m, name)) if m.HasField(name) else None
    return lambda m: convert(getattr(m, name))


def _render_struct_like(message: Message) -> JsonValue:
    if isinstance(message, struct_pb2.Struct):
        return {key: _render_value(value) for key, value in message.fields.items()}
    if isinstance(message, struct_pb2.ListValue):
        return [_render_value(value) for value in message.values]
    assert isinstance(message, struct_pb2.Value)
    return _render_value(message)


def _render_value(value: struct_pb2.Value) -> JsonValue:
    kind = value.WhichOneof("kind")
    if kind == "null_value" or kind is None:
        return None
    if kind == "number_value":
        number = value.number_value
        # Struct stores every number as a double. Amounts and timestamps are integers, and must
        # come back as JSON integers; a double represents every integer up to 2**53 exactly.
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _render_struct_like(value.struct_value)
    return _render_struct_like(value.list_value)


def _render_public_any(message: Message) -> JsonValue:
    return _render_any(message, public=True)


def _render_any(message: Message, public: bool = False) -> JsonValue:
    assert isinstance(message, any_pb2.Any)
    if not message.type_url:
        return None
    type_name = message.type_url.rpartition("/")[2]
    message_class = symbol_database.Default().GetSymbol(type_name)
    inner = message_class()
    message.Unpack(inner)
    return _message_renderer(inner.DESCRIPTOR, public)(inner)
