"""Small conversions between domain values and protobuf fields, shared by every servicer."""

from datetime import UTC, datetime, timedelta
from typing import Literal

from google.protobuf import duration_pb2, timestamp_pb2

from remit.core.errors import invalid
from remit_api.common.v1 import common_pb2

FilterBound = Literal["gt", "gte", "lt", "lte"]


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(moment.astimezone(UTC))
    return message


def from_timestamp(message: timestamp_pb2.Timestamp) -> datetime:
    """A Timestamp remit wrote itself; one from a request goes through `request_datetime`."""
    return message.ToDatetime(tzinfo=UTC)


def request_datetime(message: timestamp_pb2.Timestamp, param: str) -> datetime:
    """A Timestamp from a request. Any int64 of seconds is a well-formed Timestamp, but only
    years 1 to 9999 fit a datetime: beyond them the caller sent bad input, which is answered as
    an invalid `param`, not as an internal error."""
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid(f"{param} must be a valid timestamp.", param) from None


def request_timedelta(message: duration_pb2.Duration, param: str) -> timedelta:
    """A Duration from a request; one longer than a timedelta holds (about 2.7 million years)
    is the caller's bad input, answered as an invalid `param`."""
    try:
        return message.ToTimedelta()
    except (ValueError, OverflowError):
        raise invalid(f"{param} must be a valid duration.", param) from None


def filter_bound(
    created: common_pb2.CreatedFilter, bound: FilterBound, param: str = "created"
) -> datetime | None:
    """One bound of a request's time filter (None when unset), named `param[bound]` as the
    REST API names it when out of range."""
    if not created.HasField(bound):
        return None
    return request_datetime(getattr(created, bound), f"{param}[{bound}]")
