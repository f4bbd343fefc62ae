"""A NUL character anywhere in a request, found before the request does anything.

PostgreSQL stores no text holding a NUL (U+0000), in a text column or inside JSON. The REST
facade refuses NUL in whatever a client sends; an internal caller's NUL used to reach the
database and fail there: mapped to INVALID_ARGUMENT when it failed in a text column, a bare
INTERNAL when it failed inside JSON (metadata, billing details), and, for a payment confirmed
at once, only after the payment had claimed its idempotency key in a transaction of its own,
which then stayed behind for a request that was never valid. Looking at the request first
refuses it before any of that.
"""

from google.protobuf.message import Message


def field_with_nul(message: Message, parent: str | None = None) -> str | None:
    """The first field of `message` (nested messages, lists and maps included) whose text
    holds a NUL, named the way Stripe names parameters (`metadata[order]`,
    `billing_details[address][line1]`, `payment_method_types[0]`); None if there is none."""
    for field, value in message.ListFields():
        name = field.name if parent is None else f"{parent}[{field.name}]"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entries = [(f"{name}[{key}]", key, item) for key, item in value.items()]
            for entry_name, key, item in entries:
                if isinstance(key, str) and "\x00" in key:
                    return name
                found = _in_value(item, entry_name)
                if found is not None:
                    return found
        elif field.is_repeated:
            for index, item in enumerate(value):
                found = _in_value(item, f"{name}[{index}]")
                if found is not None:
                    return found
        else:
            found = _in_value(value, name)
            if found is not None:
                return found
    return None


def _in_value(value: object, name: str) -> str | None:
    if isinstance(value, str):
        return name if "\x00" in value else None
    if isinstance(value, Message):
        return field_with_nul(value, name)
    return None
