"""Stripe's list envelope, and list parameters turned into a gRPC request's fields."""

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from remit.core.jsonview import JsonObject, JsonValue, to_json
from remit.grpcutil.protoconv import timestamp
from remit.rest.params import IntRange, PageRequest
from remit_api.common.v1 import common_pb2


def list_envelope(items: Sequence[Message], *, has_more: bool, url: str) -> JsonObject:
    data: list[JsonValue] = [to_json(item) for item in items]
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def created_filter(created: IntRange | None) -> common_pb2.CreatedFilter:
    """The range as the services compare it: from its first instant up to, not including, the
    first instant after it.

    A Stripe timestamp is whole seconds, but objects are stored with their exact instant: an
    object created at 12:00:00.4 shows `created` 12:00:00, so `created[lte]=12:00:00` (or
    `created=12:00:00`) must find it, and `created[gt]=12:00:00` must not. So `gt=t` becomes
    `gte=t+1`, `lte=t` becomes `lt=t+1`, and only `gte` and `lt` are sent (the tighter of two
    bounds on the same side)."""
    message = common_pb2.CreatedFilter()
    if created is None:
        return message
    lower = [bound for bound in (created.gte, _after(created.gt)) if bound is not None]
    upper = [bound for bound in (created.lt, _after(created.lte)) if bound is not None]
    if lower:
        message.gte.CopyFrom(_instant(max(lower)))
    if upper:
        message.lt.CopyFrom(_instant(min(upper)))
    return message


def _after(second: int | None) -> int | None:
    return None if second is None else second + 1


# The seconds a protobuf Timestamp (and a datetime) can hold: years 1 to 9999. A bound beyond
# them leaves nothing out on that side, so it is clamped there rather than refused.
_FIRST_SECOND = -62_135_596_800
_LAST_SECOND = 253_402_300_799


def _instant(second: int) -> Timestamp:
    clamped = min(max(second, _FIRST_SECOND), _LAST_SECOND)
    return timestamp(datetime.fromtimestamp(clamped, UTC))


def page_fields(page: PageRequest) -> dict[str, object]:
    """The pagination fields shared by every List*Request message."""
    fields: dict[str, object] = {"limit": page.limit, "created": created_filter(page.created)}
    if page.starting_after is not None:
        fields["starting_after"] = page.starting_after
    if page.ending_before is not None:
        fields["ending_before"] = page.ending_before
    return fields
