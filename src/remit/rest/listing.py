"""Stripe's list envelope, and list parameters turned into a gRPC request's fields."""

from collections.abc import Sequence

from google.protobuf.message import Message

from remit.core.jsonview import JsonObject, JsonValue, to_json
from remit.grpcutil.protoconv import timestamp
from remit.rest.params import IntRange, PageRequest
from remit_api.common.v1 import common_pb2


def list_envelope(items: Sequence[Message], *, has_more: bool, url: str) -> JsonObject:
    data: list[JsonValue] = [to_json(item) for item in items]
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def created_filter(created: IntRange | None) -> common_pb2.CreatedFilter:
    message = common_pb2.CreatedFilter()
    if created is None:
        return message
    from datetime import UTC, datetime

    for name in ("gt", "gte", "lt", "lte"):
        bound = getattr(created, name)
        if bound is not None:
            getattr(message, name).CopyFrom(timestamp(datetime.fromtimestamp(bound, UTC)))
    return message


def page_fields(page: PageRequest) -> dict[str, object]:
    """The pagination fields shared by every List*Request message."""
    fields: dict[str, object] = {"limit": page.limit, "created": created_filter(page.created)}
    if page.starting_after is not None:
        fields["starting_after"] = page.starting_after
    if page.ending_before is not None:
        fields["ending_before"] = page.ending_before
    return fields
