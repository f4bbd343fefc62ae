"""The latest schema as the protobuf descriptors define it: which message renders as which Stripe
`object`, and whether a (dotted) field path exists in it.

Version changes name resources and fields; these lookups are how a typo in a change fails at
import instead of in a customer's integration.
"""

import importlib
from collections.abc import Mapping
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from remit.core.jsonview import internal, object_name

ERROR_OBJECT = "error"
"""The pseudo-resource of error changes: Stripe's `{"error": {...}}` body, whose fields are those
of `PaymentError` (the same shape embedded as `last_payment_error`)."""

_SERVICE_PACKAGES = ("accounts", "payments", "webhooks", "ledger", "radar", "vault", "common")


class UnknownFieldError(LookupError):
    """A version change names a resource or field the latest schema does not have (or, for a
    field the change adds back for old versions, one it still has)."""


class AmbiguousFreeFormFieldError(TypeError):
    """A name that holds a free-form map in one message names another kind of field in
    another (see `free_form_fields`)."""


@cache
def resource_messages() -> Mapping[str, Descriptor]:
    """Each Stripe `object` name mapped to the message that renders it (the message whose name
    is the object's CamelCase when several share an object name, as `Customer` and
    `DeletedCustomer` do)."""
    found: dict[str, list[Descriptor]] = {}
    for package in _SERVICE_PACKAGES:
        module = importlib.import_module(f"remit_api.{package}.v1.{package}_pb2")
        for message in module.DESCRIPTOR.message_types_by_name.values():
            _collect(message, found)
    chosen: dict[str, Descriptor] = {}
    for name, candidates in found.items():
        wanted = _camel(name.rpartition(".")[2])
        exact = [descriptor for descriptor in candidates if descriptor.name == wanted]
        chosen[name] = (exact or candidates)[0]
    from remit_api.payments.v1 import payments_pb2

    chosen[ERROR_OBJECT] = payments_pb2.PaymentError.DESCRIPTOR
    return chosen


@cache
def internal_fields() -> Mapping[str, frozenset[str]]:
    """Per Stripe `object` name, the top-level fields its message keeps off the wire (the
    `internal` option); only the objects that have some."""
    found: dict[str, frozenset[str]] = {}
    for name, message in resource_messages().items():
        hidden = frozenset(field.name for field in message.fields if internal(field))
        if hidden:
            found[name] = hidden
    return found


@cache
def free_form_fields() -> frozenset[str]:
    """The names of the fields that hold a free-form map (a merchant's `metadata`): what is
    inside is the merchant's, even a key named `object`, so no walk over latest-schema JSON
    enters one. A name is taken as free-form wherever it appears, so none of these may also
    name a field of another kind (checked here, at start-up)."""
    maps: set[str] = set()
    others: dict[str, str] = {}
    for message in _all_messages():
        for field in message.fields:
            if _is_map(field):
                maps.add(field.name)
            else:
                others.setdefault(field.name, message.full_name)
    for name in sorted(maps & others.keys()):
        raise AmbiguousFreeFormFieldError(
            f"{others[name]}.{name} is not a map, but other messages have a map named {name!r}: "
            "free-form maps are recognised by name, so rename one of them"
        )
    return frozenset(maps)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _all_messages() -> list[Descriptor]:
    found: list[Descriptor] = []

    def visit(message: Descriptor) -> None:
        if message.GetOptions().map_entry:
            return
        found.append(message)
        for nested in message.nested_types:
            visit(nested)

    for package in _SERVICE_PACKAGES:
        module = importlib.import_module(f"remit_api.{package}.v1.{package}_pb2")
        for message in module.DESCRIPTOR.message_types_by_name.values():
            visit(message)
    return found


def _collect(message: Descriptor, found: dict[str, list[Descriptor]]) -> None:
    name = object_name(message)
    if name is not None:
        found.setdefault(name, []).append(message)
    for nested in message.nested_types:
        _collect(nested, found)


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def message_for(resource: str) -> Descriptor:
    try:
        return resource_messages()[resource]
    except KeyError:
        raise UnknownFieldError(
            f"no message renders as object {resource!r}; known: {sorted(resource_messages())}"
        ) from None


def find_field(message: Descriptor, path: str) -> FieldDescriptor | None:
    """The field at `path` ("next_action.redirect_to_url.url"), or None if there is none."""
    current: Descriptor | None = message
    field: FieldDescriptor | None = None
    for part in path.split("."):
        if current is None:
            return None
        field = current.fields_by_name.get(part)
        if field is None:
            return None
        current = field.message_type
    return field


def require_field(message: Descriptor, path: str, owner: str) -> FieldDescriptor:
    field = find_field(message, path)
    if field is None:
        raise UnknownFieldError(f"{owner}: {message.full_name} has no field {path!r}")
    return field


def require_absent(message: Descriptor, path: str, owner: str) -> None:
    if find_field(message, path) is not None:
        raise UnknownFieldError(
            f"{owner}: {path!r} is declared as added back for old versions, but "
            f"{message.full_name} still has it in the latest schema"
        )
