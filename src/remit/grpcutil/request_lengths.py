"""A request's text held to the lengths its contract declares, before the request does anything.

A string field of a request message may carry `(remit_api.options.v1.max_length)`: the most
characters it may hold, the limit the REST facade holds the same parameter to. The facade
refuses a longer value itself; an internal caller's used to be stored as sent (a description of
a megabyte, a statement descriptor no card network would print). Every server now looks at
each request first (`grpcutil.errors.ErrorMappingInterceptor`) and refuses such a value as
INVALID_ARGUMENT, before it can claim an idempotency key or write anything.

Which fields of a message type carry a limit, directly or in the messages it holds, is worked
out once per type from its descriptor, so a request without limits costs nothing to check.
"""

from dataclasses import dataclass
from typing import Final, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from remit_api.options.v1 import options_pb2


@dataclass(frozen=True, slots=True)
class OverLimit:
    """A value longer than its field allows, and where the request carried it."""

    param: str
    value: str
    limit: int


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to look at in a message of one type: its limited string fields, and the message
    fields whose types hold some; `shortest` is the smallest limit anywhere below (None if the
    type holds none), so a request whose encoding is no longer than that needs no look."""

    strings: tuple[tuple[FieldDescriptor, int], ...]
    messages: tuple[tuple[FieldDescriptor, "_Plan"], ...]
    shortest: int | None


_NOTHING: Final = _Plan((), (), None)
_plans: dict[str, _Plan] = {}


def field_over_limit(message: Message, parent: str | None = None) -> OverLimit | None:
    """The first value of `message` (nested messages and lists included) longer than its
    field's `max_length`, named the way Stripe names parameters (`shipping[address][line1]`,
    `payment_method_types[0]`); None if every value is within its limit."""
    return _first_over(message, _plan_of(message), parent)


def shortest_limit(message: Message) -> int | None:
    """The smallest `max_length` of any field a message of this type holds, or None."""
    return _plan_of(message).shortest


def _plan_of(message: Message) -> _Plan:
    # The stubs type DESCRIPTOR as either of protobuf's implementations; both are alike here.
    descriptor = cast(Descriptor, message.DESCRIPTOR)
    plan = _plans.get(descriptor.full_name)
    if plan is None:
        plan = _plan(descriptor, frozenset())
        _plans[descriptor.full_name] = plan
    return plan


def _plan(descriptor: Descriptor, seen: frozenset[str]) -> _Plan:
    # `seen`: the types on the way here, so a message holding its own type ends the walk.
    if descriptor.full_name in seen:
        return _NOTHING
    seen = seen | {descriptor.full_name}
    strings: list[tuple[FieldDescriptor, int]] = []
    messages: list[tuple[FieldDescriptor, _Plan]] = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            limit = _declared_limit(field)
            if limit is not None:
                strings.append((field, limit))
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            nested = _plan(field.message_type, seen)
            if nested.shortest is not None:
                messages.append((field, nested))
    limits = [limit for _, limit in strings] + [
        nested.shortest for _, nested in messages if nested.shortest is not None
    ]
    return _Plan(tuple(strings), tuple(messages), min(limits, default=None))


def _declared_limit(field: FieldDescriptor) -> int | None:
    options = field.GetOptions()
    if not options.HasExtension(options_pb2.max_length):
        return None
    limit = int(options.Extensions[options_pb2.max_length])
    return limit if limit > 0 else None


def _first_over(message: Message, plan: _Plan, parent: str | None) -> OverLimit | None:
    for field, limit in plan.strings:
        name = _param(parent, field.name)
        if field.is_repeated:
            for index, item in enumerate(getattr(message, field.name)):
                if len(item) > limit:
                    return OverLimit(f"{name}[{index}]", item, limit)
        else:
            value = getattr(message, field.name)
            if len(value) > limit:
                return OverLimit(name, value, limit)
    for field, nested in plan.messages:
        name = _param(parent, field.name)
        if field.is_repeated:
            for index, item in enumerate(getattr(message, field.name)):
                found = _first_over(item, nested, f"{name}[{index}]")
                if found is not None:
                    return found
        elif message.HasField(field.name):
            found = _first_over(getattr(message, field.name), nested, name)
            if found is not None:
                return found
    return None


def _param(parent: str | None, name: str) -> str:
    return name if parent is None else f"{parent}[{name}]"
